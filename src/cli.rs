//! The command line: clap definitions and the admin commands' output (tables, or one
//! JSON document on stdout with `--json`). Exit codes: 0 ok, 1 refused by a rule or a
//! store fault (one line on stderr), 2 usage or configuration error.

use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::address::{display_domain, normalize_address, normalize_domain};
use crate::config::Config;
use crate::login::credential;
use crate::model::{format_time, now, AccountKind, EventFilter, EventKind, SenderCheck};
use crate::store::{self, prelude::*, StoreError};

#[derive(Debug, Parser)]
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

#[derive(Debug, Subcommand)]
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
    /// Show the log of auth attempts, mail decisions and admin changes.
    Log(LogArgs),
    /// Show how the submission milter would judge a message, without sending anything.
    Explain(ExplainArgs),
    /// DKIM keys: generate, list, activate (rotate), retire.
    #[command(subcommand)]
    Dkim(DkimCmd),
    /// Check a domain's published SPF, DKIM and DMARC records.
    DnsCheck { domain: String },
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

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    Rsa,
    Ed25519,
}

#[derive(Debug, Subcommand)]
pub enum DkimCmd {
    /// Generate a key (pending: it signs once activated) and print the DNS record to publish.
    Keygen {
        domain: String,
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: AlgorithmArg,
        /// Selector; default: pw + year and month + r (rsa) or e (ed25519), e.g. pw202611r.
        #[arg(long)]
        selector: Option<String>,
    },
    /// List keys and their DNS records (never a private key).
    List {
        #[arg(long)]
        domain: Option<String>,
    },
    /// Start signing with a key; an active key of the same algorithm is retired. Refused
    /// while the key's DNS record is not published (checked through [dns]), unless --force.
    Activate {
        domain: String,
        selector: String,
        /// Activate even if the record cannot be found or checked.
        #[arg(long)]
        force: bool,
    },
    /// Stop signing with a key (keep its DNS record published until mail signed with it
    /// has been delivered).
    Retire { domain: String, selector: String },
}

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The credential username (what Postfix passes as {auth_authen}).
    #[arg(long)]
    pub login: String,
    /// The envelope sender (MAIL FROM); "<>" or "" for the null sender.
    #[arg(long)]
    pub sender: String,
    /// The message's From header field content, e.g. "Alice <alice@acme.example>" (repeat
    /// for several addresses).
    /// Without it only the envelope sender is judged, as at MAIL.
    #[arg(long = "header-from", value_name = "ADDR")]
    pub header_from: Vec<String>,
}

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

#[derive(Debug, Subcommand)]
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

#[derive(Debug, Subcommand)]
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

#[derive(Debug, Subcommand)]
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

#[derive(Debug, Subcommand)]
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

#[derive(Debug, clap::Args)]
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

/// How a command failed, and so its exit code.
#[derive(Debug)]
pub enum CliError {
    /// Refused by a rule or a store fault: exit 1.
    Refused(String),
    /// Bad usage or configuration: exit 2.
    Usage(String),
    /// A refusal whose result the command has already printed (explain, dns-check): exit 1.
    Reported(String),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Refused(_) | CliError::Reported(_) => 1,
            CliError::Usage(_) => 2,
        }
    }
    pub fn message(&self) -> &str {
        match self {
            CliError::Refused(m) | CliError::Usage(m) | CliError::Reported(m) => m,
        }
    }

    /// With --json, the error as the one JSON document on stdout (unless the command has
    /// printed its own).
    pub fn json(&self) -> Option<Value> {
        match self {
            CliError::Reported(_) => None,
            other => Some(json!({"error": other.message(), "exit_code": other.exit_code()})),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        CliError::Refused(e.to_string())
    }
}

pub type CliResult = Result<(), CliError>;

/// The system configuration file, used when no --config is given and it exists (the
/// Debian package installs it); otherwise the embedded default applies.
pub const SYSTEM_CONFIG: &str = "/etc/postwarden/postwarden.toml";

/// The configuration file in effect: --config / POSTWARDEN_CONFIG, else the system file
/// if present, else none (the embedded default).
pub fn config_path(cli: &Cli) -> Option<PathBuf> {
    cli.config.clone().or_else(|| {
        let system = PathBuf::from(SYSTEM_CONFIG);
        system.is_file().then_some(system)
    })
}

/// Loads the configuration with the command line's overrides applied.
pub fn load_config(cli: &Cli) -> Result<Config, CliError> {
    let mut cfg = Config::load(config_path(cli).as_deref()).map_err(|e| CliError::Usage(e.0))?;
    if let Some(dir) = &cli.data_dir {
        if dir.as_os_str().is_empty() {
            return Err(CliError::Usage("--data-dir must not be empty".into()));
        }
        cfg.data_dir = dir.clone();
    }
    if matches!(cli.command, Command::Run | Command::CheckConfig) {
        let origin = config_path(cli)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<embedded default>".into());
        cfg.check_listeners(&origin)
            .map_err(|e| CliError::Usage(e.0))?;
    }
    Ok(cfg)
}

/// Creates the data directory (mode 0750) if it does not exist.
pub fn ensure_data_dir(dir: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(|e| {
            CliError::Refused(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })
}

/// Who is making admin changes: the invoking user.
///
/// The name comes from the process's user id (environment variables could name anyone);
/// for root run through sudo, the invoking user is added: `root (sudo: alice)`.
fn actor() -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".into();
    };
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse() == Ok(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid:{uid}"));
    match std::env::var("SUDO_USER") {
        Ok(by) if uid == 0 && !by.is_empty() => format!("{name} (sudo: {by})"),
        _ => name,
    }
}

/// Opens the store. Only commands that add something (`create`) may create a missing
/// one, and say so: a read, or a command run with the wrong --config or --data-dir, must
/// never leave an empty store behind for the daemon to answer "unknown user" from.
fn open_store(cfg: &Config, create: bool) -> Result<Box<dyn Store>, CliError> {
    if create {
        ensure_data_dir(&cfg.data_dir)?;
    }
    let opened = store::open(cfg, &actor(), create)?;
    if opened.created {
        eprintln!(
            "postwarden: created a new store at {}",
            opened.store.location()
        );
    }
    Ok(opened.store)
}

fn emit(json: bool, value: Value, text: impl FnOnce() -> String) {
    if json {
        println!("{}", serde_json::to_string_pretty(&value).expect("json"));
    } else {
        let t = text();
        if !t.is_empty() {
            println!("{}", t.trim_end());
        }
    }
}

/// Left-aligned columns separated by two spaces.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

fn opt_time(t: Option<i64>) -> String {
    t.map(format_time).unwrap_or_else(|| "-".into())
}

fn domain_text(a_label: &str) -> String {
    let readable = display_domain(a_label);
    if readable == a_label {
        readable
    } else {
        format!("{readable} ({a_label})")
    }
}

fn domain_arg(input: &str) -> Result<String, CliError> {
    normalize_domain(input).map_err(CliError::Refused)
}

/// Runs an admin command (everything but `run`).
pub fn admin(cli: &Cli) -> CliResult {
    let cfg = load_config(cli)?;
    let json = cli.json;
    match &cli.command {
        Command::Run => unreachable!("run is handled by main"),
        Command::Init => {
            let store = open_store(&cfg, true)?;
            let version = store.schema_version()?;
            emit(
                json,
                json!({"store": store.location(), "schema_version": version}),
                || {
                    format!(
                        "store {} ready (schema version {version})",
                        store.location()
                    )
                },
            );
            Ok(())
        }
        Command::CheckConfig => {
            let source = match config_path(cli) {
                Some(p) => format!("# configuration file: {}", p.display()),
                None => "# no configuration file: the embedded default".to_string(),
            };
            emit(json, serde_json::to_value(&cfg).expect("json"), || {
                format!("{source}\n{}", cfg.to_toml())
            });
            Ok(())
        }
        Command::Org(cmd) => org(&cfg, json, cmd),
        Command::Domain(cmd) => domain(&cfg, json, cmd),
        Command::Account(cmd) => account(&cfg, json, cmd),
        Command::Credential(cmd) => credential_cmd(&cfg, json, cmd),
        Command::Log(args) if args.discovered => discovered(&cfg, json, args),
        Command::Log(args) => log(&cfg, json, args),
        Command::Explain(args) => explain(&cfg, json, args),
        Command::Dkim(cmd) => dkim_cmd(&cfg, json, cmd),
        Command::DnsCheck { domain } => dns_check(&cfg, json, domain),
        Command::PostfixSetup {
            apply,
            postfix_config_dir,
        } => postfix_setup(&cfg, json, *apply, postfix_config_dir.as_deref()),
    }
}

fn dkim_cmd(cfg: &Config, json: bool, cmd: &DkimCmd) -> CliResult {
    use crate::dkim;
    let mut store = open_store(cfg, matches!(cmd, DkimCmd::Keygen { .. }))?;
    match cmd {
        DkimCmd::Keygen {
            domain,
            algorithm,
            selector,
        } => {
            let d = domain_arg(domain)?;
            let alg = match algorithm {
                AlgorithmArg::Rsa => dkim::Algorithm::Rsa,
                AlgorithmArg::Ed25519 => dkim::Algorithm::Ed25519,
            };
            let selector = selector.clone().unwrap_or_else(|| {
                let now =
                    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
                let suffix = if alg == dkim::Algorithm::Rsa {
                    "r"
                } else {
                    "e"
                };
                format!("pw{}{}{suffix}", &now[0..4], &now[5..7])
            });
            // Refuse early (unknown domain, bad or taken selector) before generating.
            store::validate_selector(&selector)?;
            if !store.domain_list(None)?.iter().any(|x| x.name == d) {
                return Err(CliError::Refused(format!("domain {d} is not registered")));
            }
            let pair = dkim::generate(alg).map_err(|e| CliError::Refused(e.to_string()))?;
            store.dkim_add(
                &d,
                &selector,
                alg,
                &pair.private_pkcs8_der,
                &pair.public_key_b64,
            )?;
            let rec = pair.dns_record(&d, &selector);
            emit(
                json,
                json!({"domain": d, "selector": selector, "algorithm": alg.as_str(), "state": "pending",
                       "dns_name": rec.name, "dns_value": rec.value, "dns_strings": rec.strings}),
                || {
                    format!(
                        "DKIM key {selector} ({}) generated for {d}; it does not sign yet.\n\
                         1. Publish this TXT record:\n\n{}\n\n\
                         2. Check it: postwarden dns-check {d}\n\
                         3. Start signing: postwarden dkim activate {d} {selector}",
                        alg.as_str(),
                        rec.zone_line()
                    )
                },
            );
        }
        DkimCmd::List { domain } => {
            let d = domain.as_deref().map(domain_arg).transpose()?;
            if let Some(d) = &d {
                if !store.domain_list(None)?.iter().any(|x| &x.name == d) {
                    return Err(CliError::Refused(format!("domain {d} is not registered")));
                }
            }
            let keys = store.dkim_list(d.as_deref())?;
            let value: Vec<Value> = keys
                .iter()
                .map(|k| {
                    let rec = dkim::dns_record(&k.domain, &k.selector, k.algorithm, &k.public_key);
                    json!({"domain": k.domain, "selector": k.selector, "algorithm": k.algorithm, "state": k.state,
                           "created": k.created, "activated": k.activated, "retired": k.retired,
                           "dns_name": rec.name, "dns_value": rec.value})
                })
                .collect();
            emit(json, Value::Array(value), || {
                table(
                    &[
                        "DOMAIN",
                        "SELECTOR",
                        "ALGORITHM",
                        "STATE",
                        "CREATED",
                        "DNS_NAME",
                    ],
                    keys.iter()
                        .map(|k| {
                            vec![
                                domain_text(&k.domain),
                                k.selector.clone(),
                                k.algorithm.to_string(),
                                k.state.to_string(),
                                format_time(k.created),
                                format!("{}._domainkey.{}", k.selector, k.domain),
                            ]
                        })
                        .collect(),
                )
            });
        }
        DkimCmd::Activate {
            domain,
            selector,
            force,
        } => {
            let d = domain_arg(domain)?;
            // Signing with a key receivers cannot find makes DKIM fail for every message:
            // check the record first.
            if !force {
                let key = store
                    .dkim_list(Some(&d))?
                    .into_iter()
                    .find(|k| &k.selector == selector)
                    .ok_or_else(|| {
                        CliError::Refused(format!(
                            "domain {d} has no DKIM key with selector {selector}"
                        ))
                    })?;
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| CliError::Refused(format!("cannot start the runtime: {e}")))?;
                let check = runtime
                    .block_on(crate::authn::dnscheck::check_one_key(cfg, &d, &key))
                    .map_err(CliError::Refused)?;
                if check.status != crate::authn::dnscheck::Status::Pass {
                    return Err(CliError::Refused(format!(
                        "not activated: {}; publish the record (postwarden dkim list shows it), or use --force",
                        check.detail
                    )));
                }
            }
            let retired = store.dkim_activate(&d, selector)?;
            emit(
                json,
                json!({"domain": d, "selector": selector, "state": "active", "retired": retired}),
                || {
                    match &retired {
                    Some(old) => format!(
                        "{d}: now signing with {selector}; {old} retired (keep its DNS record for a few days, then remove it)"
                    ),
                    None => format!("{d}: now signing with {selector}"),
                }
                },
            );
        }
        DkimCmd::Retire { domain, selector } => {
            let d = domain_arg(domain)?;
            store.dkim_retire(&d, selector)?;
            emit(
                json,
                json!({"domain": d, "selector": selector, "state": "retired"}),
                || {
                    format!("{d}: {selector} no longer signs; keep its DNS record until mail signed with it has been delivered")
                },
            );
        }
    }
    Ok(())
}

fn dns_check(cfg: &Config, json: bool, domain: &str) -> CliResult {
    let d = domain_arg(domain)?;
    let store = open_store(cfg, false)?;
    if !store.domain_list(None)?.iter().any(|x| x.name == d) {
        return Err(CliError::Refused(format!(
            "domain {d} is not registered: add it with `postwarden domain add {d} --org NAME` first"
        )));
    }
    let keys = store.dkim_list(Some(&d))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Refused(format!("cannot start the runtime: {e}")))?;
    let report = runtime
        .block_on(crate::authn::dnscheck::check(cfg, &d, &keys))
        .map_err(CliError::Refused)?;
    emit(json, serde_json::to_value(&report).expect("json"), || {
        table(
            &["CHECK", "STATUS", "DETAIL"],
            report
                .checks
                .iter()
                .map(|c| vec![c.check.clone(), c.status.as_str().into(), c.detail.clone()])
                .collect(),
        )
    });
    if report.failed() {
        Err(CliError::Reported(format!(
            "{d}: some DNS checks fail (see the table)"
        )))
    } else {
        Ok(())
    }
}

fn postfix_setup(cfg: &Config, json: bool, apply: bool, dir: Option<&Path>) -> CliResult {
    use crate::postfix_setup as ps;
    let plan = ps::plan(dir, cfg);
    let notes: Vec<String> = plan.notes.iter().map(|n| format!("# note: {n}")).collect();
    if !apply {
        let cmds: Vec<String> = plan.commands.iter().map(|c| ps::shell_line(c)).collect();
        emit(
            json,
            json!({"applied": false, "commands": cmds, "notes": plan.notes}),
            || {
                format!(
                "# The Postfix settings postwarden needs (postfix/main.cf and postfix/master.cf,\n\
                 # with the socket addresses of postwarden's configuration).\n\
                 # Run them, or `postwarden postfix-setup --apply` to run them with a backup,\n\
                 # then `postfix reload`.\n{}{}",
                notes.iter().map(|n| format!("{n}\n")).collect::<String>(),
                cmds.join("\n")
            )
            },
        );
        return Ok(());
    }
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "");
    let applied = ps::apply(dir, &stamp, &plan).map_err(CliError::Refused)?;
    emit(
        json,
        json!({"applied": true, "config_directory": applied.config_directory, "backups": applied.backups,
               "commands": applied.commands, "notes": plan.notes, "postfix_check": applied.check}),
        || {
            let backups: Vec<String> = applied
                .backups
                .iter()
                .map(|b| b.display().to_string())
                .collect();
            format!(
                "{}{}\napplied to {}; backups: {}\n`postfix check` passed. Reload Postfix to use it: postfix reload",
                notes.iter().map(|n| format!("{n}\n")).collect::<String>(),
                applied.commands.join("\n"),
                applied.config_directory.display(),
                backups.join(", ")
            )
        },
    );
    Ok(())
}

fn discovered(cfg: &Config, json: bool, args: &LogArgs) -> CliResult {
    let store = open_store(cfg, false)?;
    let list = store.discovered(args.org.as_deref())?;
    emit(json, serde_json::to_value(&list).expect("json"), || {
        table(
            &[
                "ADDRESS",
                "ORGANIZATION",
                "MESSAGES",
                "FIRST_SEEN",
                "LAST_SEEN",
            ],
            list.iter()
                .map(|d| {
                    vec![
                        d.address.clone(),
                        d.organization.clone(),
                        d.messages.to_string(),
                        format_time(d.first_seen),
                        format_time(d.last_seen),
                    ]
                })
                .collect(),
        )
    });
    Ok(())
}

/// `postwarden explain`: the submission milter's decision on the live store, and why.
fn explain(cfg: &Config, json: bool, args: &ExplainArgs) -> CliResult {
    use crate::model::{Decision, Rule};
    use crate::sender::{self, Subject, Verdict};
    let store = open_store(cfg, false)?;
    let envelope = sender::envelope_address(&args.sender).map(str::to_string);
    // Each --header-from is read exactly as the milter reads the From field's content (a bare
    // address, "Name <addr>", a group, ...): a value without an address adds none.
    let from_field: Vec<String> = args
        .header_from
        .iter()
        .flat_map(|v| crate::address::header_addresses(v.as_bytes()))
        .collect();
    let from_fields = [from_field];
    // The milter's own decision: the envelope alone, or the whole message.
    let subject = if args.header_from.is_empty() {
        Subject::Envelope(envelope.as_deref())
    } else {
        Subject::Message {
            envelope: envelope.as_deref(),
            from_fields: &from_fields,
        }
    };
    // A login that cannot authenticate never reaches the milter: Postfix answers AUTH with
    // 535 (a session that authenticated before a revocation gets 530 at MAIL).
    let refuse_login = |rule: &str, explanation: String, org: Option<&str>| -> CliResult {
        let reply = "535 5.7.8 Error: authentication failed: (reason unavailable)";
        emit(
            json,
            json!({"decision": "refuse", "reply": reply, "organization": org,
                   "rules": [{"rule": rule, "explanation": explanation}]}),
            || format!("decision: refuse\nreply:    {reply}\nrule:     {rule}: {explanation}"),
        );
        Err(CliError::Reported(format!(
            "{explanation}: Postfix would answer {reply}"
        )))
    };
    let (facts, decision) = match sender::decide(&*store, &args.login, subject)? {
        Verdict::UnknownLogin => {
            return refuse_login(
                "unknown_login",
                format!(
                    "no credential with username {} (usernames compare exactly)",
                    args.login
                ),
                None,
            )
        }
        Verdict::RevokedLogin { organization } => {
            return refuse_login(
                "revoked_credential",
                format!(
                    "credential {} is revoked: create a new one with `postwarden credential new --org {organization} --label LABEL`",
                    args.login
                ),
                Some(&organization),
            )
        }
        Verdict::Decided { facts, decision } => (facts, decision),
    };
    let (word, reply) = match &decision {
        Decision::Accept { .. } => ("accept", "250 (Postfix accepts the message)".to_string()),
        Decision::AcceptDiscovered { .. } => (
            "accept_discovered",
            "250 (Postfix accepts the message)".to_string(),
        ),
        Decision::Reject(r) => ("refuse", r.to_string()),
    };
    // The administrator may see what the SMTP client must not: who owns a foreign domain.
    let domains = store.domain_list(None)?;
    let explain_rule = |r: &Rule| {
        let mut text = r.explanation(&facts.organization);
        if let Rule::DomainNotOwned { domain, .. } = r {
            match domains.iter().find(|d| &d.name == domain) {
                Some(d) => text.push_str(&format!(
                    " (it is registered to organization {})",
                    d.organization
                )),
                None => text.push_str(" (no organization has registered it)"),
            }
        }
        text
    };
    let rules: Vec<Value> = decision
        .rules()
        .iter()
        .map(|r| json!({"rule": r.name(), "explanation": explain_rule(r)}))
        .collect();
    let discovered = match &decision {
        Decision::AcceptDiscovered { discovered, .. } => discovered.clone(),
        _ => vec![],
    };
    emit(
        json,
        json!({"decision": word, "reply": reply, "organization": facts.organization,
               "rules": rules, "discovered": discovered}),
        || {
            let mut out = format!(
                "organization: {}\ndecision: {word}\nreply:    {reply}\n",
                facts.organization
            );
            for r in decision.rules() {
                out.push_str(&format!("rule:     {}: {}\n", r.name(), explain_rule(r)));
            }
            if args.header_from.is_empty() {
                out.push_str("(only the envelope sender was judged; add --header-from to judge the whole message)\n");
            }
            out
        },
    );
    if decision.is_accept() {
        Ok(())
    } else {
        Err(CliError::Reported(format!("Postfix would answer {reply}")))
    }
}

fn org(cfg: &Config, json: bool, cmd: &OrgCmd) -> CliResult {
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
            emit(json, serde_json::to_value(&orgs).expect("json"), || {
                table(
                    &[
                        "NAME",
                        "SENDER_CHECK",
                        "DOMAINS",
                        "ACCOUNTS",
                        "CREDENTIALS",
                        "CREATED",
                    ],
                    orgs.iter()
                        .map(|o| {
                            vec![
                                o.name.clone(),
                                o.sender_check.as_str().into(),
                                o.domains.to_string(),
                                o.accounts.to_string(),
                                o.credentials.to_string(),
                                format_time(o.created),
                            ]
                        })
                        .collect(),
                )
            });
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

fn domain(cfg: &Config, json: bool, cmd: &DomainCmd) -> CliResult {
    let mut store = open_store(cfg, matches!(cmd, DomainCmd::Add { .. }))?;
    match cmd {
        DomainCmd::Add {
            domain,
            org,
            inactive,
        } => {
            let d = domain_arg(domain)?;
            store.domain_add(&d, org, !inactive)?;
            let state = if *inactive { "inactive" } else { "active" };
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
            let state = if active { "active" } else { "inactive" };
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
            emit(json, Value::Array(value), || {
                table(
                    &["DOMAIN", "ORGANIZATION", "STATE", "ACCOUNTS", "CREATED"],
                    list.iter()
                        .map(|d| {
                            vec![
                                domain_text(&d.name),
                                d.organization.clone(),
                                if d.active { "active" } else { "inactive" }.into(),
                                d.accounts.to_string(),
                                format_time(d.created),
                            ]
                        })
                        .collect(),
                )
            });
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

fn account(cfg: &Config, json: bool, cmd: &AccountCmd) -> CliResult {
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
            emit(json, serde_json::to_value(&list).expect("json"), || {
                table(
                    &["ADDRESS", "KIND", "ORGANIZATION", "DOMAIN_STATE", "CREATED"],
                    list.iter()
                        .map(|a| {
                            vec![
                                a.address.clone(),
                                a.kind.as_str().into(),
                                a.organization.clone(),
                                if a.domain_active {
                                    "active"
                                } else {
                                    "inactive"
                                }
                                .into(),
                                format_time(a.created),
                            ]
                        })
                        .collect(),
                )
            });
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

fn credential_cmd(cfg: &Config, json: bool, cmd: &CredentialCmd) -> CliResult {
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
            emit(json, serde_json::to_value(&list).expect("json"), || {
                table(
                    &[
                        "ORGANIZATION",
                        "LABEL",
                        "USERNAME",
                        "CREATED",
                        "LAST_USED",
                        "LAST_IP",
                        "REVOKED",
                    ],
                    list.iter()
                        .map(|c| {
                            vec![
                                c.organization.clone(),
                                c.label.clone(),
                                c.username.clone(),
                                format_time(c.created),
                                opt_time(c.last_used),
                                c.last_ip.clone().unwrap_or_else(|| "-".into()),
                                opt_time(c.revoked),
                            ]
                        })
                        .collect(),
                )
            });
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

fn quote_field(v: &str) -> String {
    if v.is_empty() || v.chars().any(|c| c.is_whitespace() || c == '"' || c == '=') {
        format!("{v:?}")
    } else {
        v.to_string()
    }
}

fn log(cfg: &Config, json: bool, args: &LogArgs) -> CliResult {
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

    #[test]
    fn table_aligns() {
        let t = table(&["A", "BB"], vec![vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     BB\nlong  x");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
