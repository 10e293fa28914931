//! ARC (RFC 8617): the verdict on a message's ARC chain, from mail-auth's output, and
//! what the newest sealer says the original DMARC result was. A chain that passes,
//! sealed last by a domain in `inbound.arc_trusted_sealers` whose
//! ARC-Authentication-Results say `dmarc=pass`, lets a forwarded message that now fails
//! DMARC through ([`super::action`]). Sealing inbound mail with postwarden's own set is
//! [`seal`].

pub mod seal;

pub use seal::{ArcSealer, NotSealed};

use mail_auth::{ArcOutput, DkimResult};
use serde::Serialize;

use super::{describe_error, Outcome};

/// The verdict on one message's ARC chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArcVerdict {
    /// `none` (no ARC sets), `pass` (every seal and the newest message signature
    /// verify), `fail`, `temperror` (a key lookup failed for now).
    pub result: Outcome,
    /// How many ARC sets the chain has (the newest instance `i=`).
    pub instances: u32,
    /// The `d=` of the newest ARC-Seal: who vouches for the chain.
    pub sealer: Option<String>,
    /// The newest ARC-Authentication-Results say `dmarc=pass`: the message passed DMARC
    /// when that sealer received it.
    pub sealer_saw_dmarc_pass: bool,
    /// Why it did not pass, for logs.
    pub reason: Option<String>,
}

impl ArcVerdict {
    pub(crate) fn none() -> Self {
        ArcVerdict {
            result: Outcome::None,
            instances: 0,
            sealer: None,
            sealer_saw_dmarc_pass: false,
            reason: None,
        }
    }

    pub(super) fn from_output(out: &ArcOutput<'_>) -> Self {
        let (result, error) = match out.result() {
            DkimResult::Pass => (Outcome::Pass, None),
            DkimResult::None => (Outcome::None, None),
            DkimResult::TempError(e) => (Outcome::TempError, Some(e)),
            DkimResult::Fail(e) | DkimResult::Neutral(e) | DkimResult::PermError(e) => {
                (Outcome::Fail, Some(e))
            }
        };
        let newest = out.sets().last();
        ArcVerdict {
            result,
            instances: out.sets().len() as u32,
            sealer: newest.map(|s| s.seal.header.d.to_ascii_lowercase()),
            sealer_saw_dmarc_pass: newest
                .is_some_and(|s| says_dmarc_pass(&String::from_utf8_lossy(s.results.value))),
            reason: error.map(describe_error),
        }
    }

    /// The chain passes and was sealed last by one of `trusted` (domains, compared
    /// without regard to case or a trailing dot) who saw DMARC pass.
    pub fn vouched_by_trusted_sealer(&self, trusted: &[String]) -> bool {
        self.result == Outcome::Pass
            && self.sealer_saw_dmarc_pass
            && self.sealer.as_deref().is_some_and(|sealer| {
                trusted
                    .iter()
                    .any(|t| t.trim_end_matches('.').eq_ignore_ascii_case(sealer))
            })
    }
}

/// Whether an ARC-Authentication-Results value (`i=N; authserv-id; result; ...`) holds a
/// `dmarc=pass` result.
fn says_dmarc_pass(aar: &str) -> bool {
    aar.split(';').any(|entry| {
        let entry = entry.trim_start();
        entry.len() >= 10 && entry[..10].eq_ignore_ascii_case("dmarc=pass")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_needs_a_passing_chain_a_trusted_sealer_and_its_dmarc_pass() {
        assert!(says_dmarc_pass(
            "i=1; fwd.example; dkim=pass header.d=a.example;\r\n\tdmarc=pass header.from=a.example"
        ));
        assert!(!says_dmarc_pass(
            "i=1; fwd.example; dmarc=fail; x=dmarc=pass"
        ));
        let v = ArcVerdict {
            result: Outcome::Pass,
            instances: 1,
            sealer: Some("fwd.example".into()),
            sealer_saw_dmarc_pass: true,
            reason: None,
        };
        let trusted = vec!["Fwd.Example.".to_string()];
        assert!(v.vouched_by_trusted_sealer(&trusted));
        assert!(!v.vouched_by_trusted_sealer(&["other.example".to_string()]));
        assert!(!v.vouched_by_trusted_sealer(&[]));
        let failed = ArcVerdict {
            result: Outcome::Fail,
            ..v.clone()
        };
        assert!(!failed.vouched_by_trusted_sealer(&trusted));
        let no_dmarc = ArcVerdict {
            sealer_saw_dmarc_pass: false,
            ..v
        };
        assert!(!no_dmarc.vouched_by_trusted_sealer(&trusted));
    }
}
