//! Inbound mail authentication: SPF, DKIM and DMARC verdicts, the DMARC disposition, the
//! Authentication-Results header, and the `dns-check` of a domain's own records.
//!
//! [`Authenticator::evaluate`] runs, for one message:
//! * SPF (RFC 7208) for the HELO identity and for the MAIL FROM identity; with a null
//!   sender the MAIL FROM identity is `postmaster@<HELO>` (RFC 7208 section 2.4), so the
//!   HELO result stands for both ([`spf`]);
//! * DKIM (RFC 6376, RFC 8463) verification of every `DKIM-Signature` ([`dkim`]):
//!   mail-auth's, with [`dkim`]'s corrections where it departs from RFC 6376 (`l=`
//!   signatures kept and their body hashes taken after canonicalization; the key
//!   record's `h=` and `s=` enforced; expired signatures and revoked keys `fail`), and
//!   `l=` signatures counted or made neutral as `inbound.dkim_body_length` says. DMARC
//!   sees the corrected verdicts;
//! * DMARC (RFC 7489) with identifier alignment ([`dmarc`]), evaluated here on mail-auth's
//!   record parser.
//!
//! [`action`] turns the verdicts into what the inbound milter does (deliver, quarantine,
//! reject, tempfail) under the configuration, and [`authentication_results`] into the
//! header it adds ([`results`]).
//!
//! **DNS.** Every lookup goes through the evaluator's [`Dns`] ([`resolver`]): the
//! configured resolver, or a [`StaticZone`] in memory
//! ([`Authenticator::with_zone`]), so that passing and failing verdicts can be tested
//! without a DNS server.
//!
//! **DMARC.** Policy discovery follows RFC 7489 section 6.6.3: the record at
//! `_dmarc.<From domain>`, otherwise the one at `_dmarc.<organizational domain>`, where
//! the organizational domain comes from the Public Suffix List ([`psl`]; a file the
//! package ships, `inbound.public_suffix_list`). None, several or an unparseable record
//! count as no record. The domain's own record applies `p=`; the organizational domain's
//! applies `sp=`, or `np=` when the From domain does not exist (no A, AAAA or MX: RFC
//! 9091); a record without a valid `p=` counts as `p=none` if it has `rua=`, otherwise
//! as no record. Relaxed alignment compares organizational domains, strict compares
//! names; SPF aligns with the MAIL FROM domain, or the HELO domain for a null sender.
//! From DMARCbis it keeps the `t=y` testing flag (the policy one step milder). `pct=`
//! samples: a failing message outside the sample gets the next policy down
//! ([`DmarcVerdict::apply_pct`], RFC 7489 section 6.6.4; not applied again under `t=y`).
//!
//! **Several From domains.** RFC 7489 exempts messages whose From field(s) name more than
//! one domain. Because that would let a forger escape a `p=reject` by adding a second
//! address, this module evaluates each distinct From domain (up to
//! [`MAX_FROM_DOMAINS`]) and keeps the strictest outcome, as RFC 7489 section 6.6.1
//! suggests; [`Verdicts::from_domains`] lists them all.
//!
//! **Time bounds.** Each DNS query gets the configured timeout and one retry (so a dead
//! server costs about 2 × timeout per query); SPF and DKIM run concurrently, then DMARC;
//! the whole evaluation is held to a budget (default 4 × timeout), and whatever has not
//! finished by then becomes `temperror`.

pub mod arc;
pub mod dkim;
pub mod dmarc;
pub mod dnscheck;
pub mod psl;
pub mod resolver;
pub mod results;
pub mod spf;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mail_auth::{DkimOutput, DnsError, Error};
use serde::Serialize;

pub use arc::{ArcSealer, ArcVerdict, NotSealed};
pub use dkim::{DkimBodyLength, DkimVerdict};
pub use dmarc::{action, Action, Disposition, DmarcVerdict, Policy, PublishedPolicy, ReportUri};
pub use psl::PublicSuffixes;
pub use resolver::{Dns, LookupFailure, ResolverError, StaticZone};
pub use results::{authentication_results, authserv_id, claims_authserv_id, hostname};
pub use spf::SpfVerdict;

/// Distinct From-header domains evaluated for DMARC; further ones are ignored.
pub const MAX_FROM_DOMAINS: usize = 4;

/// Shortest per-query timeout accepted (shorter values are raised to this).
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Per-query timeout of an evaluator answering from a [`StaticZone`] (nothing waits on
/// the network there; the budget only guards against surprises).
const ZONE_TIMEOUT: Duration = Duration::from_secs(1);

/// SPF/DKIM/DMARC evaluator: a DNS source plus time limits. Cheap to clone (the
/// resolver and its cache are shared); build one at startup and reuse it.
#[derive(Clone)]
pub struct Authenticator {
    dns: Dns,
    timeout: Duration,
    budget: Duration,
    hostname: String,
    dkim_body_length: DkimBodyLength,
    psl: PublicSuffixes,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("dns", &self.dns)
            .field("timeout", &self.timeout)
            .field("budget", &self.budget)
            .field("hostname", &self.hostname)
            .field("dkim_body_length", &self.dkim_body_length)
            .field("psl", &self.psl)
            .finish()
    }
}

impl Authenticator {
    /// Builds an evaluator querying `nameservers` (UDP, with TCP for truncated answers),
    /// or the servers of `/etc/resolv.conf` when the list is empty. `timeout` applies to
    /// each DNS query (at least 100 ms); a query is retried once. The overall budget of
    /// [`evaluate`](Self::evaluate) is 4 × `timeout` unless set with
    /// [`with_budget`](Self::with_budget).
    ///
    /// The nameservers must be recursive resolvers (or, in tests, authoritative for every
    /// name looked up): the hosts file and search domains are not used.
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<Self, ResolverError> {
        let timeout = timeout.max(MIN_TIMEOUT);
        Ok(Self::with_dns(
            Dns::resolver(nameservers, timeout)?,
            timeout,
        ))
    }

    /// An evaluator for the configured `[dns]` nameservers and timeout, and the
    /// configured `inbound.dkim_body_length` and `inbound.public_suffix_list`.
    pub fn from_config(cfg: &crate::config::Config) -> Result<Self, ResolverError> {
        let nameservers: Vec<SocketAddr> = cfg.dns.nameservers.iter().map(|n| n.0).collect();
        let psl = PublicSuffixes::load(&cfg.inbound.public_suffix_list)
            .map_err(ResolverError::PublicSuffixList)?;
        Ok(Self::new(&nameservers, cfg.dns.timeout.0)?
            .with_dkim_body_length(cfg.inbound.dkim_body_length)
            .with_public_suffixes(psl))
    }

    /// The Public Suffix List in use.
    pub fn public_suffixes(&self) -> &PublicSuffixes {
        &self.psl
    }

    /// An evaluator answering every DNS question from `zone`, never from the network.
    pub fn with_zone(zone: StaticZone) -> Self {
        Self::with_dns(Dns::zone(zone), ZONE_TIMEOUT)
    }

    fn with_dns(dns: Dns, timeout: Duration) -> Self {
        Authenticator {
            dns,
            timeout,
            budget: timeout * 4,
            hostname: "localhost".to_string(),
            dkim_body_length: DkimBodyLength::Verify,
            psl: PublicSuffixes::built_in(),
        }
    }

    /// Sets the Public Suffix List DMARC finds organizational domains with (default: the
    /// built-in copy).
    pub fn with_public_suffixes(mut self, psl: PublicSuffixes) -> Self {
        self.psl = psl;
        self
    }

    /// Sets the overall time budget of one [`evaluate`](Self::evaluate) call (at least
    /// the per-query timeout). Checks still running when it is spent become `temperror`.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget.max(self.timeout);
        self
    }

    /// Sets this host's name, used for the SPF `%{r}` macro (default `localhost`).
    pub fn with_hostname(mut self, hostname: impl Into<String>) -> Self {
        self.hostname = hostname.into();
        self
    }

    /// Sets what DKIM signatures with a body length limit (`l=`) count as (default:
    /// verified, [`DkimBodyLength::Verify`]).
    pub fn with_dkim_body_length(mut self, policy: DkimBodyLength) -> Self {
        self.dkim_body_length = policy;
        self
    }

    /// Where this evaluator's DNS answers come from, for other lookups such as
    /// `postwarden dns-check`.
    pub fn dns(&self) -> &Dns {
        &self.dns
    }

    /// The per-query DNS timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The overall budget of one evaluation.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// Evaluates SPF (HELO and MAIL FROM), DKIM and DMARC for one message. Never fails:
    /// DNS trouble shows up as `temperror` verdicts (see
    /// [`Verdicts::dns_temporary_failure`]). Returns within about the budget.
    pub async fn evaluate(&self, input: &Input<'_>) -> Verdicts {
        let start = Instant::now();
        let helo = input.helo.trim().trim_end_matches('.').to_string();
        let mail_from = spf::normalize_mail_from(input.mail_from);
        let ip = input.client_ip;
        let stage1 = self.budget * 2 / 3;
        let mail_auth = self.dns.authenticator();

        let parsed = dkim::parse(input.message);

        // Stage 1: SPF (HELO and MAIL FROM) and DKIM, concurrently.
        let spf_helo = async {
            let check = spf::check(&self.dns, &self.hostname, ip, &helo, None);
            match tokio::time::timeout(stage1, check).await {
                Ok(checked) => checked,
                Err(_) => spf::Checked::timed_out(&helo, format!("postmaster@{helo}")),
            }
        };
        let spf_mail_from = async {
            if mail_from.is_empty() {
                return None;
            }
            let check = spf::check(&self.dns, &self.hostname, ip, &helo, Some(&mail_from));
            Some(match tokio::time::timeout(stage1, check).await {
                Ok(checked) => checked,
                Err(_) => spf::Checked::timed_out(domain_of(&mail_from), mail_from.clone()),
            })
        };
        let dkim = async {
            let Some(message) = parsed.as_ref() else {
                return Vec::new();
            };
            let verify = async {
                let outputs = mail_auth.verify_dkim(self.dns.params(message)).await;
                dkim::check(&self.dns, message, outputs, self.dkim_body_length).await
            };
            match tokio::time::timeout(stage1, verify).await {
                Ok(checked) => checked,
                Err(_) => message
                    .dkim_headers
                    .iter()
                    .map(|h| {
                        dkim::Checked::keep(
                            DkimOutput::temp_err(budget_error()).with_signature(&h.header),
                        )
                    })
                    .collect(),
            }
        };
        let arc = async {
            let Some(message) = parsed.as_ref() else {
                return ArcVerdict::none();
            };
            let verify = mail_auth.verify_arc(self.dns.params(message));
            match tokio::time::timeout(stage1, verify).await {
                Ok(out) => ArcVerdict::from_output(&out),
                Err(_) => ArcVerdict {
                    result: Outcome::TempError,
                    reason: Some(describe_error(&budget_error())),
                    ..ArcVerdict::none()
                },
            }
        };
        let (spf_helo_out, spf_mail_from_out, dkim_checked, arc) =
            tokio::join!(spf_helo, spf_mail_from, dkim, arc);
        let dkim: Vec<DkimVerdict> = dkim_checked.iter().map(DkimVerdict::from_checked).collect();

        // The identity DMARC aligns with SPF: MAIL FROM, or HELO for a null sender.
        let ids = match &spf_mail_from_out {
            Some(checked) => dmarc::Identifiers {
                spf: checked.verdict.result,
                spf_domain: checked.output.domain(),
                dkim: &dkim,
            },
            None => dmarc::Identifiers {
                spf: spf_helo_out.verdict.result,
                spf_domain: &helo,
                dkim: &dkim,
            },
        };

        // Stage 2: DMARC for each distinct From domain, within what is left of the budget.
        let from_domains = parsed.as_ref().map(dmarc::from_domains).unwrap_or_default();
        let remaining = self
            .budget
            .saturating_sub(start.elapsed())
            .max(self.timeout);
        let dmarc = if from_domains.is_empty() {
            DmarcVerdict::none()
        } else {
            let evaluation = async {
                let mut verdicts = Vec::new();
                for domain in from_domains.iter().take(MAX_FROM_DOMAINS) {
                    let mut verdict = dmarc::evaluate(&self.dns, &self.psl, domain, &ids).await;
                    if let Some(pct) = verdict.record.as_ref().map(|r| r.pct) {
                        verdict.apply_pct(
                            pct,
                            rand::Rng::gen_range(&mut rand::thread_rng(), 0..100u8),
                        );
                    }
                    verdicts.push(verdict);
                }
                verdicts
            };
            match tokio::time::timeout(remaining, evaluation).await {
                Ok(verdicts) => dmarc::strictest(verdicts),
                Err(_) => DmarcVerdict::timed_out(&from_domains[0]),
            }
        };

        let spf_helo = spf_helo_out.verdict;
        let spf_mail_from = match spf_mail_from_out {
            Some(checked) => checked.verdict,
            None => spf_helo.clone(),
        };
        Verdicts {
            client_ip: ip,
            helo,
            mail_from,
            spf_helo,
            spf_mail_from,
            dkim,
            dmarc,
            from_domains,
            list_id: dmarc::list_id(input.message),
            arc,
        }
    }
}

/// What the SMTP session and the message say; borrowed from the milter's state.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The connecting client's address.
    pub client_ip: IpAddr,
    /// The HELO/EHLO argument (a domain, or an address literal like `[192.0.2.1]`).
    pub helo: &'a str,
    /// The MAIL FROM address, with or without angle brackets; empty or `<>` for the null
    /// sender.
    pub mail_from: &'a str,
    /// The complete RFC 5322 message, header and body (CRLF or LF line endings).
    pub message: &'a [u8],
}

/// The result of one check, with the RFC 8601 names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Authenticated.
    Pass,
    /// Definitively not authenticated.
    Fail,
    /// SPF: probably not authorized (`~all`).
    #[serde(rename = "softfail")]
    SoftFail,
    /// No assertion either way (SPF `?`), or a signature that could not be processed.
    Neutral,
    /// Nothing to check (no record, no signature).
    None,
    /// A transient (DNS) failure: trying again later may give an answer.
    #[serde(rename = "temperror")]
    TempError,
    /// A permanent error, such as a broken record.
    #[serde(rename = "permerror")]
    PermError,
}

impl Outcome {
    /// The RFC 8601 result keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::SoftFail => "softfail",
            Outcome::Neutral => "neutral",
            Outcome::None => "none",
            Outcome::TempError => "temperror",
            Outcome::PermError => "permerror",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything [`Authenticator::evaluate`] found out about one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdicts {
    /// The client address checked.
    pub client_ip: IpAddr,
    /// The HELO name as checked (trimmed, without a trailing dot).
    pub helo: String,
    /// The MAIL FROM address without angle brackets; empty for the null sender.
    pub mail_from: String,
    /// SPF for the HELO identity.
    pub spf_helo: SpfVerdict,
    /// SPF for the MAIL FROM identity (a copy of `spf_helo` for the null sender).
    pub spf_mail_from: SpfVerdict,
    /// One entry per DKIM-Signature header: first one per unparseable header (result
    /// `neutral`, no domain), then the parsed signatures from the top of the message down.
    pub dkim: Vec<DkimVerdict>,
    /// DMARC for the From domain (the strictest one if there are several).
    pub dmarc: DmarcVerdict,
    /// The distinct domains of the From header field(s), lower-case, in order. More than
    /// one (or none at all) is unusual and worth a look by the caller.
    pub from_domains: Vec<String>,
    /// The `List-Id` field (RFC 2919) of a mailing-list message, controls removed.
    pub list_id: Option<String>,
    /// The message's ARC chain (RFC 8617).
    pub arc: ArcVerdict,
}

impl Verdicts {
    /// True when a DNS temporary failure leaves a verdict that matters undecided: DMARC
    /// is `temperror`, or DMARC did not pass and SPF for the MAIL FROM identity (the HELO
    /// identity for a null sender) is `temperror`. The caller should answer 4xx rather
    /// than reject permanently. DKIM temperrors on their own only matter through DMARC
    /// (an aligned signature with a temperror makes DMARC `temperror`).
    pub fn dns_temporary_failure(&self) -> bool {
        self.dmarc.result == Outcome::TempError
            || (self.dmarc.result != Outcome::Pass
                && self.spf_mail_from.result == Outcome::TempError)
    }

    /// The DMARC disposition: `Reject` only when DMARC definitively fails and the
    /// applicable policy is `reject`; `Quarantine` for a fail under `quarantine`;
    /// otherwise (pass, none, temperror, permerror, `p=none`) `Accept`.
    pub fn dmarc_disposition(&self) -> Disposition {
        match (self.dmarc.result, self.dmarc.policy) {
            (Outcome::Fail, Some(Policy::Reject)) => Disposition::Reject,
            (Outcome::Fail, Some(Policy::Quarantine)) => Disposition::Quarantine,
            _ => Disposition::Accept,
        }
    }

    /// Whether at least one DKIM signature passed.
    pub fn dkim_pass(&self) -> bool {
        self.dkim.iter().any(|d| d.result == Outcome::Pass)
    }
}

/// Human wording of mail-auth errors, for reasons in logs and header comments.
pub(crate) fn describe_error(e: &Error) -> String {
    use mail_auth::common::crypto::CryptoError;
    use mail_auth::dkim::DkimError as D;
    match e {
        Error::Dkim(D::FailedBodyHashMatch) => "body hash mismatch: the body was altered".into(),
        Error::Dkim(D::SignatureExpired) => "signature expired".into(),
        Error::Dkim(D::RevokedPublicKey) => "public key revoked".into(),
        Error::Dkim(D::SignatureLength) => {
            "body length limit l= not accepted by local policy".into()
        }
        Error::Dkim(D::FailedAuidMatch) => {
            "i= domain does not match d= (a key record with t=s requires the same domain)".into()
        }
        Error::Crypto(CryptoError::FailedVerification) => {
            "signature did not verify: signed header fields were altered".into()
        }
        Error::Dns(DnsError::RecordNotFound(_)) => "no key record in DNS".into(),
        Error::Dns(DnsError::InvalidRecordType) => "no usable key record in DNS".into(),
        Error::Dns(DnsError::Resolver(msg)) if msg.is_empty() => "temporary DNS failure".into(),
        Error::Dns(DnsError::Resolver(msg)) => format!("temporary DNS failure: {msg}"),
        other => other.to_string(),
    }
}

/// The error standing in for checks the time budget cut short.
pub(crate) fn budget_error() -> Error {
    Error::Dns(DnsError::Resolver(
        "DNS lookups did not finish within the time budget".into(),
    ))
}

/// The domain part of an address (after the last `@`), or the whole string.
pub(crate) fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(_, d)| d)
}

#[cfg(test)]
pub(crate) mod tests;
