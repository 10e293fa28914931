//! `postwarden account`: registered sender addresses.

use clap::{Subcommand, ValueEnum};
use serde_json::json;

use crate::address::{display_domain, normalize_address};
use crate::config::Config;
use crate::model::{format_time, AccountKind};

use super::context::open_store;
use super::output::{active_text, emit, emit_list, CliError, CliResult};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KindArg {
    #[value(name = "end_user")]
    EndUser,
    #[value(name = "silent_user")]
    SilentUser,
    #[value(name = "functional")]
    Functional,
}

impl From<KindArg> for AccountKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::EndUser => AccountKind::EndUser,
            KindArg::SilentUser => AccountKind::SilentUser,
            KindArg::Functional => AccountKind::Functional,
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum AccountCmd {
    /// Register a sender address; its domain must be registered.
    Add {
        address: String,
        #[arg(long, value_enum)]
        kind: KindArg,
    },
    /// List accounts.
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Remove an account.
    Remove { address: String },
}

pub(super) fn run(cfg: &Config, json: bool, cmd: &AccountCmd) -> CliResult {
    let mut store = open_store(cfg, matches!(cmd, AccountCmd::Add { .. }))?;
    match cmd {
        AccountCmd::Add { address, kind } => {
            let a = normalize_address(address).map_err(CliError::Refused)?;
            let k: AccountKind = (*kind).into();
            store.account_add(&a.to_string(), &a.domain, k)?;
            emit(json, json!({"address": a.to_string(), "kind": k}), || {
                let readable = format!("{}@{}", a.local, display_domain(&a.domain));
                if readable == a.to_string() {
                    format!("account {a} added ({})", k.as_str())
                } else {
                    format!("account {readable} ({a}) added ({})", k.as_str())
                }
            });
        }
        AccountCmd::List { org } => {
            let list = store.account_list(org.as_deref())?;
            emit_list(
                json,
                &list,
                &["ADDRESS", "KIND", "ORGANIZATION", "DOMAIN_STATE", "CREATED"],
                |a| {
                    vec![
                        a.address.clone(),
                        a.kind.as_str().into(),
                        a.organization.clone(),
                        active_text(a.domain_active).into(),
                        format_time(a.created),
                    ]
                },
            );
        }
        AccountCmd::Remove { address } => {
            let a = normalize_address(address).map_err(CliError::Refused)?;
            store.account_remove(&a.to_string())?;
            emit(json, json!({"removed": a.to_string()}), || {
                format!("account {a} removed")
            });
        }
    }
    Ok(())
}
