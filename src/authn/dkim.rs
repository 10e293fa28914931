//! The verdict side of DKIM (RFC 6376, RFC 8463): one verdict per `DKIM-Signature`, from
//! mail-auth's output. Signing lives in [`crate::dkim`].

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use mail_auth::{DkimOutput, DkimResult, Error};
use serde::Serialize;

use super::{describe_error, Outcome};

/// One DKIM signature's verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DkimVerdict {
    /// The result. A body-hash mismatch is `fail` (mail-auth reports it as neutral;
    /// RFC 6376 calls it a permanent failure), an unparseable signature `neutral`.
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
}

impl DkimVerdict {
    pub(super) fn from_output(out: &DkimOutput<'_>) -> Self {
        let (result, error) = match out.result() {
            DkimResult::Pass => (Outcome::Pass, None),
            DkimResult::Neutral(
                e @ Error::Dkim(mail_auth::dkim::DkimError::FailedBodyHashMatch),
            ) => (Outcome::Fail, Some(e)),
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
        }
    }
}
