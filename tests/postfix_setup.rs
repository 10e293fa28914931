//! `postwarden postfix-setup --apply` against a copy of Debian's Postfix configuration.

mod common;

use std::process::Command;

use common::*;

/// postwarden's config with its sockets where the Debian package puts them.
fn spool_config(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("postwarden.toml");
    std::fs::write(
        &p,
        "[auth]\nlisten = \"unix:/var/spool/postfix/private/postwarden-auth\"\n\
         [submission]\nlisten = \"unix:/var/spool/postfix/private/postwarden-submission\"\n\
         [inbound]\nlisten = \"unix:/var/spool/postfix/private/postwarden-inbound\"\n",
    )
    .unwrap();
    p
}

fn setup(
    cfg: &std::path::Path,
    pw_config: &std::path::Path,
    extra: &[&str],
) -> std::process::Output {
    Command::new(BIN)
        .args([
            "postfix-setup",
            "--postfix-config-dir",
            cfg.to_str().unwrap(),
            "--config",
            pw_config.to_str().unwrap(),
        ])
        .args(extra)
        .output()
        .unwrap()
}

fn postconf(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("postconf")
        .arg("-c")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn apply_sets_the_snippets_backs_up_and_passes_postfix_check() {
    if !e2e_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path();
    std::fs::copy("/usr/share/postfix/main.cf.debian", cfg.join("main.cf")).unwrap();
    std::fs::copy("/usr/share/postfix/master.cf.dist", cfg.join("master.cf")).unwrap();
    let before_main = std::fs::read_to_string(cfg.join("main.cf")).unwrap();
    let pwc = spool_config(cfg);

    // Printing changes nothing.
    let out = setup(cfg, &pwc, &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("-e 'smtpd_sasl_type = dovecot'"));
    assert_eq!(
        std::fs::read_to_string(cfg.join("main.cf")).unwrap(),
        before_main
    );

    let out = setup(cfg, &pwc, &["--apply", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["applied"], true);
    let backups = v["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2);
    assert_eq!(
        std::fs::read_to_string(backups[0].as_str().unwrap()).unwrap(),
        before_main
    );

    assert_eq!(postconf(cfg, &["-h", "smtpd_sasl_type"]), "dovecot");
    assert_eq!(
        postconf(cfg, &["-h", "smtpd_sasl_path"]),
        "private/postwarden-auth"
    );
    assert_eq!(
        postconf(cfg, &["-h", "smtpd_relay_restrictions"]),
        "permit_mynetworks, reject_unauth_destination"
    );
    assert!(postconf(cfg, &["-M", "submission/inet"]).starts_with("submission inet  n       -       y       -       -       smtpd -o syslog_name=postfix/submission"));
    assert_eq!(
        postconf(cfg, &["-P", "submission/inet/smtpd_milters"]),
        "submission/inet/smtpd_milters = unix:private/postwarden-submission"
    );
    assert_eq!(
        postconf(cfg, &["-P", "submission/inet/milter_default_action"]),
        "submission/inet/milter_default_action = tempfail"
    );
    // Applying twice leaves one submission entry.
    let out = setup(cfg, &pwc, &["--apply"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let master = std::fs::read_to_string(cfg.join("master.cf")).unwrap();
    assert_eq!(
        master
            .lines()
            .filter(|l| l.starts_with("submission "))
            .count(),
        1,
        "{master}"
    );
}

#[test]
fn a_failing_postfix_check_restores_the_backup() {
    if !e2e_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path();
    // A queue directory that does not exist makes `postfix check` fail.
    std::fs::write(
        cfg.join("main.cf"),
        "compatibility_level = 3.6\nqueue_directory = /nonexistent/spool\n",
    )
    .unwrap();
    std::fs::copy("/usr/share/postfix/master.cf.dist", cfg.join("master.cf")).unwrap();
    let before = std::fs::read_to_string(cfg.join("main.cf")).unwrap();
    let pwc = spool_config(cfg);
    let out = setup(cfg, &pwc, &["--apply"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("restored from the backups"), "{err}");
    assert_eq!(
        std::fs::read_to_string(cfg.join("main.cf")).unwrap(),
        before
    );
}

#[test]
fn existing_milters_are_kept_changes_noted_and_socket_addresses_follow_the_config() {
    if !e2e_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path();
    std::fs::copy("/usr/share/postfix/main.cf.debian", cfg.join("main.cf")).unwrap();
    std::fs::copy("/usr/share/postfix/master.cf.dist", cfg.join("master.cf")).unwrap();
    let mut main = std::fs::read_to_string(cfg.join("main.cf")).unwrap();
    main.push_str("smtpd_milters = inet:127.0.0.1:11332\nsmtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, defer_unauth_destination\n");
    std::fs::write(cfg.join("main.cf"), main).unwrap();
    // postwarden listening on TCP: Postfix must be told so.
    let pwc = cfg.join("pw.toml");
    std::fs::write(&pwc, "[auth]\nlisten = \"inet:127.0.0.1:12345\"\n[submission]\nlisten = \"inet:127.0.0.1:12346\"\n[inbound]\nlisten = \"inet:127.0.0.1:12347\"\n").unwrap();
    let out = setup(cfg, &pwc, &["--apply", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let notes = v["notes"].to_string();
    assert!(
        notes.contains("smtpd_milters keeps inet:127.0.0.1:11332"),
        "{notes}"
    );
    assert!(
        notes.contains("smtpd_relay_restrictions changes from"),
        "{notes}"
    );
    assert_eq!(
        postconf(cfg, &["-h", "smtpd_milters"]),
        "inet:127.0.0.1:11332, inet:127.0.0.1:12347"
    );
    assert_eq!(
        postconf(cfg, &["-h", "smtpd_sasl_path"]),
        "inet:127.0.0.1:12345"
    );
    assert_eq!(
        postconf(cfg, &["-P", "submission/inet/smtpd_milters"]),
        "submission/inet/smtpd_milters = inet:127.0.0.1:12346"
    );
    // Applied again: the milter list does not grow.
    assert!(setup(cfg, &pwc, &["--apply"]).status.success());
    assert_eq!(
        postconf(cfg, &["-h", "smtpd_milters"]),
        "inet:127.0.0.1:11332, inet:127.0.0.1:12347"
    );
}
