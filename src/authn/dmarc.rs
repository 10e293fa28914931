//! DMARC (RFC 7489): policy discovery with the Public Suffix List, alignment and the
//! verdict for a From domain ([`evaluate`]), the strictest of several, and the disposition
//! the configuration gives it ([`action`]).

use std::fmt;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::dmarc::{Alignment, Dmarc, Policy as MaPolicy, Report as MaReport, URI};
use mail_auth::AuthenticatedMessage;
use serde::Serialize;

use super::psl::PublicSuffixes;
use super::{budget_error, describe_error, Dns, LookupFailure, Outcome, Verdicts};
use crate::config::{
    Config, DmarcListAction, DmarcQuarantineAction, DmarcRejectAction, DnsFailureAction,
};
pub use crate::model::ReportUri;

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

    /// The next policy down: reject → quarantine → none.
    pub fn milder(self) -> Self {
        match self {
            Policy::Reject => Policy::Quarantine,
            Policy::Quarantine | Policy::None => Policy::None,
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

/// The published DMARC record that applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedPolicy {
    /// Where the record was found (the policy domain): the From domain itself, or its
    /// organizational domain.
    pub domain: String,
    /// `rua=`: where aggregate reports go (mailto: URIs only), in the record's order.
    pub rua: Vec<ReportUri>,
    /// `fo=`: failure reporting options (`0`, `1`, `d`, `s`, `d:s`).
    pub fo: Option<String>,
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
    /// `pct=` (RFC 7489 section 6.3): the percentage of failing mail the policy applies
    /// to (100 when absent or invalid). The rest gets the next policy down.
    pub pct: u8,
}

/// A `rua=` URI as mail-auth parsed it (`mailto:` stripped, the `!size` suffix read).
fn report_uri(u: &URI) -> ReportUri {
    ReportUri {
        address: u.uri.strip_prefix("mailto:").unwrap_or(&u.uri).to_string(),
        max_size: u.max_size as u64,
    }
}

/// The `fo=` tag as written, from mail-auth's reading of it.
fn fo_tag(fo: &MaReport) -> &'static str {
    match fo {
        MaReport::All => "0",
        MaReport::Any => "1",
        MaReport::Dkim => "d",
        MaReport::Spf => "s",
        MaReport::DkimSpf => "d:s",
    }
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
    /// The failing message fell outside the record's `pct=` sample, so `policy` is the
    /// next one down from what the record asks for (RFC 7489 section 6.6.4).
    pub sampled_out: bool,
}

impl DmarcVerdict {
    pub(crate) fn none() -> Self {
        DmarcVerdict {
            result: Outcome::None,
            from_domain: String::new(),
            policy: None,
            record: None,
            spf_aligned: Outcome::None,
            dkim_aligned: Outcome::None,
            reason: None,
            sampled_out: false,
        }
    }

    pub(super) fn timed_out(domain: &str) -> Self {
        DmarcVerdict {
            result: Outcome::TempError,
            from_domain: domain.to_string(),
            reason: Some(describe_error(&budget_error())),
            ..DmarcVerdict::none()
        }
    }

    /// Applies the record's `pct=` to a failing verdict: `sample` (0..100, drawn at
    /// random per message) below `pct` keeps the policy; otherwise the message is
    /// sampled out and gets the next policy down (reject → quarantine, quarantine →
    /// none), as RFC 7489 section 6.6.4 says. `pct=0` therefore never rejects and
    /// `pct=100` always applies the policy. A record in DMARCbis testing mode (`t=y`)
    /// is already one step milder and is not sampled again.
    pub fn apply_pct(&mut self, pct: u8, sample: u8) {
        let Some(record) = self.record.as_mut() else {
            return;
        };
        record.pct = pct.min(100);
        if self.result != Outcome::Fail || record.testing || sample < record.pct {
            return;
        }
        self.sampled_out = true;
        self.policy = self.policy.map(Policy::milder);
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
pub(super) fn strictest(verdicts: Vec<DmarcVerdict>) -> DmarcVerdict {
    let mut best: Option<DmarcVerdict> = None;
    for v in verdicts {
        if best.as_ref().is_none_or(|b| v.severity() > b.severity()) {
            best = Some(v);
        }
    }
    best.unwrap_or_else(DmarcVerdict::none)
}

/// What DMARC aligns: the SPF result of the identity it checks (MAIL FROM, or HELO for a
/// null sender) with that identity's domain, and every DKIM verdict.
pub(super) struct Identifiers<'a> {
    pub spf: Outcome,
    pub spf_domain: &'a str,
    pub dkim: &'a [super::DkimVerdict],
}

/// The record policy discovery found.
struct Found {
    /// Where it was found: the From domain, or its organizational domain.
    domain: String,
    record: Dmarc,
    /// Its `pct=` (100 when absent or invalid).
    pct: u8,
}

/// RFC 7489 policy discovery (section 6.6.3): the record at `_dmarc.<from>`, otherwise
/// the one at `_dmarc.<organizational domain>` (Public Suffix List). `Ok(None)` without
/// one; `Err` for a lookup that failed temporarily.
async fn discover(dns: &Dns, psl: &PublicSuffixes, from: &str) -> Result<Option<Found>, String> {
    if let Some(found) = fetch(dns, from).await? {
        return Ok(Some(found));
    }
    let org = psl.organizational_domain(from);
    if org == from {
        return Ok(None);
    }
    fetch(dns, org).await
}

/// The one DMARC record at `_dmarc.<domain>`. None, several, or one that does not parse
/// count as no record (RFC 7489 section 6.6.3, steps 4 and 5).
async fn fetch(dns: &Dns, domain: &str) -> Result<Option<Found>, String> {
    let records = match dns.txt_records(&format!("_dmarc.{domain}")).await {
        Ok(records) => records,
        Err(LookupFailure::NotFound) => return Ok(None),
        Err(LookupFailure::Temporary(e)) => return Err(e),
    };
    let dmarc: Vec<&String> = records.iter().filter(|r| is_dmarc_record(r)).collect();
    let [text] = dmarc.as_slice() else {
        return Ok(None);
    };
    Ok(Dmarc::parse(text.as_bytes()).ok().map(|record| Found {
        domain: domain.to_string(),
        record,
        pct: pct_tag(text),
    }))
}

/// Whether `domain` does not exist in the sense of RFC 9091 section 2.7: no A, AAAA or
/// MX records (NXDOMAIN or NODATA for all three). A temporary failure counts as existing.
async fn non_existent(dns: &Dns, domain: &str) -> bool {
    let (a, aaaa, mx) = tokio::join!(dns.a(domain), dns.aaaa(domain), dns.mx_hosts(domain));
    [a.err(), aaaa.err(), mx.err()]
        .iter()
        .all(|e| *e == Some(LookupFailure::NotFound))
}

/// The DMARC verdict for one From domain (lower-case): policy discovery with the Public
/// Suffix List, the policy that applies (`p=` for the domain's own record; `sp=`, or
/// `np=` for a non-existent subdomain, for its organizational domain's; one step
/// milder under `t=y`), and identifier alignment (strict: the same name; relaxed: the
/// same organizational domain). `pct=` is read but not applied here
/// ([`DmarcVerdict::apply_pct`]).
pub(super) async fn evaluate(
    dns: &Dns,
    psl: &PublicSuffixes,
    from: &str,
    ids: &Identifiers<'_>,
) -> DmarcVerdict {
    let from = a_label(from);
    let found = match discover(dns, psl, &from).await {
        Ok(Some(found)) => found,
        Ok(None) => {
            return DmarcVerdict {
                from_domain: from,
                ..DmarcVerdict::none()
            }
        }
        Err(e) => {
            return DmarcVerdict {
                result: Outcome::TempError,
                from_domain: from,
                reason: Some(e),
                ..DmarcVerdict::none()
            }
        }
    };
    let r = &found.record;
    let mut policy = if r.p == MaPolicy::Unspecified {
        // No valid p=: with a report address it counts as p=none, else as no record.
        if r.rua.is_empty() {
            return DmarcVerdict {
                from_domain: from,
                ..DmarcVerdict::none()
            };
        }
        Policy::None
    } else if found.domain == from {
        Policy::from_mail_auth(r.p)
    } else if r.np != r.sp && non_existent(dns, &from).await {
        Policy::from_mail_auth(r.np)
    } else {
        Policy::from_mail_auth(r.sp)
    };
    if r.t {
        policy = policy.milder();
    }
    let strict_spf = r.aspf == Alignment::Strict;
    let strict_dkim = r.adkim == Alignment::Strict;
    let from_org = psl.organizational_domain(&from).to_string();
    let aligned = |domain: &str, strict: bool| {
        let domain = a_label(domain);
        domain == from || (!strict && psl.organizational_domain(&domain) == from_org)
    };

    let spf_aligned = match ids.spf {
        Outcome::Pass if aligned(ids.spf_domain, strict_spf) => Outcome::Pass,
        Outcome::Pass => Outcome::Fail,
        Outcome::TempError if aligned(ids.spf_domain, strict_spf) => Outcome::TempError,
        _ => Outcome::None,
    };
    let mut dkim_aligned = Outcome::None;
    for d in ids.dkim.iter().filter(|d| !d.domain.is_empty()) {
        let contribution = match d.result {
            Outcome::Pass if aligned(&d.domain, strict_dkim) => Outcome::Pass,
            Outcome::Pass => Outcome::Fail,
            Outcome::TempError if aligned(&d.domain, strict_dkim) => Outcome::TempError,
            _ => continue,
        };
        if rank(contribution) < rank(dkim_aligned) {
            dkim_aligned = contribution;
        }
    }
    // The better of the two: pass, then temperror, then fail; with neither, fail.
    let result = match [spf_aligned, dkim_aligned]
        .into_iter()
        .min_by_key(|o| rank(*o))
        .unwrap_or(Outcome::None)
    {
        Outcome::None => Outcome::Fail,
        best => best,
    };
    let reason = match result {
        Outcome::Fail => {
            Some("neither SPF nor DKIM passed in alignment with the From domain".to_string())
        }
        Outcome::TempError => {
            Some("a check that would align with the From domain failed temporarily".to_string())
        }
        _ => None,
    };
    DmarcVerdict {
        result,
        from_domain: from,
        policy: Some(policy),
        record: Some(PublishedPolicy {
            domain: found.domain.clone(),
            rua: r.rua.iter().map(report_uri).collect(),
            fo: Some(fo_tag(&r.fo).to_string()),
            p: Policy::from_mail_auth(r.p),
            sp: Policy::from_mail_auth(r.sp),
            np: Policy::from_mail_auth(r.np),
            strict_dkim,
            strict_spf,
            testing: r.t,
            pct: found.pct,
        }),
        spf_aligned,
        dkim_aligned,
        reason,
        sampled_out: false,
    }
}

/// Orders alignment contributions: pass, temperror, fail, then nothing.
fn rank(o: Outcome) -> u8 {
    match o {
        Outcome::Pass => 0,
        Outcome::TempError => 1,
        Outcome::PermError => 2,
        Outcome::Fail => 3,
        _ => 4,
    }
}

/// `domain` as lower-case A-labels without the trailing dot (unchanged if it is not a
/// valid IDN).
fn a_label(domain: &str) -> String {
    let domain = domain.trim_end_matches('.');
    idna::domain_to_ascii(domain).unwrap_or_else(|_| domain.to_ascii_lowercase())
}

fn is_dmarc_record(txt: &str) -> bool {
    let mut tags = txt.split(';');
    tags.next().is_some_and(|first| {
        first
            .split_once('=')
            .is_some_and(|(k, v)| k.trim() == "v" && v.trim() == "DMARC1")
    })
}

/// The `pct=` tag's value (0 to 100), or 100 when absent or invalid.
fn pct_tag(record: &str) -> u8 {
    record
        .split(';')
        .filter_map(|tag| tag.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("pct"))
        .and_then(|(_, v)| v.trim().parse::<u8>().ok())
        .filter(|p| *p <= 100)
        .unwrap_or(100)
}

/// The first `List-Id` field's value (RFC 2919) in the message's header, unfolded,
/// without control characters and at most 200 characters; `None` without one.
pub(crate) fn list_id(message: &[u8]) -> Option<String> {
    let head_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| message.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(message.len());
    let head = String::from_utf8_lossy(&message[..head_end]);
    let mut value: Option<String> = None;
    for line in head.split('\n') {
        let line = line.trim_end_matches('\r');
        match value.as_mut() {
            Some(v) if line.starts_with([' ', '\t']) => v.push_str(line),
            Some(_) => break,
            None => {
                if let Some((name, rest)) = line.split_once(':') {
                    if name.trim_end().eq_ignore_ascii_case("list-id") {
                        value = Some(rest.to_string());
                    }
                }
            }
        }
    }
    let clean: String = value?
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    // Cut at 200 characters, and not after a space the cut left at the end.
    let cut: String = clean.chars().take(200).collect();
    (!clean.is_empty()).then(|| cut.trim_end().to_string())
}

/// The distinct From domains (lower-case), in order of appearance.
pub(super) fn from_domains(message: &AuthenticatedMessage<'_>) -> Vec<String> {
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

/// What to do with a message, from its verdicts and the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Deliver,
    /// Deliver a message whose DMARC policy was not applied: a mailing-list message under
    /// `inbound.dmarc_reject_list = "accept"`, or one vouched for by a trusted ARC
    /// sealer. The text (why) goes into the event.
    DeliverNoted(String),
    /// Deliver with the X-Postwarden-Quarantine header.
    MarkQuarantine(String),
    /// Postfix's hold queue.
    Hold(String),
    Reject(String),
    Tempfail,
}

/// The configured consequence of `v` (pure): the DMARC disposition under
/// `inbound.dmarc_reject` / `inbound.dmarc_quarantine`, and a DNS temporary failure under
/// `inbound.dns_failure`.
pub fn action(cfg: &Config, v: &Verdicts) -> Action {
    let domain = v.dmarc.from_domain.clone();
    let quarantine = |why: String| match cfg.inbound.dmarc_quarantine {
        DmarcQuarantineAction::Hold => Action::Hold(why),
        DmarcQuarantineAction::Header => Action::MarkQuarantine(why),
        DmarcQuarantineAction::Accept => Action::Deliver,
    };
    let disposition = v.dmarc_disposition();
    if disposition != Disposition::Accept
        && v.arc
            .vouched_by_trusted_sealer(&cfg.inbound.arc_trusted_sealers)
    {
        return Action::DeliverNoted(format!(
            "DMARC failure for {domain} overridden (reason arc): the trusted ARC sealer {} saw DMARC pass",
            v.arc.sealer.as_deref().unwrap_or_default()
        ));
    }
    match disposition {
        Disposition::Reject if v.list_id.is_some() && cfg.inbound.dmarc_reject_list != DmarcListAction::Reject => {
            let list = v.list_id.as_deref().unwrap_or_default();
            let why = |what: &str| {
                format!("DMARC failure, {domain} publishes p=reject; mailing list {list}: {what} instead of rejected")
            };
            match cfg.inbound.dmarc_reject_list {
                DmarcListAction::Hold => Action::Hold(why("held")),
                DmarcListAction::Header => Action::MarkQuarantine(why("marked")),
                _ => Action::DeliverNoted(why("accepted")),
            }
        }
        Disposition::Reject => match cfg.inbound.dmarc_reject {
            DmarcRejectAction::Reject => Action::Reject(format!(
                "Message rejected: it fails DMARC authentication and the domain {domain} publishes p=reject"
            )),
            DmarcRejectAction::Quarantine => quarantine(format!("DMARC failure, {domain} publishes p=reject")),
            DmarcRejectAction::Accept => Action::Deliver,
        },
        Disposition::Quarantine if v.dmarc.sampled_out => quarantine(format!(
            "DMARC failure, {domain} publishes p=reject for pct={}% of failing mail; this message was sampled out, so quarantined",
            v.dmarc.record.as_ref().map_or(100, |r| r.pct)
        )),
        Disposition::Quarantine => quarantine(format!("DMARC failure, {domain} publishes p=quarantine")),
        Disposition::Accept => {
            if v.dns_temporary_failure() && cfg.inbound.dns_failure == DnsFailureAction::Tempfail {
                Action::Tempfail
            } else {
                Action::Deliver
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::verdicts;
    use super::*;

    #[test]
    fn pct_samples_out_to_the_next_policy_down() {
        assert_eq!(pct_tag("v=DMARC1; p=reject; pct=0"), 0);
        assert_eq!(pct_tag("v=DMARC1; p=reject; pct = 10 ;"), 10);
        assert_eq!(pct_tag("v=DMARC1; p=reject"), 100);
        assert_eq!(pct_tag("v=DMARC1; p=reject; pct=101"), 100);
        assert_eq!(pct_tag("v=DMARC1; p=reject; pct=-5"), 100);
        assert!(is_dmarc_record("v=DMARC1;p=none"));
        assert!(!is_dmarc_record("v=spf1 -all"));

        let mut failing = verdicts().dmarc;
        failing.result = Outcome::Fail;
        failing.policy = Some(Policy::Reject);
        // pct=0: every failing message is sampled out; reject becomes quarantine.
        let mut v = failing.clone();
        v.apply_pct(0, 0);
        assert!(v.sampled_out);
        assert_eq!(v.policy, Some(Policy::Quarantine));
        // pct=10: samples 0..9 get the policy, 10..99 the next one down.
        let mut v = failing.clone();
        v.apply_pct(10, 9);
        assert_eq!((v.sampled_out, v.policy), (false, Some(Policy::Reject)));
        let mut v = failing.clone();
        v.apply_pct(10, 10);
        assert_eq!((v.sampled_out, v.policy), (true, Some(Policy::Quarantine)));
        // pct=100 always applies; quarantine sampled out becomes none.
        let mut v = failing.clone();
        v.apply_pct(100, 99);
        assert_eq!(v.policy, Some(Policy::Reject));
        let mut v = failing.clone();
        v.policy = Some(Policy::Quarantine);
        v.apply_pct(0, 50);
        assert_eq!(v.policy, Some(Policy::None));
        // A passing message and a t=y record are not sampled.
        let mut v = verdicts().dmarc;
        v.apply_pct(0, 50);
        assert!(!v.sampled_out);
        let mut v = failing.clone();
        v.record.as_mut().unwrap().testing = true;
        v.apply_pct(0, 50);
        assert_eq!((v.sampled_out, v.policy), (false, Some(Policy::Reject)));
    }

    #[test]
    fn mailing_lists_get_their_own_action() {
        assert_eq!(
            list_id(b"From: a@b.example\r\nList-Id: Users\r\n <users.lists.example>\r\n\r\nList-Id: body\r\n"),
            Some("Users <users.lists.example>".into())
        );
        assert_eq!(list_id(b"From: a@b.example\n\nList-Id: <x>\n"), None);
        // Found by fuzzing (mail-parsing): the 200-character cut left a trailing space.
        let long = format!("List-Id: {} b\r\n\r\n", "a".repeat(199));
        assert_eq!(list_id(long.as_bytes()), Some("a".repeat(199)));
        assert_eq!(
            list_id(b"list-id:\x1b[31m <x>\r\n\r\n"),
            Some("[31m <x>".into())
        );

        let cfg =
            |extra: &str| Config::parse(&format!("[inbound]\n{extra}"), "test").expect("config");
        let mut v = verdicts();
        v.dmarc.result = Outcome::Fail;
        v.list_id = Some("<users.lists.example>".into());
        match action(&cfg(""), &v) {
            Action::Hold(why) => assert_eq!(
                why,
                "DMARC failure, b.example publishes p=reject; mailing list <users.lists.example>: held instead of rejected"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            action(&cfg("dmarc_reject_list = \"header\""), &v),
            Action::MarkQuarantine(why) if why.contains("marked instead of rejected")
        ));
        assert!(matches!(
            action(&cfg("dmarc_reject_list = \"accept\""), &v),
            Action::DeliverNoted(why) if why.contains("accepted instead of rejected")
        ));
        assert!(matches!(
            action(&cfg("dmarc_reject_list = \"reject\""), &v),
            Action::Reject(_)
        ));
        // Only p=reject failures: a list message under p=quarantine is quarantined as usual.
        v.dmarc.policy = Some(Policy::Quarantine);
        assert!(matches!(action(&cfg(""), &v), Action::Hold(why) if why.contains("p=quarantine")));
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
    fn actions_follow_the_configuration() {
        let cfg =
            |extra: &str| Config::parse(&format!("[inbound]\n{extra}"), "test").expect("config");
        let mut v = verdicts();
        assert_eq!(action(&cfg(""), &v), Action::Deliver);

        v.dmarc.result = Outcome::Fail;
        match action(&cfg(""), &v) {
            Action::Reject(text) => {
                assert!(text.contains("b.example publishes p=reject"), "{text}")
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            action(
                &cfg("dmarc_reject = \"quarantine\"\ndmarc_quarantine = \"hold\""),
                &v
            ),
            Action::Hold(_)
        ));
        assert_eq!(
            action(&cfg("dmarc_reject = \"accept\""), &v),
            Action::Deliver
        );
        v.dmarc.policy = Some(Policy::Quarantine);
        assert!(matches!(
            action(&cfg("dmarc_quarantine = \"header\""), &v),
            Action::MarkQuarantine(why) if why.contains("p=quarantine")
        ));
        assert_eq!(
            action(&cfg("dmarc_quarantine = \"accept\""), &v),
            Action::Deliver
        );

        v.dmarc.result = Outcome::TempError;
        assert_eq!(action(&cfg(""), &v), Action::Tempfail);
        assert_eq!(
            action(&cfg("dns_failure = \"accept\""), &v),
            Action::Deliver
        );
    }
}
