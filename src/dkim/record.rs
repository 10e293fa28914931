//! The DNS side of a key: the TXT record to publish (cut into 255-byte character-strings)
//! and whether a published record offers a given key.

use base64::alphabet;
use base64::engine::general_purpose::GeneralPurpose;
use base64::engine::{DecodePaddingMode, GeneralPurposeConfig};
use base64::Engine as _;

use super::key::rsa_public_key;
use super::Algorithm;

/// Longest DNS TXT character-string (RFC 1035 section 3.3: a length octet, then data).
pub const TXT_STRING_MAX: usize = 255;

/// Standard base64 for `p=` values: padding optional, non-zero trailing bits refused.
const KEY_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A DKIM public-key TXT record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    /// Owner name, `selector._domainkey.domain` (no trailing dot).
    pub name: String,
    /// The record text, e.g. `v=DKIM1; k=rsa; p=MIIB...`.
    pub value: String,
    /// `value` cut into DNS character-strings of at most 255 bytes each; their
    /// concatenation is `value` (a verifier joins them without separators).
    pub strings: Vec<String>,
}

impl DnsRecord {
    /// The record as a BIND zone-file line, every character-string quoted, e.g.
    /// `sel._domainkey.acme.example. IN TXT ( "v=DKIM1; k=rsa; p=MIIB..." "...rest" )`.
    pub fn zone_line(&self) -> String {
        let mut line = format!("{}. IN TXT (", self.name);
        for s in &self.strings {
            line.push_str(" \"");
            for c in s.chars() {
                if c == '"' || c == '\\' {
                    line.push('\\');
                }
                line.push(c);
            }
            line.push('"');
        }
        line.push_str(" )");
        line
    }
}

/// Builds the TXT record for a public key: owner `selector._domainkey.domain`, value
/// `v=DKIM1; k=<algorithm>; p=<public_key_b64>`, split into 255-byte strings.
pub fn dns_record(
    domain: &str,
    selector: &str,
    algorithm: Algorithm,
    public_key_b64: &str,
) -> DnsRecord {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let selector = selector.trim().to_ascii_lowercase();
    let p: String = public_key_b64
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let value = format!("v=DKIM1; k={algorithm}; p={p}");
    DnsRecord {
        name: format!("{selector}._domainkey.{domain}"),
        strings: split_txt_strings(&value),
        value,
    }
}

/// Cuts `value` into pieces of at most [`TXT_STRING_MAX`] bytes, never inside a UTF-8
/// character. An empty value gives one empty string.
pub fn split_txt_strings(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = value;
    while rest.len() > TXT_STRING_MAX {
        let mut cut = TXT_STRING_MAX;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (head, tail) = rest.split_at(cut);
        out.push(head.to_string());
        rest = tail;
    }
    out.push(rest.to_string());
    out
}

/// Whether a published TXT record (its character-strings already concatenated) offers
/// exactly this public key for this algorithm and is usable for email signatures.
///
/// Parses the tag list (RFC 6376 section 3.6.1) tolerating whitespace and line folding;
/// checks `v=` (if present) is `DKIM1`, `k=` (default `rsa`) matches, `s=` (if present)
/// covers email, `h=` (if present) allows sha256, and compares the decoded `p=` key. An
/// empty `p=` (revoked key) never matches. RSA keys compare equal whether either side is
/// published as SubjectPublicKeyInfo or as a bare PKCS#1 RSAPublicKey.
pub fn record_matches(txt: &str, algorithm: Algorithm, public_key_b64: &str) -> bool {
    let Some(tags) = parse_tags(txt) else {
        return false;
    };
    let get = |name: &str| {
        tags.iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if let Some(pos) = tags.iter().position(|(t, _)| t.eq_ignore_ascii_case("v")) {
        if pos != 0 || !tags[pos].1.eq_ignore_ascii_case("DKIM1") {
            return false;
        }
    }
    let k = get("k").unwrap_or("rsa");
    if !k.eq_ignore_ascii_case(algorithm.as_str()) {
        return false;
    }
    if let Some(s) = get("s") {
        if !s
            .split(':')
            .any(|x| x.trim() == "*" || x.trim().eq_ignore_ascii_case("email"))
        {
            return false;
        }
    }
    if let Some(h) = get("h") {
        if !h
            .split(':')
            .any(|x| x.trim().eq_ignore_ascii_case("sha256"))
        {
            return false;
        }
    }
    let Some(published) = get("p").and_then(decode_key) else {
        return false;
    };
    let Some(expected) = decode_key(public_key_b64) else {
        return false;
    };
    if published.is_empty() || expected.is_empty() {
        return false;
    }
    match algorithm {
        Algorithm::Ed25519 => published == expected,
        Algorithm::Rsa => match (rsa_public_key(&published), rsa_public_key(&expected)) {
            (Some(a), Some(b)) => a == b,
            _ => published == expected,
        },
    }
}

/// Splits a `tag=value; tag=value` list. Whitespace (including folding) around tags and
/// values is dropped, and all whitespace inside a value is removed (it is only ever
/// folding in the tags we read). Returns `None` for a syntactically broken list or a
/// duplicated tag.
pub(super) fn parse_tags(txt: &str) -> Option<Vec<(String, String)>> {
    let mut tags: Vec<(String, String)> = Vec::new();
    for part in txt.split(';') {
        if part.trim().is_empty() {
            continue;
        }
        let (tag, value) = part.split_once('=')?;
        let tag = tag.trim();
        if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        if tags.iter().any(|(t, _)| t.eq_ignore_ascii_case(tag)) {
            return None;
        }
        let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        tags.push((tag.to_string(), value));
    }
    Some(tags)
}

/// Strict standard base64 of a key (padding optional, whitespace ignored); `None` if
/// malformed.
fn decode_key(text: &str) -> Option<Vec<u8>> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    KEY_BASE64.decode(compact).ok()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{ed_pair, rsa_pair};
    use super::*;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use rsa::pkcs1::EncodeRsaPublicKey as _;

    #[test]
    fn rsa_record_splits_into_255_byte_strings() {
        let rec = rsa_pair().dns_record("Acme.Example.", "rsa2025");
        assert_eq!(rec.name, "rsa2025._domainkey.acme.example");
        assert!(rec.value.starts_with("v=DKIM1; k=rsa; p=MIIB"));
        assert_eq!(rec.value.len(), "v=DKIM1; k=rsa; p=".len() + 392);
        assert_eq!(rec.strings.len(), 2);
        assert!(rec.strings.iter().all(|s| s.len() <= 255));
        assert_eq!(rec.strings[0].len(), 255);
        assert_eq!(rec.strings.concat(), rec.value);
        let line = rec.zone_line();
        assert_eq!(
            line,
            format!(
                "rsa2025._domainkey.acme.example. IN TXT ( \"{}\" \"{}\" )",
                rec.strings[0], rec.strings[1]
            )
        );
        // mail-auth's own parser accepts the record text.
        assert!(DomainKey::parse(rec.value.as_bytes()).is_ok());
    }

    #[test]
    fn ed25519_record_is_one_string() {
        let rec = ed_pair().dns_record("acme.example", "ed2025");
        assert_eq!(rec.name, "ed2025._domainkey.acme.example");
        assert_eq!(
            rec.value,
            format!("v=DKIM1; k=ed25519; p={}", ed_pair().public_key_b64)
        );
        assert_eq!(rec.strings, vec![rec.value.clone()]);
        assert!(DomainKey::parse(rec.value.as_bytes()).is_ok());
    }

    #[test]
    fn splitting_edge_cases() {
        assert_eq!(split_txt_strings(""), vec![String::new()]);
        let exact = "a".repeat(255);
        assert_eq!(split_txt_strings(&exact), vec![exact.clone()]);
        let long = "b".repeat(600);
        let parts = split_txt_strings(&long);
        assert_eq!(
            parts.iter().map(String::len).collect::<Vec<_>>(),
            [255, 255, 90]
        );
        // Never cuts a multi-byte character.
        let tricky = format!("{}é{}", "c".repeat(254), "d".repeat(10));
        let parts = split_txt_strings(&tricky);
        assert_eq!(parts[0].len(), 254);
        assert_eq!(parts.concat(), tricky);
    }

    #[test]
    fn record_matching() {
        let rsa = rsa_pair();
        let ed = ed_pair();
        let rsa_rec = rsa.dns_record("acme.example", "s").value;
        let ed_rec = ed.dns_record("acme.example", "e").value;
        assert!(record_matches(
            &rsa_rec,
            Algorithm::Rsa,
            &rsa.public_key_b64
        ));
        assert!(record_matches(
            &ed_rec,
            Algorithm::Ed25519,
            &ed.public_key_b64
        ));

        // Whitespace, folding, tag order, case of tag names, no v=, default k=rsa.
        let p = &rsa.public_key_b64;
        let folded = format!(
            "  v = DKIM1 ;\r\n\tK=rsa; t=s;  p={} {} ; ",
            &p[..100],
            &p[100..]
        );
        assert!(record_matches(&folded, Algorithm::Rsa, p));
        assert!(record_matches(&format!("p={p}"), Algorithm::Rsa, p));
        assert!(record_matches(
            &format!("v=DKIM1; h=sha1:sha256; s=email; p={p}"),
            Algorithm::Rsa,
            p
        ));
        // The same RSA key published as bare PKCS#1 still matches.
        let pkcs1 = rsa_public_key(&decode_key(p).unwrap())
            .unwrap()
            .to_pkcs1_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        assert!(pkcs1.len() < 294);
        assert!(record_matches(
            &format!("v=DKIM1; k=rsa; p={}", BASE64.encode(&pkcs1)),
            Algorithm::Rsa,
            p
        ));

        // Mismatches.
        assert!(!record_matches(&rsa_rec, Algorithm::Ed25519, p));
        assert!(!record_matches(&ed_rec, Algorithm::Rsa, &ed.public_key_b64));
        assert!(!record_matches(
            &rsa_rec,
            Algorithm::Rsa,
            &ed.public_key_b64
        ));
        assert!(!record_matches(&ed_rec, Algorithm::Ed25519, p));
        assert!(!record_matches("v=DKIM1; k=rsa; p=", Algorithm::Rsa, p)); // revoked
        assert!(!record_matches(
            &format!("v=DKIM2; p={p}"),
            Algorithm::Rsa,
            p
        ));
        assert!(!record_matches(
            &format!("k=rsa; v=DKIM1; p={p}"),
            Algorithm::Rsa,
            p
        ));
        assert!(!record_matches(&format!("s=tls; p={p}"), Algorithm::Rsa, p));
        assert!(!record_matches(
            &format!("h=sha1; p={p}"),
            Algorithm::Rsa,
            p
        ));
        assert!(!record_matches(&format!("p={p}; p={p}"), Algorithm::Rsa, p));
        assert!(!record_matches("v=spf1 -all", Algorithm::Rsa, p));
        assert!(!record_matches("", Algorithm::Rsa, p));
        assert!(!record_matches("p=!!!notbase64", Algorithm::Rsa, p));
        assert!(!record_matches(&rsa_rec, Algorithm::Rsa, "***"));
    }

    #[test]
    fn base64_round_trip_and_strictness() {
        for len in 0..20 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let text = BASE64.encode(&data);
            assert_eq!(text.len() % 4, 0);
            assert_eq!(decode_key(&text).unwrap(), data);
            assert_eq!(decode_key(text.trim_end_matches('=')).unwrap(), data);
        }
        assert_eq!(BASE64.encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(BASE64.encode(b"fo"), "Zm8=");
        assert_eq!(decode_key(" Zm9v\r\n\tYmFy ").unwrap(), b"foobar");
        assert!(decode_key("Zm9=v").is_none());
        assert!(decode_key("Zm9v!").is_none());
        assert!(decode_key("Zh==").is_none()); // non-zero padding bits
        assert!(decode_key("Z").is_none());
    }
}
