//! The Public Suffix List, for DMARC's organizational domain (RFC 7489 section 3.2):
//! the registrable part of a name, one label below its public suffix.
//!
//! The list is read from `inbound.public_suffix_list` (a file the Debian package ships at
//! `/usr/share/postwarden/public_suffix_list.dat` and can update; an administrator may
//! point it at a fresher copy). When that file does not exist, the copy built into the
//! binary is used (`config/public_suffix_list.dat` at build time). A file that exists but
//! cannot be read or holds no rules is an error: the daemon refuses to start rather than
//! judge alignment with a list other than the one configured.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use publicsuffix::{List, Psl};

/// The list built into the binary.
const BUILT_IN: &str = include_str!("../../config/public_suffix_list.dat");

/// A loaded Public Suffix List. Cheap to clone.
#[derive(Clone)]
pub struct PublicSuffixes {
    list: Arc<List>,
    /// Where the rules came from, for `check-config` and logs.
    source: Arc<str>,
}

impl std::fmt::Debug for PublicSuffixes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicSuffixes")
            .field("source", &self.source)
            .finish()
    }
}

impl PublicSuffixes {
    /// The copy built into the binary (parsed once per process).
    pub fn built_in() -> Self {
        static LIST: OnceLock<PublicSuffixes> = OnceLock::new();
        LIST.get_or_init(|| {
            let list: List = BUILT_IN
                .parse()
                .expect("the built-in public suffix list parses");
            PublicSuffixes {
                list: Arc::new(list),
                source: format!("built-in copy ({})", version_of(BUILT_IN)).into(),
            }
        })
        .clone()
    }

    /// The list at `path`, or the built-in copy when `path` is empty or does not exist.
    pub fn load(path: &Path) -> Result<Self, String> {
        if path.as_os_str().is_empty() || !path.exists() {
            return Ok(Self::built_in());
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the public suffix list {}: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// A list from its text (the publicsuffix.org format); `source` names it in messages.
    pub fn parse(text: &str, source: &str) -> Result<Self, String> {
        let list: List = match text.parse() {
            Ok(list) => list,
            Err(publicsuffix::Error::InvalidList) => {
                return Err(format!(
                    "the public suffix list {source} holds no rules: is it publicsuffix.org's \
                     public_suffix_list.dat, with its \"===BEGIN ICANN DOMAINS===\" section?"
                ))
            }
            Err(e) => {
                return Err(format!(
                    "the public suffix list {source} does not parse: {e}"
                ))
            }
        };
        Ok(PublicSuffixes {
            list: Arc::new(list),
            source: format!("{source} ({})", version_of(text)).into(),
        })
    }

    /// Where the rules came from and their version line, e.g.
    /// `built-in copy (2026-10-22_08-36-41_UTC)`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The organizational domain of `domain` (lower-case A-labels, with or without the
    /// trailing dot): its public suffix plus one label. A name that is itself a public
    /// suffix, or shorter, is its own organizational domain. Names outside every rule
    /// take the list's implicit `*` rule (the top-level label is the suffix).
    pub fn organizational_domain<'a>(&self, domain: &'a str) -> &'a str {
        let name = domain.trim_end_matches('.');
        match self.list.domain(name.as_bytes()) {
            Some(registrable) => {
                let len = registrable.as_bytes().len();
                &name[name.len() - len..]
            }
            None => name,
        }
    }
}

/// The `// VERSION:` line of a list, or `unversioned`.
fn version_of(text: &str) -> &str {
    text.lines()
        .take(40)
        .find_map(|l| l.strip_prefix("// VERSION:"))
        .map(str::trim)
        .unwrap_or("unversioned")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organizational_domains_follow_the_list() {
        let psl = PublicSuffixes::built_in();
        assert!(
            psl.source().starts_with("built-in copy (20"),
            "{}",
            psl.source()
        );
        for (name, org) in [
            ("example.com", "example.com"),
            ("mail.example.com", "example.com"),
            ("a.b.example.co.uk", "example.co.uk"),
            ("example.co.uk", "example.co.uk"),
            ("co.uk", "co.uk"),
            ("com", "com"),
            // A private-section suffix: each user's name is its own organization.
            ("alice.github.io", "alice.github.io"),
            ("www.alice.github.io", "alice.github.io"),
            // Wildcard and exception rules (*.ck, !www.ck).
            ("a.b.ck", "a.b.ck"),
            ("x.www.ck", "www.ck"),
            // Outside every rule: the implicit "*".
            ("mail.example.test", "example.test"),
            ("example.test.", "example.test"),
        ] {
            assert_eq!(psl.organizational_domain(name), org, "{name}");
        }
    }

    #[test]
    fn a_file_replaces_the_built_in_copy_and_a_bad_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("pw-psl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("list.dat");
        std::fs::write(
            &file,
            "// VERSION: test-1\n// ===BEGIN ICANN DOMAINS===\nexample\n*.wild.example\n",
        )
        .unwrap();
        let psl = PublicSuffixes::load(&file).unwrap();
        assert!(psl.source().ends_with("(test-1)"), "{}", psl.source());
        assert_eq!(psl.organizational_domain("a.b.example"), "b.example");
        assert_eq!(
            psl.organizational_domain("a.b.x.wild.example"),
            "b.x.wild.example"
        );

        // Missing: the built-in copy.
        let missing = PublicSuffixes::load(&dir.join("nope.dat")).unwrap();
        assert!(missing.source().starts_with("built-in copy"));
        // Present but empty or unreadable: an error naming the file.
        std::fs::write(&file, "// nothing here\n").unwrap();
        let err = PublicSuffixes::load(&file).unwrap_err();
        assert!(err.contains("holds no rules"), "{err}");
        std::fs::write(&file, [0xff, 0xfe, 0x00]).unwrap();
        let err = PublicSuffixes::load(&file).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
