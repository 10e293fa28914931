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
