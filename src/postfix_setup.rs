//! `postwarden postfix-setup`: the shipped `postfix/` snippets as `postconf` commands,
//! printed, or applied with a backup and checked with `postfix check`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The snippets, embedded: exactly the files in `postfix/`.
pub const MAIN_CF: &str = include_str!("../postfix/main.cf");
pub const MASTER_CF: &str = include_str!("../postfix/master.cf");

/// `key = value` settings of a main.cf snippet (comments and blank lines skipped).
pub fn main_settings(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// One master.cf entry: the service line and its `-o name=value` options.
#[derive(Debug, Clone, PartialEq)]
pub struct MasterEntry {
    pub service: String,
    pub kind: String,
    pub line: String,
    pub options: Vec<(String, String)>,
}

/// The entries of a master.cf snippet.
pub fn master_entries(text: &str) -> Vec<MasterEntry> {
    let mut out: Vec<MasterEntry> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let opt = line.trim();
            if let (Some(entry), Some(o)) = (out.last_mut(), opt.strip_prefix("-o")) {
                if let Some((k, v)) = o.trim().split_once('=') {
                    entry
                        .options
                        .push((k.trim().to_string(), v.trim().to_string()));
                }
            }
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() >= 8 {
            out.push(MasterEntry {
                service: fields[0].to_string(),
                kind: fields[1].to_string(),
                line: fields.join(" "),
                options: Vec::new(),
            });
        }
    }
    out
}

/// The postconf argument lists that apply the snippets (`config_dir`: `postconf -c`).
pub fn postconf_commands(config_dir: Option<&Path>) -> Vec<Vec<String>> {
    let base = || {
        let mut v = vec!["postconf".to_string()];
        if let Some(d) = config_dir {
            v.push("-c".into());
            v.push(d.display().to_string());
        }
        v
    };
    let mut cmds = Vec::new();
    for (k, v) in main_settings(MAIN_CF) {
        let mut c = base();
        c.push("-e".into());
        c.push(format!("{k} = {v}"));
        cmds.push(c);
    }
    for e in master_entries(MASTER_CF) {
        let mut c = base();
        c.push("-M".into());
        c.push(format!("{}/{}={}", e.service, e.kind, e.line));
        cmds.push(c);
        for (k, v) in &e.options {
            let mut c = base();
            c.push("-P".into());
            c.push(format!("{}/{}/{k}={v}", e.service, e.kind));
            cmds.push(c);
        }
    }
    cmds
}

/// A command line as a shell would need it typed.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_./=,:".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The Postfix configuration directory: `config_dir`, or what `postconf` says.
pub fn config_directory(config_dir: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(d) = config_dir {
        return Ok(d.to_path_buf());
    }
    let out = Command::new("postconf")
        .args(["-h", "config_directory"])
        .output()
        .map_err(|e| format!("cannot run postconf (is Postfix installed?): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "postconf failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// What `apply` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    pub config_directory: PathBuf,
    pub backups: Vec<PathBuf>,
    pub commands: Vec<String>,
    pub check: String,
}

fn run(argv: &[String]) -> Result<String, String> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .map_err(|e| format!("{}: {e}", shell_line(argv)))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{} failed: {}", shell_line(argv), text.trim()))
    }
}

/// Backs up main.cf and master.cf, runs the postconf commands and `postfix check`. On any
/// failure the backups are restored and the error says what failed.
pub fn apply(config_dir: Option<&Path>, stamp: &str) -> Result<Applied, String> {
    let dir = config_directory(config_dir)?;
    let mut backups = Vec::new();
    for name in ["main.cf", "master.cf"] {
        let file = dir.join(name);
        let backup = dir.join(format!("{name}.postwarden-{stamp}"));
        std::fs::copy(&file, &backup)
            .map_err(|e| format!("cannot back up {}: {e}", file.display()))?;
        backups.push(backup);
    }
    let restore = |why: String| -> String {
        for (name, backup) in ["main.cf", "master.cf"].iter().zip(&backups) {
            let _ = std::fs::copy(backup, dir.join(name));
        }
        format!(
            "{why}; {}/main.cf and master.cf restored from the backups",
            dir.display()
        )
    };
    let cmds = postconf_commands(config_dir);
    for c in &cmds {
        run(c).map_err(restore)?;
    }
    let mut check = vec!["postfix".to_string()];
    if let Some(d) = config_dir {
        check.push("-c".into());
        check.push(d.display().to_string());
    }
    check.push("check".into());
    let check_out = run(&check).map_err(restore)?;
    Ok(Applied {
        config_directory: dir,
        backups,
        commands: cmds.iter().map(|c| shell_line(c)).collect(),
        check: check_out.trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_parse_into_postconf_commands() {
        let main = main_settings(MAIN_CF);
        assert!(main.contains(&("smtpd_sasl_type".into(), "dovecot".into())));
        assert!(main.contains(&("smtpd_sasl_path".into(), "private/postwarden-auth".into())));
        let master = master_entries(MASTER_CF);
        assert_eq!(master.len(), 1);
        assert_eq!(master[0].service, "submission");
        assert_eq!(master[0].line, "submission inet n - y - - smtpd");
        assert!(master[0]
            .options
            .contains(&("milter_default_action".into(), "tempfail".into())));
        let cmds: Vec<String> = postconf_commands(None)
            .iter()
            .map(|c| shell_line(c))
            .collect();
        assert!(
            cmds.contains(&"postconf -e 'smtpd_sasl_type = dovecot'".to_string()),
            "{cmds:?}"
        );
        assert!(
            cmds.contains(
                &"postconf -M 'submission/inet=submission inet n - y - - smtpd'".to_string()
            ),
            "{cmds:?}"
        );
        assert!(
            cmds.contains(
                &"postconf -P submission/inet/smtpd_tls_security_level=encrypt".to_string()
            ),
            "{cmds:?}"
        );
        let with_dir = postconf_commands(Some(Path::new("/tmp/pf")));
        assert!(with_dir.iter().all(|c| c[1] == "-c" && c[2] == "/tmp/pf"));
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(
            shell_line(&["a".into(), "b c".into(), "it's".into()]),
            "a 'b c' 'it'\\''s'"
        );
    }
}
