//! End to end: a real Postfix asks postwarden to decide submission logins.

mod common;

use std::time::{Duration, Instant};

use common::*;

const RCPT: &str = "bob@dest.example";
const PLAIN_FAIL: &str = "535 5.7.8 Error: authentication failed: (reason unavailable)";
/// Postfix adds "(reason unavailable)" or "Connection lost to authentication server".
const TEMP_FAIL: &str = "454 4.7.0 Temporary authentication failure:";

fn send(gw: &Gateway, mech: &str, user: &str, pass: &str, subject: &str) -> Swaks {
    let header = format!("Subject: {subject}");
    gw.submit(
        mech,
        user,
        pass,
        &[
            "--from",
            "alice@acme.example",
            "--to",
            RCPT,
            "--header",
            &header,
        ],
    )
}

fn auth_reasons(gw: &Gateway) -> Vec<String> {
    gw.daemon
        .events(&["--kind", "auth"])
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn submission_requires_starttls_before_auth() {
    if !e2e_available() {
        return;
    }
    let gw = Gateway::start("", &PostfixOpts::default());
    let (user, pass) = gw.acme();
    let token = plain_token(&user, &pass);
    let replies = smtp_plain(
        gw.postfix.submission_port,
        &[
            "EHLO client.postwarden.test",
            &format!("AUTH PLAIN {token}"),
            "MAIL FROM:<alice@acme.example>",
            "QUIT",
        ],
    );
    assert!(replies[0].starts_with("220 "), "{replies:?}");
    assert!(replies[1].contains("STARTTLS"), "{replies:?}");
    assert!(
        !replies[1].contains("AUTH"),
        "AUTH offered before STARTTLS: {replies:?}"
    );
    assert_eq!(replies[2], "530 5.7.0 Must issue a STARTTLS command first");
    assert_eq!(replies[3], "530 5.7.0 Must issue a STARTTLS command first");
    // postwarden was never asked.
    assert!(auth_reasons(&gw).is_empty());
}

#[test]
fn plain_and_login_deliver_wrong_and_unknown_fail_alike_revoke_applies_live() {
    if !e2e_available() {
        return;
    }
    let gw = Gateway::start("", &PostfixOpts::default());
    let (user, pass) = gw.acme();

    // After STARTTLS, AUTH is offered with PLAIN and LOGIN.
    let ehlo = gw.submit("PLAIN", &user, &pass, &["--quit-after", "AUTH"]);
    assert!(
        ehlo.out.contains("250-AUTH PLAIN LOGIN") || ehlo.out.contains("250 AUTH PLAIN LOGIN"),
        "{}",
        ehlo.out
    );

    let r = send(&gw, "PLAIN", &user, &pass, "e2e-plain");
    assert!(
        r.has_reply("235 2.7.0 Authentication successful"),
        "{}",
        r.out
    );
    assert_eq!(r.code, Some(0), "{}", r.out);
    let msg = gw.sink.wait_message("Subject: e2e-plain");
    assert!(msg.contains("alice@acme.example"), "{msg}");

    let r = send(&gw, "LOGIN", &user, &pass, "e2e-login");
    assert!(r.has_reply("334 VXNlcm5hbWU6"), "{}", r.out);
    assert!(r.has_reply("334 UGFzc3dvcmQ6"), "{}", r.out);
    assert!(
        r.has_reply("235 2.7.0 Authentication successful"),
        "{}",
        r.out
    );
    gw.sink.wait_message("Subject: e2e-login");

    // Wrong password and unknown username: the same 535 text.
    let wrong = send(&gw, "PLAIN", &user, "not-the-password", "e2e-wrong");
    assert_eq!(
        wrong.reply_starting("535"),
        Some(PLAIN_FAIL.to_string()),
        "{}",
        wrong.out
    );
    let unknown = send(&gw, "PLAIN", "acme-nobody-zzzzzz", &pass, "e2e-unknown");
    assert_eq!(
        unknown.reply_starting("535"),
        Some(PLAIN_FAIL.to_string()),
        "{}",
        unknown.out
    );
    let wrong_login = send(&gw, "LOGIN", &user, "nope", "e2e-wrong-login");
    assert_eq!(
        wrong_login.reply_starting("535"),
        Some(PLAIN_FAIL.to_string()),
        "{}",
        wrong_login.out
    );
    // A case variant of the username is another (unknown) username.
    let upper = send(&gw, "PLAIN", &user.to_uppercase(), &pass, "e2e-upper");
    assert_eq!(
        upper.reply_starting("535"),
        Some(PLAIN_FAIL.to_string()),
        "{}",
        upper.out
    );
    for s in ["e2e-wrong", "e2e-unknown", "e2e-upper"] {
        assert!(
            !gw.sink.has_message(&format!("Subject: {s}\n")),
            "{s} delivered"
        );
    }

    // Revoked while everything runs: the next AUTH fails, no restart.
    gw.daemon.cli_ok(&["credential", "revoke", &user]);
    let r = send(&gw, "PLAIN", &user, &pass, "e2e-revoked");
    assert_eq!(
        r.reply_starting("535"),
        Some(PLAIN_FAIL.to_string()),
        "{}",
        r.out
    );

    assert_eq!(
        auth_reasons(&gw),
        // The EHLO probe authenticated too (it quit after AUTH).
        [
            "ok",
            "ok",
            "ok",
            "bad_password",
            "unknown_user",
            "bad_password",
            "unknown_user",
            "revoked"
        ]
    );
    // The credential list shows its last use and client.
    let list: serde_json::Value =
        serde_json::from_str(&gw.daemon.cli_ok(&["credential", "list", "--json"])).unwrap();
    assert_eq!(list[0]["last_ip"], "127.0.0.1");
    assert!(list[0]["last_used"].is_i64());
}

#[test]
fn port_25_offers_no_auth_and_refuses_relay() {
    if !e2e_available() {
        return;
    }
    let gw = Gateway::start("", &PostfixOpts::default());
    let replies = smtp_plain(
        gw.postfix.smtp_port,
        &[
            "EHLO client.postwarden.test",
            "MAIL FROM:<someone@outside.example>",
            &format!("RCPT TO:<{RCPT}>"),
            "QUIT",
        ],
    );
    assert!(!replies[1].contains("AUTH"), "{replies:?}");
    assert_eq!(
        replies[3],
        format!("554 5.7.1 <{RCPT}>: Relay access denied")
    );
    // With TLS, still no AUTH.
    let port = gw.postfix.smtp_port.to_string();
    let r = swaks(&[
        "--server",
        &format!("127.0.0.1:{port}"),
        "--tls",
        "--quit-after",
        "EHLO",
    ]);
    assert!(!r.out.contains("AUTH"), "{}", r.out);
}

#[test]
fn faults_give_454_never_535() {
    if !e2e_available() {
        return;
    }
    // One submission process, so every session reuses the smtpd whose auth connection we
    // break; no milter, so what the client sees is the auth path alone (with the milter, a
    // stopped postwarden is already refused at STARTTLS: see e2e_submission).
    let opts = PostfixOpts {
        submission_maxproc: Some(1),
        submission_extra: vec!["smtpd_milters=".into()],
        ..Default::default()
    };
    let mut gw = Gateway::start("", &opts);
    let (user, pass) = gw.acme();
    let r = send(&gw, "PLAIN", &user, &pass, "e2e-before");
    assert!(r.has_reply("235 "), "{}", r.out);

    // postwarden stopped: the smtpd that had an auth connection answers 454.
    gw.daemon.stop();
    let r = send(&gw, "PLAIN", &user, &pass, "e2e-down");
    assert!(
        r.reply_starting("454")
            .is_some_and(|l| l.starts_with(TEMP_FAIL)),
        "{}",
        r.out
    );
    assert!(!r.has_reply("535"), "{}", r.out);

    // Back up, but the store is gone (moved away): 454 again, mail not accepted.
    gw.daemon.restart();
    let db = gw.daemon.data.join("postwarden.db");
    let aside = gw.daemon.data.join("aside.db");
    std::fs::rename(&db, &aside).unwrap();
    let r = send(&gw, "PLAIN", &user, &pass, "e2e-nostore");
    assert!(
        r.reply_starting("454")
            .is_some_and(|l| l.starts_with(TEMP_FAIL)),
        "{}",
        r.out
    );
    assert!(
        gw.daemon.log_text().contains("store fault during login"),
        "{}",
        gw.daemon.log_text()
    );

    // Store back, but locked by another process past its busy timeout (1 s): 454. (The
    // daemon keeps its store handles open, and another process can only take an exclusive
    // lock while it holds none: here, right after the fault above closed them.)
    std::fs::rename(&aside, &db).unwrap();
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .unwrap();
    let r = send(&gw, "PLAIN", &user, &pass, "e2e-locked");
    assert!(
        r.reply_starting("454")
            .is_some_and(|l| l.starts_with(TEMP_FAIL)),
        "{}",
        r.out
    );
    conn.execute_batch("COMMIT").unwrap();
    drop(conn);

    // Unlocked: the same smtpd reconnects and the login works.
    let r = send(&gw, "PLAIN", &user, &pass, "e2e-after");
    assert!(r.has_reply("235 "), "{}", r.out);

    gw.sink.wait_message("Subject: e2e-after");
    for s in ["e2e-down", "e2e-nostore", "e2e-locked"] {
        assert!(
            !gw.sink.has_message(&format!("Subject: {s}\n")),
            "{s} delivered"
        );
    }
    assert!(
        gw.postfix.queue_is_empty(),
        "{}",
        gw.postfix.queue_listing()
    );
}

#[test]
fn brute_force_slows_down_without_blocking_others() {
    if !e2e_available() {
        return;
    }
    let gw = Gateway::start(
        "auth.throttle.free_failures = 3\nauth.throttle.delay = \"250ms\"\nauth.throttle.max_delay = \"1s\"\nauth.throttle.block_after = 40\n",
        &PostfixOpts::default(),
    );
    let (user, pass) = gw.acme();
    let gw = std::sync::Arc::new(gw);
    let attacker = {
        let gw = std::sync::Arc::clone(&gw);
        let user = user.clone();
        std::thread::spawn(move || {
            (0..30)
                .map(|i| {
                    let t = Instant::now();
                    let r = gw.submit(
                        "PLAIN",
                        &user,
                        &format!("guess-{i}"),
                        &["--quit-after", "AUTH"],
                    );
                    assert_eq!(
                        r.reply_starting("535"),
                        Some(PLAIN_FAIL.to_string()),
                        "{}",
                        r.out
                    );
                    t.elapsed()
                })
                .collect::<Vec<Duration>>()
        })
    };
    // Once the attacker is being delayed, a correct login on another connection is prompt.
    wait_for(Duration::from_secs(60), "delayed failures", || {
        auth_reasons(&gw).len() >= 8
    });
    let t = Instant::now();
    let r = gw.submit("PLAIN", &user, &pass, &["--quit-after", "AUTH"]);
    let legit = t.elapsed();
    assert!(r.has_reply("235 "), "{}", r.out);
    let times = attacker.join().unwrap();
    // The delay each failure was held for, as the daemon logged it (wall-clock session
    // times also carry Postfix's and swaks's own work, which varies with the machine's
    // load): the first failures are answered without delay, later ones are held by the
    // configured maximum (1 s).
    let log = gw.daemon.log_text();
    let delays: Vec<u64> = log
        .lines()
        .filter(|l| l.contains("login failed"))
        .filter_map(|l| l.split("delay_ms=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(delays.len(), 30, "{log}");
    assert!(delays[..3].iter().all(|d| *d == 0), "{delays:?}");
    assert!(delays[10..].iter().all(|d| *d == 1000), "{delays:?}");
    // And the sessions really waited: none of the late ones took less than the delay.
    let slow = times[10..].iter().min().unwrap();
    assert!(
        *slow >= Duration::from_millis(1000),
        "late failures not delayed: {times:?}"
    );
    // The correct login on another connection was not held: it took less than the
    // slowest delayed failure.
    assert!(
        legit < *times[10..].iter().max().unwrap(),
        "correct login took {legit:?} ({times:?})"
    );
    let reasons = auth_reasons(&gw);
    assert_eq!(reasons.iter().filter(|r| *r == "bad_password").count(), 30);
    assert!(reasons.contains(&"ok".to_string()));
}

#[test]
fn past_the_block_threshold_even_the_right_password_fails_unchecked() {
    if !e2e_available() {
        return;
    }
    let gw = Gateway::start(
        "auth.throttle.free_failures = 1\nauth.throttle.delay = \"100ms\"\nauth.throttle.max_delay = \"300ms\"\nauth.throttle.block_after = 4\n",
        &PostfixOpts::default(),
    );
    let (user, pass) = gw.acme();
    for i in 0..4 {
        let r = gw.submit(
            "PLAIN",
            &user,
            &format!("guess-{i}"),
            &["--quit-after", "AUTH"],
        );
        assert!(r.has_reply("535 "), "{}", r.out);
    }
    let r = gw.submit("PLAIN", &user, &pass, &["--quit-after", "AUTH"]);
    assert_eq!(
        r.reply_starting("535"),
        Some(PLAIN_FAIL.to_string()),
        "{}",
        r.out
    );
    let reasons = auth_reasons(&gw);
    assert_eq!(
        reasons.last().map(String::as_str),
        Some("throttled"),
        "{reasons:?}"
    );
}
