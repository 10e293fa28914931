//! The SPF verdict (RFC 7208) of one identity, from mail-auth's output.

use mail_auth::{SpfOutput, SpfResult};
use serde::Serialize;

use super::Outcome;

/// One SPF check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpfVerdict {
    /// The result.
    pub result: Outcome,
    /// The domain whose SPF record was evaluated (empty if there was none to check).
    pub domain: String,
    /// The identity checked: the MAIL FROM address, or `postmaster@<HELO>`.
    pub identity: String,
    /// The domain's explanation text (`exp=`) on fail, if it published one.
    pub explanation: Option<String>,
}

impl SpfVerdict {
    pub(super) fn from_output(out: &SpfOutput, identity: String) -> Self {
        SpfVerdict {
            result: match out.result() {
                SpfResult::Pass => Outcome::Pass,
                SpfResult::Fail => Outcome::Fail,
                SpfResult::SoftFail => Outcome::SoftFail,
                SpfResult::Neutral => Outcome::Neutral,
                SpfResult::TempError => Outcome::TempError,
                SpfResult::PermError => Outcome::PermError,
                SpfResult::None => Outcome::None,
            },
            domain: out.domain().to_string(),
            identity,
            explanation: out.explanation().map(str::to_string),
        }
    }
}

/// The output standing in for an SPF check the time budget cut short.
pub(super) fn timed_out(domain: &str) -> SpfOutput {
    SpfOutput::new(domain.to_string()).with_result(SpfResult::TempError)
}

/// Trims whitespace and one pair of angle brackets; `<>` becomes empty.
pub(super) fn normalize_mail_from(raw: &str) -> String {
    let t = raw.trim();
    let t = t
        .strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(t);
    t.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_from_normalization() {
        assert_eq!(normalize_mail_from(" <a@b.example> "), "a@b.example");
        assert_eq!(normalize_mail_from("<>"), "");
        assert_eq!(normalize_mail_from(""), "");
        assert_eq!(super::super::domain_of("x@y@z.example"), "z.example");
    }
}
