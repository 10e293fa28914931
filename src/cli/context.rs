//! What every admin command stands on: the configuration (with the command line's
//! overrides), the data directory, the store, and who is making the change.

use std::path::{Path, PathBuf};

use crate::address::normalize_domain;
use crate::config::Config;
use crate::store::{self, prelude::*};

use super::output::{CliError, CliResult};
use super::{Cli, Command};

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
pub(super) fn open_store(cfg: &Config, create: bool) -> Result<Box<dyn Store>, CliError> {
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

/// A domain given on the command line, as the store keeps it (lower case, IDNA A-label).
pub(super) fn domain_arg(input: &str) -> Result<String, CliError> {
    normalize_domain(input).map_err(CliError::Refused)
}

/// Whether a domain (as [`domain_arg`] gives it) is registered.
pub(super) fn domain_registered(store: &dyn Store, domain: &str) -> Result<bool, CliError> {
    Ok(store.domain_list(None)?.iter().any(|x| x.name == domain))
}

/// Refuses a domain that is not registered.
pub(super) fn require_domain(store: &dyn Store, domain: &str) -> CliResult {
    if domain_registered(store, domain)? {
        Ok(())
    } else {
        Err(CliError::Refused(format!(
            "domain {domain} is not registered"
        )))
    }
}

/// Runs a DNS check to its end: the admin commands are synchronous, the resolver is not.
pub(super) fn block_on<F: std::future::Future>(check: F) -> Result<F::Output, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Refused(format!("cannot start the runtime: {e}")))?;
    Ok(runtime.block_on(check))
}
