//! Setting up: `init` (the data directory and the store), `check-config` (the effective
//! configuration) and `postfix-setup` (the postconf commands; `crate::postfix_setup` builds
//! and applies them).

use std::path::Path;

use serde_json::json;

use crate::config::Config;

use super::context::{config_path, open_store};
use super::output::{emit, CliError, CliResult};
use super::Cli;

/// `postwarden init`: creates the store, or migrates it to this version.
pub(super) fn init(cfg: &Config, json: bool) -> CliResult {
    let store = open_store(cfg, true)?;
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

/// `postwarden check-config`: the effective configuration and where it came from.
pub(super) fn check_config(cli: &Cli, cfg: &Config, json: bool) -> CliResult {
    let source = match config_path(cli) {
        Some(p) => format!("# configuration file: {}", p.display()),
        None => "# no configuration file: the embedded default".to_string(),
    };
    let psl = crate::authn::PublicSuffixes::load(&cfg.inbound.public_suffix_list)
        .map_err(|e| CliError::Usage(format!("key `inbound.public_suffix_list`: {e}")))?;
    let arc = crate::authn::ArcSealer::from_config(cfg).map_err(CliError::Usage)?;
    let arc_line = match &arc {
        Some(sealer) => format!(
            "# ARC sealing as {}; publish: {}\n",
            sealer.domain(),
            sealer.dns_record().zone_line()
        ),
        None => String::new(),
    };
    emit(json, serde_json::to_value(cfg).expect("json"), || {
        format!(
            "{source}\n# public suffix list in use: {}\n{arc_line}{}",
            psl.source(),
            cfg.to_toml()
        )
    });
    Ok(())
}

/// `postwarden postfix-setup`: print the postconf commands, or apply them with a backup.
pub(super) fn postfix_setup(
    cfg: &Config,
    json: bool,
    apply: bool,
    dir: Option<&Path>,
) -> CliResult {
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
