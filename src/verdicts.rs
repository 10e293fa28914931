//! SPF, DKIM and DMARC verdicts for inbound mail, and the Authentication-Results header.
//!
//! [`Authenticator::evaluate`] runs, for one message:
//! * SPF (RFC 7208) for the HELO identity and for the MAIL FROM identity; with a null
//!   sender the MAIL FROM identity is `postmaster@<HELO>` (RFC 7208 section 2.4), so the
//!   HELO result stands for both;
//! * DKIM (RFC 6376, RFC 8463) verification of every `DKIM-Signature`;
//! * DMARC with identifier alignment, using mail-auth's implementation.
//!
//! **DMARC flavour.** mail-auth 0.13 implements DMARCbis (RFC 9989), not RFC 7489:
//! the organizational domain comes from a DNS tree walk (`_dmarc` lookups up the name,
//! honouring `psd=`) instead of the Public Suffix List; `pct=` is ignored and the `t=y`
//! testing flag downgrades the policy one step (reject→quarantine, quarantine→none); a
//! subdomain without its own record gets `sp=` (or `np=` when the subdomain does not
//! exist in DNS), each defaulting to the parent's `p=`; a record without a valid `p=`
//! counts as `p=none` if it has `rua=`, otherwise as no record at all. SPF alignment
//! uses the MAIL FROM domain, or the HELO domain for a null sender.
//!
//! **Several From domains.** mail-auth declines to evaluate DMARC when the From field(s)
//! name more than one domain. Because that would let a forger escape a `p=reject` by
//! adding a second address, this module evaluates each distinct From domain (up to
//! [`MAX_FROM_DOMAINS`]) and keeps the strictest outcome, as RFC 7489 section 6.6.1
//! suggests; [`Verdicts::from_domains`] lists them all.
//!
//! **Time bounds.** Each DNS query gets the configured timeout and one retry (so a dead
//! server costs about 2 × timeout per query); SPF and DKIM run concurrently, then DMARC;
//! the whole evaluation is held to a budget (default 4 × timeout), and whatever has not
//! finished by then becomes `temperror`.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::{Alignment, Policy as MaPolicy};
use mail_auth::hickory_resolver::config::{
    NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DkimResult, DmarcOutput, DmarcResult, DnsError, Error,
    MessageAuthenticator, SpfOutput, SpfResult,
};
use serde::Serialize;

/// Distinct From-header domains evaluated for DMARC; further ones are ignored.
pub const MAX_FROM_DOMAINS: usize = 4;

/// Shortest per-query timeout accepted (shorter values are raised to this).
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

/// Errors building an [`Authenticator`].
#[derive(Debug, thiserror::Error)]
pub enum VerdictsError {
    /// No nameservers were given and the system configuration could not be read.
    #[error("cannot read the system DNS configuration (/etc/resolv.conf): {0}")]
    SystemConf(String),
    /// The resolver could not be set up.
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
}

/// SPF/DKIM/DMARC evaluator: a DNS resolver plus time limits. Cheap to clone (the
/// resolver and its cache are shared); build one at startup and reuse it.
#[derive(Clone)]
pub struct Authenticator {
    inner: MessageAuthenticator,
    timeout: Duration,
    budget: Duration,
    hostname: String,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("timeout", &self.timeout)
            .field("budget", &self.budget)
            .field("hostname", &self.hostname)
            .finish_non_exhaustive()
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
    pub fn new(nameservers: &[SocketAddr], timeout: Duration) -> Result<Self, VerdictsError> {
        let timeout = timeout.max(MIN_TIMEOUT);
        let (config, mut opts) = if nameservers.is_empty() {
            let (config, opts) =
                read_system_conf().map_err(|e| VerdictsError::SystemConf(e.to_string()))?;
            // Keep the servers, drop search domains: every name queried here is absolute.
            let (_, _, servers) = config.into_parts();
            (ResolverConfig::from_name_servers(servers), opts)
        } else {
            let servers = nameservers
                .iter()
                .map(|addr| {
                    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                    for connection in &mut server.connections {
                        connection.port = addr.port();
                    }
                    server
                })
                .collect();
            (
                ResolverConfig::from_name_servers(servers),
                ResolverOpts::default(),
            )
        };
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.ndots = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        let inner = MessageAuthenticator::new(config, opts)
            .map_err(|e| VerdictsError::Resolver(e.to_string()))?;
        Ok(Authenticator {
            inner,
            timeout,
            budget: timeout * 4,
            hostname: "localhost".to_string(),
        })
    }

    /// An evaluator for the configured `[dns]` nameservers and timeout.
    pub fn from_config(cfg: &crate::config::Config) -> Result<Self, VerdictsError> {
        let nameservers: Vec<SocketAddr> = cfg.dns.nameservers.iter().map(|n| n.0).collect();
        Self::new(&nameservers, cfg.dns.timeout.0)
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

    /// The mail-auth authenticator (and through it the DNS resolver), for other lookups
    /// such as `postwarden dns-check`.
    pub fn message_authenticator(&self) -> &MessageAuthenticator {
        &self.inner
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
        let mail_from = normalize_mail_from(input.mail_from);
        let ip = input.client_ip;
        let stage1 = self.budget * 2 / 3;

        let parsed = AuthenticatedMessage::parse(input.message);

        // Stage 1: SPF (HELO and MAIL FROM) and DKIM, concurrently.
        let spf_helo = async {
            let params = SpfParameters::verify_ehlo(ip, &helo, &self.hostname);
            let out = tokio::time::timeout(stage1, self.inner.verify_spf(params)).await;
            out.unwrap_or_else(|_| spf_timeout(&helo))
        };
        let spf_mail_from = async {
            if mail_from.is_empty() {
                return None;
            }
            let params = SpfParameters::verify_mail_from(ip, &helo, &self.hostname, &mail_from);
            let out = tokio::time::timeout(stage1, self.inner.verify_spf(params)).await;
            Some(out.unwrap_or_else(|_| spf_timeout(domain_of(&mail_from))))
        };
        let dkim = async {
            let Some(message) = parsed.as_ref() else {
                return Vec::new();
            };
            match tokio::time::timeout(stage1, self.inner.verify_dkim(message)).await {
                Ok(outputs) => outputs,
                Err(_) => message
                    .dkim_headers
                    .iter()
                    .map(|h| DkimOutput::temp_err(budget_error()).with_signature(&h.header))
                    .collect(),
            }
        };
        let (spf_helo_out, spf_mail_from_out, dkim_out) =
            tokio::join!(spf_helo, spf_mail_from, dkim);

        // The identity DMARC aligns with SPF: MAIL FROM, or HELO for a null sender.
        let (spf_for_dmarc, spf_domain) = match &spf_mail_from_out {
            Some(out) => (out, out.domain().to_string()),
            None => (&spf_helo_out, helo.clone()),
        };

        // Stage 2: DMARC for each distinct From domain, within what is left of the budget.
        let from_domains = parsed.as_ref().map(from_domains).unwrap_or_default();
        let remaining = self
            .budget
            .saturating_sub(start.elapsed())
            .max(self.timeout);
        let dmarc = match parsed.as_ref() {
            Some(message) if !from_domains.is_empty() => {
                let evaluation = async {
                    let mut verdicts = Vec::new();
                    for domain in from_domains.iter().take(MAX_FROM_DOMAINS) {
                        let mut single = message.clone();
                        single.from.retain(|a| {
                            domain_of(a)
                                .trim_end_matches('.')
                                .eq_ignore_ascii_case(domain)
                        });
                        let params =
                            DmarcParameters::new(&single, &dkim_out, &spf_domain, spf_for_dmarc);
                        let out = self.inner.verify_dmarc(params).await;
                        verdicts.push(DmarcVerdict::from_output(&out, domain));
                    }
                    verdicts
                };
                match tokio::time::timeout(remaining, evaluation).await {
                    Ok(verdicts) => strictest(verdicts),
                    Err(_) => DmarcVerdict::timed_out(&from_domains[0]),
                }
            }
            _ => DmarcVerdict::none(),
        };

        let spf_helo = SpfVerdict::from_output(&spf_helo_out, format!("postmaster@{helo}"));
        let spf_mail_from = match &spf_mail_from_out {
            Some(out) => SpfVerdict::from_output(out, mail_from.clone()),
            None => spf_helo.clone(),
        };
        Verdicts {
            client_ip: ip,
            helo,
            mail_from,
            spf_helo,
            spf_mail_from,
            dkim: dkim_out.iter().map(DkimVerdict::from_output).collect(),
            dmarc,
            from_domains,
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

/// A DMARC policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Monitor only.
    None,
    /// Treat failing mail as suspicious (e.g. junk folder).
    Quarantine,
    /// Refuse failing mail.
    Reject,
}

impl Policy {
    fn from_mail_auth(p: MaPolicy) -> Self {
        match p {
            MaPolicy::Reject => Policy::Reject,
            MaPolicy::Quarantine => Policy::Quarantine,
            MaPolicy::None | MaPolicy::Unspecified => Policy::None,
        }
    }

    /// `none`, `quarantine` or `reject`.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Quarantine => "quarantine",
            Policy::Reject => "reject",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a message according to DMARC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    /// Deliver normally.
    Accept,
    /// Deliver as suspicious.
    Quarantine,
    /// Refuse (5xx).
    Reject,
}

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
    fn from_output(out: &SpfOutput, identity: String) -> Self {
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
    fn from_output(out: &DkimOutput<'_>) -> Self {
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

/// The published DMARC record that applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedPolicy {
    /// `p=`: policy for the domain itself.
    pub p: Policy,
    /// `sp=`: policy for subdomains (defaults to `p`).
    pub sp: Policy,
    /// `np=`: policy for non-existent subdomains (DMARCbis; defaults to `sp`).
    pub np: Policy,
    /// `adkim=s`: strict DKIM alignment.
    pub strict_dkim: bool,
    /// `aspf=s`: strict SPF alignment.
    pub strict_spf: bool,
    /// `t=y`: testing mode (DMARCbis), the applied policy is one step milder.
    pub testing: bool,
}

/// The DMARC evaluation of one From domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmarcVerdict {
    /// `pass` (an aligned SPF or DKIM pass), `fail`, `none` (no record, or no single
    /// From domain), `temperror` or `permerror` (broken record).
    pub result: Outcome,
    /// The RFC 5322 From domain evaluated (empty when there is none).
    pub from_domain: String,
    /// The policy mail-auth applies to this domain: `p=`, or `sp=`/`np=` when the
    /// record found belongs to a parent domain, made milder by `t=y`. `None` without a
    /// record.
    pub policy: Option<Policy>,
    /// The record's tags, when one was found.
    pub record: Option<PublishedPolicy>,
    /// SPF's contribution: `pass` (aligned pass), `fail` (pass but not aligned),
    /// `temperror`, or `none`.
    pub spf_aligned: Outcome,
    /// DKIM's contribution, likewise.
    pub dkim_aligned: Outcome,
    /// Why it did not pass, for logs.
    pub reason: Option<String>,
}

impl DmarcVerdict {
    fn none() -> Self {
        DmarcVerdict {
            result: Outcome::None,
            from_domain: String::new(),
            policy: None,
            record: None,
            spf_aligned: Outcome::None,
            dkim_aligned: Outcome::None,
            reason: None,
        }
    }

    fn timed_out(domain: &str) -> Self {
        DmarcVerdict {
            result: Outcome::TempError,
            from_domain: domain.to_string(),
            reason: Some(describe_error(&budget_error())),
            ..DmarcVerdict::none()
        }
    }

    fn from_output(out: &DmarcOutput, domain: &str) -> Self {
        let map = |r: &DmarcResult| match r {
            DmarcResult::Pass => Outcome::Pass,
            DmarcResult::Fail(_) => Outcome::Fail,
            DmarcResult::TempError(_) => Outcome::TempError,
            DmarcResult::PermError(_) => Outcome::PermError,
            DmarcResult::None => Outcome::None,
        };
        let overall = out.result();
        let record = out.dmarc_record().map(|r| PublishedPolicy {
            p: Policy::from_mail_auth(r.p),
            sp: Policy::from_mail_auth(r.sp),
            np: Policy::from_mail_auth(r.np),
            strict_dkim: r.adkim == Alignment::Strict,
            strict_spf: r.aspf == Alignment::Strict,
            testing: r.t,
        });
        let reason = match &overall {
            DmarcResult::Fail(_) => {
                Some("neither SPF nor DKIM passed in alignment with the From domain".to_string())
            }
            DmarcResult::TempError(e) | DmarcResult::PermError(e) => Some(describe_error(e)),
            _ => None,
        };
        DmarcVerdict {
            result: map(&overall),
            from_domain: if out.domain().is_empty() {
                domain.to_string()
            } else {
                out.domain().to_string()
            },
            policy: record
                .as_ref()
                .map(|_| Policy::from_mail_auth(out.policy())),
            record,
            spf_aligned: map(out.spf_result()),
            dkim_aligned: map(out.dkim_result()),
            reason,
        }
    }

    /// Orders verdicts by how much they constrain delivery (higher = stricter).
    fn severity(&self) -> u8 {
        match (self.result, self.policy) {
            (Outcome::Fail, Some(Policy::Reject)) => 6,
            (Outcome::Fail, Some(Policy::Quarantine)) => 5,
            (Outcome::TempError, _) => 4,
            (Outcome::Fail, _) => 3,
            (Outcome::PermError, _) => 2,
            (Outcome::None, _) | (Outcome::Neutral, _) | (Outcome::SoftFail, _) => 1,
            (Outcome::Pass, _) => 0,
        }
    }
}

/// The strictest verdict (the first of equals, i.e. the first From domain).
fn strictest(verdicts: Vec<DmarcVerdict>) -> DmarcVerdict {
    let mut best: Option<DmarcVerdict> = None;
    for v in verdicts {
        if best.as_ref().is_none_or(|b| v.severity() > b.severity()) {
            best = Some(v);
        }
    }
    best.unwrap_or_else(DmarcVerdict::none)
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

/// The Authentication-Results header **value** (RFC 8601), e.g.
/// `mx.example; spf=pass smtp.mailfrom=a@b.example; dkim=pass header.d=b.example
/// header.s=sel header.a=rsa-sha256 header.b=abcd1234; dmarc=pass (p=reject dis=none)
/// header.from=b.example`.
///
/// Each result after the authserv-id starts a folded line: the separator is `;` + LF +
/// TAB, the milter convention for multi-line header values (Postfix writes CRLF on the
/// wire). For a raw RFC 5322 header, replace `"\n"` with `"\r\n"`. Order: SPF for MAIL
/// FROM (or `smtp.helo` for a null sender), SPF for HELO when it gave a result, one
/// `dkim=` per signature (`dkim=none` without any), `dmarc=`. Values that are not
/// RFC 2045 tokens are quoted; comments are restricted to safe characters.
pub fn authentication_results(authserv_id: &str, v: &Verdicts) -> String {
    let mut entries: Vec<String> = Vec::new();

    let spf_comment = |s: &SpfVerdict| match s.result {
        Outcome::TempError => " (temporary DNS failure)".to_string(),
        Outcome::PermError => " (broken SPF record)".to_string(),
        _ => String::new(),
    };
    if v.mail_from.is_empty() {
        entries.push(format!(
            "spf={}{} smtp.helo={}",
            v.spf_helo.result,
            spf_comment(&v.spf_helo),
            pvalue(&v.helo)
        ));
    } else {
        entries.push(format!(
            "spf={}{} smtp.mailfrom={}",
            v.spf_mail_from.result,
            spf_comment(&v.spf_mail_from),
            pvalue(&v.mail_from)
        ));
        if v.spf_helo.result != Outcome::None {
            entries.push(format!(
                "spf={}{} smtp.helo={}",
                v.spf_helo.result,
                spf_comment(&v.spf_helo),
                pvalue(&v.helo)
            ));
        }
    }

    if v.dkim.is_empty() {
        entries.push("dkim=none".to_string());
    }
    for d in &v.dkim {
        let mut e = format!("dkim={}", d.result);
        if let Some(reason) = d.reason.as_deref().filter(|_| d.result != Outcome::Pass) {
            e.push_str(&format!(" ({})", comment(reason)));
        }
        if !d.domain.is_empty() {
            e.push_str(&format!(" header.d={}", pvalue(&d.domain)));
        }
        if let Some(i) = &d.identity {
            e.push_str(&format!(" header.i={}", pvalue(i)));
        }
        if !d.selector.is_empty() {
            e.push_str(&format!(" header.s={}", pvalue(&d.selector)));
        }
        if !d.algorithm.is_empty() {
            e.push_str(&format!(" header.a={}", pvalue(&d.algorithm)));
        }
        if !d.b_prefix.is_empty() {
            e.push_str(&format!(" header.b={}", pvalue(&d.b_prefix)));
        }
        entries.push(e);
    }

    let m = &v.dmarc;
    let mut e = format!("dmarc={}", m.result);
    if let (Some(record), Some(policy)) = (&m.record, m.policy) {
        let dis = match v.dmarc_disposition() {
            Disposition::Accept => "none",
            Disposition::Quarantine => "quarantine",
            Disposition::Reject => "reject",
        };
        e.push_str(&format!(
            " (p={} sp={} applied={policy} dis={dis})",
            record.p, record.sp
        ));
    } else if let Some(reason) = m.reason.as_deref() {
        e.push_str(&format!(" ({})", comment(reason)));
    }
    if !m.from_domain.is_empty() {
        e.push_str(&format!(" header.from={}", pvalue(&m.from_domain)));
    }
    entries.push(e);

    let mut out = sanitize_authserv_id(authserv_id);
    for e in entries {
        out.push_str(";\n\t");
        out.push_str(&e);
    }
    out
}

/// Whether an Authentication-Results header value claims to come from `authserv_id`:
/// its first token (before any `;`, after leading whitespace and comments; a quoted
/// string counts too) equals `authserv_id`, ignoring ASCII case and a trailing dot.
/// Such a header arriving from outside is a forgery and should be removed.
pub fn claims_authserv_id(header_value: &str, authserv_id: &str) -> bool {
    let wanted = authserv_id.trim().trim_end_matches('.');
    if wanted.is_empty() {
        return false;
    }
    let Some(first) = first_token(header_value) else {
        return false;
    };
    first.trim_end_matches('.').eq_ignore_ascii_case(wanted)
}

/// The authserv-id of an Authentication-Results value: skips CFWS (nested comments
/// included), then reads a quoted string or a run of characters up to whitespace, `;`
/// or `(`.
fn first_token(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut i = 0;
    // Skip whitespace and (possibly nested) comments.
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'(' {
            let mut depth = 0usize;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 1,
                    b'(' => depth += 1,
                    b')' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            if depth != 0 {
                return None;
            }
            continue;
        }
        break;
    }
    if i >= bytes.len() {
        return None;
    }
    if bytes[i] == b'"' {
        let mut token = Vec::new();
        i += 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if i + 1 < bytes.len() => {
                    token.push(bytes[i + 1]);
                    i += 2;
                }
                b'"' => return String::from_utf8(token).ok(),
                b => {
                    token.push(b);
                    i += 1;
                }
            }
        }
        return None;
    }
    let start = i;
    while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b';' | b'(') {
        i += 1;
    }
    let token = &value[start..i];
    (!token.is_empty()).then(|| token.to_string())
}

/// The authserv-id as written: a token if possible, otherwise quoted.
fn sanitize_authserv_id(id: &str) -> String {
    let id = id.trim();
    if id.is_empty() {
        return "localhost".to_string();
    }
    pvalue(id)
}

/// A property value: as is when it is a token (plus `@`, which RFC 8601 allows in
/// addresses), otherwise a quoted string with `"` and `\` escaped and control
/// characters dropped.
fn pvalue(value: &str) -> String {
    let is_token_char =
        |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`{|}~@/=".contains(c) || !c.is_ascii();
    if !value.is_empty() && value.chars().all(is_token_char) {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c.is_control() {
            continue;
        }
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Comment text: printable ASCII without parentheses or backslashes, at most 120
/// characters.
fn comment(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '(' | ')' | '\\') {
                c
            } else {
                ' '
            }
        })
        .collect();
    let mut out = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > 120 {
        out.truncate(117);
        out.push_str("...");
    }
    out
}

/// Human wording of mail-auth errors, for reasons in logs and header comments.
fn describe_error(e: &Error) -> String {
    use mail_auth::common::crypto::CryptoError;
    use mail_auth::dkim::DkimError as D;
    match e {
        Error::Dkim(D::FailedBodyHashMatch) => "body hash mismatch: the body was altered".into(),
        Error::Dkim(D::SignatureExpired) => "signature expired".into(),
        Error::Dkim(D::RevokedPublicKey) => "public key revoked".into(),
        Error::Dkim(D::SignatureLength) => "signature with l= refused".into(),
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

fn budget_error() -> Error {
    Error::Dns(DnsError::Resolver(
        "DNS lookups did not finish within the time budget".into(),
    ))
}

fn spf_timeout(domain: &str) -> SpfOutput {
    SpfOutput::new(domain.to_string()).with_result(SpfResult::TempError)
}

/// The domain part of an address (after the last `@`), or the whole string.
fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or(address, |(_, d)| d)
}

/// Trims whitespace and one pair of angle brackets; `<>` becomes empty.
fn normalize_mail_from(raw: &str) -> String {
    let t = raw.trim();
    let t = t
        .strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(t);
    t.trim().to_string()
}

/// The distinct From domains (lower-case), in order of appearance.
fn from_domains(message: &AuthenticatedMessage<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for address in message.froms() {
        let Some((_, domain)) = address.rsplit_once('@') else {
            continue;
        };
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        if !domain.is_empty() && !out.contains(&domain) {
            out.push(domain);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts() -> Verdicts {
        Verdicts {
            client_ip: "192.0.2.7".parse().unwrap(),
            helo: "mail.b.example".into(),
            mail_from: "a@b.example".into(),
            spf_helo: SpfVerdict {
                result: Outcome::None,
                domain: "mail.b.example".into(),
                identity: "postmaster@mail.b.example".into(),
                explanation: None,
            },
            spf_mail_from: SpfVerdict {
                result: Outcome::Pass,
                domain: "b.example".into(),
                identity: "a@b.example".into(),
                explanation: None,
            },
            dkim: vec![DkimVerdict {
                result: Outcome::Pass,
                domain: "b.example".into(),
                selector: "sel".into(),
                algorithm: "rsa-sha256".into(),
                identity: None,
                b_prefix: "abcd1234".into(),
                reason: None,
            }],
            dmarc: DmarcVerdict {
                result: Outcome::Pass,
                from_domain: "b.example".into(),
                policy: Some(Policy::Reject),
                record: Some(PublishedPolicy {
                    p: Policy::Reject,
                    sp: Policy::Reject,
                    np: Policy::Reject,
                    strict_dkim: false,
                    strict_spf: false,
                    testing: false,
                }),
                spf_aligned: Outcome::Pass,
                dkim_aligned: Outcome::Pass,
                reason: None,
            },
            from_domains: vec!["b.example".into()],
        }
    }

    #[test]
    fn authentication_results_text() {
        let v = verdicts();
        let ar = authentication_results("mx.example", &v);
        assert_eq!(
            ar,
            "mx.example;\n\tspf=pass smtp.mailfrom=a@b.example;\n\t\
             dkim=pass header.d=b.example header.s=sel header.a=rsa-sha256 header.b=abcd1234;\n\t\
             dmarc=pass (p=reject sp=reject applied=reject dis=none) header.from=b.example"
        );
        assert!(claims_authserv_id(&ar, "MX.example"));
        for line in ar.lines() {
            assert!(line.len() < 100, "{line}");
        }
    }

    #[test]
    fn authentication_results_null_sender_failures_and_quoting() {
        let mut v = verdicts();
        v.mail_from.clear();
        v.spf_helo.result = Outcome::TempError;
        v.spf_mail_from = v.spf_helo.clone();
        v.dkim[0].result = Outcome::Fail;
        v.dkim[0].reason = Some("body hash (mismatch)\r\nX-Injected: 1".into());
        v.dkim[0].identity = Some("\"we ird\"@b.example".into());
        v.dmarc = DmarcVerdict {
            result: Outcome::TempError,
            reason: Some("temporary DNS failure".into()),
            ..DmarcVerdict::none()
        };
        v.dmarc.from_domain = "b.example".into();
        let ar = authentication_results("mx.example", &v);
        assert!(ar.contains("spf=temperror (temporary DNS failure) smtp.helo=mail.b.example"));
        assert!(!ar.contains("smtp.mailfrom"));
        assert!(ar.contains("dkim=fail (body hash mismatch X-Injected: 1) header.d=b.example"));
        assert!(ar.contains(r#"header.i="\"we ird\"@b.example""#), "{ar}");
        assert!(ar.contains("dmarc=temperror (temporary DNS failure) header.from=b.example"));
        assert!(!ar.contains('\r'));
        assert_eq!(
            ar.matches('\n').count(),
            3,
            "only the folding newlines: {ar}"
        );

        v.dkim.clear();
        let ar = authentication_results("mx.example", &v);
        assert!(ar.contains(";\n\tdkim=none;"));
    }

    #[test]
    fn disposition_and_temporary_failure() {
        let mut v = verdicts();
        assert_eq!(v.dmarc_disposition(), Disposition::Accept);
        assert!(!v.dns_temporary_failure());

        v.dmarc.result = Outcome::Fail;
        assert_eq!(v.dmarc_disposition(), Disposition::Reject);
        v.dmarc.policy = Some(Policy::Quarantine);
        assert_eq!(v.dmarc_disposition(), Disposition::Quarantine);
        v.dmarc.policy = Some(Policy::None);
        assert_eq!(v.dmarc_disposition(), Disposition::Accept);

        v.dmarc.policy = Some(Policy::Reject);
        v.dmarc.result = Outcome::TempError;
        assert_eq!(v.dmarc_disposition(), Disposition::Accept);
        assert!(v.dns_temporary_failure());
        v.dmarc.result = Outcome::PermError;
        assert_eq!(v.dmarc_disposition(), Disposition::Accept);
        assert!(!v.dns_temporary_failure());

        v.dmarc.result = Outcome::None;
        v.spf_mail_from.result = Outcome::TempError;
        assert!(v.dns_temporary_failure());
        v.dmarc.result = Outcome::Pass;
        assert!(!v.dns_temporary_failure(), "DMARC passed regardless");
        v.dmarc.result = Outcome::None;
        v.spf_mail_from.result = Outcome::Fail;
        v.dkim[0].result = Outcome::TempError;
        assert!(
            !v.dns_temporary_failure(),
            "a lone DKIM temperror does not matter"
        );
    }

    #[test]
    fn strictest_dmarc_wins() {
        let base = verdicts().dmarc;
        let pass = base.clone();
        let mut reject = base.clone();
        reject.result = Outcome::Fail;
        reject.from_domain = "forged.example".into();
        let mut none = base.clone();
        none.result = Outcome::None;
        none.policy = None;
        let got = strictest(vec![pass.clone(), none.clone(), reject.clone()]);
        assert_eq!(got.from_domain, "forged.example");
        assert_eq!(
            strictest(vec![pass.clone(), none.clone()]).result,
            Outcome::None
        );
        assert_eq!(strictest(vec![]).result, Outcome::None);
    }

    #[test]
    fn claims_authserv_id_cases() {
        assert!(claims_authserv_id("mx.example; spf=pass", "mx.example"));
        assert!(claims_authserv_id("MX.Example.; none", "mx.example"));
        assert!(claims_authserv_id(
            "  (comment (nested)) mx.example 1; dkim=pass",
            "mx.example"
        ));
        assert!(claims_authserv_id(
            "\r\n\tmx.example;spf=pass",
            "mx.example"
        ));
        assert!(claims_authserv_id("\"mx.example\"; none", "mx.example"));
        assert!(claims_authserv_id("mx.example(c); none", "mx.example"));
        assert!(claims_authserv_id("mx.example", "mx.example"));
        assert!(!claims_authserv_id(
            "mx.example.evil; spf=pass",
            "mx.example"
        ));
        assert!(!claims_authserv_id(
            "other.example; mx.example",
            "mx.example"
        ));
        assert!(!claims_authserv_id(
            "x; spf=pass smtp.mailfrom=mx.example",
            "mx.example"
        ));
        assert!(!claims_authserv_id("", "mx.example"));
        assert!(!claims_authserv_id(
            "(unterminated mx.example",
            "mx.example"
        ));
        assert!(!claims_authserv_id("mx.example; none", ""));
        assert!(!claims_authserv_id("\"mx.example; none", "mx.example"));
    }

    #[test]
    fn helpers() {
        assert_eq!(normalize_mail_from(" <a@b.example> "), "a@b.example");
        assert_eq!(normalize_mail_from("<>"), "");
        assert_eq!(normalize_mail_from(""), "");
        assert_eq!(domain_of("x@y@z.example"), "z.example");
        assert_eq!(pvalue("a@b.example"), "a@b.example");
        assert_eq!(pvalue("a b"), "\"a b\"");
        assert_eq!(pvalue(""), "\"\"");
        assert_eq!(comment("a(b)c\\d\x01e"), "a b c d e");
        assert_eq!(comment(&"x".repeat(200)).len(), 120);
    }

    #[test]
    fn builds_outside_a_runtime_and_from_system_conf() {
        let auth = Authenticator::new(&["192.0.2.53:53".parse().unwrap()], Duration::from_secs(3))
            .unwrap()
            .with_budget(Duration::from_secs(1));
        assert_eq!(
            auth.budget(),
            Duration::from_secs(3),
            "at least one timeout"
        );
        // Empty list: /etc/resolv.conf, which may be missing in a sandbox; no panic.
        match Authenticator::new(&[], Duration::from_secs(1)) {
            Ok(a) => assert_eq!(a.timeout(), Duration::from_secs(1)),
            Err(e) => assert!(e.to_string().contains("resolv.conf"), "{e}"),
        }
    }

    #[test]
    fn evaluate_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let auth =
                Authenticator::new(&["127.0.0.1:9".parse().unwrap()], Duration::ZERO).unwrap();
            assert_eq!(auth.timeout(), MIN_TIMEOUT);
            assert_eq!(auth.budget(), MIN_TIMEOUT * 4);
            let input = Input {
                client_ip: "127.0.0.1".parse().unwrap(),
                helo: "h",
                mail_from: "",
                message: b"",
            };
            let fut = auth.evaluate(&input);
            assert_send(&fut);
            drop(fut);
        });
    }
}
