//! DKIM keys: generation, the DNS TXT record to publish, checking a published record,
//! and signing outgoing messages (RFC 6376, with Ed25519 per RFC 8463).
//!
//! This module holds no state and reads no configuration: callers pass key material in
//! and get text out. Cryptography comes from `mail-auth` (pure-Rust `rsa` and
//! `ed25519-dalek` backends).
//!
//! Key formats:
//! * private keys are PKCS#8 DER for both algorithms (RSA keys in PKCS#1 DER, as written by
//!   `openssl genrsa -traditional`, are accepted when signing too);
//! * the RSA public key in DNS is a DER `SubjectPublicKeyInfo` (what `opendkim-genkey` and
//!   `openssl rsa -pubout` produce, and what every verifier accepts), base64;
//! * the Ed25519 public key in DNS is the raw 32-byte key, base64 (RFC 8463 section 4.2).

use std::fmt;

use mail_auth::common::crypto::{DkimKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::generate::DkimKeyPair;
use mail_auth::dkim::{Canonicalization, DkimSigner};

/// Size of generated RSA keys, in bits.
pub const RSA_BITS: usize = 2048;

/// Longest DNS TXT character-string (RFC 1035 section 3.3: a length octet, then data).
pub const TXT_STRING_MAX: usize = 255;

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

pub use crate::model::DkimAlgorithm as Algorithm;
pub use crate::model::SigningKey;

/// Errors from key handling and signing, worded for an administrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkimError {
    /// An algorithm name other than `rsa` or `ed25519`.
    #[error("unknown DKIM key algorithm {0:?} (expected \"rsa\" or \"ed25519\")")]
    UnknownAlgorithm(String),
    /// The random key generation failed (should not happen on a working system).
    #[error("could not generate a new {algorithm} DKIM key: {reason}")]
    KeyGeneration {
        /// Which kind of key.
        algorithm: Algorithm,
        /// The library's explanation.
        reason: String,
    },
    /// The stored private key bytes are not a usable key of the expected algorithm.
    #[error(
        "the {algorithm} private key for selector {selector:?} of {domain} is unusable \
         (expected {expected}): {reason}"
    )]
    BadKey {
        /// Signing domain (d=).
        domain: String,
        /// Selector (s=).
        selector: String,
        /// The algorithm the key was declared as.
        algorithm: Algorithm,
        /// The accepted encodings.
        expected: &'static str,
        /// The library's explanation.
        reason: String,
    },
    /// A domain or selector that cannot appear in a DKIM-Signature or a DNS name.
    #[error("invalid DKIM {what} {value:?}: {reason}")]
    InvalidName {
        /// `domain` or `selector`.
        what: &'static str,
        /// The offending value.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Signing failed after the key was loaded.
    #[error("DKIM signing with selector {selector:?} of {domain} failed: {reason}")]
    Signing {
        /// Signing domain (d=).
        domain: String,
        /// Selector (s=).
        selector: String,
        /// The library's explanation.
        reason: String,
    },
}

/// A freshly generated key pair.
#[derive(Clone)]
pub struct KeyPair {
    /// The key algorithm.
    pub algorithm: Algorithm,
    /// The private key, PKCS#8 DER. Secret: store it with restrictive permissions.
    pub private_pkcs8_der: Vec<u8>,
    /// The public key as published in DNS (`p=`), base64: a DER SubjectPublicKeyInfo for
    /// RSA, the raw 32-byte key for Ed25519.
    pub public_key_b64: String,
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("algorithm", &self.algorithm)
            .field("private_pkcs8_der", &"<redacted>")
            .field("public_key_b64", &self.public_key_b64)
            .finish()
    }
}

impl KeyPair {
    /// The TXT record publishing this key under `selector._domainkey.domain`.
    pub fn dns_record(&self, domain: &str, selector: &str) -> DnsRecord {
        dns_record(domain, selector, self.algorithm, &self.public_key_b64)
    }
}

/// Generates a new key pair: RSA with [`RSA_BITS`] bits, or Ed25519.
///
/// RSA generation takes a noticeable moment (well under a second in release builds,
/// several seconds in unoptimized debug builds).
pub fn generate(algorithm: Algorithm) -> Result<KeyPair, DkimError> {
    let fail = |reason: String| DkimError::KeyGeneration { algorithm, reason };
    match algorithm {
        Algorithm::Rsa => {
            let pair = DkimKeyPair::generate_rsa(RSA_BITS).map_err(|e| fail(e.to_string()))?;
            // mail-auth hands out PKCS#1 for both halves; wrap them in the standard
            // envelopes (PKCS#8 private key, SubjectPublicKeyInfo public key).
            let (private_pkcs1, public_pkcs1) = pair.into_inner();
            Ok(KeyPair {
                algorithm,
                private_pkcs8_der: der::rsa_pkcs1_to_pkcs8(&private_pkcs1),
                public_key_b64: base64_encode(&der::rsa_pkcs1_to_spki(&public_pkcs1)),
            })
        }
        Algorithm::Ed25519 => {
            let pair = DkimKeyPair::generate_ed25519().map_err(|e| fail(e.to_string()))?;
            let (private_pkcs8, public_raw) = pair.into_inner();
            if public_raw.len() != 32 {
                return Err(fail(format!(
                    "unexpected Ed25519 public key length {}",
                    public_raw.len()
                )));
            }
            // mail-auth writes PKCS#8 v2 (RFC 5958, public key included), which OpenSSL 3.0
            // cannot read; store the plain v1 form (RFC 8410) that every tool accepts.
            let private_pkcs8_der = der::ed25519_pkcs8_v1(&private_pkcs8)
                .filter(|v1| {
                    matches!(load_key(algorithm, v1), Ok(DkimKey::Ed25519(k)) if k.public_key() == public_raw)
                })
                .unwrap_or(private_pkcs8);
            Ok(KeyPair {
                algorithm,
                private_pkcs8_der,
                public_key_b64: base64_encode(&public_raw),
            })
        }
    }
}

/// Derives the public key (`p=` value, base64) from a stored private key, e.g. to check
/// that DNS publishes the key actually used for signing.
pub fn public_key_b64(algorithm: Algorithm, private_der: &[u8]) -> Result<String, DkimError> {
    let bad = |reason: String| DkimError::BadKey {
        domain: String::new(),
        selector: String::new(),
        algorithm,
        expected: expected_encoding(algorithm),
        reason,
    };
    match load_key(algorithm, private_der).map_err(bad)? {
        DkimKey::Rsa(key) => Ok(base64_encode(&der::rsa_pkcs1_to_spki(&key.public_key()))),
        DkimKey::Ed25519(key) => Ok(base64_encode(&key.public_key())),
    }
}

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
    let Some(published) = get("p").and_then(base64_decode) else {
        return false;
    };
    let Some(expected) = base64_decode(public_key_b64) else {
        return false;
    };
    if published.is_empty() || expected.is_empty() {
        return false;
    }
    match algorithm {
        Algorithm::Ed25519 => published == expected,
        Algorithm::Rsa => der::rsa_public_pkcs1(&published) == der::rsa_public_pkcs1(&expected),
    }
}

/// Splits a `tag=value; tag=value` list. Whitespace (including folding) around tags and
/// values is dropped, and all whitespace inside a value is removed (it is only ever
/// folding in the tags we read). Returns `None` for a syntactically broken list or a
/// duplicated tag.
fn parse_tags(txt: &str) -> Option<Vec<(String, String)>> {
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
        let loaded = load_key(key.algorithm, &key.private_pkcs8_der).map_err(|reason| {
            DkimError::BadKey {
                domain: domain.clone(),
                selector: key.selector.clone(),
                algorithm: key.algorithm,
                expected: expected_encoding(key.algorithm),
                reason,
            }
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

fn expected_encoding(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Rsa => "an RSA key in PKCS#8 or PKCS#1 DER",
        Algorithm::Ed25519 => "an Ed25519 key in PKCS#8 DER",
    }
}

fn load_key(algorithm: Algorithm, der: &[u8]) -> Result<DkimKey, String> {
    match algorithm {
        Algorithm::Rsa => {
            // mail-auth takes a rustls-pki-types `PrivateKeyDer`; its `TryFrom<&[u8]>`
            // recognizes PKCS#8, PKCS#1 and SEC1 by their DER structure.
            let parsed = der.try_into().map_err(|e: &str| e.to_string())?;
            RsaKey::<Sha256>::from_key_der(parsed)
                .map(DkimKey::Rsa)
                .map_err(|e| e.to_string())
        }
        Algorithm::Ed25519 => Ed25519Key::from_pkcs8_der(der)
            .map(DkimKey::Ed25519)
            .map_err(|e| e.to_string()),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict standard base64 (padding optional, whitespace ignored); `None` if malformed.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0u32;
    let mut padding = 0usize;
    for c in text.bytes() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            padding += 1;
            if padding > 2 {
                return None;
            }
            continue;
        }
        if padding > 0 {
            return None;
        }
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding of a 2- or 3-character final group.
    if bits >= 6 || acc != 0 {
        return None;
    }
    Some(out)
}

/// Just enough DER to move RSA keys between PKCS#1 and the PKCS#8/SPKI envelopes.
mod der {
    /// AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }.
    const RSA_ALGORITHM_ID: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        out.extend_from_slice(content);
        out
    }

    /// Reads one element: returns (tag, content, rest).
    fn read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    /// PrivateKeyInfo { 0, rsaEncryption, OCTET STRING { RSAPrivateKey } }.
    pub(super) fn rsa_pkcs1_to_pkcs8(pkcs1: &[u8]) -> Vec<u8> {
        let mut body = vec![0x02, 0x01, 0x00];
        body.extend_from_slice(RSA_ALGORITHM_ID);
        body.extend_from_slice(&tlv(0x04, pkcs1));
        tlv(0x30, &body)
    }

    /// SubjectPublicKeyInfo { rsaEncryption, BIT STRING { RSAPublicKey } }.
    pub(super) fn rsa_pkcs1_to_spki(pkcs1: &[u8]) -> Vec<u8> {
        let mut bits = vec![0x00];
        bits.extend_from_slice(pkcs1);
        let mut body = RSA_ALGORITHM_ID.to_vec();
        body.extend_from_slice(&tlv(0x03, &bits));
        tlv(0x30, &body)
    }

    /// id-Ed25519 (1.3.101.112).
    const ED25519_OID: &[u8] = &[0x2b, 0x65, 0x70];

    /// Re-encodes an Ed25519 PKCS#8 key (v1 or v2) as v1: PrivateKeyInfo { 0,
    /// id-Ed25519, OCTET STRING { OCTET STRING seed } } (RFC 8410 section 7).
    pub(super) fn ed25519_pkcs8_v1(pkcs8: &[u8]) -> Option<Vec<u8>> {
        let (tag, body, rest) = read(pkcs8)?;
        if tag != 0x30 || !rest.is_empty() {
            return None;
        }
        let (tag, version, rest) = read(body)?;
        if tag != 0x02 || version.len() != 1 || version[0] > 1 {
            return None;
        }
        let (tag, alg, rest) = read(rest)?;
        if tag != 0x30 {
            return None;
        }
        let (oid_tag, oid, alg_rest) = read(alg)?;
        if oid_tag != 0x06 || oid != ED25519_OID || !alg_rest.is_empty() {
            return None;
        }
        let (tag, private_key, _) = read(rest)?;
        if tag != 0x04 {
            return None;
        }
        let (tag, seed, after) = read(private_key)?;
        if tag != 0x04 || seed.len() != 32 || !after.is_empty() {
            return None;
        }
        let mut body = vec![0x02, 0x01, 0x00];
        body.extend_from_slice(&tlv(0x30, &tlv(0x06, ED25519_OID)));
        body.extend_from_slice(&tlv(0x04, &tlv(0x04, seed)));
        Some(tlv(0x30, &body))
    }

    /// The PKCS#1 RSAPublicKey inside an RSA SubjectPublicKeyInfo, or the input itself
    /// when it is not one (then presumably already PKCS#1).
    pub(super) fn rsa_public_pkcs1(key: &[u8]) -> &[u8] {
        let unwrap = || {
            let (tag, spki, rest) = read(key)?;
            if tag != 0x30 || !rest.is_empty() {
                return None;
            }
            let (tag, alg, after_alg) = read(spki)?;
            if tag != 0x30 {
                return None;
            }
            let (oid_tag, oid, _) = read(alg)?;
            if oid_tag != 0x06 || oid != &RSA_ALGORITHM_ID[4..13] {
                return None;
            }
            let (tag, bits, rest) = read(after_alg)?;
            if tag != 0x03 || !rest.is_empty() {
                return None;
            }
            let (&unused, inner) = bits.split_first()?;
            (unused == 0).then_some(inner)
        };
        unwrap().unwrap_or(key)
    }

    #[cfg(test)]
    pub(super) fn read_for_tests(input: &[u8]) -> (u8, &[u8], &[u8]) {
        read(input).expect("DER element")
    }

    /// The content of the first OCTET STRING among the elements of `body`.
    #[cfg(test)]
    pub(super) fn last_octet_string_for_tests(mut body: &[u8]) -> &[u8] {
        while let Some((tag, content, rest)) = read(body) {
            if tag == 0x04 {
                return content;
            }
            body = rest;
        }
        panic!("no OCTET STRING")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
    use mail_auth::{
        AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
    };
    use std::borrow::Borrow;
    use std::collections::HashMap;
    use std::hash::Hash;
    use std::sync::{Mutex, OnceLock};

    /// RSA generation is slow in debug builds: one key for the whole test binary.
    fn rsa_pair() -> &'static KeyPair {
        static PAIR: OnceLock<KeyPair> = OnceLock::new();
        PAIR.get_or_init(|| generate(Algorithm::Rsa).expect("rsa keygen"))
    }

    fn ed_pair() -> &'static KeyPair {
        static PAIR: OnceLock<KeyPair> = OnceLock::new();
        PAIR.get_or_init(|| generate(Algorithm::Ed25519).expect("ed25519 keygen"))
    }

    const MESSAGE: &str = concat!(
        "From: Alice <alice@acme.example>\r\n",
        "To: bob@other.example\r\n",
        "Subject: Quarterly figures\r\n",
        "Date: Mon, 03 Mar 2025 10:00:00 +0000\r\n",
        "Message-ID: <1@acme.example>\r\n",
        "List-Id: <team.acme.example>\r\n",
        "X-Unsigned: whatever\r\n",
        "\r\n",
        "Hello Bob,\r\n",
        "  the numbers are attached.\r\n",
        "\r\n",
        "\r\n",
    );

    /// A TXT "cache" that answers every DKIM key lookup from memory, so mail-auth's
    /// verifier never touches the network.
    #[derive(Default)]
    struct StaticTxt(Mutex<HashMap<Box<str>, Txt>>);

    impl StaticTxt {
        fn add_key(&self, record: &DnsRecord) {
            let key = DomainKey::parse(record.value.as_bytes()).expect("mail-auth parses record");
            self.0.lock().unwrap().insert(
                format!("{}.", record.name).into_boxed_str(),
                Txt::DomainKey(key.into()),
            );
        }
    }

    impl ResolverCache<Box<str>, Txt> for StaticTxt {
        fn get<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().get(name).cloned()
        }
        fn remove<Q>(&self, name: &Q) -> Option<Txt>
        where
            Box<str>: Borrow<Q>,
            Q: Hash + Eq + ?Sized,
        {
            self.0.lock().unwrap().remove(name)
        }
        fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
            self.0.lock().unwrap().insert(key, value);
        }
    }

    fn offline_authenticator() -> MessageAuthenticator {
        MessageAuthenticator::new(
            ResolverConfig::from_name_servers(Vec::new()),
            ResolverOpts::default(),
        )
        .expect("resolver")
    }

    fn verify(message: &[u8], cache: &StaticTxt) -> Vec<(DkimResult, String, String)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let auth = offline_authenticator();
        let parsed = AuthenticatedMessage::parse(message).expect("parse");
        rt.block_on(async {
            auth.verify_dkim(Parameters::new(&parsed).with_txt_cache(cache))
                .await
                .into_iter()
                .map(|o| {
                    let s = o.signature().expect("signature");
                    (o.result().clone(), s.d.clone(), s.s.clone())
                })
                .collect()
        })
    }

    fn signed(headers: &[String], message: &str) -> Vec<u8> {
        let mut out = String::new();
        for h in headers {
            out.push_str(h);
            out.push_str("\r\n");
        }
        out.push_str(message);
        out.into_bytes()
    }

    fn keys() -> Vec<SigningKey> {
        vec![
            SigningKey {
                domain: "acme.example".into(),
                selector: "rsa2025".into(),
                algorithm: Algorithm::Rsa,
                private_pkcs8_der: rsa_pair().private_pkcs8_der.clone(),
            },
            SigningKey {
                domain: "acme.example".into(),
                selector: "ed2025".into(),
                algorithm: Algorithm::Ed25519,
                private_pkcs8_der: ed_pair().private_pkcs8_der.clone(),
            },
        ]
    }

    fn cache_with_keys() -> StaticTxt {
        let cache = StaticTxt::default();
        cache.add_key(&rsa_pair().dns_record("acme.example", "rsa2025"));
        cache.add_key(&ed_pair().dns_record("acme.example", "ed2025"));
        cache
    }

    #[test]
    fn algorithm_text_round_trip() {
        for a in [Algorithm::Rsa, Algorithm::Ed25519] {
            assert_eq!(a.to_string().parse::<Algorithm>().unwrap(), a);
        }
        assert_eq!(
            " ED25519 ".parse::<Algorithm>().unwrap(),
            Algorithm::Ed25519
        );
        let err = "dsa".parse::<Algorithm>().unwrap_err();
        assert!(err.to_string().contains("\"dsa\""), "{err}");
    }

    #[test]
    fn generates_rsa_2048() {
        let pair = rsa_pair();
        assert_eq!(pair.algorithm, Algorithm::Rsa);
        // PKCS#8 envelope around the PKCS#1 key, loadable by the signer.
        assert_eq!(pair.private_pkcs8_der[0], 0x30);
        assert!(load_key(Algorithm::Rsa, &pair.private_pkcs8_der).is_ok());
        // SPKI of a 2048-bit key: 294 bytes, base64 392 characters, "MIIBIjANBgkqhkiG9w0B".
        let spki = base64_decode(&pair.public_key_b64).unwrap();
        assert_eq!(spki.len(), 294);
        assert_eq!(pair.public_key_b64.len(), 392);
        assert!(pair
            .public_key_b64
            .starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"));
        assert_eq!(
            public_key_b64(Algorithm::Rsa, &pair.private_pkcs8_der).unwrap(),
            pair.public_key_b64
        );
        assert!(!format!("{pair:?}").contains(&format!("{:?}", &pair.private_pkcs8_der[..8])));
    }

    #[test]
    fn generates_ed25519() {
        let pair = ed_pair();
        assert_eq!(pair.algorithm, Algorithm::Ed25519);
        assert_eq!(base64_decode(&pair.public_key_b64).unwrap().len(), 32);
        assert_eq!(pair.public_key_b64.len(), 44);
        assert!(load_key(Algorithm::Ed25519, &pair.private_pkcs8_der).is_ok());
        assert_eq!(
            public_key_b64(Algorithm::Ed25519, &pair.private_pkcs8_der).unwrap(),
            pair.public_key_b64
        );
        // PKCS#8 v1 (RFC 8410): 48 bytes, the seed at the end.
        assert_eq!(pair.private_pkcs8_der.len(), 48);
        assert_eq!(
            pair.private_pkcs8_der[..16],
            [
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20
            ]
        );
        let other = generate(Algorithm::Ed25519).unwrap();
        assert_ne!(other.public_key_b64, pair.public_key_b64);
    }

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
        let pkcs1 = der::rsa_public_pkcs1(&base64_decode(p).unwrap()).to_vec();
        assert!(pkcs1.len() < 294);
        assert!(record_matches(
            &format!("v=DKIM1; k=rsa; p={}", base64_encode(&pkcs1)),
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
            let text = base64_encode(&data);
            assert_eq!(text.len() % 4, 0);
            assert_eq!(base64_decode(&text).unwrap(), data);
            assert_eq!(base64_decode(text.trim_end_matches('=')).unwrap(), data);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert!(base64_decode("Zm9=v").is_none());
        assert!(base64_decode("Zm9v!").is_none());
        assert!(base64_decode("Zh==").is_none()); // non-zero padding bits
        assert!(base64_decode("Z").is_none());
    }

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
        // Unwrap our PKCS#8 back to PKCS#1: OCTET STRING content at the end.
        let pkcs8 = &rsa_pair().private_pkcs8_der;
        let (_, body, _) = der::read_for_tests(pkcs8);
        let inner = der::last_octet_string_for_tests(body);
        let k = SigningKey {
            domain: "acme.example".into(),
            selector: "rsa2025".into(),
            algorithm: Algorithm::Rsa,
            private_pkcs8_der: inner.to_vec(),
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
