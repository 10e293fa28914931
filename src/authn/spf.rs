//! The SPF verdict (RFC 7208) of one identity, by viaspf's evaluator over our [`Dns`].
//!
//! viaspf implements RFC 7208 `check_host()` completely (it passes the openspf RFC 7208
//! suite, `tests/spf_rfc7208.rs`); it asks DNS through its `Lookup` trait, implemented
//! here over [`Dns`], so production asks the configured resolver and tests a
//! [`StaticZone`](super::StaticZone). A lookup that times out or fails (SERVFAIL) makes
//! the result `temperror`; a name that does not exist, a malformed name or a broken record
//! is never `temperror`.
//!
//! The identities: the MAIL FROM address; the HELO name (as `postmaster@<HELO>`) unless
//! it is an address literal or not a domain name, which RFC 7208 section 2.3 leaves
//! unchecked (`none`). A MAIL FROM whose domain is not a valid domain name is `none`
//! (section 4.3).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use async_trait::async_trait;
use mail_auth::{SpfOutput, SpfResult};
use serde::Serialize;
use viaspf::lookup::{Lookup, LookupError, LookupResult, Name};
use viaspf::{Config, DomainName, Sender, SpfResultCause};

use super::resolver::{Dns, LookupFailure};
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
    /// What decided the result: the matching mechanism (`ip4:192.0.2.0/24`, `-all`), or
    /// the error (`invalid SPF record found`); `None` when no record was found.
    pub cause: Option<String>,
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
            cause: None,
        }
    }
}

/// One evaluated identity: the verdict, and the same as mail-auth's `SpfOutput` for DMARC.
#[derive(Debug, Clone)]
pub(super) struct Checked {
    pub verdict: SpfVerdict,
    pub output: SpfOutput,
}

/// Runs `check_host()` for the MAIL FROM address `mail_from` (non-empty, without angle
/// brackets), or for the HELO identity when `mail_from` is `None`.
pub(super) async fn check(
    dns: &Dns,
    receiver: &str,
    ip: IpAddr,
    helo: &str,
    mail_from: Option<&str>,
) -> Checked {
    let helo_domain = helo_domain(helo);
    let (identity, sender) = match mail_from {
        Some(address) => (address.to_string(), sender(address)),
        None => (
            format!("postmaster@{helo}"),
            helo_domain
                .as_ref()
                .and_then(|_| Sender::from_domain(helo).ok()),
        ),
    };
    let Some(sender) = sender else {
        // Not a domain name (or an address literal): nothing to check (sections 2.3, 4.3).
        let domain = mail_from.map_or(helo, |a| super::domain_of(a)).to_string();
        return Checked {
            verdict: SpfVerdict {
                result: Outcome::None,
                domain: domain.clone(),
                identity,
                explanation: None,
                cause: Some("not a domain name".into()),
            },
            output: SpfOutput::new(domain).with_result(SpfResult::None),
        };
    };
    let config = Config::builder().hostname(receiver).build();
    let domain = sender.domain().to_string();
    let query =
        viaspf::evaluate_sender(&SpfDns(dns), &config, ip, &sender, helo_domain.as_ref()).await;
    let (result, explanation) = match query.spf_result {
        viaspf::SpfResult::None => (SpfResult::None, None),
        viaspf::SpfResult::Neutral => (SpfResult::Neutral, None),
        viaspf::SpfResult::Pass => (SpfResult::Pass, None),
        viaspf::SpfResult::Fail(exp) => {
            let text = exp.as_ref().trim().to_string();
            (SpfResult::Fail, Some(text).filter(|t| !t.is_empty()))
        }
        viaspf::SpfResult::Softfail => (SpfResult::SoftFail, None),
        viaspf::SpfResult::Temperror => (SpfResult::TempError, None),
        viaspf::SpfResult::Permerror => (SpfResult::PermError, None),
    };
    let cause = query.cause.map(|c| match c {
        SpfResultCause::Match(mechanism) => mechanism.to_string(),
        SpfResultCause::Error(error) => error.to_string(),
    });
    let mut output = SpfOutput::new(domain.clone()).with_result(result);
    if let Some(text) = &explanation {
        output = output.with_explanation(text.clone());
    }
    let verdict = SpfVerdict::from_output(&output, identity);
    Checked {
        verdict: SpfVerdict { cause, ..verdict },
        output,
    }
}

/// The MAIL FROM address as viaspf's sender; `None` when its domain is not a domain name.
fn sender(address: &str) -> Option<Sender> {
    if let Ok(sender) = Sender::new(address) {
        return Some(sender);
    }
    let (local, domain) = address.rsplit_once('@')?;
    if local.is_empty() {
        // No local part: `postmaster@<domain>` (section 4.3).
        return Sender::from_domain(domain).ok();
    }
    // A local part that is not a dot-atom (a space, say) arrives over SMTP as a quoted
    // string; quote it the same way.
    let quoted = local.replace('\\', "\\\\").replace('"', "\\\"");
    Sender::new(&format!("\"{quoted}\"@{domain}")).ok()
}

/// The HELO name as a domain for the `%{h}` macro and the HELO check; `None` for an
/// address literal or anything else that is not a domain name.
fn helo_domain(helo: &str) -> Option<DomainName> {
    if helo.starts_with('[') {
        return None;
    }
    DomainName::new(helo).ok()
}

/// viaspf's DNS questions, answered by [`Dns`].
struct SpfDns<'a>(&'a Dns);

fn lookup_error(e: LookupFailure) -> LookupError {
    match e {
        LookupFailure::NotFound => LookupError::NoRecords,
        LookupFailure::Temporary(msg) => LookupError::Dns(Some(msg.into())),
    }
}

fn names(list: Vec<String>) -> Vec<Name> {
    list.iter().filter_map(|n| Name::new(n).ok()).collect()
}

#[async_trait]
impl Lookup for SpfDns<'_> {
    async fn lookup_a<'lookup, 'a>(&'lookup self, name: &'a Name) -> LookupResult<Vec<Ipv4Addr>> {
        self.0.a(name.as_str()).await.map_err(lookup_error)
    }

    async fn lookup_aaaa<'lookup, 'a>(
        &'lookup self,
        name: &'a Name,
    ) -> LookupResult<Vec<Ipv6Addr>> {
        self.0.aaaa(name.as_str()).await.map_err(lookup_error)
    }

    async fn lookup_mx<'lookup, 'a>(&'lookup self, name: &'a Name) -> LookupResult<Vec<Name>> {
        self.0
            .mx_hosts(name.as_str())
            .await
            .map(names)
            .map_err(lookup_error)
    }

    async fn lookup_txt<'lookup, 'a>(&'lookup self, name: &'a Name) -> LookupResult<Vec<String>> {
        self.0
            .txt_records(name.as_str())
            .await
            .map_err(lookup_error)
    }

    async fn lookup_ptr<'lookup>(&'lookup self, ip: IpAddr) -> LookupResult<Vec<Name>> {
        self.0.ptr_names(ip).await.map(names).map_err(lookup_error)
    }
}

impl Checked {
    /// What stands in for a check the time budget cut short.
    pub(super) fn timed_out(domain: &str, identity: String) -> Self {
        let output = SpfOutput::new(domain.to_string()).with_result(SpfResult::TempError);
        let verdict = SpfVerdict {
            cause: Some("DNS lookups did not finish within the time budget".into()),
            ..SpfVerdict::from_output(&output, identity)
        };
        Checked { verdict, output }
    }
}

/// Trims whitespace and one pair of angle brackets; `<>` becomes empty.
pub(crate) fn normalize_mail_from(raw: &str) -> String {
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
