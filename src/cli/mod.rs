//! The command line: clap definitions and the admin commands' output (tables, or one
//! JSON document on stdout with `--json`). Exit codes: 0 ok, 1 refused by a rule or a
//! store fault (one line on stderr), 2 usage or configuration error.
//!
//! One file per noun, holding its clap arguments and its handlers:
//! - `org`, `domain`, `account`, `credential`, `dkim`: the store's nouns;
//! - `log` (with `--discovered`), `explain`, `dns_check`: reading what happened or would;
//! - `throttle`: the login throttle's counters, listed and cleared;
//! - `dmarc`: `dmarc report`, the DMARC aggregate reports (built in [`crate::reports`]);
//! - `setup`: `init`, `check-config` and `postfix-setup`;
//! - `context`: the configuration, the data directory and the store the commands open;
//! - `output`: errors and exit codes, JSON or tables, and how times and domains print.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod account;
mod context;
mod credential;
mod dkim;
mod dmarc;
mod dns_check;
mod domain;
mod explain;
mod log;
mod org;
mod output;
mod setup;
mod throttle;

pub use account::{AccountCmd, KindArg};
pub use context::{config_path, ensure_data_dir, load_config, SYSTEM_CONFIG};
pub use credential::CredentialCmd;
pub use dkim::{AlgorithmArg, DkimCmd};
pub use dmarc::{DmarcCmd, ReportArgs};
pub use domain::DomainCmd;
pub use explain::ExplainArgs;
pub use log::{parse_since, KindFilter, LogArgs};
pub use org::{OrgCmd, SenderCheckArg};
pub use output::{CliError, CliResult};
pub use throttle::ThrottleCmd;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "postwarden",
    version,
    about = "Authenticated-submission decisions for Postfix: SASL logins, sender ownership, admin store",
    long_about = "postwarden answers Postfix's SASL requests over the Dovecot auth protocol and keeps \
                  the store of organizations, domains, accounts and credentials that decides who may \
                  log in and send as whom.\n\nExit codes: 0 ok, 1 refused by a rule (reason on stderr), \
                  2 usage or configuration error."
)]
pub struct Cli {
    /// Configuration file (TOML). Default: /etc/postwarden/postwarden.toml if it exists,
    /// otherwise the embedded default.
    #[arg(
        long,
        short = 'c',
        global = true,
        value_name = "FILE",
        env = "POSTWARDEN_CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// Data directory (database, sockets); overrides the config's data_dir.
    #[arg(long, global = true, value_name = "DIR", env = "POSTWARDEN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON document on stdout instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the daemon (stops on SIGTERM or SIGINT).
    Run,
    /// Validate the configuration and print the effective settings.
    CheckConfig,
    /// Create the data directory and the store, or migrate the store to this version.
    Init,
    /// Customer organizations.
    #[command(subcommand)]
    Org(OrgCmd),
    /// Sending domains of organizations.
    #[command(subcommand)]
    Domain(DomainCmd),
    /// Registered sender addresses.
    #[command(subcommand)]
    Account(AccountCmd),
    /// SMTP AUTH credentials.
    #[command(subcommand)]
    Credential(CredentialCmd),
    /// Login throttling: the counters per client address and per username; clear one.
    #[command(subcommand)]
    Throttle(ThrottleCmd),
    /// Show the log of auth attempts, mail decisions and admin changes.
    Log(LogArgs),
    /// Show how the submission milter would judge a message, without sending anything.
    Explain(ExplainArgs),
    /// DKIM keys: generate, list, activate (rotate), retire.
    #[command(subcommand)]
    Dkim(DkimCmd),
    /// Check a domain's published SPF, DKIM and DMARC records.
    DnsCheck { domain: String },
    /// DMARC aggregate reports to the domains that ask for them (rua=).
    #[command(subcommand)]
    Dmarc(DmarcCmd),
    /// Print the postconf commands that configure Postfix for postwarden, or apply them.
    PostfixSetup {
        /// Apply them (main.cf and master.cf are backed up first; `postfix check` must pass).
        #[arg(long)]
        apply: bool,
        /// Postfix configuration directory (postconf -c); default: Postfix's own.
        #[arg(long, value_name = "DIR")]
        postfix_config_dir: Option<PathBuf>,
    },
}

/// Runs an admin command (everything but `run`).
pub fn admin(cli: &Cli) -> CliResult {
    let cfg = load_config(cli)?;
    let json = cli.json;
    match &cli.command {
        Command::Run => unreachable!("run is handled by main"),
        Command::Init => setup::init(&cfg, json),
        Command::CheckConfig => setup::check_config(cli, &cfg, json),
        Command::Org(cmd) => org::run(&cfg, json, cmd),
        Command::Domain(cmd) => domain::run(&cfg, json, cmd),
        Command::Account(cmd) => account::run(&cfg, json, cmd),
        Command::Credential(cmd) => credential::run(&cfg, json, cmd),
        Command::Throttle(cmd) => throttle::run(&cfg, json, cmd),
        Command::Log(args) => log::run(&cfg, json, args),
        Command::Explain(args) => explain::run(&cfg, json, args),
        Command::Dkim(cmd) => dkim::run(&cfg, json, cmd),
        Command::DnsCheck { domain } => dns_check::run(&cfg, json, domain),
        Command::Dmarc(cmd) => dmarc::run(&cfg, json, cmd),
        Command::PostfixSetup {
            apply,
            postfix_config_dir,
        } => setup::postfix_setup(&cfg, json, *apply, postfix_config_dir.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
