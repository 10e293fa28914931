//! Signing outgoing messages: which header fields to sign, the signature itself, and the
//! shape a milter hands to Postfix.

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};

use super::key::expected_encoding;
use super::signer::loaded;
use super::{DkimError, SigningKey};

/// Header fields signed when present in the message (every instance of each is signed).
/// `From` is additionally listed once more than it occurs (over-signed), so that no
/// further `From` field can be added without breaking the signature.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Sender",
];

/// Signs `message` (a complete RFC 5322 message, headers and body, CRLF or LF line
/// endings) once per key, in the order given — one RSA and one Ed25519 key give the
/// dual signature of RFC 8463.
///
/// Each returned string is a complete header field, `DKIM-Signature: v=1; a=...`, folded
/// with CRLF + TAB and **without** a trailing CRLF: prepend `header + "\r\n"` to the
/// message, or hand it to a milter with [`milter_header`] (milter header values fold with
/// a bare LF). Signatures use relaxed/relaxed canonicalization, sha256, a `t=` timestamp
/// and no `l=` or `x=`. `h=` lists every field of [`SIGNED_HEADERS`] and every `List-*`
/// field present in the message, plus one extra `From` (over-signing).
///
/// An empty key list gives an empty result.
pub fn sign(message: &[u8], keys: &[SigningKey]) -> Result<Vec<String>, DkimError> {
    let headers = headers_to_sign(message);
    let mut out = Vec::with_capacity(keys.len());
    for key in keys {
        check_name("domain", &key.domain)?;
        check_name("selector", &key.selector)?;
        let domain = key.domain.trim_end_matches('.').to_ascii_lowercase();
        let loaded =
            loaded(key.algorithm, &key.private_pkcs8_der).map_err(|reason| DkimError::BadKey {
                domain: domain.clone(),
                selector: key.selector.clone(),
                algorithm: key.algorithm,
                expected: expected_encoding(key.algorithm),
                reason,
            })?;
        let signature = DkimSigner::from_key(loaded)
            .domain(domain.clone())
            .selector(key.selector.clone())
            .headers(headers.iter().cloned())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed)
            .sign(message)
            .map_err(|e| DkimError::Signing {
                domain: domain.clone(),
                selector: key.selector.clone(),
                reason: e.to_string(),
            })?;
        let header = signature.to_header();
        out.push(header.trim_end_matches(['\r', '\n']).to_string());
    }
    Ok(out)
}

/// Splits a complete header field as returned by [`sign`] into the name and the value a
/// milter passes to `SMFIR_INSHEADER`/`SMFIR_ADDHEADER`: folding turned into LF + TAB
/// (libmilter's convention; Postfix writes CRLF on the wire), leading space of the value
/// dropped. `None` if there is no `:`.
pub fn milter_header(header: &str) -> Option<(String, String)> {
    let (name, value) = header.split_once(':')?;
    let value = value.trim_start_matches([' ', '\t']).replace("\r\n", "\n");
    Some((name.trim().to_string(), value))
}

/// The header names for `h=`: the fixed set (only those present), any `List-*` present,
/// and `From` once more for over-signing. Names keep the case used in the message.
fn headers_to_sign(message: &[u8]) -> Vec<String> {
    let present = header_names(message);
    let mut h: Vec<String> = Vec::new();
    let mut add = |name: &str| {
        if !h.iter().any(|x| x.eq_ignore_ascii_case(name)) {
            h.push(name.to_string());
        }
    };
    for wanted in SIGNED_HEADERS {
        if let Some(found) = present.iter().find(|p| p.eq_ignore_ascii_case(wanted)) {
            add(found);
        } else if wanted.eq_ignore_ascii_case("From") {
            add("From");
        }
    }
    for name in &present {
        if name.len() > 5 && name[..5].eq_ignore_ascii_case("List-") {
            add(name);
        }
    }
    // mail-auth signs every instance of each listed name once, and appends each listed
    // name that it did not find; a second "From" is never "found" (lookup stops at the
    // first), so it is appended once: h=From:...:From.
    h.push("From".to_string());
    h
}

/// Header field names in the header block (up to the first empty line), in order.
fn header_names(message: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            if let Ok(name) = std::str::from_utf8(&line[..colon]) {
                let name = name.trim_end();
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

/// Accepts DNS-label syntax: dot-separated labels of letters, digits, `-` and `_`, each
/// 1 to 63 characters, at most 253 in all (a trailing dot is allowed).
fn check_name(what: &'static str, value: &str) -> Result<(), DkimError> {
    let err = |reason| DkimError::InvalidName {
        what,
        value: value.to_string(),
        reason,
    };
    let v = value.strip_suffix('.').unwrap_or(value);
    if v.is_empty() {
        return Err(err("it is empty"));
    }
    if v.len() > 253 {
        return Err(err("it is longer than 253 characters"));
    }
    for label in v.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(err("each dot-separated label must have 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err(
                "only ASCII letters, digits, '-' and '_' are allowed (use the A-label form of internationalized names)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{
        cache_with_keys, ed_pair, keys, rsa_pair, signed, verify, MESSAGE,
    };
    use super::super::record::parse_tags;
    use super::super::{load_key, public_key_b64, Algorithm};
    use super::*;
    use mail_auth::DkimResult;
    use rsa::pkcs1::EncodeRsaPrivateKey as _;
    use rsa::pkcs8::DecodePrivateKey as _;

    #[test]
    fn sign_verify_round_trip_dual() {
        let headers = sign(MESSAGE.as_bytes(), &keys()).unwrap();
        assert_eq!(headers.len(), 2);
        assert!(headers[0].starts_with(
            "DKIM-Signature: v=1; a=rsa-sha256; s=rsa2025; d=acme.example; c=relaxed/relaxed;"
        ));
        assert!(headers[1].starts_with(
            "DKIM-Signature: v=1; a=ed25519-sha256; s=ed2025; d=acme.example; c=relaxed/relaxed;"
        ));
        for h in &headers {
            assert!(!h.ends_with('\n'), "no trailing CRLF");
            assert!(h.contains("\r\n\t"), "folded");
            // The first line carries v/a/s/d/c unbroken; later lines stay near 76 columns.
            assert!(h.lines().all(|l| l.len() <= 998), "{h}");
            assert!(h.lines().skip(1).all(|l| l.len() <= 80), "{h}");
        }
        let message = signed(&headers, MESSAGE);
        let results = verify(&message, &cache_with_keys());
        assert_eq!(
            results,
            vec![
                (DkimResult::Pass, "acme.example".into(), "rsa2025".into()),
                (DkimResult::Pass, "acme.example".into(), "ed2025".into()),
            ]
        );
    }

    #[test]
    fn signature_tags_and_header_set() {
        let headers = sign(MESSAGE.as_bytes(), &keys()[1..]).unwrap();
        let unfolded = headers[0].replace("\r\n\t", " ");
        let tags = parse_tags(unfolded.trim_start_matches("DKIM-Signature:")).unwrap();
        let tag = |n: &str| {
            tags.iter()
                .find(|(t, _)| t == n)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let h: Vec<String> = tag("h").split(':').map(str::to_ascii_lowercase).collect();
        assert_eq!(h.iter().filter(|x| *x == "from").count(), 2, "{h:?}");
        for wanted in ["to", "subject", "date", "message-id", "list-id"] {
            assert!(h.contains(&wanted.to_string()), "{wanted} in {h:?}");
        }
        assert!(!h.contains(&"x-unsigned".to_string()));
        assert!(
            !h.contains(&"cc".to_string()),
            "absent fields are not listed"
        );
        assert_eq!(tag("c"), "relaxed/relaxed");
        assert_eq!(tag("a"), "ed25519-sha256");
        let t: u64 = tag("t").parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(t <= now && now - t < 600);
        assert!(tag("x").is_empty() && tag("l").is_empty());
    }

    #[test]
    fn oversigned_from_blocks_a_second_from() {
        // Verifiers take same-named fields bottom-up, so an attacker adds the extra From
        // at the top: h=From then still selects the genuine one; only the over-signed
        // second "From" (which must then match nothing, or the forged field) catches it.
        let forge = |message: Vec<u8>| {
            let mut forged = b"From: mallory@evil.example\r\n".to_vec();
            forged.extend_from_slice(&message);
            forged
        };
        let headers = sign(MESSAGE.as_bytes(), &keys()).unwrap();
        let results = verify(&forge(signed(&headers, MESSAGE)), &cache_with_keys());
        assert_eq!(results.len(), 2);
        assert!(
            results
                .iter()
                .all(|(r, _, _)| matches!(r, DkimResult::Fail(_))),
            "{results:?}"
        );

        // Control: the same attack passes against a signature listing From only once, so
        // the assertion above really is about over-signing.
        let key = load_key(Algorithm::Ed25519, &ed_pair().private_pkcs8_der).unwrap();
        let plain = DkimSigner::from_key(key)
            .domain("acme.example")
            .selector("ed2025")
            .headers(["From", "To", "Subject"])
            .sign(MESSAGE.as_bytes())
            .unwrap()
            .to_header();
        let mut message = plain.into_bytes();
        message.extend_from_slice(MESSAGE.as_bytes());
        let results = verify(&forge(message), &cache_with_keys());
        assert_eq!(results[0].0, DkimResult::Pass);
    }

    #[test]
    fn tampered_body_does_not_verify() {
        let headers = sign(MESSAGE.as_bytes(), &keys()).unwrap();
        let message = signed(&headers, &MESSAGE.replace("attached", "attacked"));
        let results = verify(&message, &cache_with_keys());
        assert!(results.iter().all(|(r, _, _)| *r != DkimResult::Pass));
    }

    #[test]
    fn lf_only_input_verifies_as_crlf() {
        let lf = MESSAGE.replace("\r\n", "\n");
        let headers = sign(lf.as_bytes(), &keys()).unwrap();
        let message = signed(&headers, MESSAGE);
        let results = verify(&message, &cache_with_keys());
        assert!(
            results.iter().all(|(r, _, _)| *r == DkimResult::Pass),
            "{results:?}"
        );
    }

    #[test]
    fn bad_keys_and_names_are_errors_not_panics() {
        let mut k = keys();
        k[0].private_pkcs8_der = vec![1, 2, 3];
        let err = sign(MESSAGE.as_bytes(), &k).unwrap_err();
        assert!(matches!(err, DkimError::BadKey { .. }));
        assert!(err.to_string().contains("rsa2025"), "{err}");

        // An Ed25519 key declared as RSA and vice versa.
        let mut k = keys();
        k[0].algorithm = Algorithm::Ed25519;
        assert!(matches!(
            sign(MESSAGE.as_bytes(), &k[..1]),
            Err(DkimError::BadKey { .. })
        ));
        let mut k = keys();
        k[1].algorithm = Algorithm::Rsa;
        assert!(matches!(
            sign(MESSAGE.as_bytes(), &k[1..]),
            Err(DkimError::BadKey { .. })
        ));

        for (domain, selector) in [
            ("acme.example; x=1", "s"),
            ("acme.example", "s\r\nBcc: x"),
            ("", "s"),
            ("acme..example", "s"),
            ("acme.example", ""),
        ] {
            let mut k = keys();
            k[1].domain = domain.into();
            k[1].selector = selector.into();
            assert!(
                matches!(
                    sign(MESSAGE.as_bytes(), &k[1..]),
                    Err(DkimError::InvalidName { .. })
                ),
                "{domain:?} {selector:?}"
            );
        }
        assert!(public_key_b64(Algorithm::Rsa, b"junk").is_err());
        assert_eq!(sign(MESSAGE.as_bytes(), &[]).unwrap(), Vec::<String>::new());
        // Garbage messages sign without panicking (or fail cleanly).
        for junk in [&b""[..], b"\r\n\r\n", b"no header here", b"\xff\xfe:\x00"] {
            let _ = sign(junk, &keys()[1..]);
        }
    }

    #[test]
    fn pkcs1_rsa_private_keys_are_accepted() {
        // Unwrap our PKCS#8 back to PKCS#1.
        let pkcs8 = &rsa_pair().private_pkcs8_der;
        let inner = rsa::RsaPrivateKey::from_pkcs8_der(pkcs8)
            .unwrap()
            .to_pkcs1_der()
            .unwrap();
        let k = SigningKey {
            domain: "acme.example".into(),
            selector: "rsa2025".into(),
            algorithm: Algorithm::Rsa,
            private_pkcs8_der: inner.as_bytes().to_vec(),
        };
        let headers = sign(MESSAGE.as_bytes(), &[k]).unwrap();
        let results = verify(&signed(&headers, MESSAGE), &cache_with_keys());
        assert_eq!(results[0].0, DkimResult::Pass);
    }

    #[test]
    fn milter_header_split() {
        let (name, value) = milter_header("DKIM-Signature: v=1; a=x;\r\n\tb=abc;").unwrap();
        assert_eq!(name, "DKIM-Signature");
        assert_eq!(value, "v=1; a=x;\n\tb=abc;");
        assert!(milter_header("no colon").is_none());
    }
}
