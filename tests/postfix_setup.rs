//! `postwarden postfix-setup --apply` against a copy of Debian's Postfix configuration.

mod common;

use std::process::Command;

use common::*;

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

    // Printing changes nothing.
    let out = Command::new(BIN)
        .args([
            "postfix-setup",
            "--postfix-config-dir",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("-e 'smtpd_sasl_type = dovecot'"));
    assert_eq!(
        std::fs::read_to_string(cfg.join("main.cf")).unwrap(),
        before_main
    );

    let out = Command::new(BIN)
        .args([
            "postfix-setup",
            "--apply",
            "--json",
            "--postfix-config-dir",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
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
    let out = Command::new(BIN)
        .args([
            "postfix-setup",
            "--apply",
            "--postfix-config-dir",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
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
    let out = Command::new(BIN)
        .args([
            "postfix-setup",
            "--apply",
            "--postfix-config-dir",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("restored from the backups"), "{err}");
    assert_eq!(
        std::fs::read_to_string(cfg.join("main.cf")).unwrap(),
        before
    );
}
