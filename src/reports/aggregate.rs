//! The aggregate report itself: the row kept for one message (from its verdicts and what
//! the inbound milter did), rows grouped into records, and the RFC 7489 Appendix C XML.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::authn::{Action, Disposition, Outcome, Policy, Verdicts};
use crate::config::Config;
use crate::model::{DkimAuth, DmarcRow, PolicyOverride, PublishedTags, SpfAuth};

/// The row an aggregate report keeps for one message, or `None` when none is kept: the
/// DMARC record that applied asks for no aggregate reports (no `rua=`), there was no
/// record, or the message was not taken (a temporary failure: it comes again).
pub fn row(cfg: &Config, v: &Verdicts, act: &Action, time: i64) -> Option<DmarcRow> {
    let record = v.dmarc.record.as_ref()?;
    if record.rua.is_empty() {
        return None;
    }
    let applied = match act {
        Action::Reject(_) => Policy::Reject,
        Action::Hold(_) | Action::MarkQuarantine(_) => Policy::Quarantine,
        Action::Deliver | Action::DeliverNoted(_) => Policy::None,
        Action::Tempfail => return None,
    };
    let wanted = match v.dmarc_disposition() {
        Disposition::Reject => Policy::Reject,
        Disposition::Quarantine => Policy::Quarantine,
        Disposition::Accept => Policy::None,
    };
    let mut reasons = Vec::new();
    if v.dmarc.sampled_out {
        reasons.push(PolicyOverride {
            kind: "sampled_out".into(),
            comment: Some(format!("pct={}", record.pct)),
        });
    }
    if applied != wanted {
        let why = match act {
            Action::Reject(w) | Action::Hold(w) | Action::MarkQuarantine(w) => Some(w.clone()),
            Action::DeliverNoted(w) => Some(w.clone()),
            _ => None,
        };
        let kind = if v
            .arc
            .vouched_by_trusted_sealer(&cfg.inbound.arc_trusted_sealers)
        {
            "trusted_forwarder"
        } else if wanted == Policy::Reject && v.list_id.is_some() {
            "mailing_list"
        } else {
            "local_policy"
        };
        reasons.push(PolicyOverride {
            kind: kind.into(),
            comment: why,
        });
    }
    let aligned = |o: Outcome| if o == Outcome::Pass { "pass" } else { "fail" };
    let envelope_from = if v.mail_from.is_empty() {
        v.helo.clone()
    } else {
        crate::authn::domain_of(&v.mail_from).to_string()
    }
    .to_ascii_lowercase();
    let spf = if v.mail_from.is_empty() {
        SpfAuth {
            domain: non_empty(&v.spf_helo.domain, &v.helo),
            scope: "helo".into(),
            result: v.spf_helo.result.as_str().into(),
        }
    } else {
        SpfAuth {
            domain: non_empty(&v.spf_mail_from.domain, &envelope_from),
            scope: "mfrom".into(),
            result: v.spf_mail_from.result.as_str().into(),
        }
    };
    Some(DmarcRow {
        time,
        policy_domain: record.domain.to_ascii_lowercase(),
        published: PublishedTags {
            p: record.p.as_str().into(),
            sp: record.sp.as_str().into(),
            pct: record.pct,
            adkim: if record.strict_dkim { "s" } else { "r" }.into(),
            aspf: if record.strict_spf { "s" } else { "r" }.into(),
            fo: record.fo.clone().unwrap_or_else(|| "0".into()),
        },
        header_from: v.dmarc.from_domain.to_ascii_lowercase(),
        envelope_from,
        source_ip: v.client_ip.to_string(),
        disposition: applied.as_str().into(),
        dkim_aligned: aligned(v.dmarc.dkim_aligned).into(),
        spf_aligned: aligned(v.dmarc.spf_aligned).into(),
        reasons,
        dkim: v
            .dkim
            .iter()
            .filter(|d| !d.domain.is_empty())
            .map(|d| DkimAuth {
                domain: d.domain.to_ascii_lowercase(),
                selector: d.selector.clone(),
                result: d.result.as_str().into(),
            })
            .collect(),
        spf: vec![spf],
        rua: record.rua.clone(),
    })
}

fn non_empty(a: &str, b: &str) -> String {
    if a.is_empty() { b } else { a }.to_ascii_lowercase()
}

/// Messages with identical results: one `<record>` of the report.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group {
    pub source_ip: String,
    pub disposition: String,
    pub dkim_aligned: String,
    pub spf_aligned: String,
    pub reasons: Vec<PolicyOverride>,
    pub header_from: String,
    pub envelope_from: String,
    pub dkim: Vec<DkimAuth>,
    pub spf: Vec<SpfAuth>,
}

/// Groups rows with identical source IP, disposition, aligned results, override reasons,
/// From and envelope domains and authentication results, counting them; in the order
/// each group first appears.
pub fn group(rows: &[DmarcRow]) -> Vec<(Group, u64)> {
    let mut order: Vec<(Group, u64)> = Vec::new();
    let mut index: HashMap<Group, usize> = HashMap::new();
    for r in rows {
        let g = Group {
            source_ip: r.source_ip.clone(),
            disposition: r.disposition.clone(),
            dkim_aligned: r.dkim_aligned.clone(),
            spf_aligned: r.spf_aligned.clone(),
            reasons: r.reasons.clone(),
            header_from: r.header_from.clone(),
            envelope_from: r.envelope_from.clone(),
            dkim: r.dkim.clone(),
            spf: r.spf.clone(),
        };
        match index.get(&g) {
            Some(&i) => order[i].1 += 1,
            None => {
                index.insert(g.clone(), order.len());
                order.push((g, 1));
            }
        }
    }
    order
}

/// What the report says about who made it.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub org_name: String,
    pub email: String,
    pub extra_contact_info: Option<String>,
    pub report_id: String,
    /// First second of the period (Unix).
    pub begin: i64,
    /// Last second of the period (Unix).
    pub end: i64,
}

/// `s` made safe as XML character data or an attribute value: markup characters
/// escaped, and characters XML 1.0 does not allow at all (most control characters)
/// replaced by U+FFFD. Every value of a report may come from hostile mail.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// An address as RFC 7489's schema writes it: IPv4 dotted, IPv6 with all eight groups
/// (the schema's pattern has no `::`). Anything unparseable is left as it is (and fails
/// validation rather than hiding).
pub fn schema_ip(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.to_string(),
        Ok(IpAddr::V6(a)) => match a.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => a
                .segments()
                .iter()
                .map(|s| format!("{s:x}"))
                .collect::<Vec<_>>()
                .join(":"),
        },
        Err(_) => ip.to_string(),
    }
}

/// The aggregate report (RFC 7489 Appendix C, no namespace) for `domain` from its rows
/// (at least one); the published policy is the newest row's.
pub fn feedback_xml(meta: &Metadata, domain: &str, rows: &[DmarcRow]) -> String {
    let e = escape;
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n");
    x.push_str("  <version>1.0</version>\n  <report_metadata>\n");
    let _ = writeln!(x, "    <org_name>{}</org_name>", e(&meta.org_name));
    let _ = writeln!(x, "    <email>{}</email>", e(&meta.email));
    if let Some(extra) = &meta.extra_contact_info {
        let _ = writeln!(
            x,
            "    <extra_contact_info>{}</extra_contact_info>",
            e(extra)
        );
    }
    let _ = writeln!(x, "    <report_id>{}</report_id>", e(&meta.report_id));
    let _ = writeln!(
        x,
        "    <date_range>\n      <begin>{}</begin>\n      <end>{}</end>\n    </date_range>",
        meta.begin, meta.end
    );
    x.push_str("  </report_metadata>\n");
    if let Some(newest) = rows.last() {
        let p = &newest.published;
        let _ = writeln!(
            x,
            "  <policy_published>\n    <domain>{}</domain>\n    <adkim>{}</adkim>\n    <aspf>{}</aspf>\n    <p>{}</p>\n    <sp>{}</sp>\n    <pct>{}</pct>\n    <fo>{}</fo>\n  </policy_published>",
            e(domain),
            e(&p.adkim),
            e(&p.aspf),
            e(&p.p),
            e(&p.sp),
            p.pct,
            e(&p.fo)
        );
    }
    for (g, count) in group(rows) {
        x.push_str("  <record>\n    <row>\n");
        let _ = writeln!(
            x,
            "      <source_ip>{}</source_ip>",
            e(&schema_ip(&g.source_ip))
        );
        let _ = writeln!(x, "      <count>{count}</count>");
        x.push_str("      <policy_evaluated>\n");
        let _ = writeln!(
            x,
            "        <disposition>{}</disposition>",
            e(&g.disposition)
        );
        let _ = writeln!(x, "        <dkim>{}</dkim>", e(&g.dkim_aligned));
        let _ = writeln!(x, "        <spf>{}</spf>", e(&g.spf_aligned));
        for r in &g.reasons {
            let _ = write!(
                x,
                "        <reason>\n          <type>{}</type>\n",
                e(&r.kind)
            );
            if let Some(c) = &r.comment {
                let _ = writeln!(x, "          <comment>{}</comment>", e(c));
            }
            x.push_str("        </reason>\n");
        }
        x.push_str("      </policy_evaluated>\n    </row>\n    <identifiers>\n");
        let _ = writeln!(
            x,
            "      <envelope_from>{}</envelope_from>",
            e(&g.envelope_from)
        );
        let _ = writeln!(x, "      <header_from>{}</header_from>", e(&g.header_from));
        x.push_str("    </identifiers>\n    <auth_results>\n");
        for d in &g.dkim {
            let _ = writeln!(
                x,
                "      <dkim>\n        <domain>{}</domain>\n        <selector>{}</selector>\n        <result>{}</result>\n      </dkim>",
                e(&d.domain),
                e(&d.selector),
                e(&d.result)
            );
        }
        for s in &g.spf {
            let _ = writeln!(
                x,
                "      <spf>\n        <domain>{}</domain>\n        <scope>{}</scope>\n        <result>{}</result>\n      </spf>",
                e(&s.domain),
                e(&s.scope),
                e(&s.result)
            );
        }
        x.push_str("    </auth_results>\n  </record>\n");
    }
    x.push_str("</feedback>\n");
    x
}
