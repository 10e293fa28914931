//! `postwarden postfix-setup`: the shipped `postfix/` snippets as `postconf` commands,
//! printed, or applied with a backup and checked with `postfix check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::{Config, ListenAddr};

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

/// What `postfix-setup` will run, and what the administrator should know about it.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Plan {
    #[serde(skip)]
    pub commands: Vec<Vec<String>>,
    /// Values that change (with the old one), merges, and warnings.
    pub notes: Vec<String>,
}

/// A Postfix parameter's current value (`postconf -h`), if postconf can tell.
pub fn current_value(config_dir: Option<&Path>, key: &str) -> Option<String> {
    let mut cmd = Command::new("postconf");
    if let Some(d) = config_dir {
        cmd.arg("-c").arg(d);
    }
    let out = cmd.args(["-h", key]).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// How Postfix names one of postwarden's listeners: a path relative to its queue
/// directory where possible (what a chrooted smtpd needs), `inet:IP:PORT` for TCP.
/// The second value is a warning, if the address will not work for a chrooted smtpd.
pub fn postfix_address(listen: &ListenAddr, queue_dir: &Path) -> (String, Option<String>) {
    match listen {
        ListenAddr::Inet(sa) => (format!("inet:{}:{}", sa.ip(), sa.port()), None),
        ListenAddr::Unix(path) => {
            let absolute = if path.is_absolute() {
                path.clone()
            } else {
                std::env::current_dir()
                    .map(|d| d.join(path))
                    .unwrap_or_else(|_| path.clone())
            };
            match absolute.strip_prefix(queue_dir) {
                Ok(rel) => (rel.display().to_string(), None),
                Err(_) => (
                    absolute.display().to_string(),
                    Some(format!(
                        "{} is outside Postfix's queue directory {}: a chrooted smtpd (chroot column y \
                         in master.cf, Debian's default) cannot reach it; put postwarden's sockets under \
                         {}/private/ (or use inet: listeners)",
                        absolute.display(),
                        queue_dir.display(),
                        queue_dir.display()
                    )),
                ),
            }
        }
    }
}

/// The commands that apply the snippets for postwarden's configured sockets, against the
/// Postfix configuration in `config_dir` (postconf -c; default Postfix's own):
/// - the socket paths in the snippets are replaced by where `cfg` says the sockets are;
/// - an existing `smtpd_milters` keeps its milters (postwarden's is added);
/// - every other value that changes is noted with its old value.
pub fn plan(config_dir: Option<&Path>, cfg: &Config) -> Plan {
    let base = || {
        let mut v = vec!["postconf".to_string()];
        if let Some(d) = config_dir {
            v.push("-c".into());
            v.push(d.display().to_string());
        }
        v
    };
    let queue_dir = PathBuf::from(
        current_value(config_dir, "queue_directory").unwrap_or_else(|| "/var/spool/postfix".into()),
    );
    let mut plan = Plan::default();
    let mut address = |listen: &ListenAddr| {
        let (a, warning) = postfix_address(&cfg.resolve(listen), &queue_dir);
        if let Some(w) = warning {
            if !plan.notes.contains(&w) {
                plan.notes.push(w);
            }
        }
        a
    };
    let auth = address(&cfg.auth.listen);
    let submission = address(&cfg.submission.listen);
    let inbound = address(&cfg.inbound.listen);
    let milter = |a: &str| {
        if a.starts_with("inet:") {
            a.to_string()
        } else {
            format!("unix:{a}")
        }
    };
    for (k, mut v) in main_settings(MAIN_CF) {
        match k.as_str() {
            "smtpd_sasl_path" => v = auth.clone(),
            "smtpd_milters" => {
                v = milter(&inbound);
                if let Some(old) = current_value(config_dir, &k).filter(|o| !o.is_empty()) {
                    let ours = v.clone();
                    let others: Vec<&str> = old
                        .split([',', ' ', '\t'])
                        .filter(|m| {
                            !m.is_empty() && *m != ours && !m.contains("postwarden-inbound")
                        })
                        .collect();
                    if !others.is_empty() {
                        plan.notes.push(format!(
                            "smtpd_milters keeps {} and adds postwarden's inbound milter",
                            others.join(", ")
                        ));
                        v = format!("{}, {v}", others.join(", "));
                    }
                }
            }
            _ => {}
        }
        if let Some(old) = current_value(config_dir, &k) {
            if !old.is_empty() && old != v && k != "smtpd_milters" {
                plan.notes
                    .push(format!("{k} changes from \"{old}\" to \"{v}\""));
            }
        }
        let mut c = base();
        c.push("-e".into());
        c.push(format!("{k} = {v}"));
        plan.commands.push(c);
    }
    for e in master_entries(MASTER_CF) {
        let mut c = base();
        c.push("-M".into());
        c.push(format!("{}/{}={}", e.service, e.kind, e.line));
        plan.commands.push(c);
        for (k, v) in &e.options {
            let v = match k.as_str() {
                "smtpd_sasl_path" => auth.clone(),
                "smtpd_milters" => milter(&submission),
                _ => v.clone(),
            };
            let mut c = base();
            c.push("-P".into());
            c.push(format!("{}/{}/{k}={v}", e.service, e.kind));
            plan.commands.push(c);
        }
    }
    plan
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
    } else if text.trim().is_empty() {
        Err(format!(
            "{} failed without output (Postfix may log the reason to its maillog_file or syslog)",
            shell_line(argv)
        ))
    } else {
        Err(format!("{} failed: {}", shell_line(argv), text.trim()))
    }
}

/// Backs up main.cf and master.cf, runs the postconf commands and `postfix check`. On any
/// failure the backups are restored and the error says what failed.
pub fn apply(config_dir: Option<&Path>, stamp: &str, plan: &Plan) -> Result<Applied, String> {
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
    let cmds = &plan.commands;
    for c in cmds {
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
        let cfg = Config::parse(
            "[auth]\nlisten = \"unix:/var/spool/postfix/private/postwarden-auth\"\n\
             [submission]\nlisten = \"unix:/var/spool/postfix/private/postwarden-submission\"\n\
             [inbound]\nlisten = \"inet:127.0.0.1:10026\"\n",
            "t",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.cf"),
            "queue_directory = /var/spool/postfix\n",
        )
        .unwrap();
        let prefix = format!("-c {} ", dir.path().display());
        let cmds: Vec<String> = plan(Some(dir.path()), &cfg)
            .commands
            .iter()
            .map(|c| shell_line(c).replace(&prefix, ""))
            .collect();
        assert!(
            cmds.contains(&"postconf -e 'smtpd_sasl_path = private/postwarden-auth'".to_string()),
            "{cmds:?}"
        );
        assert!(
            cmds.contains(&"postconf -e 'smtpd_milters = inet:127.0.0.1:10026'".to_string()),
            "{cmds:?}"
        );
        assert!(
            cmds.contains(
                &"postconf -P submission/inet/smtpd_milters=unix:private/postwarden-submission"
                    .to_string()
            ),
            "{cmds:?}"
        );
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
        // A socket outside the queue directory is named absolutely, with a warning.
        let (a, w) = postfix_address(
            &ListenAddr::Unix("/run/pw/auth".into()),
            Path::new("/var/spool/postfix"),
        );
        assert_eq!(a, "/run/pw/auth");
        assert!(w.unwrap().contains("chrooted smtpd"));
    }

    #[test]
    fn shell_quoting() {
        assert_eq!(
            shell_line(&["a".into(), "b c".into(), "it's".into()]),
            "a 'b c' 'it'\\''s'"
        );
    }
}
