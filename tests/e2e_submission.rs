//! End to end: a real Postfix submission service with postwarden's milter deciding who may
//! send as whom; `postwarden explain` must give the same decision for every case.

mod common;

use common::*;

const RCPT: &str = "rcpt@dest.example";

struct Case<'a> {
    sender: &'a str,
    header_from: &'a str,
    subject: &'a str,
}

/// Sends one message on 587 with STARTTLS + AUTH PLAIN.
fn send(gw: &Gateway, user: &str, pass: &str, c: &Case) -> Swaks {
    let from_header = format!("From: {}", c.header_from);
    let subject = format!("Subject: {}", c.subject);
    let body = format!("Body of {}.\nSecond line.\n", c.subject);
    gw.submit(
        "PLAIN",
        user,
        pass,
        &[
            "--from",
            c.sender,
            "--to",
            RCPT,
            "--header",
            &from_header,
            "--header",
            &subject,
            "--header",
            "X-Postwarden-Test: kept",
            "--body",
            &body,
        ],
    )
}

/// What `postwarden explain` says about the same message: (exit code, reply line).
fn explain(gw: &Gateway, user: &str, c: &Case) -> (i32, String) {
    let out = gw.daemon.cli(&[
        "explain",
        "--login",
        user,
        "--sender",
        c.sender,
        "--header-from",
        c.header_from,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (
        out.status.code().unwrap(),
        v["reply"].as_str().unwrap().to_string(),
    )
}

/// Sends, and checks that the milter and `explain` agree: accepted and delivered, or refused
/// with the same reply. Returns the refusal reply, if any.
fn check(gw: &Gateway, user: &str, pass: &str, c: &Case) -> Option<String> {
    let r = send(gw, user, pass, c);
    assert!(r.has_reply("235 "), "{}", r.out);
    let (code, explained) = explain(gw, user, c);
    let refused = r
        .replies()
        .into_iter()
        .find(|l| l.starts_with("553 ") || l.starts_with("550 ") || l.starts_with('4'));
    match refused {
        None => {
            assert_eq!(
                code, 0,
                "milter accepted, explain refused: {explained}\n{}",
                r.out
            );
            assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
            let msg = gw.sink.wait_message(&format!("Subject: {}", c.subject));
            assert!(msg.contains("X-Postwarden-Test: kept"), "{msg}");
            assert!(
                msg.contains(&format!("Body of {}.", c.subject)) && msg.contains("Second line."),
                "{msg}"
            );
            None
        }
        Some(reply) => {
            assert_eq!(
                code, 1,
                "milter refused ({reply}), explain accepted\n{}",
                r.out
            );
            assert_eq!(reply, explained, "milter and explain disagree");
            std::thread::sleep(std::time::Duration::from_millis(300));
            assert!(
                !gw.sink.has_message(&format!("Subject: {}\n", c.subject)),
                "{} delivered",
                c.subject
            );
            Some(reply)
        }
    }
}

fn mail_events(gw: &Gateway) -> Vec<serde_json::Value> {
    gw.daemon.events(&["--kind", "mail"])
}

#[test]
fn the_sender_rule_end_to_end() {
    if !e2e_available() {
        return;
    }
    let gw = Gateway::start("", &PostfixOpts::default());
    let (user, pass) = gw.acme();
    gw.daemon.cli_ok(&[
        "account",
        "add",
        "noreply@acme.example",
        "--kind",
        "silent_user",
    ]);
    gw.daemon.cli_ok(&["org", "add", "other"]);
    gw.daemon
        .cli_ok(&["domain", "add", "other.example", "--org", "other"]);
    gw.daemon
        .cli_ok(&["account", "add", "bob@other.example", "--kind", "end_user"]);

    // Owned sender, envelope and header: delivered intact.
    let ok = Case {
        sender: "alice@acme.example",
        header_from: "Alice <alice@acme.example>",
        subject: "s-owned",
    };
    assert_eq!(check(&gw, &user, &pass, &ok), None);

    // Another organization's address, and an unknown domain: the same 553 at MAIL.
    let foreign = check(
        &gw,
        &user,
        &pass,
        &Case {
            sender: "bob@other.example",
            header_from: "bob@other.example",
            subject: "s-foreign",
        },
    )
    .unwrap();
    assert_eq!(
        foreign,
        "553 5.7.1 Sender address <bob@other.example> rejected: other.example is not a sending domain of your organization; use an address of your own domain or ask your provider to register it"
    );
    let unknown = check(
        &gw,
        &user,
        &pass,
        &Case {
            sender: "bob@nowhere.example",
            header_from: "bob@nowhere.example",
            subject: "s-unknown",
        },
    )
    .unwrap();
    assert_eq!(
        foreign.replace("other.example", "X"),
        unknown.replace("nowhere.example", "X")
    );

    // Unregistered address in the own active domain: refused in account mode ...
    let dave = Case {
        sender: "dave@acme.example",
        header_from: "dave@acme.example",
        subject: "s-dave-account",
    };
    let r = check(&gw, &user, &pass, &dave).unwrap();
    assert!(
        r.starts_with(
            "553 5.7.1 Sender address <dave@acme.example> rejected: not a registered sender"
        ),
        "{r}"
    );
    // ... delivered and reported in domain mode.
    gw.daemon
        .cli_ok(&["org", "set", "acme", "--sender-check", "domain"]);
    assert_eq!(
        check(
            &gw,
            &user,
            &pass,
            &Case {
                subject: "s-dave-domain",
                ..dave
            }
        ),
        None
    );
    let discovered: serde_json::Value =
        serde_json::from_str(&gw.daemon.cli_ok(&["log", "--discovered", "--json"])).unwrap();
    assert_eq!(discovered[0]["address"], "dave@acme.example");
    assert_eq!(discovered[0]["organization"], "acme");
    gw.daemon
        .cli_ok(&["org", "set", "acme", "--sender-check", "account"]);

    // Domain deactivated while running: refused naming it; activated: delivered. No restart.
    gw.daemon.cli_ok(&["domain", "deactivate", "acme.example"]);
    let r = check(
        &gw,
        &user,
        &pass,
        &Case {
            subject: "s-inactive",
            ..ok
        },
    )
    .unwrap();
    assert!(r.starts_with("553 5.7.1 Sender address <alice@acme.example> rejected: sending domain acme.example is inactive"), "{r}");
    gw.daemon.cli_ok(&["domain", "activate", "acme.example"]);
    assert_eq!(
        check(
            &gw,
            &user,
            &pass,
            &Case {
                subject: "s-reactivated",
                ..ok
            }
        ),
        None
    );

    // Envelope owned, header From spoofed: refused at end of data.
    let r = check(
        &gw,
        &user,
        &pass,
        &Case {
            sender: "alice@acme.example",
            header_from: "CEO <bob@other.example>",
            subject: "s-spoofed",
        },
    )
    .unwrap();
    assert!(
        r.starts_with("553 5.7.1 From header address <bob@other.example> rejected"),
        "{r}"
    );

    // Null envelope sender with an owned header From: delivered.
    assert_eq!(
        check(
            &gw,
            &user,
            &pass,
            &Case {
                sender: "<>",
                header_from: "noreply@acme.example",
                subject: "s-null"
            }
        ),
        None
    );
    // ... with a foreign one: refused.
    assert!(check(
        &gw,
        &user,
        &pass,
        &Case {
            sender: "<>",
            header_from: "bob@other.example",
            subject: "s-null-foreign"
        }
    )
    .is_some());

    // Account removed while running: the next message from it is refused.
    gw.daemon
        .cli_ok(&["account", "remove", "alice@acme.example"]);
    let r = check(
        &gw,
        &user,
        &pass,
        &Case {
            subject: "s-removed",
            ..ok
        },
    )
    .unwrap();
    assert!(r.contains("not a registered sender"), "{r}");

    // The log tells the story of each case.
    let story: Vec<(String, String)> = mail_events(&gw)
        .iter()
        .map(|e| {
            (
                e["outcome"].as_str().unwrap().to_string(),
                e["sender"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [
        ("accept", "alice@acme.example"),
        ("reject", "bob@other.example"),
        ("reject", "bob@nowhere.example"),
        ("reject", "dave@acme.example"),
        ("discovered", "dave@acme.example"),
        ("reject", "alice@acme.example"),
        ("accept", "alice@acme.example"),
        ("reject", "alice@acme.example"),
        ("accept", "<>"),
        ("reject", "<>"),
        ("reject", "alice@acme.example"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(story, expected);
    let events = mail_events(&gw);
    assert!(
        events
            .iter()
            .all(|e| e["login"] == user.as_str() && e["org"] == "acme"),
        "{events:?}"
    );
    // Postfix assigns the queue id at the first accepted recipient: every decision after
    // MAIL carries it.
    for e in &events {
        let after_mail = e["rcpt_count"].as_i64() > Some(0);
        assert_eq!(e["queue_id"].is_string(), after_mail, "{e}");
    }
    let by_sender = gw
        .daemon
        .events(&["--kind", "mail", "--sender", "bob@other.example"]);
    assert_eq!(
        by_sender.len(),
        3,
        "the MAIL-time refusal and the two spoofed From: {by_sender:?}"
    );
}

#[test]
fn milter_unreachable_gives_4xx_and_queues_nothing() {
    if !e2e_available() {
        return;
    }
    let closed = free_port();
    let opts = PostfixOpts {
        submission_extra: vec![format!("smtpd_milters=inet:127.0.0.1:{closed}")],
        ..Default::default()
    };
    let gw = Gateway::start("", &opts);
    let (user, pass) = gw.acme();
    let r = send(
        &gw,
        &user,
        &pass,
        &Case {
            sender: "alice@acme.example",
            header_from: "alice@acme.example",
            subject: "s-nomilter",
        },
    );
    assert_eq!(
        r.reply_starting("454"),
        Some("454 4.3.0 Try again later".to_string()),
        "{}",
        r.out
    );
    assert!(
        !r.has_reply("235 ") && !r.has_reply("250 2.0.0 Ok: queued"),
        "{}",
        r.out
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(gw.sink.messages().is_empty());
    assert!(
        gw.postfix.queue_is_empty(),
        "{}",
        gw.postfix.queue_listing()
    );
}

#[test]
fn store_faults_and_a_stopped_daemon_are_temporary() {
    if !e2e_available() {
        return;
    }
    let mut gw = Gateway::start("", &PostfixOpts::default());
    let (user, pass) = gw.acme();
    let ok = Case {
        sender: "alice@acme.example",
        header_from: "alice@acme.example",
        subject: "s-before",
    };
    assert_eq!(check(&gw, &user, &pass, &ok), None);

    // After AUTH, the store is deleted, then back but locked by another process past its
    // busy timeout (1 s in the harness): each MAIL gets 451 4.3.0 from the milter, never an
    // accept. (The daemon keeps its store handles open, and another process can only take
    // an exclusive lock while it holds none: here, right after the fault closed them.)
    let db = gw.daemon.data.join("postwarden.db");
    let mut smtp = SmtpTls::connect(gw.postfix.submission_port);
    assert!(smtp.cmd("EHLO client.postwarden.test").starts_with("250 "));
    assert_eq!(
        smtp.cmd(&format!("AUTH PLAIN {}", plain_token(&user, &pass))),
        "235 2.7.0 Authentication successful"
    );
    let aside = gw.daemon.data.join("aside.db");
    std::fs::rename(&db, &aside).unwrap();
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@acme.example>"),
        "451 4.3.0 Temporary failure checking the sender; try again later"
    );
    std::fs::rename(&aside, &db).unwrap();
    assert!(smtp.cmd("RSET").starts_with("250 "));
    let lock = rusqlite::Connection::open(&db).unwrap();
    lock.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .unwrap();
    assert_eq!(
        smtp.cmd("MAIL FROM:<alice@acme.example>"),
        "451 4.3.0 Temporary failure checking the sender; try again later"
    );
    lock.execute_batch("COMMIT").unwrap();
    drop(lock);
    assert!(smtp.cmd("RSET").starts_with("250 "));
    // Store back: the same session goes on.
    assert!(smtp
        .cmd("MAIL FROM:<alice@acme.example>")
        .starts_with("250 "));
    assert!(smtp.cmd("QUIT").starts_with("221 "));
    drop(smtp);

    // postwarden stopped: Postfix cannot reach the milter: 454 4.3.0 at STARTTLS.
    gw.daemon.stop();
    let r = send(
        &gw,
        &user,
        &pass,
        &Case {
            subject: "s-stopped",
            ..ok
        },
    );
    assert_eq!(
        r.reply_starting("454"),
        Some("454 4.3.0 Try again later".to_string()),
        "{}",
        r.out
    );
    gw.daemon.restart();
    assert_eq!(
        check(
            &gw,
            &user,
            &pass,
            &Case {
                subject: "s-after",
                ..ok
            }
        ),
        None
    );

    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        !gw.sink.has_message("Subject: s-stopped\n"),
        "delivered while stopped"
    );
    assert_eq!(gw.sink.messages().len(), 2, "only s-before and s-after");
    assert!(
        gw.postfix.queue_is_empty(),
        "{}",
        gw.postfix.queue_listing()
    );
    // The log tells it all: the events the locked and the missing store could not take were
    // kept and written once the store was back (at the latest when the daemon stopped).
    let events = mail_events(&gw);
    let outcomes: Vec<&str> = events
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["accept", "tempfail", "tempfail", "accept"]);
    assert!(events[1]["reason"] == "fault" && events[2]["reason"] == "fault");
}
