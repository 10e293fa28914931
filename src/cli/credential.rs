//! `postwarden credential`: SMTP AUTH credentials.

use clap::Subcommand;
use serde_json::json;

use crate::config::Config;
use crate::login::credential;
use crate::model::format_time;
use crate::store;

use super::context::open_store;
use super::output::{emit, emit_list, opt_time, CliError, CliResult};

#[derive(Debug, Clone, Subcommand)]
pub enum CredentialCmd {
    /// Create a credential; prints its username and password once.
    New {
        #[arg(long)]
        org: String,
        #[arg(long)]
        label: String,
    },
    /// List credentials (never a password or hash).
    List {
        #[arg(long)]
        org: Option<String>,
    },
    /// Revoke a credential: its next login fails.
    Revoke { username: String },
}

pub(super) fn run(cfg: &Config, json: bool, cmd: &CredentialCmd) -> CliResult {
    let mut store = open_store(cfg, matches!(cmd, CredentialCmd::New { .. }))?;
    match cmd {
        CredentialCmd::New { org, label } => {
            store::validate_label(label)?;
            // Check the organization exists before spending argon2 work.
            let orgs = store.org_list()?;
            let Some(o) = orgs.iter().find(|o| o.name.eq_ignore_ascii_case(org)) else {
                return Err(CliError::Refused(format!("no organization named {org:?}")));
            };
            let mut username = credential::generate_username(&o.name, label);
            for _ in 0..10 {
                if !store.username_exists(&username)? {
                    break;
                }
                username = credential::generate_username(&o.name, label);
            }
            let password = credential::generate_password();
            let hash = credential::hash_password(&password, &cfg.password_hash)
                .map_err(CliError::Refused)?;
            store.credential_add(&o.name, label, &username, &hash)?;
            emit(
                json,
                json!({"organization": o.name, "label": label, "username": username, "password": password}),
                || {
                    format!(
                        "credential {label:?} created for organization {}\nusername: {username}\npassword: {password}\n\
                         The password is shown only this once: postwarden keeps only its hash.",
                        o.name
                    )
                },
            );
        }
        CredentialCmd::List { org } => {
            let list = store.credential_list(org.as_deref())?;
            emit_list(
                json,
                &list,
                &[
                    "ORGANIZATION",
                    "LABEL",
                    "USERNAME",
                    "CREATED",
                    "LAST_USED",
                    "LAST_IP",
                    "REVOKED",
                ],
                |c| {
                    vec![
                        c.organization.clone(),
                        c.label.clone(),
                        c.username.clone(),
                        format_time(c.created),
                        opt_time(c.last_used),
                        c.last_ip.clone().unwrap_or_else(|| "-".into()),
                        opt_time(c.revoked),
                    ]
                },
            );
        }
        CredentialCmd::Revoke { username } => {
            store.credential_revoke(username)?;
            emit(json, json!({"revoked": username}), || {
                format!("credential {username} revoked: its next login fails")
            });
        }
    }
    Ok(())
}
