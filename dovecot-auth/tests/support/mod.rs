//! Test harness: a mock verifier, an in-memory client, and a log collector.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dovecot_auth::{
    serve_connection, Attempt, ConnectionIds, ProtocolError, Refusal, ServerConfig, Verdict,
    Verifier,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;

pub const PASSWORD: &str = "correct horse";
pub const ALICE: &str = "alice@example.test";

/// Logins with special behaviour.
pub const FAULT: &str = "fault@example.test";
pub const EMPTY_USER: &str = "empty@example.test";
pub const PANIC: &str = "panic@example.test";
pub const HANG: &str = "hang@example.test";
pub const TAB_USER: &str = "tab@example.test";
pub const REASON: &str = "reason@example.test";
pub const SLOW: &str = "slow@example.test";

/// How long the verifier sleeps for `SLOW`.
pub const SLOW_DELAY: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct Mock {
    pub calls: Mutex<Vec<Attempt>>,
    pub refusals: Mutex<Vec<(Attempt, Refusal)>>,
}

impl Mock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn calls(&self) -> Vec<Attempt> {
        self.calls.lock().unwrap().clone()
    }

    pub fn refusals(&self) -> Vec<(Attempt, Refusal)> {
        self.refusals.lock().unwrap().clone()
    }
}

impl Verifier for Mock {
    async fn verify(&self, attempt: &Attempt) -> Verdict {
        self.calls.lock().unwrap().push(attempt.clone());
        let good = attempt.password == PASSWORD;
        match attempt.login.as_str() {
            FAULT => Verdict::Fault("store unreadable".into()),
            EMPTY_USER => Verdict::Ok {
                user: String::new(),
            },
            PANIC => panic!("verifier bug (expected by the test)"),
            HANG => std::future::pending().await,
            TAB_USER if good => Verdict::Ok {
                user: "tab\tuser\nx\u{1}".into(),
            },
            REASON => Verdict::Fail {
                reason: Some("try\tagain\nlater".into()),
            },
            SLOW => {
                tokio::time::sleep(SLOW_DELAY).await;
                if good {
                    Verdict::Ok {
                        user: attempt.login.clone(),
                    }
                } else {
                    Verdict::Fail { reason: None }
                }
            }
            ALICE if good => Verdict::Ok {
                user: attempt.login.clone(),
            },
            _ => Verdict::Fail { reason: None },
        }
    }

    fn refused(&self, attempt: &Attempt, why: Refusal) {
        self.refusals.lock().unwrap().push((attempt.clone(), why));
    }
}

pub fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

pub fn plain(authzid: &str, login: &str, password: &str) -> String {
    b64(format!("{authzid}\0{login}\0{password}").as_bytes())
}

/// The AUTH line Postfix 3.7 sends (transcript), without the LF.
pub fn postfix_auth(id: u32, mech: &str, rip_last: u8, resp: Option<&str>) -> String {
    let mut line = format!(
        "AUTH\t{id}\t{mech}\tservice=smtp\tnologin\tlip=127.0.0.1\trip=127.0.0.{rip_last}\tsecured"
    );
    if let Some(resp) = resp {
        line.push_str("\tresp=");
        line.push_str(resp);
    }
    line
}

pub const COOKIE: [u8; 16] = [
    0xe8, 0x75, 0xd1, 0x34, 0xfd, 0x9d, 0x9c, 0xc5, 0x9d, 0x62, 0x30, 0xb6, 0xc0, 0xc0, 0x6d, 0xa5,
];

/// The server's handshake from the transcript (SPID 22341, CUID 1).
pub const TRANSCRIPT_HANDSHAKE: [&str; 7] = [
    "VERSION\t1\t2",
    "MECH\tPLAIN\tplaintext",
    "MECH\tLOGIN\tplaintext",
    "SPID\t22341",
    "CUID\t1",
    "COOKIE\te875d134fd9d9cc59d6230b6c0c06da5",
    "DONE",
];

pub struct Client {
    reader: BufReader<ReadHalf<DuplexStream>>,
    writer: WriteHalf<DuplexStream>,
}

pub type Server = JoinHandle<Result<(), ProtocolError>>;

/// Starts a server task on an in-memory connection with the transcript's ids.
pub fn start(verifier: Arc<Mock>, config: ServerConfig) -> (Client, Server) {
    start_with_buffer(verifier, config, 64 * 1024)
}

pub fn start_with_buffer(
    verifier: Arc<Mock>,
    config: ServerConfig,
    buffer: usize,
) -> (Client, Server) {
    let (client, handle) = start_raw(verifier, config, buffer);
    (Client::new(client), handle)
}

/// Starts a server task and returns the client's end of the connection as is.
pub fn start_raw(
    verifier: Arc<Mock>,
    config: ServerConfig,
    buffer: usize,
) -> (DuplexStream, Server) {
    let (client, server) = tokio::io::duplex(buffer);
    let ids = ConnectionIds {
        server_pid: 22341,
        connection_uid: 1,
        cookie: Some(COOKIE),
    };
    let handle =
        tokio::spawn(async move { serve_connection(server, verifier, &config, ids).await });
    (client, handle)
}

/// Long enough that every server timer fires first when time is paused; short enough that a
/// broken test fails instead of hanging.
const READ_LIMIT: Duration = Duration::from_secs(24 * 3600);

impl Client {
    /// The client's side of an in-memory connection.
    pub fn new(stream: DuplexStream) -> Client {
        let (reader, writer) = tokio::io::split(stream);
        Client {
            reader: BufReader::new(reader),
            writer,
        }
    }

    pub async fn send(&mut self, text: &str) {
        self.send_bytes(text.as_bytes()).await;
    }

    /// Sends a line (adds the LF).
    pub async fn send_line(&mut self, line: &str) {
        self.send(&format!("{line}\n")).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        // The server may already have closed; a failed write shows up as EOF when reading.
        let _ = self.writer.write_all(bytes).await;
    }

    pub async fn shutdown(&mut self) {
        let _ = self.writer.shutdown().await;
    }

    /// The next line without its LF, or `None` at EOF.
    pub async fn line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(READ_LIMIT, self.reader.read_until(b'\n', &mut buf))
            .await
            .expect("no line from the server")
            .expect("read error");
        if n == 0 {
            return None;
        }
        assert_eq!(buf.pop(), Some(b'\n'), "unterminated line {buf:?}");
        Some(String::from_utf8(buf).expect("server sent non-UTF-8"))
    }

    pub async fn expect(&mut self, expected: &str) {
        assert_eq!(self.line().await.as_deref(), Some(expected));
    }

    pub async fn expect_eof(&mut self) {
        assert_eq!(self.line().await, None, "expected the server to close");
    }

    /// Postfix's side of the handshake, as in the transcript; returns the server's lines.
    pub async fn handshake(&mut self) -> Vec<String> {
        self.send("VERSION\t1\t0\nCPID\t22324\n").await;
        self.read_server_handshake().await
    }

    pub async fn read_server_handshake(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self.line().await.expect("handshake cut short");
            let done = line == "DONE";
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Sends one line and returns the answer line.
    pub async fn ask(&mut self, line: &str) -> Option<String> {
        self.send_line(line).await;
        self.line().await
    }
}

pub async fn finished(server: Server) -> Result<(), ProtocolError> {
    tokio::time::timeout(READ_LIMIT, server)
        .await
        .expect("server did not finish")
        .expect("server task panicked")
}

/// Collects the log events emitted on the current thread (tests use the current-thread runtime,
/// so the server's tasks run there too).
#[derive(Clone, Default)]
pub struct Logs {
    events: Arc<Mutex<Vec<(tracing::Level, String)>>>,
}

impl Logs {
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let guard = tracing::subscriber::set_default(logs.clone());
        (logs, guard)
    }

    pub fn warnings(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(level, _)| *level <= tracing::Level::WARN)
            .map(|(_, text)| text.clone())
            .collect()
    }

    pub fn all(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, text)| text.clone())
            .collect()
    }
}

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={:?} ", field.name(), value));
    }
}

impl tracing::Subscriber for Logs {
    fn register_callsite(
        &self,
        _metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    fn enabled(&self, _metadata: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.events
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields.0));
    }

    fn enter(&self, _span: &tracing::span::Id) {}

    fn exit(&self, _span: &tracing::span::Id) {}
}
