//! `postwarden org`: customer organizations.

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use crate::config::Config;
use crate::model::{format_time, SenderCheck};

use super::context::open_store;
use super::output::{emit, emit_list, CliResult};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SenderCheckArg {
    /// Senders must be registered accounts of the organization.
    Account,
    /// Any address in an active domain of the organization ("discovery").
    Domain,
}

impl From<SenderCheckArg> for SenderCheck {
    fn from(a: SenderCheckArg) -> Self {
        match a {
            SenderCheckArg::Account => SenderCheck::Account,
            SenderCheckArg::Domain => SenderCheck::Domain,
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum OrgCmd {
    /// Add an organization.
    Add {
        name: String,
        #[arg(long, value_enum, default_value = "account")]
        sender_check: SenderCheckArg,
    },
    /// Change an organization's sender check.
    Set {
        name: String,
        #[arg(long, value_enum)]
        sender_check: SenderCheckArg,
    },
    /// List organizations.
    List,
    /// Remove an organization (refused while it has domains or credentials, unless --force).
    Remove {
        name: String,
        /// Also remove its domains, accounts and credentials.
        #[arg(long)]
        force: bool,
    },
}

pub(super) fn run(cfg: &Config, json: bool, cmd: &OrgCmd) -> CliResult {
    let mut store = open_store(cfg, matches!(cmd, OrgCmd::Add { .. }))?;
    match cmd {
        OrgCmd::Add { name, sender_check } => {
            let sc: SenderCheck = (*sender_check).into();
            store.org_add(name, sc)?;
            emit(json, json!({"name": name, "sender_check": sc}), || {
                format!("organization {name} added (sender check: {})", sc.as_str())
            });
        }
        OrgCmd::Set { name, sender_check } => {
            let sc: SenderCheck = (*sender_check).into();
            store.org_set_sender_check(name, sc)?;
            emit(json, json!({"name": name, "sender_check": sc}), || {
                format!("organization {name}: sender check is now {}", sc.as_str())
            });
        }
        OrgCmd::List => {
            let orgs = store.org_list()?;
            emit_list(
                json,
                &orgs,
                &[
                    "NAME",
                    "SENDER_CHECK",
                    "DOMAINS",
                    "ACCOUNTS",
                    "CREDENTIALS",
                    "CREATED",
                ],
                |o| {
                    vec![
                        o.name.clone(),
                        o.sender_check.as_str().into(),
                        o.domains.to_string(),
                        o.accounts.to_string(),
                        o.credentials.to_string(),
                        format_time(o.created),
                    ]
                },
            );
        }
        OrgCmd::Remove { name, force } => {
            store.org_remove(name, *force)?;
            emit(json, json!({"removed": name}), || {
                format!("organization {name} removed")
            });
        }
    }
    Ok(())
}
