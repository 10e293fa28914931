//! `postwarden throttle`: the login throttle's counters (per client address and per
//! username), as every front end on the store sees them.

use clap::Subcommand;
use serde_json::json;

use crate::config::Config;
use crate::login::throttle::{address_key, Penalty};
use crate::model::{format_time, now, ThrottleEntry, ThrottleKind};

use super::context::open_store;
use super::output::{emit, emit_table, CliResult};

#[derive(Debug, Clone, Subcommand)]
pub enum ThrottleCmd {
    /// List the addresses and usernames with failed logins in the current window, and
    /// whether their attempts fail unchecked.
    List {
        /// Instead, list the addresses each username logged in from recently
        /// (`auth.throttle.known_address_ttl`): their attempts for that username are not
        /// held to its per-username budget.
        #[arg(long)]
        known: bool,
    },
    /// Forget the counters of a client address (IPv6: its /64) or a username, so that its
    /// next login is checked again.
    Clear {
        /// A client address (an IPv6 address clears its /64) or a username.
        key: String,
    },
}

/// Whether the next attempt of this counter fails unchecked (for a username: from an
/// address it has not logged in from).
fn blocked(p: &Penalty, e: &ThrottleEntry) -> bool {
    match e.kind {
        ThrottleKind::Address => p.address_blocked(e.failures.saturating_add(1)),
        ThrottleKind::Username => p.username_blocked(e.failures.saturating_add(1)),
    }
}

/// A client-chosen name as a table shows it: control characters escaped.
fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

/// The counter key an argument names: an IP address becomes its throttling key.
fn key_of(arg: &str) -> String {
    let t = arg.trim();
    match t.parse::<std::net::IpAddr>() {
        Ok(ip) => address_key(Some(ip)),
        Err(_) => t.to_string(),
    }
}

pub(super) fn run(cfg: &Config, json: bool, cmd: &ThrottleCmd) -> CliResult {
    let mut store = open_store(cfg, false)?;
    let penalty = Penalty::new(&cfg.auth.throttle);
    match cmd {
        ThrottleCmd::List { known: true } => {
            let list = store.throttle_known(now())?;
            let value = serde_json::to_value(&list).unwrap_or_default();
            emit_table(
                json,
                value,
                &["USERNAME", "ADDRESS", "KNOWN_UNTIL"],
                &list,
                |k| {
                    vec![
                        printable(&k.username),
                        k.address.clone(),
                        format_time(k.expires),
                    ]
                },
            );
        }
        ThrottleCmd::List { known: false } => {
            let list = store.throttle_list(now())?;
            let value = json!(list
                .iter()
                .map(|e| json!({
                    "kind": e.kind,
                    "key": e.key,
                    "failures": e.failures,
                    "window_end": e.window_end,
                    "blocked": blocked(&penalty, e),
                }))
                .collect::<Vec<_>>());
            emit_table(
                json,
                value,
                &[
                    "KIND",
                    "ADDRESS/USERNAME",
                    "FAILURES",
                    "WINDOW_END",
                    "BLOCKED",
                ],
                &list,
                |e| {
                    vec![
                        e.kind.to_string(),
                        printable(&e.key),
                        e.failures.to_string(),
                        format_time(e.window_end),
                        if blocked(&penalty, e) { "yes" } else { "no" }.into(),
                    ]
                },
            );
        }
        ThrottleCmd::Clear { key } => {
            let key = key_of(key);
            let n = store.throttle_clear(&key)?;
            emit(json, json!({"cleared": key, "counters": n}), || {
                format!(
                    "throttle counters of {} cleared: its next login is checked again",
                    printable(&key)
                )
            });
        }
    }
    Ok(())
}
