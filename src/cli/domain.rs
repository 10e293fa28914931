//! `postwarden domain`: the sending domains of organizations.

use clap::Subcommand;
use serde_json::{json, Value};

use crate::address::display_domain;
use crate::config::Config;
use crate::model::format_time;

use super::context::{domain_arg, open_store};
use super::output::{active_text, domain_text, emit, emit_table, CliResult};

#[derive(Debug, Clone, Subcommand)]
pub enum DomainCmd {
    /// Register a domain to an organization (active unless --inactive).
    Add {
        domain: String,
        #[arg(long)]
        org: String,
        #[arg(long)]
        inactive: bool,
    },
    /// Let the domain's senders send again.
    Activate { domain: String },
    /// Refuse mail from the domain's senders, keeping its accounts.
    Deactivate { domain: String },
    /// List domains.
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Remove a domain (refused while it has accounts or DKIM keys, unless --force).
    Remove {
        domain: String,
        /// Also remove its accounts and DKIM keys.
        #[arg(long)]
        force: bool,
    },
}

pub(super) fn run(cfg: &Config, json: bool, cmd: &DomainCmd) -> CliResult {
    let mut store = open_store(cfg, matches!(cmd, DomainCmd::Add { .. }))?;
    match cmd {
        DomainCmd::Add {
            domain,
            org,
            inactive,
        } => {
            let d = domain_arg(domain)?;
            store.domain_add(&d, org, !inactive)?;
            let state = active_text(!inactive);
            emit(
                json,
                json!({"name": d, "display": display_domain(&d), "organization": org, "active": !inactive}),
                || format!("domain {} added to {org} ({state})", domain_text(&d)),
            );
        }
        DomainCmd::Activate { domain } | DomainCmd::Deactivate { domain } => {
            let active = matches!(cmd, DomainCmd::Activate { .. });
            let d = domain_arg(domain)?;
            store.domain_set_active(&d, active)?;
            let state = active_text(active);
            emit(json, json!({"name": d, "active": active}), || {
                format!("domain {} is now {state}", domain_text(&d))
            });
        }
        DomainCmd::List { org } => {
            let list = store.domain_list(org.as_deref())?;
            let value: Vec<Value> = list
                .iter()
                .map(|d| {
                    json!({"name": d.name, "display": display_domain(&d.name), "organization": d.organization,
                           "active": d.active, "accounts": d.accounts, "created": d.created})
                })
                .collect();
            emit_table(
                json,
                Value::Array(value),
                &["DOMAIN", "ORGANIZATION", "STATE", "ACCOUNTS", "CREATED"],
                &list,
                |d| {
                    vec![
                        domain_text(&d.name),
                        d.organization.clone(),
                        active_text(d.active).into(),
                        d.accounts.to_string(),
                        format_time(d.created),
                    ]
                },
            );
        }
        DomainCmd::Remove { domain, force } => {
            let d = domain_arg(domain)?;
            store.domain_remove(&d, *force)?;
            emit(json, json!({"removed": d}), || {
                format!("domain {} removed", domain_text(&d))
            });
        }
    }
    Ok(())
}
