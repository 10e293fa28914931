//! Whole milter sessions: the fuzz input is a series of milter commands that Postfix's side
//! of the connection sends to the submission or inbound milter, served in-process by
//! indymilter over an in-memory stream, with a store in a temporary directory and (inbound)
//! DNS answers from a `StaticZone`.
//!
//! Input format, so that mutations keep the framing: records of `command (1 byte)`,
//! `length (2 bytes, big-endian, cut to what is left)`, `payload`; each is sent as the
//! milter packet `length + 1 (4 bytes) command payload`, after an option negotiation
//! (version 6, every action and protocol option, as Postfix offers) that every session starts with.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;

use crate::authn::{Authenticator, StaticZone};
use crate::config::Config;
use crate::events::EventSink;
use crate::milter;
use crate::model::{AccountKind, SenderCheck};
use crate::store::{prelude::*, sqlite::SqliteStore, Pool};

/// Which milter a session talks to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Submission,
    Inbound,
}

/// Connections handed to indymilter as if accepted from a socket.
struct Channel(mpsc::UnboundedReceiver<DuplexStream>);

impl indymilter::Listener for Channel {
    type Io = DuplexStream;

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<DuplexStream>> {
        match self.0.poll_recv(cx) {
            Poll::Ready(Some(s)) => Poll::Ready(Ok(s)),
            Poll::Ready(None) => Poll::Pending,
            Poll::Pending => Poll::Pending,
        }
    }
}

struct Milter {
    rt: tokio::runtime::Runtime,
    connect: mpsc::UnboundedSender<DuplexStream>,
    store: SqliteStore,
    sessions: u64,
    _events: Arc<EventSink>,
}

thread_local! {
    static MILTERS: RefCell<Vec<(bool, Milter)>> = const { RefCell::new(Vec::new()) };
}

/// The directory of this process's fuzzing stores (in memory where `/dev/shm` exists).
fn data_root() -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("postwarden-fuzz-{}", std::process::id()))
}

fn data_dir(which: Which) -> PathBuf {
    let name = match which {
        Which::Submission => "submission",
        Which::Inbound => "inbound",
    };
    data_root().join(format!("{name}-{:?}", std::thread::current().id()))
}

/// Stops the milters this thread started and removes their stores.
pub fn cleanup() {
    MILTERS.with(|m| m.borrow_mut().clear());
    for which in [Which::Submission, Which::Inbound] {
        let _ = std::fs::remove_dir_all(data_dir(which));
    }
    let _ = std::fs::remove_dir(data_root());
}

fn start(which: Which) -> Milter {
    let dir = data_dir(which);
    std::fs::create_dir_all(&dir).expect("fuzz data directory");
    let cfg = Config::parse(
        &format!(
            "data_dir = {:?}\nmax_message_mib = 1\n[inbound]\nauthserv_id = \"mx.fuzz.test\"\n",
            dir.display().to_string()
        ),
        "fuzz",
    )
    .expect("fuzz config");
    let mut store =
        SqliteStore::open(&cfg.store_path(), Duration::from_secs(5), "fuzz").expect("fuzz store");
    store.org_add("acme", SenderCheck::Account).unwrap();
    store.org_add("disc", SenderCheck::Domain).unwrap();
    store.domain_add("acme.example", "acme", true).unwrap();
    store.domain_add("old.example", "acme", false).unwrap();
    store.domain_add("disc.example", "disc", true).unwrap();
    store
        .account_add("alice@acme.example", "acme.example", AccountKind::EndUser)
        .unwrap();
    let hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    store
        .credential_add("acme", "laptop", "acme-laptop", hash)
        .unwrap();
    store
        .credential_add("disc", "server", "disc-server", hash)
        .unwrap();
    let cfg = Arc::new(cfg);
    let events = EventSink::new(Pool::new(&cfg));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("fuzz-milter")
        .build()
        .expect("tokio runtime");
    let callbacks_submission;
    let callbacks_inbound;
    let (connect, accepted) = mpsc::unbounded_channel();
    let listener = Channel(accepted);
    let config = indymilter::Config::default();
    match which {
        Which::Submission => {
            callbacks_submission =
                milter::submission::callbacks(milter::submission::SubmissionMilter::new(
                    Arc::clone(&cfg),
                    Pool::new(&cfg),
                    Arc::clone(&events),
                ));
            rt.spawn(indymilter::run(
                listener,
                callbacks_submission,
                config,
                std::future::pending::<()>(),
            ));
        }
        Which::Inbound => {
            let mut zone = StaticZone::new();
            zone.txt("sender.example", "v=spf1 ip4:192.0.2.0/24 -all")
                .txt("_dmarc.sender.example", "v=DMARC1; p=reject")
                .txt("_dmarc.lists.example", "v=DMARC1; p=quarantine; pct=50")
                .address("mx.sender.example", [192, 0, 2, 9].into());
            callbacks_inbound =
                milter::inbound::callbacks(milter::inbound::InboundMilter::with_authenticator(
                    Arc::clone(&cfg),
                    Arc::clone(&events),
                    Authenticator::with_zone(zone),
                ));
            rt.spawn(indymilter::run(
                listener,
                callbacks_inbound,
                config,
                std::future::pending::<()>(),
            ));
        }
    }
    Milter {
        rt,
        connect,
        store,
        sessions: 0,
        _events: events,
    }
}

/// The packets `data` stands for (see the module documentation).
pub fn packets(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut push = |cmd: u8, payload: &[u8]| {
        out.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
        out.push(cmd);
        out.extend_from_slice(payload);
    };
    let mut optneg = Vec::new();
    optneg.extend_from_slice(&6u32.to_be_bytes());
    optneg.extend_from_slice(&0x1ffu32.to_be_bytes());
    // What Postfix 3 offers: every protocol option (skipping steps, no replies, leading
    // space of header values); the milters pick theirs.
    optneg.extend_from_slice(&0x001f_ffffu32.to_be_bytes());
    push(b'O', &optneg);
    let mut rest = data;
    while let Some((&cmd, tail)) = rest.split_first() {
        let (len, tail) = match tail {
            [hi, lo, tail @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), tail),
            _ => (0, &[][..]),
        };
        let len = len.min(tail.len());
        push(cmd, &tail[..len]);
        rest = &tail[len..];
    }
    out
}

/// The fuzz input for a session of `(command, payload)` records (for seeds and tests).
pub fn records(list: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (cmd, payload) in list {
        out.push(*cmd);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
    }
    out
}

/// Runs one session; returns what the milter answered.
fn session(which: Which, data: &[u8]) -> Vec<u8> {
    let wire = packets(data);
    MILTERS.with(|m| {
        let mut milters = m.borrow_mut();
        let key = which == Which::Inbound;
        if !milters.iter().any(|(k, _)| *k == key) {
            milters.push((key, start(which)));
        }
        let (_, milter) = milters.iter_mut().find(|(k, _)| *k == key).unwrap();
        let (client, server) = tokio::io::duplex(64 * 1024);
        milter.connect.send(server).expect("milter listener");
        let output = milter.rt.block_on(async move {
            let (mut rx, mut tx) = tokio::io::split(client);
            let send = async {
                let _ = tx.write_all(&wire).await;
                let _ = tx.shutdown().await;
            };
            let mut output = Vec::new();
            let receive = async {
                let _ = rx.read_to_end(&mut output).await;
            };
            tokio::join!(send, receive);
            output
        });
        check_replies(&output);
        milter.sessions += 1;
        if milter.sessions % 10_000 == 0 {
            // Keep the event table small.
            let _ = milter.store.prune_events(i64::MAX);
        }
        output
    })
}

/// Every reply is a whole packet.
fn check_replies(mut output: &[u8]) {
    while !output.is_empty() {
        assert!(output.len() >= 5, "short reply packet {output:?}");
        let len = u32::from_be_bytes(output[..4].try_into().unwrap()) as usize;
        assert!(len >= 1 && output.len() >= 4 + len, "cut reply packet");
        output = &output[4 + len..];
    }
}

pub fn submission(data: &[u8]) {
    session(Which::Submission, data);
}

pub fn inbound(data: &[u8]) {
    session(Which::Inbound, data);
}

/// Whole records (a connect, macros, envelope, headers) the mutator inserts.
pub fn dict() -> &'static [&'static [u8]] {
    use std::sync::OnceLock;
    static DICT: OnceLock<Vec<&'static [u8]>> = OnceLock::new();
    DICT.get_or_init(|| {
        let items: Vec<Vec<u8>> = vec![
            records(&[(b'C', b"client.example\x004\x9c\x40192.0.2.9\x00")]),
            records(&[(b'H', b"client.example\x00")]),
            records(&[(b'D', b"M{auth_authen}\x00acme-laptop\x00i\x00ABC123\x00")]),
            records(&[(b'D', b"Ni\x00ABC123\x00")]),
            records(&[(b'M', b"<alice@acme.example>\x00")]),
            records(&[(b'M', b"<>\x00")]),
            records(&[(b'R', b"<rcpt@postwarden.test>\x00")]),
            records(&[(b'L', b"From\x00 alice@acme.example\x00")]),
            records(&[(b'L', b"From\x00 \"A\" <ceo@sender.example>\x00")]),
            records(&[(b'L', b"List-Id\x00 <users.lists.example>\x00")]),
            records(&[(b'N', b"")]),
            records(&[(b'B', b"hello\r\n")]),
            records(&[(b'E', b"")]),
            records(&[(b'A', b"")]),
            records(&[(b'T', b"")]),
            records(&[(b'Q', b"")]),
            b"\x00\x00".to_vec(),
            b"\x00\x01".to_vec(),
            b"\xff\xff".to_vec(),
        ];
        items
            .into_iter()
            .map(|v| &*Box::leak(v.into_boxed_slice()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(target: &str, name: &str) -> Vec<u8> {
        std::fs::read(crate::fuzz::seed_dir(target).join(name)).unwrap()
    }

    fn says(output: &[u8], text: &str) -> bool {
        output.windows(text.len()).any(|w| w == text.as_bytes())
    }

    /// The seeds get past the framing into the milters' own decisions.
    #[test]
    fn seed_sessions_reach_the_milters() {
        let out = session(Which::Submission, &seed("milter-submission", "no-auth.bin"));
        assert!(says(&out, "530 5.7.0"), "{out:?}");
        let out = session(
            Which::Submission,
            &seed("milter-submission", "refused-envelope.bin"),
        );
        assert!(says(&out, "553 5.7.1"), "{out:?}");
        let out = session(
            Which::Submission,
            &seed("milter-submission", "accepted.bin"),
        );
        assert!(!says(&out, "5.7."), "{out:?}");
        let out = session(Which::Inbound, &seed("milter-inbound", "spf-dmarc.bin"));
        assert!(says(&out, "spf=pass"), "{out:?}");
        assert!(says(&out, "dmarc=pass"), "{out:?}");
        cleanup();
    }
}
