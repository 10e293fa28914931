//! `postwarden log`: the events (auth attempts, mail decisions, admin changes), or with
//! `--discovered` the senders accepted in `domain` mode that are not accounts yet.

use std::time::{Duration, UNIX_EPOCH};

use clap::ValueEnum;

use crate::address::normalize_address;
use crate::config::Config;
use crate::model::{format_time, now, EventFilter, EventKind};

use super::context::open_store;
use super::output::{emit, emit_list, CliError, CliResult};

#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// Only events of this kind.
    #[arg(long, value_enum)]
    pub kind: Option<KindFilter>,
    /// Only events of this login (credential username; for admin events the OS user).
    #[arg(long)]
    pub login: Option<String>,
    /// Only events with this envelope sender or header From address.
    #[arg(long)]
    pub sender: Option<String>,
    /// Only events since a duration ago ("1h", "2days") or an RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// At most this many (the newest), default 100; 0 for all.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// List the senders accepted in `domain` mode that are not registered accounts yet.
    #[arg(long, conflicts_with_all = ["kind", "login", "sender", "since"])]
    pub discovered: bool,
    /// Only this organization's events (or discovered senders).
    #[arg(long)]
    pub org: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindFilter {
    Auth,
    Mail,
    Admin,
}

pub(super) fn run(cfg: &Config, json: bool, args: &LogArgs) -> CliResult {
    if args.discovered {
        discovered(cfg, json, args)
    } else {
        events(cfg, json, args)
    }
}

/// `--since`: a duration ago ("1h") or an RFC 3339 time.
pub fn parse_since(s: &str, now: i64) -> Result<i64, String> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now - d.as_secs() as i64);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        return Ok(secs as i64);
    }
    Err(format!(
        "invalid --since {s:?}: give a duration such as \"1h\" or \"2days\", or an RFC 3339 time such as \"2026-11-23T05:00:00Z\""
    ))
}

/// A field value as `postwarden log` prints it: escaped like the daemon's log (no
/// control or bidi character reaches the terminal), and quoted when it holds spaces,
/// quotes or `=`.
fn quote_field(v: &str) -> String {
    let escaped = crate::logging::escape(v);
    if escaped.is_empty()
        || escaped
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=')
    {
        format!("\"{}\"", escaped.replace('"', "\\\""))
    } else {
        escaped.into_owned()
    }
}

fn events(cfg: &Config, json: bool, args: &LogArgs) -> CliResult {
    let since = match &args.since {
        Some(s) => Some(parse_since(s, now()).map_err(CliError::Usage)?),
        None => None,
    };
    let sender = args.sender.as_ref().map(|s| {
        normalize_address(s)
            .map(|a| a.to_string())
            .unwrap_or_else(|_| s.to_lowercase())
    });
    let filter = EventFilter {
        kind: args.kind.map(|k| match k {
            KindFilter::Auth => EventKind::Auth,
            KindFilter::Mail => EventKind::Mail,
            KindFilter::Admin => EventKind::Admin,
        }),
        login: args.login.clone(),
        org: args.org.clone(),
        sender,
        since,
        limit: (args.limit > 0).then_some(args.limit),
    };
    let store = open_store(cfg, false)?;
    let events = store.events(&filter)?;
    emit(json, serde_json::to_value(&events).expect("json"), || {
        events
            .iter()
            .map(|e| {
                let mut line = format!("{} {} {}", format_time(e.time), e.kind.as_str(), e.outcome);
                let fields: [(&str, Option<String>); 8] = [
                    ("login", e.login.clone()),
                    ("org", e.org.clone()),
                    ("client", e.client_ip.clone()),
                    ("queue_id", e.queue_id.clone()),
                    ("sender", e.sender.clone()),
                    ("from", e.header_from.clone()),
                    ("rcpts", e.rcpt_count.map(|n| n.to_string())),
                    ("reason", e.reason.clone()),
                ];
                for (k, v) in fields {
                    if let Some(v) = v {
                        line.push_str(&format!(" {k}={}", quote_field(&v)));
                    }
                }
                line
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

fn discovered(cfg: &Config, json: bool, args: &LogArgs) -> CliResult {
    let store = open_store(cfg, false)?;
    let list = store.discovered(args.org.as_deref())?;
    emit_list(
        json,
        &list,
        &[
            "ADDRESS",
            "ORGANIZATION",
            "MESSAGES",
            "FIRST_SEEN",
            "LAST_SEEN",
        ],
        |d| {
            vec![
                d.address.clone(),
                d.organization.clone(),
                d.messages.to_string(),
                format_time(d.first_seen),
                format_time(d.last_seen),
            ]
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_durations_and_times() {
        assert_eq!(parse_since("1h", 10_000).unwrap(), 6_400);
        assert_eq!(
            parse_since("2026-11-23T05:00:00Z", 0).unwrap(),
            1_795_410_000
        );
        assert!(parse_since("yesterday", 0)
            .unwrap_err()
            .contains("invalid --since"));
    }
}
