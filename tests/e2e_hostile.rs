//! End to end, hostile clients through a real Postfix: values they control never forge or
//! corrupt a line of the daemon's log or of `postwarden log`.

mod common;

use std::time::Duration;

use common::*;

/// A line feed followed by a made-up log line, a terminal escape sequence (clear screen,
/// set title), BEL, a C1 control (NEL), DEL and a right-to-left override.
const FORGED: &str = "x\nINFO postwarden::auth: login ok login=admin";
const NASTY: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{85}\u{7f}\u{202e}gpj.exe";

/// The characters that must never appear raw.
fn raw_controls(text: &str) -> Vec<String> {
    text.chars()
        .filter(|c| {
            (c.is_control() && *c != '\n')
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .map(|c| format!("U+{:04X}", c as u32))
        .collect()
}

#[test]
fn client_values_are_escaped_in_the_daemon_log_and_postwarden_log() {
    if !e2e_available() {
        return;
    }
    let gw = Gateway::start("", &PostfixOpts::default());
    let (user, pass) = gw.acme();

    // 1. A login with a line feed, escape sequences and a bidi override: 535.
    let login = format!("{FORGED}{NASTY}");
    let mut smtp = SmtpTls::connect(gw.postfix.submission_port);
    assert!(smtp.cmd("EHLO client.postwarden.test").starts_with("250 "));
    let r = smtp.cmd(&format!("AUTH PLAIN {}", plain_token(&login, "wrong")));
    assert!(r.starts_with("535 "), "{r}");

    // 2. A real login, then a header From with the same characters in its display name
    //    and address: the sender rule refuses it, and its reply and event name the From.
    let mut smtp = SmtpTls::connect(gw.postfix.submission_port);
    assert!(smtp.cmd("EHLO client.postwarden.test").starts_with("250 "));
    assert_eq!(
        smtp.cmd(&format!("AUTH PLAIN {}", plain_token(&user, &pass))),
        "235 2.7.0 Authentication successful"
    );
    assert!(smtp
        .cmd("MAIL FROM:<alice@acme.example>")
        .starts_with("250 "));
    assert!(smtp.cmd("RCPT TO:<rcpt@dest.example>").starts_with("250 "));
    assert!(smtp.cmd("DATA").starts_with("354 "));
    let from = format!("From: \"{NASTY}\" <boss{NASTY}@evil.example>");
    for line in [from.as_str(), "Subject: hostile", "", "body", "."] {
        if line == "." {
            let r = smtp.cmd(line);
            assert!(r.starts_with("5"), "refused: {r}");
        } else {
            // Message lines: the reply comes only after ".".
            smtp.write_line(line).unwrap();
        }
    }

    // 3. Port 25: a HELO name and a MAIL FROM with escape characters.
    let replies = smtp_plain(
        gw.postfix.smtp_port,
        &[
            &format!("EHLO evil\u{1b}[2J{}", '\u{7}'),
            &format!("MAIL FROM:<a{}b@evil.example>", '\u{1b}'),
            "QUIT",
        ],
    );
    assert!(!replies.is_empty());

    std::thread::sleep(Duration::from_millis(500));
    let log = gw.daemon.log_text();
    // The escaped login is there, on one line; no line starts the forged entry.
    assert!(
        log.contains("login=x\\nINFO postwarden::auth: login ok login=admin\\x1b[2J"),
        "{log}"
    );
    assert!(
        !log.lines().any(|l| l
            .trim_start()
            .starts_with("INFO postwarden::auth: login ok login=admin")
            || l.contains(" INFO postwarden::auth: login ok login=admin")),
        "a forged line: {log}"
    );
    assert!(
        raw_controls(&log).is_empty(),
        "raw: {:?}\n{log}",
        raw_controls(&log)
    );
    assert!(log.contains("\\u{202e}gpj.exe"), "{log}");

    // `postwarden log`: the same values, escaped.
    let out = gw.daemon.cli_ok(&["log"]);
    assert!(
        raw_controls(&out).is_empty(),
        "raw: {:?}\n{out}",
        raw_controls(&out)
    );
    assert!(
        out.contains("x\\nINFO postwarden::auth: login ok login=admin"),
        "{out}"
    );
    assert!(out.contains("\\u{202e}gpj.exe"), "{out}");
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("login ok login=admin"))
            .count(),
        1,
        "one event line carries the forged text, escaped: {out}"
    );
}

/// Raises this process's open-file limit to the hard limit (to hold many connections).
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

/// `n` connections to the auth socket that complete the handshake, as Postfix does, and
/// then say nothing.
fn idle_auth_connections(path: &std::path::Path, n: usize) -> Vec<std::os::unix::net::UnixStream> {
    use std::io::Write;
    (0..n)
        .map(|i| {
            let mut s = std::os::unix::net::UnixStream::connect(path)
                .unwrap_or_else(|e| panic!("auth connection {i}: {e}"));
            s.write_all(format!("VERSION\t1\t0\nCPID\t{}\n", 100_000 + i).as_bytes())
                .unwrap();
            s
        })
        .collect()
}

/// `n` connections to a milter socket that never send a command.
fn idle_milter_connections(
    path: &std::path::Path,
    n: usize,
) -> Vec<std::os::unix::net::UnixStream> {
    (0..n)
        .map(|i| {
            std::os::unix::net::UnixStream::connect(path)
                .unwrap_or_else(|e| panic!("milter connection {i}: {e}"))
        })
        .collect()
}

#[test]
fn idle_connections_starve_neither_mail_nor_logins() {
    if !e2e_available() {
        return;
    }
    let limit = raise_nofile();
    assert!(
        limit >= 12_000,
        "this test holds 11,000 connections; open-file limit {limit}"
    );
    let gw = Gateway::start(
        "dns.nameservers = [\"127.0.0.1:9\"]\ndns.timeout = \"200ms\"\ninbound.dns_failure = \"accept\"\n",
        &PostfixOpts {
            extra_main: "relay_domains = dest.example".into(),
            ..Default::default()
        },
    );
    let (user, pass) = gw.acme();
    let private = gw.postfix.private_dir();

    // 10,000 idle auth connections and 500 idle connections on each milter.
    let auth = idle_auth_connections(&private.join("postwarden-auth"), 10_000);
    let sub = idle_milter_connections(&private.join("postwarden-submission"), 500);
    let inb = idle_milter_connections(&private.join("postwarden-inbound"), 500);
    std::thread::sleep(Duration::from_secs(1));

    // Real mail and real logins still go through.
    for i in 0..3 {
        let r = gw.submit_subject(&user, &pass, &format!("held-open-{i}"));
        assert!(
            r.has_reply("235 2.7.0 Authentication successful"),
            "{}",
            r.out
        );
        assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
        let r = gw.inbound(&format!("inbound-held-open-{i}"));
        assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    }
    gw.sink.wait_message("Subject: held-open-2");
    gw.sink.wait_message("Subject: inbound-held-open-2");
    let log = gw.daemon.log_text();
    assert!(!log.contains("accept failed"), "{log}");
    assert!(!log.contains("cap reached"), "{log}");
    drop((auth, sub, inb));
}

#[test]
fn connection_caps_are_said_in_the_log() {
    if !e2e_available() {
        return;
    }
    let gw = Gateway::start(
        "auth.max_connections = 20\nsubmission.max_connections = 10\n",
        &PostfixOpts::default(),
    );
    let private = gw.postfix.private_dir();
    let auth = idle_auth_connections(&private.join("postwarden-auth"), 30);
    let sub = idle_milter_connections(&private.join("postwarden-submission"), 10);
    wait_for(Duration::from_secs(10), "the cap lines", || {
        let log = gw.daemon.log_text();
        log.contains("auth connection closed: auth.max_connections reached")
            && log.contains("listener=submission")
            && log.contains("connection cap reached")
    });
    drop((auth, sub));
}
