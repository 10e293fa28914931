//! Whole connections driven by byte transcripts (from shared/reference/dovecot-auth-transcript.txt:
//! Postfix 3.7 against Dovecot 2.3), with a mock verifier. Time is paused: timers fire as soon as
//! nothing else can run, so timeouts are tested without waiting.

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use dovecot_auth::{Mechanism, ProtocolError, Refusal, ServerConfig};
use support::*;
use tokio::time::Instant;

async fn connected(config: ServerConfig) -> (Client, Server, std::sync::Arc<Mock>) {
    let mock = Mock::new();
    let (mut client, server) = start(mock.clone(), config);
    client.handshake().await;
    (client, server, mock)
}

// ---------------------------------------------------------------------------------------------
// The transcript, case by case.

#[tokio::test(start_paused = true)]
async fn handshake_matches_dovecot() {
    let (mut client, server) = start(Mock::new(), ServerConfig::default());
    // Dovecot sends its handshake at once, before the client has said anything.
    let lines = client.read_server_handshake().await;
    assert_eq!(lines, TRANSCRIPT_HANDSHAKE);
    client.send("VERSION\t1\t0\nCPID\t22324\n").await;
    client.shutdown().await;
    client.expect_eof().await;
    assert!(finished(server).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn handshake_follows_the_configured_mechanisms_and_generates_a_cookie() {
    let mock = Mock::new();
    let config = ServerConfig {
        mechanisms: vec![Mechanism::Plain],
        ..ServerConfig::default()
    };
    let (client, server) = tokio::io::duplex(4096);
    let ids = dovecot_auth::ConnectionIds::new(4242, 99);
    let task =
        tokio::spawn(
            async move { dovecot_auth::serve_connection(server, mock, &config, ids).await },
        );
    let mut reader = tokio::io::BufReader::new(client);
    let mut text = String::new();
    while !text.ends_with("DONE\n") {
        use tokio::io::AsyncBufReadExt;
        assert!(reader.read_line(&mut text).await.unwrap() > 0);
    }
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "VERSION\t1\t2",
            "MECH\tPLAIN\tplaintext",
            "SPID\t4242",
            "CUID\t99"
        ]
    );
    let cookie = lines[4].strip_prefix("COOKIE\t").expect("COOKIE line");
    assert_eq!(cookie.len(), 32);
    assert!(cookie.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(lines[5], "DONE");
    drop(reader);
    assert!(task.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn plain_with_initial_response() {
    let (mut client, server, mock) = connected(ServerConfig::default()).await;
    let line = postfix_auth(1, "PLAIN", 41, Some(&plain("", ALICE, PASSWORD)));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("OK\t1\tuser=alice@example.test")
    );
    let calls = mock.calls();
    assert_eq!(calls.len(), 1);
    let a = &calls[0];
    assert_eq!(a.id, 1);
    assert_eq!(a.mechanism, Mechanism::Plain);
    assert_eq!(a.service, "smtp");
    assert_eq!(a.local_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert_eq!(a.remote_ip, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 41))));
    assert_eq!((a.local_port, a.remote_port), (None, None));
    assert!(a.secured);
    assert_eq!(a.login, ALICE);
    assert_eq!(a.authzid, None);
    assert_eq!(a.password, PASSWORD);
    assert_eq!(a.client_pid, 22324);
    // The password never shows in Debug output.
    assert!(!format!("{a:?}").contains(PASSWORD));
    client.shutdown().await;
    client.expect_eof().await;
    assert!(finished(server).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn plain_without_initial_response() {
    let (mut client, _server, mock) = connected(ServerConfig::default()).await;
    let line = postfix_auth(3, "PLAIN", 43, None);
    assert_eq!(client.ask(&line).await.as_deref(), Some("CONT\t3\t"));
    let cont = format!("CONT\t3\t{}", plain("", ALICE, PASSWORD));
    assert_eq!(
        client.ask(&cont).await.as_deref(),
        Some("OK\t3\tuser=alice@example.test")
    );
    assert_eq!(mock.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn login_mechanism() {
    let (mut client, _server, mock) = connected(ServerConfig::default()).await;
    let line = postfix_auth(2, "LOGIN", 42, None);
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("CONT\t2\tVXNlcm5hbWU6")
    );
    assert_eq!(
        client
            .ask("CONT\t2\tYWxpY2VAZXhhbXBsZS50ZXN0")
            .await
            .as_deref(),
        Some("CONT\t2\tUGFzc3dvcmQ6")
    );
    let cont = format!("CONT\t2\t{}", b64(PASSWORD.as_bytes()));
    assert_eq!(
        client.ask(&cont).await.as_deref(),
        Some("OK\t2\tuser=alice@example.test")
    );
    let calls = mock.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].mechanism, Mechanism::Login);
    assert_eq!(calls[0].login, ALICE);
    assert_eq!(calls[0].password, PASSWORD);
}

#[tokio::test(start_paused = true)]
async fn login_with_initial_response_skips_the_user_prompt() {
    let (mut client, _server, _mock) = connected(ServerConfig::default()).await;
    let line = postfix_auth(1, "LOGIN", 42, Some(&b64(ALICE.as_bytes())));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("CONT\t1\tUGFzc3dvcmQ6")
    );
    let cont = format!("CONT\t1\t{}", b64(PASSWORD.as_bytes()));
    assert_eq!(
        client.ask(&cont).await.as_deref(),
        Some("OK\t1\tuser=alice@example.test")
    );
}

#[tokio::test(start_paused = true)]
async fn wrong_password_and_unknown_user_fail_with_the_login() {
    let (mut client, _server, _mock) = connected(ServerConfig::default()).await;
    let line = postfix_auth(4, "PLAIN", 44, Some(&plain("", ALICE, "wrong")));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("FAIL\t4\tuser=alice@example.test")
    );

    let line = postfix_auth(5, "LOGIN", 45, None);
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("CONT\t5\tVXNlcm5hbWU6")
    );
    client.ask("CONT\t5\tYWxpY2VAZXhhbXBsZS50ZXN0").await;
    let cont = format!("CONT\t5\t{}", b64(b"wrong"));
    assert_eq!(
        client.ask(&cont).await.as_deref(),
        Some("FAIL\t5\tuser=alice@example.test")
    );

    let line = postfix_auth(
        6,
        "PLAIN",
        46,
        Some(&plain("", "ghost@example.test", PASSWORD)),
    );
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("FAIL\t6\tuser=ghost@example.test")
    );
}

#[tokio::test(start_paused = true)]
async fn differing_authzid_fails_without_the_verifier() {
    let (mut client, _server, mock) = connected(ServerConfig::default()).await;
    let line = postfix_auth(
        7,
        "PLAIN",
        47,
        Some(&plain("bob@example.test", ALICE, PASSWORD)),
    );
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("FAIL\t7\tuser=alice@example.test")
    );
    assert!(mock.calls().is_empty(), "the verifier was asked");
    let refusals = mock.refusals();
    assert_eq!(refusals.len(), 1);
    let (attempt, why) = &refusals[0];
    assert_eq!(*why, Refusal::AuthzidMismatch);
    assert_eq!(attempt.id, 7);
    assert_eq!(attempt.login, ALICE);
    assert_eq!(attempt.authzid.as_deref(), Some("bob@example.test"));
    assert_eq!(
        attempt.password, "",
        "a refused attempt must not carry the password"
    );
    assert_eq!(
        attempt.remote_ip,
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 47)))
    );

    // An authzid equal to the login (byte for byte) is the login itself.
    let line = postfix_auth(8, "PLAIN", 47, Some(&plain(ALICE, ALICE, PASSWORD)));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("OK\t8\tuser=alice@example.test")
    );
    assert_eq!(mock.calls()[0].authzid.as_deref(), Some(ALICE));
    // No case folding.
    let line = postfix_auth(
        9,
        "PLAIN",
        47,
        Some(&plain("Alice@example.test", ALICE, PASSWORD)),
    );
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("FAIL\t9\tuser=alice@example.test")
    );
    assert_eq!(mock.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn cancelled_login_then_a_new_auth_on_the_same_connection() {
    let (mut client, _server, _mock) = connected(ServerConfig::default()).await;
    let line = postfix_auth(8, "LOGIN", 48, None);
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("CONT\t8\tVXNlcm5hbWU6")
    );
    // The SMTP client sent '*': Postfix tells the auth server nothing and moves on.
    let line = postfix_auth(9, "PLAIN", 49, Some(&plain("", ALICE, PASSWORD)));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("OK\t9\tuser=alice@example.test")
    );
    let line = postfix_auth(10, "LOGIN", 50, None);
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("CONT\t10\tVXNlcm5hbWU6")
    );
}

#[tokio::test(start_paused = true)]
async fn whole_transcript_on_one_connection() {
    let (logs, _guard) = Logs::capture();
    let (mut client, server, mock) = connected(ServerConfig::default()).await;
    let p = |login: &str, pw: &str| plain("", login, pw);
    let steps: Vec<(String, &str)> = vec![
        (
            postfix_auth(1, "PLAIN", 41, Some(&p(ALICE, PASSWORD))),
            "OK\t1\tuser=alice@example.test",
        ),
        (postfix_auth(2, "LOGIN", 42, None), "CONT\t2\tVXNlcm5hbWU6"),
        (
            "CONT\t2\tYWxpY2VAZXhhbXBsZS50ZXN0".into(),
            "CONT\t2\tUGFzc3dvcmQ6",
        ),
        (
            format!("CONT\t2\t{}", b64(PASSWORD.as_bytes())),
            "OK\t2\tuser=alice@example.test",
        ),
        (postfix_auth(3, "PLAIN", 43, None), "CONT\t3\t"),
        (
            format!("CONT\t3\t{}", p(ALICE, PASSWORD)),
            "OK\t3\tuser=alice@example.test",
        ),
        (
            postfix_auth(4, "PLAIN", 44, Some(&p(ALICE, "nope"))),
            "FAIL\t4\tuser=alice@example.test",
        ),
        (postfix_auth(5, "LOGIN", 45, None), "CONT\t5\tVXNlcm5hbWU6"),
        (
            "CONT\t5\tYWxpY2VAZXhhbXBsZS50ZXN0".into(),
            "CONT\t5\tUGFzc3dvcmQ6",
        ),
        (
            format!("CONT\t5\t{}", b64(b"nope")),
            "FAIL\t5\tuser=alice@example.test",
        ),
        (
            postfix_auth(6, "PLAIN", 46, Some(&p("ghost@example.test", PASSWORD))),
            "FAIL\t6\tuser=ghost@example.test",
        ),
        (
            postfix_auth(
                7,
                "PLAIN",
                47,
                Some(&plain("bob@example.test", ALICE, PASSWORD)),
            ),
            "FAIL\t7\tuser=alice@example.test",
        ),
        (postfix_auth(8, "LOGIN", 48, None), "CONT\t8\tVXNlcm5hbWU6"),
        (
            postfix_auth(9, "PLAIN", 49, Some(&p(ALICE, PASSWORD))),
            "OK\t9\tuser=alice@example.test",
        ),
    ];
    for (send, expect) in &steps {
        assert_eq!(
            client.ask(send).await.as_deref(),
            Some(*expect),
            "after {send:?}"
        );
    }
    assert_eq!(mock.calls().len(), 7);
    client.shutdown().await;
    client.expect_eof().await;
    assert!(finished(server).await.is_ok());
    assert!(logs.warnings().is_empty(), "{:?}", logs.warnings());
    assert!(
        !logs.all().iter().any(|l| l.contains(PASSWORD)),
        "a password was logged"
    );
}

// ---------------------------------------------------------------------------------------------
// Faults close the connection without an answer.

async fn closes_without_answer(login: &str, check: fn(&ProtocolError) -> bool) {
    let (logs, _guard) = Logs::capture();
    let (mut client, server, _mock) = connected(ServerConfig::default()).await;
    let line = postfix_auth(1, "PLAIN", 41, Some(&plain("", login, PASSWORD)));
    client.send_line(&line).await;
    client.expect_eof().await;
    let err = finished(server).await.unwrap_err();
    assert!(check(&err), "{login}: unexpected {err:?}");
    assert_eq!(logs.warnings().len(), 1, "{:?}", logs.warnings());
}

#[tokio::test(start_paused = true)]
async fn fault_closes_the_connection_without_answering() {
    closes_without_answer(FAULT, |e| {
        matches!(e, ProtocolError::VerifierFault { id: 1, message } if message == "store unreadable")
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn ok_with_an_empty_user_is_a_fault() {
    closes_without_answer(EMPTY_USER, |e| {
        matches!(e, ProtocolError::VerifierFault { id: 1, .. })
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_verifier_closes_the_connection() {
    closes_without_answer(PANIC, |e| matches!(e, ProtocolError::VerifierPanicked)).await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_verifier_times_out_and_closes_the_connection() {
    let started = Instant::now();
    closes_without_answer(HANG, |e| {
        matches!(e, ProtocolError::VerifyTimeout { id: 1 })
    })
    .await;
    assert!(started.elapsed() >= ServerConfig::default().verify_timeout);
}

// ---------------------------------------------------------------------------------------------
// Malformed input: one warn line, the connection closes, other connections carry on.

struct Case {
    name: &'static str,
    /// Raw bytes after connecting (handshake included where wanted).
    input: Vec<u8>,
    /// Lines the server answers before closing (after its handshake).
    replies: Vec<String>,
    check: fn(&ProtocolError) -> bool,
}

const HS: &str = "VERSION\t1\t0\nCPID\t22324\n";

fn case(name: &'static str, input: &str, check: fn(&ProtocolError) -> bool) -> Case {
    Case {
        name,
        input: input.as_bytes().to_vec(),
        replies: Vec::new(),
        check,
    }
}

fn malformed_cases() -> Vec<Case> {
    let good_resp = plain("", ALICE, PASSWORD);
    let mut cases = vec![
        case(
            "AUTH before VERSION",
            &format!("{}\n", postfix_auth(1, "PLAIN", 41, Some(&good_resp))),
            |e| matches!(e, ProtocolError::ExpectedVersion { got } if got == "AUTH"),
        ),
        case(
            "wrong major version",
            "VERSION\t2\t0\nCPID\t1\n",
            |e| matches!(e, ProtocolError::VersionMismatch { major } if major == "2"),
        ),
        case("VERSION without a number", "VERSION\tx\n", |e| {
            matches!(e, ProtocolError::VersionMismatch { .. })
        }),
        case(
            "AUTH before CPID",
            &format!("VERSION\t1\t0\n{}\n", postfix_auth(1, "PLAIN", 41, None)),
            |e| matches!(e, ProtocolError::ExpectedCpid { got } if got == "AUTH"),
        ),
        case("CPID not a number", "VERSION\t1\t0\nCPID\tabc\n", |e| {
            matches!(e, ProtocolError::BadCpid)
        }),
        case("CPID zero", "VERSION\t1\t0\nCPID\t0\n", |e| {
            matches!(e, ProtocolError::BadCpid)
        }),
        case("empty line", &format!("{HS}\n"), |e| {
            matches!(e, ProtocolError::UnexpectedCommand { .. })
        }),
        case(
            "unknown command",
            &format!("{HS}HELLO\tthere\n"),
            |e| matches!(e, ProtocolError::UnexpectedCommand { command } if command == "HELLO"),
        ),
        case(
            "second VERSION",
            &format!("{HS}VERSION\t1\t0\n"),
            |e| matches!(e, ProtocolError::UnexpectedCommand { command } if command == "VERSION"),
        ),
        case("AUTH without fields", &format!("{HS}AUTH\n"), |e| {
            matches!(
                e,
                ProtocolError::MissingField {
                    command: "AUTH",
                    field: "id"
                }
            )
        }),
        case("AUTH without mechanism", &format!("{HS}AUTH\t1\n"), |e| {
            matches!(
                e,
                ProtocolError::MissingField {
                    command: "AUTH",
                    field: "mechanism"
                }
            )
        }),
        case(
            "empty id",
            &format!("{HS}AUTH\t\tPLAIN\tservice=smtp\n"),
            |e| matches!(e, ProtocolError::BadId { command: "AUTH" }),
        ),
        case(
            "non-numeric id",
            &format!("{HS}AUTH\tone\tPLAIN\tservice=smtp\n"),
            |e| matches!(e, ProtocolError::BadId { command: "AUTH" }),
        ),
        case(
            "id over 32 bits",
            &format!("{HS}AUTH\t4294967296\tPLAIN\tservice=smtp\n"),
            |e| matches!(e, ProtocolError::BadId { command: "AUTH" }),
        ),
        case(
            "negative id",
            &format!("{HS}AUTH\t-1\tPLAIN\tservice=smtp\n"),
            |e| matches!(e, ProtocolError::BadId { command: "AUTH" }),
        ),
        case(
            "unknown mechanism",
            &format!("{HS}AUTH\t1\tCRAM-MD5\tservice=smtp\n"),
            |e| matches!(e, ProtocolError::UnknownMechanism { mechanism } if mechanism == "CRAM-MD5"),
        ),
        case(
            "missing service",
            &format!("{HS}AUTH\t1\tPLAIN\tnologin\n"),
            |e| matches!(e, ProtocolError::MissingService { id: 1 }),
        ),
        case(
            "parameter after resp",
            &format!("{HS}AUTH\t1\tPLAIN\tservice=smtp\tresp={good_resp}\tsecured\n"),
            |e| matches!(e, ProtocolError::ParameterAfterResp { id: 1 }),
        ),
        case(
            "base64 outside the alphabet",
            &format!("{HS}AUTH\t1\tPLAIN\tservice=smtp\tresp=AGFs*aWNl\n"),
            |e| {
                matches!(
                    e,
                    ProtocolError::InvalidBase64 {
                        command: "AUTH",
                        id: 1
                    }
                )
            },
        ),
        case(
            "CONT for an unknown id",
            &format!("{HS}CONT\t9\tYQ==\n"),
            |e| matches!(e, ProtocolError::UnknownId { id: 9 }),
        ),
        case("CONT without data", &format!("{HS}CONT\t9\n"), |e| {
            matches!(
                e,
                ProtocolError::MissingField {
                    command: "CONT",
                    field: "data"
                }
            )
        }),
        case("CONT with a bad id", &format!("{HS}CONT\tx\tYQ==\n"), |e| {
            matches!(e, ProtocolError::BadId { command: "CONT" })
        }),
        case("CANCEL with a bad id", &format!("{HS}CANCEL\t\n"), |e| {
            matches!(e, ProtocolError::BadId { command: "CANCEL" })
        }),
        case(
            "line too long",
            &format!(
                "{HS}AUTH\t1\tPLAIN\tservice=smtp\tx={}\n",
                "a".repeat(20_000)
            ),
            |e| matches!(e, ProtocolError::LineTooLong { limit: 16384 }),
        ),
        case(
            "line too long without LF",
            &format!("{HS}{}", "a".repeat(40_000)),
            |e| matches!(e, ProtocolError::LineTooLong { .. }),
        ),
    ];

    let mut non_utf8_service = HS.as_bytes().to_vec();
    non_utf8_service.extend_from_slice(b"AUTH\t1\tPLAIN\tservice=sm\xfftp\n");
    cases.push(Case {
        name: "non-UTF-8 service",
        input: non_utf8_service,
        replies: Vec::new(),
        check: |e| matches!(e, ProtocolError::NotUtf8 { field: "service" }),
    });
    let mut non_utf8_command = HS.as_bytes().to_vec();
    non_utf8_command.extend_from_slice(b"AU\xc3TH\t1\tPLAIN\tservice=smtp\n");
    cases.push(Case {
        name: "non-UTF-8 command",
        input: non_utf8_command,
        replies: Vec::new(),
        check: |e| matches!(e, ProtocolError::UnexpectedCommand { command } if command == "AU?TH"),
    });
    cases.push(Case {
        name: "duplicate id",
        input: format!(
            "{HS}{}\n{}\n",
            postfix_auth(1, "LOGIN", 41, None),
            postfix_auth(1, "PLAIN", 41, None)
        )
        .into_bytes(),
        replies: vec!["CONT\t1\tVXNlcm5hbWU6".into()],
        check: |e| matches!(e, ProtocolError::DuplicateId { id: 1 }),
    });
    cases.push(Case {
        name: "duplicate id of a request being verified",
        input: format!(
            "{HS}{}\n{}\n",
            postfix_auth(1, "PLAIN", 41, Some(&plain("", SLOW, PASSWORD))),
            postfix_auth(1, "LOGIN", 41, None)
        )
        .into_bytes(),
        replies: Vec::new(),
        check: |e| matches!(e, ProtocolError::DuplicateId { id: 1 }),
    });
    cases.push(Case {
        name: "CONT while the request is being verified",
        input: format!(
            "{HS}{}\nCONT\t1\tYQ==\n",
            postfix_auth(1, "PLAIN", 41, Some(&plain("", SLOW, PASSWORD)))
        )
        .into_bytes(),
        replies: Vec::new(),
        check: |e| matches!(e, ProtocolError::UnexpectedContinuation { id: 1 }),
    });
    cases.push(Case {
        name: "CONT with an extra field",
        input: format!(
            "{HS}{}\nCONT\t1\tYQ==\tx\n",
            postfix_auth(1, "LOGIN", 41, None)
        )
        .into_bytes(),
        replies: vec!["CONT\t1\tVXNlcm5hbWU6".into()],
        check: |e| matches!(e, ProtocolError::UnexpectedField { command: "CONT" }),
    });
    cases.push(Case {
        name: "mechanism not enabled",
        input: format!("{HS}AUTH\t1\tLOGIN\tservice=smtp\n").into_bytes(),
        replies: Vec::new(),
        check: |e| matches!(e, ProtocolError::UnknownMechanism { mechanism } if mechanism == "LOGIN"),
    });
    cases
}

#[tokio::test(start_paused = true)]
async fn malformed_input_closes_only_that_connection() {
    // A healthy connection that lives through all the broken ones.
    let (mut healthy, healthy_server, _mock) = connected(ServerConfig::default()).await;
    let line = postfix_auth(1, "LOGIN", 41, None);
    assert_eq!(
        healthy.ask(&line).await.as_deref(),
        Some("CONT\t1\tVXNlcm5hbWU6")
    );

    for (n, case) in malformed_cases().into_iter().enumerate() {
        let (logs, guard) = Logs::capture();
        let config = if case.name == "mechanism not enabled" {
            ServerConfig {
                mechanisms: vec![Mechanism::Plain],
                ..ServerConfig::default()
            }
        } else {
            ServerConfig::default()
        };
        let (mut client, server) = start(Mock::new(), config);
        client.read_server_handshake().await;
        client.send_bytes(&case.input).await;
        for reply in &case.replies {
            assert_eq!(
                client.line().await.as_deref(),
                Some(reply.as_str()),
                "{}",
                case.name
            );
        }
        assert_eq!(
            client.line().await,
            None,
            "{}: connection not closed",
            case.name
        );
        let err = finished(server).await.expect_err(case.name);
        assert!(
            (case.check)(&err),
            "{}: unexpected error {err:?}",
            case.name
        );
        assert!(!err.to_string().is_empty());
        let warnings = logs.warnings();
        assert_eq!(warnings.len(), 1, "{}: {warnings:?}", case.name);
        assert!(
            !warnings[0].contains(PASSWORD),
            "{}: password logged",
            case.name
        );
        drop(guard);

        // The healthy connection is unaffected: a full request on it still works.
        let id = 100 + u32::try_from(n).unwrap();
        let line = postfix_auth(id, "PLAIN", 41, Some(&plain("", ALICE, PASSWORD)));
        assert_eq!(
            healthy.ask(&line).await,
            Some(format!("OK\t{id}\tuser=alice@example.test")),
            "healthy connection after {}",
            case.name
        );
    }
    // Its LOGIN request from the start is still open (the request timeout is far away)... unless
    // the virtual clock passed it while verifications slept: either way the connection is fine.
    healthy.shutdown().await;
    healthy.expect_eof().await;
    assert!(finished(healthy_server).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn client_closing_during_the_handshake_is_not_an_error() {
    let (logs, _guard) = Logs::capture();
    let (mut client, server) = start(Mock::new(), ServerConfig::default());
    client.read_server_handshake().await;
    client.send("VERSION\t1\t0\n").await;
    client.shutdown().await;
    client.expect_eof().await;
    assert!(finished(server).await.is_ok());
    assert!(logs.warnings().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Bad credentials from the SMTP client fail the request and keep the connection.

#[tokio::test(start_paused = true)]
async fn undecodable_or_invalid_credentials_fail_only_the_request() {
    let (logs, _guard) = Logs::capture();
    let (mut client, server, mock) = connected(ServerConfig::default()).await;
    let cases: Vec<(String, &str, Refusal)> = vec![
        // Alphabet-clean but undecodable: an SMTP client can send this through Postfix.
        (
            postfix_auth(1, "PLAIN", 41, Some("A")),
            "FAIL\t1",
            Refusal::InvalidBase64,
        ),
        (
            postfix_auth(2, "PLAIN", 41, Some("=AAA")),
            "FAIL\t2",
            Refusal::InvalidBase64,
        ),
        (
            postfix_auth(3, "PLAIN", 41, Some(&b64(b"\0al\xffice\0pw"))),
            "FAIL\t3",
            Refusal::NotUtf8,
        ),
        (
            postfix_auth(4, "PLAIN", 41, Some(&b64(b"\0alice@example.test\0p\xffw"))),
            "FAIL\t4\tuser=alice@example.test",
            Refusal::NotUtf8,
        ),
        (
            postfix_auth(5, "PLAIN", 41, Some(&b64(b"alice\0pw"))),
            "FAIL\t5",
            Refusal::Malformed,
        ),
        (
            postfix_auth(6, "PLAIN", 41, Some(&b64(b"\0\0pw"))),
            "FAIL\t6",
            Refusal::EmptyLogin,
        ),
        (
            postfix_auth(7, "PLAIN", 41, Some(&b64(&[b'a'; 5000]))),
            "FAIL\t7",
            Refusal::TooLarge,
        ),
    ];
    for (line, expect, _) in &cases {
        assert_eq!(client.ask(line).await.as_deref(), Some(*expect), "{line}");
    }
    // LOGIN: bad user name, then bad password.
    client.ask(&postfix_auth(8, "LOGIN", 41, None)).await;
    assert_eq!(client.ask("CONT\t8\t").await.as_deref(), Some("FAIL\t8"));
    client.ask(&postfix_auth(9, "LOGIN", 41, None)).await;
    client.ask("CONT\t9\tYWxpY2VAZXhhbXBsZS50ZXN0").await;
    assert_eq!(
        client
            .ask(&format!("CONT\t9\t{}", b64(b"\xff\xfe")))
            .await
            .as_deref(),
        Some("FAIL\t9\tuser=alice@example.test")
    );
    client.ask(&postfix_auth(10, "LOGIN", 41, None)).await;
    assert_eq!(client.ask("CONT\t10\tQ").await.as_deref(), Some("FAIL\t10"));

    assert!(
        mock.calls().is_empty(),
        "the verifier saw invalid credentials"
    );
    let refusals: Vec<(u32, Refusal)> = mock.refusals().iter().map(|(a, r)| (a.id, *r)).collect();
    let mut expected: Vec<(u32, Refusal)> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| (i as u32 + 1, c.2))
        .collect();
    expected.extend([
        (8, Refusal::EmptyLogin),
        (9, Refusal::NotUtf8),
        (10, Refusal::InvalidBase64),
    ]);
    assert_eq!(refusals, expected);
    // A non-UTF-8 login is reported lossily, with the request information.
    let (attempt, _) = &mock.refusals()[2];
    assert_eq!(attempt.login, "al\u{fffd}ice");
    assert_eq!(attempt.service, "smtp");
    assert_eq!(attempt.client_pid, 22324);

    // The connection is still fine.
    let line = postfix_auth(11, "PLAIN", 41, Some(&plain("", ALICE, PASSWORD)));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("OK\t11\tuser=alice@example.test")
    );
    assert!(logs.warnings().is_empty(), "{:?}", logs.warnings());
    client.shutdown().await;
    assert!(finished(server).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn tolerates_what_dovecot_tolerates() {
    let (mut client, _server, mock) = connected(ServerConfig::default()).await;
    // Lower-case mechanism (Postfix forwards the SMTP client's spelling), unknown and empty
    // parameters, unpadded base64, ports and IPv6.
    let resp = plain("", ALICE, PASSWORD);
    let line = format!(
        "AUTH\t1\tplain\tservice=smtp\t\tsession=xyz\tlocal_name=mx.example.test\tvalid-client-cert\tno-penalty\tlip=::1\trip=::ffff:192.0.2.7\tlport=587\trport=40000\tresp={}",
        resp.trim_end_matches('=')
    );
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("OK\t1\tuser=alice@example.test")
    );
    let a = &mock.calls()[0];
    assert_eq!(a.local_ip, Some(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    assert_eq!(a.remote_ip, Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))));
    assert_eq!((a.local_port, a.remote_port), (Some(587), Some(40000)));
    assert!(!a.secured);
    // Empty lip= (Postfix when it cannot tell its own address).
    let line = format!("AUTH\t2\tPLAIN\tservice=smtp\tlip=\trip=\tresp={resp}");
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("OK\t2\tuser=alice@example.test")
    );
    assert_eq!(mock.calls()[1].local_ip, None);
    // An empty initial response (or SMTP's "=") means none: the mechanism asks.
    assert_eq!(
        client
            .ask("AUTH\t3\tPLAIN\tservice=smtp\tresp=")
            .await
            .as_deref(),
        Some("CONT\t3\t")
    );
    assert_eq!(
        client
            .ask("AUTH\t4\tLOGIN\tservice=smtp\tresp==")
            .await
            .as_deref(),
        Some("CONT\t4\tVXNlcm5hbWU6")
    );
    // CRLF line ends.
    let line = format!("AUTH\t5\tPLAIN\tservice=smtp\tresp={resp}\r");
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("OK\t5\tuser=alice@example.test")
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_drops_a_request() {
    let (mut client, _server, mock) = connected(ServerConfig::default()).await;
    client.ask(&postfix_auth(1, "LOGIN", 41, None)).await;
    client.send_line("CANCEL\t1").await;
    client.send_line("CANCEL\t77").await; // unknown: ignored
                                          // The id is free again.
    assert_eq!(
        client
            .ask(&postfix_auth(1, "LOGIN", 41, None))
            .await
            .as_deref(),
        Some("CONT\t1\tVXNlcm5hbWU6")
    );
    // Cancelling a request that is being verified: it is never answered.
    client
        .send_line(&postfix_auth(
            2,
            "PLAIN",
            41,
            Some(&plain("", SLOW, PASSWORD)),
        ))
        .await;
    client.send_line("CANCEL\t2").await;
    let line = postfix_auth(3, "PLAIN", 41, Some(&plain("", ALICE, PASSWORD)));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("OK\t3\tuser=alice@example.test")
    );
    tokio::time::sleep(SLOW_DELAY * 2).await;
    let line = postfix_auth(4, "PLAIN", 41, Some(&plain("", ALICE, "x")));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("FAIL\t4\tuser=alice@example.test")
    );
    assert!(mock.calls().iter().all(|a| a.id != 1));
}

// ---------------------------------------------------------------------------------------------
// Answers: tab-escaping.

#[tokio::test(start_paused = true)]
async fn user_and_reason_values_are_tab_escaped() {
    let (mut client, _server, _mock) = connected(ServerConfig::default()).await;
    let line = postfix_auth(1, "PLAIN", 41, Some(&plain("", TAB_USER, PASSWORD)));
    let ok = client.ask(&line).await.unwrap();
    assert_eq!(ok, "OK\t1\tuser=tab\u{1}tuser\u{1}nx\u{1}1");
    assert_eq!(ok.split('\t').count(), 3);

    let line = postfix_auth(2, "PLAIN", 41, Some(&plain("", REASON, PASSWORD)));
    let fail = client.ask(&line).await.unwrap();
    assert_eq!(
        fail,
        "FAIL\t2\tuser=reason@example.test\treason=try\u{1}tagain\u{1}nlater"
    );
    assert_eq!(
        dovecot_auth::tab_unescape("try\u{1}tagain\u{1}nlater"),
        "try\tagain\nlater"
    );

    // A login containing TAB/LF/CR (sent by the client) is escaped in FAIL's user= too.
    let line = postfix_auth(3, "PLAIN", 41, Some(&plain("", "e\tv\ni\rl", "x")));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("FAIL\t3\tuser=e\u{1}tv\u{1}ni\u{1}rl")
    );
}

// ---------------------------------------------------------------------------------------------
// Concurrency.

#[tokio::test(start_paused = true)]
async fn a_slow_request_does_not_delay_the_next_one_on_the_same_connection() {
    let (mut client, _server, _mock) = connected(ServerConfig::default()).await;
    let start = Instant::now();
    client
        .send_line(&postfix_auth(
            1,
            "PLAIN",
            41,
            Some(&plain("", SLOW, PASSWORD)),
        ))
        .await;
    client
        .send_line(&postfix_auth(
            2,
            "PLAIN",
            42,
            Some(&plain("", ALICE, PASSWORD)),
        ))
        .await;
    assert_eq!(
        client.line().await.as_deref(),
        Some("OK\t2\tuser=alice@example.test")
    );
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "id 2 waited for id 1"
    );
    assert_eq!(
        client.line().await.as_deref(),
        Some("OK\t1\tuser=slow@example.test")
    );
    assert!(start.elapsed() >= SLOW_DELAY);
}

#[tokio::test(start_paused = true)]
async fn a_slow_connection_does_not_delay_another() {
    let (mut slow, _s1, _m1) = connected(ServerConfig::default()).await;
    let (mut fast, _s2, _m2) = connected(ServerConfig::default()).await;
    let start = Instant::now();
    slow.send_line(&postfix_auth(
        1,
        "PLAIN",
        41,
        Some(&plain("", SLOW, PASSWORD)),
    ))
    .await;
    let line = postfix_auth(1, "PLAIN", 42, Some(&plain("", ALICE, PASSWORD)));
    assert_eq!(
        fast.ask(&line).await.as_deref(),
        Some("OK\t1\tuser=alice@example.test")
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(
        slow.line().await.as_deref(),
        Some("OK\t1\tuser=slow@example.test")
    );
}

#[tokio::test(start_paused = true)]
async fn answers_in_flight_are_delivered_after_the_client_stops_sending() {
    let (mut client, server, _mock) = connected(ServerConfig::default()).await;
    client
        .send_line(&postfix_auth(
            1,
            "PLAIN",
            41,
            Some(&plain("", SLOW, PASSWORD)),
        ))
        .await;
    client.send_line(&postfix_auth(2, "LOGIN", 41, None)).await;
    client.shutdown().await;
    assert_eq!(
        client.line().await.as_deref(),
        Some("CONT\t2\tVXNlcm5hbWU6")
    );
    assert_eq!(
        client.line().await.as_deref(),
        Some("OK\t1\tuser=slow@example.test")
    );
    client.expect_eof().await;
    assert!(finished(server).await.is_ok());
}

// ---------------------------------------------------------------------------------------------
// Limits.

#[tokio::test(start_paused = true)]
async fn pending_cap_drops_the_oldest_request_waiting_for_cont() {
    let (logs, _guard) = Logs::capture();
    let config = ServerConfig {
        max_pending_requests: 2,
        ..ServerConfig::default()
    };
    let (mut client, _server, mock) = connected(config).await;
    for id in 1..=2 {
        client.ask(&postfix_auth(id, "LOGIN", 41, None)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Request 1 waits for its user name; 2 for its password (more recent activity).
    assert_eq!(
        client
            .ask("CONT\t2\tYWxpY2VAZXhhbXBsZS50ZXN0")
            .await
            .as_deref(),
        Some("CONT\t2\tUGFzc3dvcmQ6")
    );
    // A third request: 1 is dropped, silently.
    assert_eq!(
        client
            .ask(&postfix_auth(3, "LOGIN", 41, None))
            .await
            .as_deref(),
        Some("CONT\t3\tVXNlcm5hbWU6")
    );
    // 2 and 3 still work.
    let pw = b64(PASSWORD.as_bytes());
    assert_eq!(
        client.ask(&format!("CONT\t2\t{pw}")).await.as_deref(),
        Some("OK\t2\tuser=alice@example.test")
    );
    // 1 was dropped: its late CONT gets FAIL, and the connection stays up.
    assert_eq!(
        client
            .ask("CONT\t1\tYWxpY2VAZXhhbXBsZS50ZXN0")
            .await
            .as_deref(),
        Some("FAIL\t1")
    );
    client.ask("CONT\t3\tYWxpY2VAZXhhbXBsZS50ZXN0").await;
    assert_eq!(
        client.ask(&format!("CONT\t3\t{pw}")).await.as_deref(),
        Some("OK\t3\tuser=alice@example.test")
    );
    assert_eq!(mock.calls().len(), 2);
    // Many abandoned LOGINs never close the connection.
    for id in 10..60 {
        assert_eq!(
            client.ask(&postfix_auth(id, "LOGIN", 41, None)).await,
            Some(format!("CONT\t{id}\tVXNlcm5hbWU6"))
        );
    }
    let line = postfix_auth(99, "PLAIN", 41, Some(&plain("", ALICE, PASSWORD)));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("OK\t99\tuser=alice@example.test")
    );
    assert!(logs.warnings().is_empty());
}

#[tokio::test(start_paused = true)]
async fn reading_pauses_while_every_slot_is_being_verified() {
    let config = ServerConfig {
        max_pending_requests: 1,
        ..ServerConfig::default()
    };
    let (mut client, _server, _mock) = connected(config).await;
    let start = Instant::now();
    client
        .send_line(&postfix_auth(
            1,
            "PLAIN",
            41,
            Some(&plain("", SLOW, PASSWORD)),
        ))
        .await;
    client
        .send_line(&postfix_auth(
            2,
            "PLAIN",
            41,
            Some(&plain("", ALICE, PASSWORD)),
        ))
        .await;
    assert_eq!(
        client.line().await.as_deref(),
        Some("OK\t1\tuser=slow@example.test")
    );
    assert_eq!(
        client.line().await.as_deref(),
        Some("OK\t2\tuser=alice@example.test")
    );
    assert!(start.elapsed() >= SLOW_DELAY);
}

#[tokio::test(start_paused = true)]
async fn request_timeout_drops_requests_waiting_for_cont() {
    let (logs, _guard) = Logs::capture();
    let (mut client, _server, mock) = connected(ServerConfig::default()).await;
    let timeout = ServerConfig::default().request_timeout;

    // Just under the timeout: still alive (counted from the last prompt).
    client.ask(&postfix_auth(1, "LOGIN", 41, None)).await;
    tokio::time::sleep(timeout - Duration::from_secs(1)).await;
    client.ask("CONT\t1\tYWxpY2VAZXhhbXBsZS50ZXN0").await;
    tokio::time::sleep(timeout - Duration::from_secs(1)).await;
    let pw = b64(PASSWORD.as_bytes());
    assert_eq!(
        client.ask(&format!("CONT\t1\t{pw}")).await.as_deref(),
        Some("OK\t1\tuser=alice@example.test")
    );

    // Past it: dropped silently; a late CONT gets FAIL without asking the verifier.
    client.ask(&postfix_auth(2, "LOGIN", 41, None)).await;
    tokio::time::sleep(timeout + Duration::from_secs(1)).await;
    assert_eq!(
        client
            .ask("CONT\t2\tYWxpY2VAZXhhbXBsZS50ZXN0")
            .await
            .as_deref(),
        Some("FAIL\t2")
    );
    assert_eq!(mock.calls().len(), 1);
    // Its id can be used again.
    assert_eq!(
        client
            .ask(&postfix_auth(
                2,
                "PLAIN",
                41,
                Some(&plain("", ALICE, PASSWORD))
            ))
            .await
            .as_deref(),
        Some("OK\t2\tuser=alice@example.test")
    );
    assert!(logs.warnings().is_empty());
}

#[tokio::test(start_paused = true)]
async fn line_length_limit_is_exact() {
    let config = ServerConfig {
        max_line_length: 100,
        ..ServerConfig::default()
    };
    let (mut client, server, _mock) = connected(config).await;
    let base = "AUTH\t1\tLOGIN\tservice=smtp\tx=";
    let exact = format!("{base}{}", "a".repeat(100 - base.len()));
    assert_eq!(exact.len(), 100);
    assert_eq!(
        client.ask(&exact).await.as_deref(),
        Some("CONT\t1\tVXNlcm5hbWU6")
    );
    let over = format!("{base}{}", "a".repeat(101 - base.len()));
    client.send_line(&over).await;
    client.expect_eof().await;
    assert!(matches!(
        finished(server).await,
        Err(ProtocolError::LineTooLong { limit: 100 })
    ));
}

#[tokio::test(start_paused = true)]
async fn handshake_timeout() {
    for partial in ["", "VERSION\t1\t0\n"] {
        let (logs, _guard) = Logs::capture();
        let (mut client, server) = start(Mock::new(), ServerConfig::default());
        client.read_server_handshake().await;
        client.send(partial).await;
        let start = Instant::now();
        client.expect_eof().await;
        assert!(start.elapsed() >= Duration::from_secs(10));
        assert!(matches!(
            finished(server).await,
            Err(ProtocolError::HandshakeTimeout)
        ));
        assert_eq!(logs.warnings().len(), 1);
    }
}

#[tokio::test(start_paused = true)]
async fn no_idle_timeout_by_default() {
    let (mut client, server, _mock) = connected(ServerConfig::default()).await;
    tokio::time::sleep(Duration::from_secs(48 * 3600)).await;
    assert!(!server.is_finished());
    let line = postfix_auth(1, "PLAIN", 41, Some(&plain("", ALICE, PASSWORD)));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("OK\t1\tuser=alice@example.test")
    );
}

#[tokio::test(start_paused = true)]
async fn idle_timeout_when_configured() {
    let config = ServerConfig {
        idle_timeout: Some(Duration::from_secs(3600)),
        ..ServerConfig::default()
    };
    let (mut client, server, _mock) = connected(config).await;
    let start = Instant::now();
    // A request waiting for CONT is not idle: the request timeout drops it first, then the idle
    // clock runs.
    client.ask(&postfix_auth(1, "LOGIN", 41, None)).await;
    client.expect_eof().await;
    assert!(start.elapsed() >= Duration::from_secs(3600));
    assert!(finished(server).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn a_client_that_does_not_read_hits_the_write_timeout() {
    let (logs, _guard) = Logs::capture();
    // A tiny pipe: the handshake alone does not fit.
    let (_client, server) = start_with_buffer(Mock::new(), ServerConfig::default(), 16);
    let err = finished(server).await.unwrap_err();
    assert!(matches!(err, ProtocolError::WriteTimeout), "{err:?}");
    assert_eq!(logs.warnings().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_over_a_real_unix_socket_pair() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (client, server) = tokio::net::UnixStream::pair().unwrap();
    let mock = Mock::new();
    let config = ServerConfig::default();
    let ids = dovecot_auth::ConnectionIds::new(1, 1);
    let task =
        tokio::spawn(
            async move { dovecot_auth::serve_connection(server, mock, &config, ids).await },
        );
    let (read, mut write) = client.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(HS.as_bytes()).await.unwrap();
    while lines.next_line().await.unwrap().as_deref() != Some("DONE") {}
    let line = postfix_auth(1, "PLAIN", 41, Some(&plain("", ALICE, PASSWORD)));
    write
        .write_all(format!("{line}\n").as_bytes())
        .await
        .unwrap();
    assert_eq!(
        lines.next_line().await.unwrap().as_deref(),
        Some("OK\t1\tuser=alice@example.test")
    );
    drop(write);
    assert_eq!(lines.next_line().await.unwrap(), None);
    assert!(task.await.unwrap().is_ok());
}

#[tokio::test(start_paused = true)]
async fn extreme_limits_do_not_panic() {
    let config = ServerConfig {
        max_line_length: usize::MAX,
        max_response_size: usize::MAX,
        max_pending_requests: usize::MAX,
        request_timeout: Duration::MAX,
        handshake_timeout: Duration::MAX,
        idle_timeout: Some(Duration::MAX),
        verify_timeout: Duration::MAX,
        write_timeout: Duration::MAX,
        ..ServerConfig::default()
    };
    let (mut client, server, _mock) = connected(config).await;
    client.ask(&postfix_auth(1, "LOGIN", 41, None)).await;
    let line = postfix_auth(2, "PLAIN", 41, Some(&plain("", ALICE, PASSWORD)));
    assert_eq!(
        client.ask(&line).await.as_deref(),
        Some("OK\t2\tuser=alice@example.test")
    );
    client.shutdown().await;
    client.expect_eof().await;
    assert!(finished(server).await.is_ok());

    // And the smallest ones: a cap of 0 counts as 1.
    let config = ServerConfig {
        max_pending_requests: 0,
        ..ServerConfig::default()
    };
    let (mut client, _server, _mock) = connected(config).await;
    client.ask(&postfix_auth(1, "LOGIN", 41, None)).await;
    assert_eq!(
        client
            .ask(&postfix_auth(2, "LOGIN", 41, None))
            .await
            .as_deref(),
        Some("CONT\t2\tVXNlcm5hbWU6")
    );
    assert_eq!(
        client.ask("CONT\t1\tYQ==").await.as_deref(),
        Some("FAIL\t1")
    );
}
