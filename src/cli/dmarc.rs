//! `postwarden dmarc report`: the DMARC aggregate reports of a period, built and sent
//! ([`crate::reports`]).

use clap::Subcommand;

use crate::config::Config;
use crate::model::now;
use crate::reports::{self, Options};

use super::context::{block_on, open_store};
use super::output::{emit, table, CliError, CliResult};

#[derive(Debug, Clone, Subcommand)]
pub enum DmarcCmd {
    /// Send the DMARC aggregate reports (RFC 7489) of a period: one gzipped XML report per
    /// policy domain, mailed through sendmail to the domain's rua= addresses. A report
    /// already sent for the same period and domain is not sent again. Results older than
    /// [dmarc_reports] keep_days are removed. Default period: the previous full UTC day.
    Report(ReportArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// One UTC day to report, as YYYY-MM-DD.
    #[arg(long, value_name = "DATE", conflicts_with_all = ["begin", "end"])]
    pub day: Option<String>,
    /// First second of the period (Unix seconds, UTC); needs --end.
    #[arg(long, value_name = "SECONDS", requires = "end")]
    pub begin: Option<i64>,
    /// Last second of the period (Unix seconds, UTC, included); needs --begin.
    #[arg(long, value_name = "SECONDS", requires = "begin")]
    pub end: Option<i64>,
    /// Print each report's XML on stdout instead of sending it; nothing is sent, recorded
    /// or removed (with --json, the XML is in the JSON document).
    #[arg(long)]
    pub dry_run: bool,
}

pub(super) fn run(cfg: &Config, json: bool, cmd: &DmarcCmd) -> CliResult {
    match cmd {
        DmarcCmd::Report(args) => report(cfg, json, args),
    }
}

/// The period the arguments name.
fn period(args: &ReportArgs) -> Result<(i64, i64), CliError> {
    if let Some(day) = &args.day {
        let t = humantime::parse_rfc3339(&format!("{day}T00:00:00Z")).map_err(|_| {
            CliError::Usage(format!("--day {day:?}: expected a date like 2026-11-23"))
        })?;
        let begin = t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        return Ok((begin, begin + 86_399));
    }
    match (args.begin, args.end) {
        (Some(b), Some(e)) if e < b => {
            Err(CliError::Usage(format!("--end {e} is before --begin {b}")))
        }
        (Some(b), Some(e)) => Ok((b, e)),
        _ => Ok(reports::previous_day(now())),
    }
}

fn report(cfg: &Config, json: bool, args: &ReportArgs) -> CliResult {
    let (begin, end) = period(args)?;
    let opts = Options {
        begin,
        end,
        dry_run: args.dry_run,
    };
    let out = if cfg.dmarc_reports.enabled {
        let mut store = open_store(cfg, false)?;
        let auth = crate::authn::Authenticator::from_config(cfg)
            .map_err(|e| CliError::Usage(format!("[dns]: {e}")))?;
        block_on(reports::run(cfg, &mut *store, &auth, &opts))?.map_err(CliError::Refused)?
    } else {
        reports::disabled(&opts)
    };
    if !json && args.dry_run {
        for r in &out.reports {
            if let Some(xml) = &r.xml {
                print!("{xml}");
            }
        }
        eprint!("{}", summary(&out));
    } else {
        emit(json, serde_json::to_value(&out).expect("json"), || {
            summary(&out)
        });
    }
    if out.failed() {
        return Err(CliError::Reported(
            "some reports could not be sent (see above)".into(),
        ));
    }
    Ok(())
}

/// The text form of a run: a note, a table, and the skipped addresses.
fn summary(out: &reports::Run) -> String {
    let mut s = String::new();
    if let Some(note) = &out.note {
        s.push_str(&format!("{note}\n"));
    }
    if !out.enabled {
        return s;
    }
    s.push_str(&format!(
        "period {} to {} ({} to {}){}\n",
        crate::model::format_time(out.begin),
        crate::model::format_time(out.end),
        out.begin,
        out.end,
        if out.pruned > 0 {
            format!("; {} old results removed", out.pruned)
        } else {
            String::new()
        }
    ));
    if !out.reports.is_empty() {
        let rows = out
            .reports
            .iter()
            .map(|r| {
                vec![
                    r.policy_domain.clone(),
                    r.status.clone(),
                    r.messages.to_string(),
                    r.recipients.join(", "),
                    r.report_id.clone(),
                ]
            })
            .collect();
        s.push_str(&table(
            &["DOMAIN", "STATUS", "MESSAGES", "TO", "REPORT-ID"],
            rows,
        ));
        s.push('\n');
    }
    for r in &out.reports {
        for k in &r.skipped {
            s.push_str(&format!(
                "{}: not sent to {}: {}\n",
                r.policy_domain, k.address, k.why
            ));
        }
        if let Some(e) = &r.error {
            s.push_str(&format!("{}: {e}\n", r.policy_domain));
        }
    }
    s
}
