//! The verdict side of DKIM (RFC 6376, RFC 8463): one verdict per `DKIM-Signature`.
//! Signing lives in [`crate::dkim`].
//!
//! mail-auth 0.13 does the cryptography (key lookup, header hash, signature, `t=s` against
//! `i=`); this module puts right where it departs from RFC 6376, in three places:
//!
//! * **Parsing** ([`parse`]): signatures with a body length limit `l=` are kept
//!   (mail-auth's default parse drops them as unverifiable), and their body hashes are
//!   computed as RFC 6376 section 3.7 says: the body is canonicalized first, then cut to
//!   `l=` octets (mail-auth cuts the raw body, then canonicalizes, which breaks valid
//!   relaxed signatures, and it reads `l=0` as "the whole body"). An `l=` longer than the
//!   canonicalized body fails (section 3.5: it MUST NOT be).
//! * **After verification** ([`check`]): for every signature that passed, the key record
//!   is read again through the same [`Dns`] (answered from the resolver's cache, or the
//!   zone) and its `h=` (acceptable hash algorithms) and `s=` (service types, `email` or
//!   `*` needed) are enforced (section 3.6.1; mail-auth parses both and ignores them): a
//!   mismatch is a `fail`. An expired signature (`x=`) and a revoked key (empty `p=`)
//!   are `fail` too (sections 3.5, 3.6.1, 6.1.2: PERMFAIL; mail-auth says neutral and
//!   permerror). The verdicts handed to DMARC are the corrected ones.
//! * **Local policy** on `l=` (`inbound.dkim_body_length`): verified by default, with
//!   unsigned content after the signed part noted in the Authentication-Results comment;
//!   or reported as `neutral`, never counting for DMARC.
//!
//! A body-hash mismatch is `fail` (mail-auth reports it as neutral), an unparseable
//! signature `neutral`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use mail_auth::common::crypto::HashAlgorithm;
use mail_auth::common::headers::Writable as _;
use mail_auth::common::parse::TxtRecordParser as _;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::{Canonicalization, DkimError, Signature};
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult, Error};
use serde::Serialize;

pub use crate::config::DkimBodyLength;

use super::resolver::{Dns, LookupFailure};
use super::{describe_error, Outcome};

/// One DKIM signature's verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimVerdict {
    /// The result. A body-hash mismatch, a key whose `h=`/`s=` rule the signature out, an
    /// expired signature and a revoked key are `fail`; an unparseable signature and an
    /// `l=` signature refused by local policy `neutral`.
    pub result: Outcome,
    /// Signing domain (d=); empty for an unparseable signature.
    pub domain: String,
    /// Selector (s=); empty for an unparseable signature.
    pub selector: String,
    /// Signature algorithm (a=), e.g. `rsa-sha256`, `ed25519-sha256`.
    pub algorithm: String,
    /// Agent or user identifier (i=), if given.
    pub identity: Option<String>,
    /// The first 8 base64 characters of the signature (b=), to tell signatures apart
    /// (RFC 6008 `header.b`).
    pub b_prefix: String,
    /// Why it did not pass.
    pub reason: Option<String>,
    /// Something worth knowing about a pass, e.g. unsigned content after the `l=` limit.
    pub note: Option<String>,
}

impl DkimVerdict {
    pub(super) fn from_output(out: &DkimOutput<'_>) -> Self {
        let (result, error) = match out.result() {
            DkimResult::Pass => (Outcome::Pass, None),
            DkimResult::Neutral(e @ Error::Dkim(DkimError::FailedBodyHashMatch)) => {
                (Outcome::Fail, Some(e))
            }
            DkimResult::Neutral(e) => (Outcome::Neutral, Some(e)),
            DkimResult::Fail(e) => (Outcome::Fail, Some(e)),
            DkimResult::PermError(e) => (Outcome::PermError, Some(e)),
            DkimResult::TempError(e) => (Outcome::TempError, Some(e)),
            DkimResult::None => (Outcome::None, None),
        };
        let sig = out.signature();
        DkimVerdict {
            result,
            domain: sig.map(|s| s.d.to_ascii_lowercase()).unwrap_or_default(),
            selector: sig.map(|s| s.s.clone()).unwrap_or_default(),
            algorithm: sig.map(|s| s.a.name().to_string()).unwrap_or_default(),
            identity: sig.and_then(|s| (!s.i.is_empty()).then(|| s.i.clone())),
            b_prefix: sig
                .map(|s| BASE64.encode(&s.b[..s.b.len().min(6)]))
                .unwrap_or_default(),
            reason: error.map(describe_error),
            note: None,
        }
    }

    pub(super) fn from_checked(checked: &Checked<'_>) -> Self {
        let mut verdict = Self::from_output(&checked.output);
        if checked.reason.is_some() {
            verdict.reason.clone_from(&checked.reason);
        }
        verdict.note.clone_from(&checked.note);
        verdict
    }
}

/// A signature's mail-auth output after [`check`], with our wording where it differs.
#[derive(Debug, Clone)]
pub(crate) struct Checked<'x> {
    /// The corrected output (what DMARC sees).
    pub output: DkimOutput<'x>,
    /// Why it did not pass, when mail-auth's error does not say it.
    pub reason: Option<String>,
    /// A remark on a pass.
    pub note: Option<String>,
}

impl<'x> Checked<'x> {
    pub(crate) fn keep(output: DkimOutput<'x>) -> Self {
        Checked {
            output,
            reason: None,
            note: None,
        }
    }

    fn changed(output: DkimOutput<'x>, reason: String) -> Self {
        Checked {
            output,
            reason: Some(reason),
            note: None,
        }
    }
}

/// Stands in `Signature::l` for `l=0` (no body octet signed), which mail-auth cannot tell
/// from "no `l=`" (both are 0).
const L_ZERO: u64 = u64::MAX;

/// The `l=` of a signature after [`parse`]: `None` without one.
fn body_limit(sig: &Signature) -> Option<u64> {
    match sig.l {
        0 => None,
        L_ZERO => Some(0),
        l => Some(l),
    }
}

/// Parses a message for verification: every DKIM-Signature is kept, `l=` ones included,
/// and the body hash of each `l=` signature is the RFC 6376 one (canonicalize the body,
/// then take the first `l=` octets; an `l=` past the end matches nothing).
pub(crate) fn parse(raw: &[u8]) -> Option<AuthenticatedMessage<'_>> {
    let mut message = AuthenticatedMessage::parse_with_opts(raw, None, false)?;
    let body = body_of(&message);
    let mut canonical: [Option<Vec<u8>>; 2] = [None, None];
    let mut hashes = Vec::new();
    for header in &mut message.dkim_headers {
        let Some(tag) = tag_value(header.value, "l") else {
            continue;
        };
        let sig = &mut header.header;
        match sig.l {
            0 if tag.trim() == "0" => sig.l = L_ZERO,
            0 => continue,
            // Keep the stand-in unambiguous: this length is past any body anyway.
            L_ZERO => sig.l = L_ZERO - 1,
            _ => {}
        }
        let canon = canonical[slot(sig.cb)].get_or_insert_with(|| canonicalize(sig.cb, body));
        let limit = body_limit(sig).unwrap_or_default();
        let ha = HashAlgorithm::from(sig.a);
        let hash = match usize::try_from(limit) {
            Ok(l) if l <= canon.len() => ha.hash(&canon[..l]).as_ref().to_vec(),
            _ => Vec::new(),
        };
        hashes.push((sig.cb, ha, sig.l, hash));
    }
    for (cb, ha, l, hash) in hashes {
        match message
            .body_hashes
            .iter_mut()
            .find(|(c, h, len, _)| *c == cb && *h == ha && *len == l)
        {
            Some(entry) => entry.3 = hash,
            None => message.body_hashes.push((cb, ha, l, hash)),
        }
    }
    Some(message)
}

fn body_of<'x>(message: &AuthenticatedMessage<'x>) -> &'x [u8] {
    message
        .raw_message
        .get(message.body_offset as usize..)
        .unwrap_or_default()
}

/// A per-canonicalization cache's index.
fn slot(c: Canonicalization) -> usize {
    match c {
        Canonicalization::Relaxed => 0,
        Canonicalization::Simple => 1,
    }
}

/// The whole body, canonicalized.
fn canonicalize(c: Canonicalization, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2);
    c.canonical_body(body, 0).write(&mut out);
    out
}

/// The value of tag `name` in a tag-list (`a=b; c=d`, RFC 6376 section 3.2), first
/// occurrence, without surrounding whitespace.
fn tag_value<'a>(list: &'a [u8], name: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(list).ok()?;
    text.split(';').find_map(|spec| {
        let (tag, value) = spec.split_once('=')?;
        tag.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// The values of a colon-separated tag (`h=sha1:sha256`), lower-case, whitespace dropped.
fn tag_list(list: &[u8], name: &str) -> Option<Vec<String>> {
    tag_value(list, name).map(|v| {
        v.split(':')
            .map(|item| {
                item.chars()
                    .filter(|c| !c.is_ascii_whitespace())
                    .collect::<String>()
                    .to_ascii_lowercase()
            })
            .collect()
    })
}

/// Why a key record rules out a signature made with hash `hash` (`sha256`, `sha1`) for
/// email, if it does: `h=` must list the hash, `s=` must list `email` or `*` (RFC 6376
/// section 3.6.1; both default to "anything", unknown values are ignored).
pub(crate) fn key_refuses(record: &str, hash: &str) -> Option<String> {
    if let Some(allowed) = tag_list(record.as_bytes(), "h") {
        if !allowed.iter().any(|h| h == hash) {
            return Some(format!("key record h= does not allow {hash}"));
        }
    }
    if let Some(services) = tag_list(record.as_bytes(), "s") {
        if !services.iter().any(|s| s == "email" || s == "*") {
            return Some(format!(
                "key record s={} is not for email",
                services.join(":")
            ));
        }
    }
    None
}

fn hash_name(sig: &Signature) -> &'static str {
    match HashAlgorithm::from(sig.a) {
        HashAlgorithm::Sha1 => "sha1",
        HashAlgorithm::Sha256 => "sha256",
    }
}

/// Puts mail-auth's verdicts right where RFC 6376 says otherwise (see the module docs):
/// key `h=` and `s=` on passes, expired signatures and revoked keys as `fail`, `l=` past
/// the body as `fail`, and `l=` signatures under the local policy. The key record of a
/// pass is read again through `dns`; a lookup that fails this time makes it `temperror`.
pub(crate) async fn check<'x>(
    dns: &Dns,
    message: &'x AuthenticatedMessage<'x>,
    outputs: Vec<DkimOutput<'x>>,
    body_length: DkimBodyLength,
) -> Vec<Checked<'x>> {
    let body = body_of(message);
    let mut canonical_len: [Option<usize>; 2] = [None, None];
    let mut checked = Vec::with_capacity(outputs.len());
    for out in outputs {
        // The signature as the message holds it (borrowed for 'x, not from `out`).
        let sig: Option<&'x Signature> = out.signature().and_then(|s| {
            message
                .dkim_headers
                .iter()
                .map(|h| &h.header)
                .find(|h| std::ptr::eq(*h, s))
        });
        let Some(sig) = sig else {
            checked.push(Checked::keep(out));
            continue;
        };
        let limit = body_limit(sig);
        if limit.is_some() && body_length == DkimBodyLength::Neutral {
            checked.push(Checked::changed(
                DkimOutput::neutral(Error::Dkim(DkimError::SignatureLength)).with_signature(sig),
                "body length limit l= not accepted by local policy".into(),
            ));
            continue;
        }
        let body_len = |cache: &mut [Option<usize>; 2]| {
            *cache[slot(sig.cb)].get_or_insert_with(|| canonicalize(sig.cb, body).len())
        };
        match out.result() {
            DkimResult::Neutral(Error::Dkim(DkimError::SignatureExpired)) => {
                checked.push(Checked::keep(
                    DkimOutput::fail(Error::Dkim(DkimError::SignatureExpired)).with_signature(sig),
                ));
            }
            DkimResult::PermError(Error::Dkim(DkimError::RevokedPublicKey)) => {
                checked.push(Checked::keep(
                    DkimOutput::fail(Error::Dkim(DkimError::RevokedPublicKey)).with_signature(sig),
                ));
            }
            DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch)) => {
                let len = body_len(&mut canonical_len);
                match limit {
                    Some(l) if l > len as u64 => checked.push(Checked::changed(
                        out,
                        format!("l={l} is longer than the canonicalized body ({len} bytes)"),
                    )),
                    _ => checked.push(Checked::keep(out)),
                }
            }
            DkimResult::Pass => {
                let name = format!("{}._domainkey.{}", sig.s, sig.d);
                let record = match dns.txt_records(&name).await {
                    // The record mail-auth used: the first one that parses as a key.
                    Ok(records) => records
                        .into_iter()
                        .find(|r| DomainKey::parse(r.as_bytes()).is_ok()),
                    Err(LookupFailure::NotFound) => None,
                    Err(LookupFailure::Temporary(e)) => {
                        checked.push(Checked::changed(
                            DkimOutput::temp_err(Error::Dns(mail_auth::DnsError::Resolver(
                                e.clone(),
                            )))
                            .with_signature(sig),
                            format!("key record lookup failed: {e}"),
                        ));
                        continue;
                    }
                };
                let Some(record) = record else {
                    checked.push(Checked::changed(
                        DkimOutput::temp_err(Error::Dns(mail_auth::DnsError::Resolver(
                            String::new(),
                        )))
                        .with_signature(sig),
                        "key record changed during verification".into(),
                    ));
                    continue;
                };
                if let Some(why) = key_refuses(&record, hash_name(sig)) {
                    checked.push(Checked::changed(
                        DkimOutput::fail(Error::Crypto(
                            mail_auth::common::crypto::CryptoError::IncompatibleAlgorithms,
                        ))
                        .with_signature(sig),
                        why,
                    ));
                    continue;
                }
                let mut passed = Checked::keep(out);
                if let Some(l) = limit {
                    let len = body_len(&mut canonical_len) as u64;
                    if len > l {
                        passed.note =
                            Some(format!("l={l}: {} bytes after the signed body", len - l));
                    }
                }
                checked.push(passed);
            }
            _ => checked.push(Checked::keep(out)),
        }
    }
    checked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_record_rules() {
        assert_eq!(key_refuses("v=DKIM1; k=rsa; p=AAAA", "sha256"), None);
        assert_eq!(key_refuses("v=DKIM1; h=sha256; p=AAAA", "sha256"), None);
        assert_eq!(
            key_refuses("v=DKIM1; h = sha1 : sha256 ; p=AAAA", "sha256"),
            None
        );
        assert_eq!(
            key_refuses("v=DKIM1; h=sha1; p=AAAA", "sha256").as_deref(),
            Some("key record h= does not allow sha256")
        );
        assert_eq!(
            key_refuses("v=DKIM1; h=SHA256; p=AAAA", "sha1").as_deref(),
            Some("key record h= does not allow sha1")
        );
        // Unknown algorithms are ignored, so a list of only unknown ones allows nothing.
        assert!(key_refuses("v=DKIM1; h=sha512; p=AAAA", "sha256").is_some());
        assert_eq!(key_refuses("v=DKIM1; s=email; p=AAAA", "sha256"), None);
        assert_eq!(key_refuses("v=DKIM1; s=*; p=AAAA", "sha256"), None);
        assert_eq!(
            key_refuses("v=DKIM1; s=tlsrpt:email; p=AAAA", "sha256"),
            None
        );
        assert_eq!(
            key_refuses("v=DKIM1; s=other; p=AAAA", "sha256").as_deref(),
            Some("key record s=other is not for email")
        );
    }

    #[test]
    fn tag_values() {
        assert_eq!(tag_value(b"v=1; l=0; a=rsa-sha256", "l"), Some("0"));
        assert_eq!(tag_value(b"v=1;\r\n\tL = 12 ;a=x", "l"), Some("12"));
        assert_eq!(tag_value(b"v=1; bl=3", "l"), None);
        assert_eq!(
            tag_list(b"h=sha1 :\r\n sha256", "h").unwrap(),
            ["sha1", "sha256"]
        );
    }
}
