//! Fuzz targets (feature `fuzz`): each takes arbitrary bytes and must neither panic, hang nor
//! grow without bound, whatever the bytes are. They check cheap properties on the way (the
//! escaping round trip, the shape of every line the server writes). postwarden's fuzz harness
//! (`tests/fuzz/harness.rs` in the workspace) drives them; they are plain `fn(&[u8])`, so any
//! other engine (cargo-fuzz, afl.rs) can call them too.

use std::cell::RefCell;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::escape::{tab_escape, tab_unescape, tab_unescape_bytes};
use crate::mech::{self, Stage, Step};
use crate::parse::{command_name, parse_line, ClientLine};
use crate::{Attempt, ConnectionIds, Mechanism, ServerConfig, Verdict, Verifier};

/// The line parser, the tab-escaping and the mechanisms, called directly: `data` split at LF
/// is a series of client lines; every line is also fed to both mechanisms as a response.
pub fn protocol(data: &[u8]) {
    escaping(data);
    for line in data.split(|&b| b == b'\n') {
        let _ = command_name(line);
        match parse_line(line) {
            Ok(ClientLine::Auth(auth)) => {
                // A parsed AUTH keeps what the line said: its service unescapes to UTF-8 and an
                // initial response is in the base64 alphabet (the parser's own promise).
                if let Some(resp) = auth.resp {
                    assert!(resp
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')));
                }
                let _ = auth.service.len();
            }
            Ok(ClientLine::Cont { data, .. }) => mechanisms(data),
            Ok(_) => {}
            Err(e) => {
                // Error messages are logged: no control characters from the line may reach them.
                let text = e.to_string();
                assert!(
                    !text.chars().any(|c| c.is_control()),
                    "control character in {text:?}"
                );
            }
        }
    }
}

/// Tab-escaping: escaping any text leaves no TAB, CR, LF or NUL and unescapes to the text
/// again; the byte-level and text-level unescaping agree.
fn escaping(data: &[u8]) {
    let bytes = tab_unescape_bytes(data);
    assert!(bytes.len() <= data.len());
    if let Ok(text) = std::str::from_utf8(data) {
        let unescaped = tab_unescape(text);
        assert_eq!(
            unescaped.as_bytes(),
            &*bytes,
            "byte and text unescaping differ"
        );
        let escaped = tab_escape(text);
        assert!(
            !escaped
                .bytes()
                .any(|b| matches!(b, b'\t' | b'\r' | b'\n' | 0)),
            "escaped value {escaped:?} holds a separator"
        );
        assert_eq!(tab_unescape(&escaped), text, "escaping does not round-trip");
    }
}

/// Feeds `base64` (any bytes: the mechanisms are only ever given the base64 alphabet, so other
/// bytes are dropped first) to each stage of both mechanisms.
fn mechanisms(base64: &[u8]) {
    let clean: Vec<u8> = base64
        .iter()
        .copied()
        .filter(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
        .collect();
    for stage in [
        Stage::PlainResponse,
        Stage::LoginUser,
        Stage::LoginPassword {
            login: "alice@example.test".into(),
        },
    ] {
        match mech::step(stage, &clean, 4096) {
            Step::Verify {
                login,
                authzid,
                password,
            } => {
                assert!(!login.is_empty(), "empty login handed to the verifier");
                assert!(authzid.is_none_or(|a| a == login), "authzid differs");
                assert!(!password.contains('\0') && !login.contains('\0'));
            }
            Step::Refuse(r) => {
                assert!(r.reply_user.is_none_or(|u| !u.is_empty()));
            }
            Step::Continue { .. } => {}
        }
    }
    let _ = mech::initial(Mechanism::Plain);
}

/// A verifier that accepts `alice@example.test` / `secret`, answers a fault for
/// `fault@example.test`, a user name full of separators for `tab@example.test` and a reason full
/// of separators to everyone else: whatever it says must reach the wire escaped.
struct Trivial;

impl Verifier for Trivial {
    async fn verify(&self, attempt: &Attempt) -> Verdict {
        match (attempt.login.as_str(), attempt.password.as_str()) {
            ("alice@example.test", "secret") => Verdict::Ok {
                user: attempt.login.clone(),
            },
            ("fault@example.test", _) => Verdict::Fault("store unreadable".into()),
            ("tab@example.test", _) => Verdict::Ok {
                user: "tab\tuser\n\r\0\u{1}".into(),
            },
            _ => Verdict::Fail {
                reason: Some("wrong\tpassword\nOK\t1".into()),
            },
        }
    }
}

thread_local! {
    static RUNTIME: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
}

/// One whole connection: `data` is everything a client sends (then it closes its side), served
/// by [`serve_connection`](crate::serve_connection) over an in-memory stream with a trivial
/// verifier, on a current-thread runtime whose clock is paused (timeouts pass at once when
/// nothing else can run, so none of them makes a run slow). Everything the server writes must be
/// whole lines of the commands it knows, free of NUL and CR, and the connection must end.
pub fn server(data: &[u8]) {
    RUNTIME.with(|rt| {
        let mut rt = rt.borrow_mut();
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .expect("tokio runtime")
        });
        let output = rt.block_on(session(data));
        check_server_output(&output);
    });
}

async fn session(data: &[u8]) -> Vec<u8> {
    let config = ServerConfig {
        // Small enough that a fuzzer reaches it, large enough for the transcript's lines.
        max_line_length: 512,
        max_response_size: 256,
        max_pending_requests: 4,
        ..ServerConfig::default()
    };
    let (client, server) = tokio::io::duplex(1024);
    let ids = ConnectionIds {
        server_pid: 1,
        connection_uid: 1,
        cookie: Some([0xab; 16]),
    };
    let serve = crate::serve_connection(server, Arc::new(Trivial), &config, ids);
    let talk = async move {
        let (mut rx, mut tx) = tokio::io::split(client);
        let send = async {
            // The server may close at once (a protocol error): it stops reading, and writes
            // then fail, which is fine.
            let _ = tx.write_all(data).await;
            let _ = tx.shutdown().await;
        };
        let mut output = Vec::new();
        let receive = async {
            let _ = rx.read_to_end(&mut output).await;
        };
        tokio::join!(send, receive);
        output
    };
    let (result, output) = tokio::join!(serve, talk);
    let _ = result;
    output
}

fn check_server_output(output: &[u8]) {
    if output.is_empty() {
        return;
    }
    assert_eq!(output.last(), Some(&b'\n'), "the last line is cut short");
    for line in output[..output.len() - 1].split(|&b| b == b'\n') {
        assert!(
            !line.iter().any(|&b| b == 0 || b == b'\r'),
            "NUL or CR in {line:?}"
        );
        let name = command_name(line);
        assert!(
            matches!(
                name,
                b"VERSION"
                    | b"MECH"
                    | b"SPID"
                    | b"CUID"
                    | b"COOKIE"
                    | b"DONE"
                    | b"OK"
                    | b"FAIL"
                    | b"CONT"
            ),
            "unexpected server line {:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_accept_a_whole_postfix_conversation() {
        let data = b"VERSION\t1\t0\nCPID\t22324\nAUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.41\tsecured\tresp=AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\nAUTH\t2\tLOGIN\tservice=smtp\nCONT\t2\tdGFiQGV4YW1wbGUudGVzdA==\nCONT\t2\tYQ==\n";
        protocol(data);
        server(data);
        let output = RUNTIME.with(|rt| rt.borrow().as_ref().unwrap().block_on(session(data)));
        let text = String::from_utf8(output).unwrap();
        assert!(text.contains("OK\t1\tuser=alice@example.test\n"), "{text}");
        assert!(
            text.contains("OK\t2\tuser=tab\u{1}tuser\u{1}n\u{1}r\u{1}0\u{1}1\n"),
            "{text}"
        );
    }
}
