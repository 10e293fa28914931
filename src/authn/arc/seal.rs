//! ARC sealing (RFC 8617 section 5.1): adds postwarden's ARC set to inbound mail, so that
//! a customer's own server, trusting postwarden as a sealer, can rely on its verdicts after
//! the message passes through further hops.
//!
//! The set is three header fields with the next instance number `i=`:
//! * `ARC-Authentication-Results`: exactly the Authentication-Results postwarden adds;
//! * `ARC-Message-Signature`: a DKIM-style signature (relaxed/relaxed, no `v=`) of the
//!   message's body and of the header fields in [`SIGNED_HEADERS`] that it carries, plus
//!   its `DKIM-Signature` fields and the `List-*` fields;
//! * `ARC-Seal`: a signature over every ARC set in instance order, this one last, with
//!   `cv=none` for the first set, `pass` when the incoming chain verified, `fail` when it
//!   did not.
//!
//! mail-auth's sealer cannot carry postwarden's own Authentication-Results text, so the
//! header fields are built here; canonicalization and signing use mail-auth's keys, and
//! the tests verify the result with mail-auth's ARC verifier.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use mail_auth::common::crypto::{DkimKey, SigningKey};
use mail_auth::dkim::Canonicalization;

use super::ArcVerdict;
use crate::authn::Outcome;
use crate::dkim::{self, Algorithm, DnsRecord, SIGNED_HEADERS};

/// The most ARC sets a chain may have (RFC 8617 section 4.2.1).
const MAX_INSTANCES: u32 = 50;

/// A configured ARC sealer: signing domain, selector and private key.
pub struct ArcSealer {
    domain: String,
    selector: String,
    algorithm: Algorithm,
    key: DkimKey,
    public_key_b64: String,
}

impl fmt::Debug for ArcSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArcSealer")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .finish()
    }
}

/// Why a message was not sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotSealed {
    /// The incoming chain's newest seal already says `cv=fail`, or it has 50 sets: a new
    /// set would add nothing (RFC 8617 sections 4.2.1 and 5.1.2).
    ChainClosed(String),
    /// The chain could not be verified for now (a key lookup failed), so its `cv=` is
    /// unknown.
    ChainUnknown,
    /// Signing failed.
    Signing(String),
}

impl fmt::Display for NotSealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotSealed::ChainClosed(why) => write!(f, "not ARC-sealed: {why}"),
            NotSealed::ChainUnknown => {
                f.write_str("not ARC-sealed: the incoming ARC chain could not be verified for now")
            }
            NotSealed::Signing(e) => write!(f, "not ARC-sealed: signing failed: {e}"),
        }
    }
}

impl ArcSealer {
    /// A sealer from an RSA private key: PEM (`PRIVATE KEY`, `RSA PRIVATE KEY`) or DER,
    /// PKCS#8 or PKCS#1. RFC 8617 defines only rsa-sha256 for ARC, so an Ed25519 key is
    /// refused.
    pub fn from_key(domain: &str, selector: &str, key: &[u8]) -> Result<Self, String> {
        for (what, value) in [("domain", domain), ("selector", selector)] {
            if value.is_empty()
                || !value.split('.').all(|l| {
                    !l.is_empty()
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                })
            {
                return Err(format!("invalid ARC sealing {what} {value:?}"));
            }
        }
        let der = pem_to_der(key)?;
        if dkim::load_key(Algorithm::Ed25519, &der).is_ok() {
            return Err(
                "an Ed25519 key, but ARC (RFC 8617) signs with rsa-sha256 only: use an \
                 RSA key, e.g. `openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:2048`"
                    .into(),
            );
        }
        let algorithm = Algorithm::Rsa;
        let loaded = dkim::load_key(algorithm, &der)
            .map_err(|e| format!("not an RSA private key (PKCS#8 or PKCS#1, PEM or DER): {e}"))?;
        let public_key_b64 = dkim::public_key_b64(algorithm, &der).map_err(|e| e.to_string())?;
        Ok(ArcSealer {
            domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            selector: selector.to_string(),
            algorithm,
            key: loaded,
            public_key_b64,
        })
    }

    /// The sealer `[inbound]` configures (`arc_seal_domain`, `arc_seal_selector`,
    /// `arc_seal_key`), or `None` when `arc_seal_domain` is empty. Errors name the key.
    pub fn from_config(cfg: &crate::config::Config) -> Result<Option<Self>, String> {
        let i = &cfg.inbound;
        if i.arc_seal_domain.is_empty() {
            return Ok(None);
        }
        if i.arc_seal_selector.is_empty() || i.arc_seal_key.as_os_str().is_empty() {
            return Err(
                "key `inbound.arc_seal_domain`: sealing also needs inbound.arc_seal_selector \
                 and inbound.arc_seal_key"
                    .into(),
            );
        }
        let path: &Path = &cfg.data_dir.join(&i.arc_seal_key);
        let key = std::fs::read(path).map_err(|e| {
            format!(
                "key `inbound.arc_seal_key`: cannot read {}: {e}",
                path.display()
            )
        })?;
        Self::from_key(&i.arc_seal_domain, &i.arc_seal_selector, &key)
            .map(Some)
            .map_err(|e| format!("key `inbound.arc_seal_key`: {}: {e}", path.display()))
    }

    /// The DNS record receivers look the key up in.
    pub fn dns_record(&self) -> DnsRecord {
        dkim::dns_record(
            &self.domain,
            &self.selector,
            self.algorithm,
            &self.public_key_b64,
        )
    }

    /// The signing domain (`d=`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The ARC set for `message` (complete, CRLF or LF line endings, as it will be
    /// delivered apart from the fields added with the set), whose incoming chain is
    /// `chain` and whose Authentication-Results value (after the field name) is
    /// `auth_results`. Returns the three fields as (name, value) pairs in the order they
    /// go on top of the message: ARC-Seal, ARC-Message-Signature,
    /// ARC-Authentication-Results. Values fold with LF + TAB (milter convention).
    pub fn seal(
        &self,
        message: &[u8],
        chain: &ArcVerdict,
        auth_results: &str,
        now: u64,
    ) -> Result<Vec<(String, String)>, NotSealed> {
        let (header, body) = split_message(message);
        let fields = header_fields(header);
        let sets = existing_sets(&fields);
        let newest = sets.last().map(|s| s.0).unwrap_or(0);
        let cv = match chain.result {
            _ if newest == 0 => "none",
            Outcome::Pass => "pass",
            Outcome::TempError => return Err(NotSealed::ChainUnknown),
            _ => "fail",
        };
        if newest >= MAX_INSTANCES {
            return Err(NotSealed::ChainClosed(format!(
                "the ARC chain already has {newest} sets"
            )));
        }
        if sets
            .last()
            .is_some_and(|s| s.3.as_deref().is_some_and(|v| tag(v, "cv") == Some("fail")))
        {
            return Err(NotSealed::ChainClosed(
                "the incoming ARC chain has failed".into(),
            ));
        }
        let i = newest + 1;
        let a = "rsa-sha256";
        let sign = |data: &[u8]| -> Result<String, NotSealed> {
            self.key
                .sign(data)
                .map(|s| BASE64.encode(s))
                .map_err(|e| NotSealed::Signing(e.to_string()))
        };

        // ARC-Authentication-Results.
        let aar = format!("i={i}; {}", auth_results.trim_start());

        // ARC-Message-Signature.
        let mut canonical_body = Vec::new();
        mail_auth::common::headers::Writable::write(
            Canonicalization::Relaxed.canonical_body(body, u64::MAX),
            &mut canonical_body,
        );
        let bh = BASE64.encode(self.key.hash(&canonical_body[..]));
        let signed: Vec<&(String, String)> = signed_fields(&fields);
        let mut names: Vec<String> = signed.iter().map(|(n, _)| n.clone()).collect();
        names.push("From".into()); // over-signed: no From can be added
        let ams_unsigned = format!(
            "i={i}; a={a}; c=relaxed/relaxed; d={}; s={}; t={now};\n\th={};\n\tbh={bh}; b=",
            self.domain,
            self.selector,
            names.join(":")
        );
        let mut data = Vec::new();
        for (name, value) in &signed {
            data.extend_from_slice(&relaxed_field(name, value));
        }
        let ams_canon = relaxed_field("ARC-Message-Signature", &ams_unsigned);
        data.extend_from_slice(&ams_canon[..ams_canon.len() - 2]);
        let ams = format!("{ams_unsigned}{}", fold_b64(&sign(&data)?));

        // ARC-Seal over every set, oldest first, this one last with an empty b=.
        let seal_unsigned = format!(
            "i={i}; a={a}; cv={cv}; d={}; s={}; t={now}; b=",
            self.domain, self.selector
        );
        let mut data = Vec::new();
        for (_, aar_old, ams_old, as_old) in &sets {
            for (name, value) in [
                ("ARC-Authentication-Results", aar_old),
                ("ARC-Message-Signature", ams_old),
                ("ARC-Seal", as_old),
            ] {
                if let Some(v) = value {
                    data.extend_from_slice(&relaxed_field(name, v));
                }
            }
        }
        data.extend_from_slice(&relaxed_field("ARC-Authentication-Results", &aar));
        data.extend_from_slice(&relaxed_field("ARC-Message-Signature", &ams));
        let seal_canon = relaxed_field("ARC-Seal", &seal_unsigned);
        data.extend_from_slice(&seal_canon[..seal_canon.len() - 2]);
        let seal = format!("{seal_unsigned}{}", fold_b64(&sign(&data)?));

        Ok(vec![
            ("ARC-Seal".into(), seal),
            ("ARC-Message-Signature".into(), ams),
            ("ARC-Authentication-Results".into(), aar),
        ])
    }
}

/// Fuzz target: the header handling a seal is built on (everything but the signing), on
/// any bytes as a message. Checks what sealing relies on: the split loses nothing, instances
/// come out sorted and unique, a relaxed field is one line, a folded signature unfolds to itself.
#[cfg(any(test, feature = "fuzz"))]
pub(crate) fn fuzz_header_handling(message: &[u8]) {
    let (header, body) = split_message(message);
    assert!(header.len() + body.len() <= message.len());
    assert!(message.starts_with(header) && message.ends_with(body));
    let fields = header_fields(header);
    let sets = existing_sets(&fields);
    assert!(
        sets.windows(2).all(|w| w[0].0 < w[1].0),
        "ARC instances not sorted and unique"
    );
    for (name, value) in signed_fields(&fields) {
        let canon = relaxed_field(name, value);
        let line = canon
            .strip_suffix(b"\r\n")
            .expect("relaxed field ends with CRLF");
        assert!(!line.contains(&b'\r') && !line.contains(&b'\n'));
        assert!(!line.ends_with(b" ") && !line.ends_with(b"\t"));
        let _ = tag(value, "i");
    }
    let text = String::from_utf8_lossy(body);
    let b64: String = text.chars().filter(char::is_ascii_alphanumeric).collect();
    assert_eq!(fold_b64(&b64).replace("\n\t", ""), b64);
}

/// DER from PEM (the base64 between the BEGIN and END lines), or the bytes as they are.
fn pem_to_der(key: &[u8]) -> Result<Vec<u8>, String> {
    let Ok(text) = std::str::from_utf8(key) else {
        return Ok(key.to_vec());
    };
    if !text.contains("-----BEGIN") {
        return Ok(key.to_vec());
    }
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .flat_map(|l| l.trim().chars())
        .collect();
    BASE64
        .decode(b64)
        .map_err(|e| format!("the PEM key's base64 does not decode: {e}"))
}

/// The header and body of a message (the body after the first empty line).
fn split_message(message: &[u8]) -> (&[u8], &[u8]) {
    let crlf = message.windows(4).position(|w| w == b"\r\n\r\n");
    let lf = message.windows(2).position(|w| w == b"\n\n");
    match (crlf, lf) {
        (Some(c), Some(l)) if l + 1 < c => (&message[..l + 1], &message[l + 2..]),
        (Some(c), _) => (&message[..c + 2], &message[c + 4..]),
        (None, Some(l)) => (&message[..l + 1], &message[l + 2..]),
        (None, None) => (message, b""),
    }
}

/// The header fields as (name, value) pairs in order, value as written (folding kept).
fn header_fields(header: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(header);
    let mut fields: Vec<(String, String)> = Vec::new();
    // Whether the last line started a field (its continuation lines belong to it).
    let mut in_field = false;
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            if let (true, Some((_, value))) = (in_field, fields.last_mut()) {
                value.push_str("\r\n");
                value.push_str(line);
            }
            continue;
        }
        in_field = false;
        if let Some((name, value)) = line.split_once(':') {
            // RFC 5322 field names are printable ASCII: a name with a CR or a space inside
            // would end up inside a signed line. A line without a valid name is no field.
            let name = name.trim_end_matches([' ', '\t']);
            if !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()) {
                fields.push((name.to_string(), value.to_string()));
                in_field = true;
            }
        }
    }
    fields
}

/// The fields the message signature covers, bottom-up per name as DKIM selects them (the
/// order of h= is the order here).
fn signed_fields(fields: &[(String, String)]) -> Vec<&(String, String)> {
    let mut wanted: Vec<String> = SIGNED_HEADERS
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    wanted.push("dkim-signature".into());
    for (name, _) in fields {
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("list-") && !wanted.contains(&lower) {
            wanted.push(lower);
        }
    }
    let mut out = Vec::new();
    for name in &wanted {
        // Every instance, last first (RFC 6376 section 5.4.2).
        out.extend(
            fields
                .iter()
                .rev()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name)),
        );
    }
    out
}

/// The incoming ARC sets by instance: (i, AAR value, AMS value, AS value), i ascending.
type Set = (u32, Option<String>, Option<String>, Option<String>);

fn existing_sets(fields: &[(String, String)]) -> Vec<Set> {
    let mut sets: Vec<Set> = Vec::new();
    for (name, value) in fields {
        let slot = match name.to_ascii_lowercase().as_str() {
            "arc-authentication-results" => 0,
            "arc-message-signature" => 1,
            "arc-seal" => 2,
            _ => continue,
        };
        let Some(i) = tag(value, "i").and_then(|v| v.parse::<u32>().ok()) else {
            continue;
        };
        let set = match sets.iter().position(|s| s.0 == i) {
            Some(p) => &mut sets[p],
            None => {
                sets.push((i, None, None, None));
                sets.last_mut().unwrap()
            }
        };
        let field = match slot {
            0 => &mut set.1,
            1 => &mut set.2,
            _ => &mut set.3,
        };
        field.get_or_insert_with(|| value.clone());
    }
    sets.sort_by_key(|s| s.0);
    sets
}

/// The value of tag `name` in a tag list (`a=1; b=2`), whitespace removed.
fn tag<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    value.split(';').find_map(|t| {
        let (k, v) = t.split_once('=')?;
        (k.trim().eq_ignore_ascii_case(name)).then(|| v.trim())
    })
}

/// A header field in relaxed canonical form (RFC 6376 section 3.4.2), with its CRLF.
fn relaxed_field(name: &str, value: &str) -> Vec<u8> {
    let mut out = name.trim().to_ascii_lowercase().into_bytes();
    out.push(b':');
    let unfolded = value.replace(['\r', '\n'], "");
    let mut space = false;
    let mut started = false;
    for c in unfolded.chars() {
        if c == ' ' || c == '\t' {
            space = started;
            continue;
        }
        if space {
            out.push(b' ');
            space = false;
        }
        started = true;
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A base64 signature folded every 72 characters (LF + TAB).
fn fold_b64(b64: &str) -> String {
    b64.as_bytes()
        .chunks(72)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzzing (mail-parsing): a "List-" name holding CRs went, CRs and all, into
    /// the relaxed form of a signed field.
    #[test]
    fn fields_with_invalid_names_are_not_fields() {
        let fields = header_fields(
            b"Subject: a\r\nList-I<x\r\r\rSu: y\r\n\tcont\r\nBad name: z\r\n\tmore\r\nTo: t\r\n",
        );
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Subject", "To"]);
        assert_eq!(fields[0].1, " a");
        fuzz_header_handling(
            b"Fro\n\xbfARC-Message-Signature: i=2; x\nList-I<x\r\r\rSu: x@y\n\r\r",
        );
        // Whitespace before the colon is still allowed (and dropped).
        assert_eq!(header_fields(b"List-Id \t: <l>\r\n")[0].0, "List-Id");
    }
}
