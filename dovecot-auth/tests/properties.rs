//! Property tests on whole connections: whatever a client sends, the server never panics, always
//! finishes (with `Ok` or a `ProtocolError`), and only ever writes well-formed lines.

mod support;

use proptest::prelude::*;
use support::*;
use tokio::io::AsyncReadExt;

/// A `resp=` or `CONT` payload: `good` (the right thing for the step) most of the time,
/// otherwise PLAIN-shaped credentials, base64 of junk, or alphabet-clean junk.
fn payload(good: String) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => Just(good),
        1 => ("[a-z@.]{0,8}", "[a-z ]{0,8}", "[a-z]{0,3}").prop_map(|(u, p, z)| plain(&z, &u, &p)),
        1 => proptest::collection::vec(any::<u8>(), 0..24).prop_map(|raw| b64(&raw)),
        1 => "[A-Za-z0-9+/=]{0,12}",
    ]
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (1u32..5).prop_map(|n| n.to_string()),
        1 => Just("4294967295".to_owned()),
        1 => "[0-9x+-]{0,3}",
    ]
}

/// One Postfix-like exchange (an `AUTH` and the `CONT`s that follow it, with the id `{id}` filled
/// in later), or now and then a stray or broken line.
fn exchange() -> impl Strategy<Value = Vec<String>> {
    let param = prop_oneof![
        Just("nologin".to_owned()),
        Just("secured".to_owned()),
        Just("lip=127.0.0.1".to_owned()),
        Just("rip=::1".to_owned()),
        Just("rport=70000".to_owned()),
        Just("session=abc".to_owned()),
        Just(String::new()),
    ];
    let mech = prop_oneof![
        5 => Just("PLAIN"),
        5 => Just("LOGIN"),
        1 => Just("login"),
        1 => Just("CRAM-MD5"),
    ];
    let service = prop_oneof![9 => Just(true), 1 => Just(false)];
    // How many CONTs to send compared with what the mechanism needs: mostly exactly that, some
    // times one less (an abandoned request), rarely one more (a protocol error).
    let extra = prop_oneof![8 => Just(0i32), 3 => Just(-1), 1 => Just(1)];
    let user = payload(b64(ALICE.as_bytes()));
    let password = payload(b64(PASSWORD.as_bytes()));
    let credentials = payload(plain("", ALICE, PASSWORD));
    let auth = (
        mech,
        service,
        proptest::collection::vec(param, 0..4),
        any::<bool>(),
        extra,
        (credentials, user, password),
    )
        .prop_map(
            |(mech, service, params, with_resp, extra, (creds, user, password))| {
                let mut line = format!("AUTH\t{{id}}\t{mech}");
                if service {
                    line.push_str("\tservice=smtp");
                }
                for p in params {
                    line.push('\t');
                    line.push_str(&p);
                }
                let steps: Vec<String> = if mech == "PLAIN" {
                    vec![creds]
                } else {
                    vec![user, password]
                };
                let mut steps = steps.into_iter();
                if with_resp {
                    line.push_str("\tresp=");
                    line.push_str(&steps.next().unwrap_or_default());
                }
                let mut conts: Vec<String> = steps.collect();
                match extra {
                    -1 => {
                        conts.pop();
                    }
                    1 => conts.push(b64(b"extra")),
                    _ => {}
                }
                let mut lines = vec![line];
                lines.extend(conts.into_iter().map(|c| format!("CONT\t{{id}}\t{c}")));
                lines
            },
        );
    let stray = prop_oneof![
        (id(), payload(b64(ALICE.as_bytes()))).prop_map(|(id, data)| format!("CONT\t{id}\t{data}")),
        id().prop_map(|id| format!("CANCEL\t{id}")),
        Just("CANCEL\t{id}".to_owned()),
        proptest::collection::vec("[ -~]{0,6}", 1..4).prop_map(|f| f.join("\t")),
    ];
    prop_oneof![
        12 => auth,
        1 => stray.prop_map(|line| vec![line]),
    ]
}

/// A session: exchanges with ids counting up from 1, as Postfix numbers its requests.
fn session(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(exchange(), 0..max).prop_map(|exchanges| {
        let mut out = Vec::new();
        for (n, lines) in exchanges.into_iter().enumerate() {
            for line in lines {
                out.extend_from_slice(line.replace("{id}", &(n + 1).to_string()).as_bytes());
                out.push(b'\n');
            }
        }
        out
    })
}

fn check_output(output: &[u8], handshake_sent: bool) -> Result<(), TestCaseError> {
    let text =
        std::str::from_utf8(output).map_err(|_| TestCaseError::fail("server wrote non-UTF-8"))?;
    prop_assert!(
        text.is_empty() || text.ends_with('\n'),
        "unterminated output"
    );
    let mut lines = text.lines();
    for expected in TRANSCRIPT_HANDSHAKE {
        prop_assert_eq!(lines.next(), Some(expected));
    }
    for line in lines {
        prop_assert!(handshake_sent, "answer without a handshake: {:?}", line);
        let fields: Vec<&str> = line.split('\t').collect();
        prop_assert!(fields.len() >= 2, "short line {:?}", line);
        prop_assert!(fields[1].parse::<u32>().is_ok(), "bad id in {:?}", line);
        match fields[0] {
            "CONT" => {
                prop_assert_eq!(fields.len(), 3);
                prop_assert!(["", "VXNlcm5hbWU6", "UGFzc3dvcmQ6"].contains(&fields[2]));
            }
            "OK" => {
                prop_assert_eq!(fields.len(), 3);
                prop_assert!(fields[2].len() > "user=".len() && fields[2].starts_with("user="));
            }
            "FAIL" => {
                prop_assert!(fields.len() <= 4, "{:?}", line);
                for extra in &fields[2..] {
                    prop_assert!(extra.starts_with("user=") || extra.starts_with("reason="));
                }
            }
            other => prop_assert!(false, "unexpected reply {:?}", other),
        }
        prop_assert!(!line.contains('\r') && !line.contains('\0'));
    }
    Ok(())
}

fn run_connection(input: Vec<u8>, handshake: bool) -> Result<(), TestCaseError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (stream, server) = start_raw(
            Mock::new(),
            dovecot_auth::ServerConfig::default(),
            64 * 1024,
        );
        let mut all = Vec::new();
        if handshake {
            all.extend_from_slice(b"VERSION\t1\t0\nCPID\t22324\n");
        }
        all.extend_from_slice(&input);
        let (mut reader, mut writer) = tokio::io::split(stream);
        let read_all = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = reader.read_to_end(&mut out).await;
            out
        });
        {
            use tokio::io::AsyncWriteExt;
            let _ = writer.write_all(&all).await;
            let _ = writer.shutdown().await;
        }
        // Must finish, with Ok or a ProtocolError; a panic fails the test here.
        let result = finished(server).await;
        drop(writer);
        let output = read_all.await.expect("reader");
        check_output(&output, handshake)?;
        if let Err(e) = &result {
            prop_assert!(!e.to_string().is_empty());
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300), handshake in any::<bool>()) {
        run_connection(bytes, handshake)?;
    }

    #[test]
    fn postfix_like_sessions_never_panic(input in session(10)) {
        run_connection(input, true)?;
    }

    #[test]
    fn command_sequences_with_raw_bytes_never_panic(
        session in session(6),
        raw in proptest::collection::vec(any::<u8>(), 0..40),
        at in any::<proptest::sample::Index>(),
    ) {
        let mut input = session;
        let pos = at.index(input.len() + 1);
        input.splice(pos..pos, raw);
        run_connection(input, true)?;
    }
}
