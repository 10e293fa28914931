//! DMARC aggregate reports (RFC 7489 section 7.2): what `postwarden dmarc report` does.
//!
//! Where the data comes from: with `[dmarc_reports] enabled = true`, the inbound milter
//! keeps one [`DmarcRow`] per message whose applicable DMARC record has a `rua=` address
//! ([`aggregate::row`]), written by the event writer ([`crate::events`]) into the store
//! ([`crate::store::DmarcResults`]).
//!
//! What a run does ([`run`]): removes rows older than `keep_days`; takes the rows of the
//! period (by default the previous full UTC day), one report per policy domain; groups
//! identical results into `<record>`s with a `<count>` and writes the RFC 7489 Appendix C
//! XML ([`aggregate`]); gzips it and mails it to the record's `rua=` addresses through
//! Postfix's sendmail ([`mail`]), leaving out an address outside the policy domain's
//! organization that has not published its consent (RFC 7489 section 7.1) and one whose
//! `!size` limit the report exceeds; and records the report as sent, so a second run for
//! the same period and domain sends nothing.

pub mod aggregate;
pub mod mail;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;
use crate::model::{now, DmarcRow, SentReport};
use crate::store::Store;

pub use aggregate::{escape, feedback_xml, group, row, Metadata};

/// The period and mode of one run.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// First second (Unix, UTC).
    pub begin: i64,
    /// Last second (Unix, UTC), included.
    pub end: i64,
    /// Build the reports, send nothing, change nothing.
    pub dry_run: bool,
}

/// The previous full UTC day before `t`: (its first second, its last second).
pub fn previous_day(t: i64) -> (i64, i64) {
    let today = t.div_euclid(86_400) * 86_400;
    (today - 86_400, today - 1)
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    pub enabled: bool,
    pub begin: i64,
    pub end: i64,
    pub dry_run: bool,
    /// Rows removed as older than `keep_days`.
    pub pruned: usize,
    pub reports: Vec<DomainReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Run {
    /// Whether some report could not be handed to sendmail.
    pub fn failed(&self) -> bool {
        self.reports.iter().any(|r| r.status == "failed")
    }
}

/// One policy domain's report.
#[derive(Debug, Clone, Serialize)]
pub struct DomainReport {
    pub policy_domain: String,
    pub report_id: String,
    /// Messages counted.
    pub messages: u64,
    /// `<record>`s (groups of identical results).
    pub records: usize,
    /// `sent`, `already sent`, `dry run` (would go to `recipients`), `not sent` (no
    /// address may take it) or `failed` (sendmail failed; see `error`).
    pub status: String,
    /// The addresses it went (or would go) to.
    pub recipients: Vec<String>,
    /// Addresses left out, and why.
    pub skipped: Vec<Skipped>,
    /// Size of the gzipped report.
    pub gzip_bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The report's XML (dry run only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xml: Option<String>,
}

/// An address that does not get the report.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub address: String,
    pub why: String,
}

/// The run of a configuration whose reports are disabled: nothing to do, and a note
/// saying how to enable them.
pub fn disabled(opts: &Options) -> Run {
    Run {
        enabled: false,
        begin: opts.begin,
        end: opts.end,
        dry_run: opts.dry_run,
        pruned: 0,
        reports: Vec::new(),
        note: Some(
            "DMARC aggregate reports are disabled: set [dmarc_reports] enabled = true (with org_name and email) to keep results and send reports".into(),
        ),
    }
}

/// Builds and (unless a dry run) sends the reports of `opts`' period. Store faults end
/// the run; a sendmail failure marks that report `failed` and the others go on.
pub async fn run(
    cfg: &Config,
    store: &mut dyn Store,
    auth: &crate::authn::Authenticator,
    opts: &Options,
) -> Result<Run, String> {
    let dns = auth.dns();
    let dr = &cfg.dmarc_reports;
    if !dr.enabled {
        return Ok(disabled(opts));
    }
    let mut out = Run {
        enabled: true,
        begin: opts.begin,
        end: opts.end,
        dry_run: opts.dry_run,
        pruned: 0,
        reports: Vec::new(),
        note: None,
    };
    if opts.end < opts.begin {
        return Err(format!(
            "the period ends ({}) before it begins ({})",
            opts.end, opts.begin
        ));
    }
    if !opts.dry_run {
        let before = now() - i64::from(dr.keep_days) * 86_400;
        out.pruned = store.prune_dmarc(before).map_err(|e| e.to_string())?;
    }
    let rows = store
        .dmarc_rows(opts.begin, opts.end)
        .map_err(|e| e.to_string())?;
    let mut by_domain: BTreeMap<String, Vec<DmarcRow>> = BTreeMap::new();
    for r in rows {
        by_domain
            .entry(r.policy_domain.clone())
            .or_default()
            .push(r);
    }
    if by_domain.is_empty() {
        out.note = Some("no DMARC results in this period: nothing to report".into());
    }
    let hostname = crate::authn::hostname();
    let receiver = dr
        .email
        .rsplit_once('@')
        .map_or(hostname.as_str(), |(_, d)| d)
        .to_ascii_lowercase();
    for (domain, rows) in by_domain {
        let groups = aggregate::group(&rows);
        let mut rep = DomainReport {
            policy_domain: domain.clone(),
            report_id: String::new(),
            messages: groups.iter().map(|(_, n)| n).sum(),
            records: groups.len(),
            status: String::new(),
            recipients: Vec::new(),
            skipped: Vec::new(),
            gzip_bytes: 0,
            error: None,
            xml: None,
        };
        if !opts.dry_run {
            if let Some(sent) = store
                .dmarc_report_sent(&domain, opts.begin, opts.end)
                .map_err(|e| e.to_string())?
            {
                rep.report_id = sent.report_id;
                rep.recipients = sent.recipients;
                rep.status = "already sent".into();
                out.reports.push(rep);
                continue;
            }
        }
        let unique = format!("{:016x}", rand::random::<u64>());
        rep.report_id = format!("{}.{domain}.{unique}@{hostname}", opts.begin);
        let meta = Metadata {
            org_name: dr.org_name.clone(),
            email: dr.email.clone(),
            extra_contact_info: (!dr.extra_contact_info.is_empty())
                .then(|| dr.extra_contact_info.clone()),
            report_id: rep.report_id.clone(),
            begin: opts.begin,
            end: opts.end,
        };
        let xml = aggregate::feedback_xml(&meta, &domain, &rows);
        let gz = mail::gzip(&xml);
        rep.gzip_bytes = gz.len();
        // The newest row's record says where reports go now.
        let mut addresses: Vec<crate::model::ReportUri> = Vec::new();
        for uri in rows.last().map(|r| r.rua.clone()).unwrap_or_default() {
            if !addresses
                .iter()
                .any(|a| a.address.eq_ignore_ascii_case(&uri.address))
            {
                addresses.push(uri);
            }
        }
        let mut temporary = false;
        for uri in addresses {
            let skip = |why: String| Skipped {
                address: uri.address.clone(),
                why,
            };
            match mail::destination_allowed(dns, auth.public_suffixes(), &domain, &uri.address).await {
                Err(e) => {
                    temporary = true;
                    rep.skipped.push(skip(e));
                }
                Ok(Err(why)) => rep.skipped.push(skip(why)),
                Ok(Ok(())) if uri.max_size > 0 && gz.len() as u64 > uri.max_size => {
                    rep.skipped.push(skip(format!(
                        "the gzipped report ({} bytes) exceeds the address's limit of {} bytes (!size in rua=)",
                        gz.len(),
                        uri.max_size
                    )))
                }
                Ok(Ok(())) => rep.recipients.push(uri.address.clone()),
            }
        }
        if opts.dry_run {
            rep.status = "dry run".into();
            rep.xml = Some(xml);
            out.reports.push(rep);
            continue;
        }
        if rep.recipients.is_empty() {
            rep.status = "not sent".into();
            rep.error = Some(if temporary {
                "no address could be verified now; a later run for this period tries again".into()
            } else {
                "no rua= address may take this report".into()
            });
            out.reports.push(rep);
            continue;
        }
        let filename = format!("{receiver}!{domain}!{}!{}.xml.gz", opts.begin, opts.end);
        let message = mail::message(
            &mail::Envelope {
                from: &dr.email,
                to: &rep.recipients,
                org_name: &dr.org_name,
                policy_domain: &domain,
                report_id: &rep.report_id,
                filename: &filename,
                begin: opts.begin,
                end: opts.end,
                date: now(),
                unique: &unique,
            },
            &gz,
        );
        match mail::sendmail(&dr.sendmail, &dr.email, &rep.recipients, &message) {
            Ok(()) => {
                store
                    .record_dmarc_report(&SentReport {
                        policy_domain: domain.clone(),
                        begin: opts.begin,
                        end: opts.end,
                        report_id: rep.report_id.clone(),
                        recipients: rep.recipients.clone(),
                        sent: now(),
                    })
                    .map_err(|e| e.to_string())?;
                rep.status = "sent".into();
            }
            Err(e) => {
                rep.status = "failed".into();
                rep.error = Some(e);
            }
        }
        out.reports.push(rep);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
