//! Domain names and mail addresses in the one form the store and the policy compare:
//! domains lower-case IDNA A-labels, addresses `local@domain` lower-cased.

use std::fmt;

/// A normalised mail address: lower-case local part, A-label domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    pub local: String,
    pub domain: String,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Normalises a domain name to its lower-case A-label form, or says what is wrong.
pub fn normalize_domain(input: &str) -> Result<String, String> {
    let trimmed = input.trim().trim_end_matches('.');
    if trimmed.is_empty() {
        return Err("empty domain name".into());
    }
    let ascii = idna::domain_to_ascii_strict(trimmed)
        .map_err(|_| format!("invalid domain name {input:?}"))?;
    if ascii.len() > 253 {
        return Err(format!(
            "invalid domain name {input:?}: longer than 253 characters"
        ));
    }
    let labels: Vec<&str> = ascii.split('.').collect();
    if labels.len() < 2 {
        return Err(format!(
            "invalid domain name {input:?}: a mail domain has at least two labels (e.g. example.com)"
        ));
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "invalid domain name {input:?}: label {label:?} must be 1-63 letters, digits or inner hyphens"
            ));
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "invalid domain name {input:?}: looks like an IP address"
        ));
    }
    Ok(ascii.to_ascii_lowercase())
}

/// The readable (Unicode) form of a stored A-label domain.
pub fn display_domain(a_label: &str) -> String {
    let (unicode, result) = idna::domain_to_unicode(a_label);
    if result.is_ok() {
        unicode
    } else {
        a_label.to_string()
    }
}

/// RFC 5322 `atext` (ASCII only).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// Normalises `local@domain` (dot-atom local part, up to 64 octets) or says what is wrong.
pub fn normalize_address(input: &str) -> Result<Address, String> {
    let s = input.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(s);
    let (local, domain) = s
        .rsplit_once('@')
        .ok_or_else(|| format!("invalid address {input:?}: expected local-part@domain"))?;
    if local.is_empty() {
        return Err(format!("invalid address {input:?}: empty local part"));
    }
    if local.len() > 64 {
        return Err(format!(
            "invalid address {input:?}: local part longer than 64 characters"
        ));
    }
    let dot_atom = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.bytes().all(is_atext));
    if !dot_atom {
        return Err(format!(
            "invalid address {input:?}: the local part may hold letters, digits and !#$%&'*+-/=?^_`{{|}}~ separated by single dots"
        ));
    }
    let domain = normalize_domain(domain).map_err(|e| format!("invalid address {input:?}: {e}"))?;
    Ok(Address {
        local: local.to_ascii_lowercase(),
        domain,
    })
}

/// The addresses of one From header field value (as a milter receives it, folded lines
/// included): display names, encoded words, comments and groups are understood by
/// mail-parser. An address part without `@` is returned as is (the policy refuses it).
pub fn header_addresses(value: &[u8]) -> Vec<String> {
    let mut raw = Vec::with_capacity(value.len() + 12);
    raw.extend_from_slice(b"From: ");
    let mut prev = 0u8;
    for &b in value {
        if b == b'\n' && prev != b'\r' {
            raw.push(b'\r');
        }
        raw.push(b);
        prev = b;
    }
    raw.extend_from_slice(b"\r\n\r\n");
    let Some(message) = mail_parser::MessageParser::new().parse_headers(&raw) else {
        return Vec::new();
    };
    message
        .from()
        .map(|a| {
            a.iter()
                .filter_map(|addr| addr.address.as_deref())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_lower_case_and_a_labels() {
        assert_eq!(normalize_domain("Acme.Example").unwrap(), "acme.example");
        assert_eq!(normalize_domain("acme.example.").unwrap(), "acme.example");
        assert_eq!(
            normalize_domain("bücher.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(
            normalize_domain("XN--BCHER-KVA.example").unwrap(),
            "xn--bcher-kva.example"
        );
        assert_eq!(display_domain("xn--bcher-kva.example"), "bücher.example");
        assert_eq!(display_domain("acme.example"), "acme.example");
    }

    #[test]
    fn bad_domains_are_refused() {
        for bad in [
            "",
            "localhost",
            "-a.example",
            "a-.example",
            "a..example",
            "a b.example",
            "a_b.example",
            "192.0.2.1",
            &format!("{}.example", "a".repeat(64)),
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn addresses() {
        let a = normalize_address("Alice.Smith@ACME.example").unwrap();
        assert_eq!(a.to_string(), "alice.smith@acme.example");
        let a = normalize_address("<bob+tag@bücher.example>").unwrap();
        assert_eq!(a.to_string(), "bob+tag@xn--bcher-kva.example");
        for bad in [
            "alice",
            "@acme.example",
            "alice@",
            "a..b@acme.example",
            ".a@acme.example",
            "a b@acme.example",
            "\"a b\"@acme.example",
            "alice@localhost",
        ] {
            assert!(normalize_address(bad).is_err(), "{bad:?} accepted");
        }
        assert!(normalize_address(&format!("{}@acme.example", "a".repeat(65))).is_err());
    }

    #[test]
    fn from_header_values() {
        let cases: &[(&str, &[&str])] = &[
            ("alice@acme.example", &["alice@acme.example"]),
            ("Alice Smith <alice@acme.example>", &["alice@acme.example"]),
            (
                "\"Smith, Alice\" <alice@acme.example>",
                &["alice@acme.example"],
            ),
            (
                "=?utf-8?q?J=C3=BCrgen?= <juergen@acme.example>",
                &["juergen@acme.example"],
            ),
            ("alice@acme.example (Alice)", &["alice@acme.example"]),
            (
                "a@acme.example, b@other.example",
                &["a@acme.example", "b@other.example"],
            ),
            (
                "Team: a@acme.example, b@acme.example;",
                &["a@acme.example", "b@acme.example"],
            ),
            ("Alice\n <alice@acme.example>", &["alice@acme.example"]),
            ("undisclosed-recipients:;", &[]),
            ("", &[]),
        ];
        for (value, expected) in cases {
            assert_eq!(header_addresses(value.as_bytes()), *expected, "{value:?}");
        }
        // Odd input never panics and never yields an address that is not in it.
        for odd in [
            "<<<>>>",
            "\u{0}\u{1}@",
            "=?x?B?!!!?=",
            &"a".repeat(100_000),
            "\"unterminated <x@y.example",
        ] {
            for a in header_addresses(odd.as_bytes()) {
                assert!(odd.contains(a.as_str()), "{a:?} from {odd:?}");
            }
        }
        assert!(header_addresses(&[0xff, 0xfe, b'@', b'x']).len() <= 1);
    }
}
