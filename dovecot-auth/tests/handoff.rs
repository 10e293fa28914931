//! Hand-off: a connection given back between requests and resumed by another server (as a
//! restarting daemon passes its connections to the next process), without the client
//! noticing.

mod support;

use std::sync::Arc;
use std::time::Duration;

use dovecot_auth::{resume_connection, serve_until_handoff, ConnectionIds, Ended, ServerConfig};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

type Handed = JoinHandle<Result<Ended<DuplexStream>, dovecot_auth::ProtocolError>>;

fn ids(cuid: u32) -> ConnectionIds {
    ConnectionIds {
        server_pid: 22341,
        connection_uid: cuid,
        cookie: Some(COOKIE),
    }
}

fn first_server(stream: DuplexStream, mock: Arc<Mock>, handoff: watch::Receiver<bool>) -> Handed {
    tokio::spawn(async move {
        serve_until_handoff(stream, mock, &ServerConfig::default(), ids(1), handoff).await
    })
}

struct Peer {
    reader: BufReader<tokio::io::ReadHalf<DuplexStream>>,
    writer: tokio::io::WriteHalf<DuplexStream>,
}

impl Peer {
    fn new(s: DuplexStream) -> Peer {
        let (r, w) = tokio::io::split(s);
        Peer {
            reader: BufReader::new(r),
            writer: w,
        }
    }
    async fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).await.unwrap();
    }
    async fn line(&mut self) -> Option<String> {
        let mut buf = String::new();
        let n = tokio::time::timeout(Duration::from_secs(3600), self.reader.read_line(&mut buf))
            .await
            .expect("no line")
            .unwrap();
        (n > 0).then(|| buf.trim_end_matches('\n').to_string())
    }
    async fn handshake(&mut self) {
        self.send("VERSION\t1\t0\nCPID\t22324\n").await;
        while self.line().await.expect("handshake") != "DONE" {}
    }
}

async fn handed_off(server: Handed) -> (DuplexStream, u32) {
    match server.await.unwrap().unwrap() {
        Ended::HandedOff { stream, client_pid } => (stream, client_pid),
        Ended::Closed => panic!("closed instead of handed off"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_handed_off_and_resumed_without_a_second_handshake() {
    let mock = Mock::new();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (tx, rx) = watch::channel(false);
    let first = first_server(server, mock.clone(), rx);
    let mut peer = Peer::new(client);
    peer.handshake().await;
    let ok = format!("OK\t1\tuser={ALICE}");
    peer.send(&format!(
        "{}\n",
        postfix_auth(1, "PLAIN", 9, Some(&plain("", ALICE, PASSWORD)))
    ))
    .await;
    assert_eq!(peer.line().await.as_deref(), Some(ok.as_str()));

    tx.send(true).unwrap();
    let (stream, client_pid) = handed_off(first).await;
    assert_eq!(
        client_pid, 22324,
        "the client's CPID goes with the connection"
    );

    // The next server answers the next request; no handshake is sent again.
    let mock2 = Mock::new();
    let (_tx2, rx2) = watch::channel(false);
    let second = tokio::spawn(async move {
        resume_connection(
            stream,
            mock2,
            &ServerConfig::default(),
            ids(7),
            client_pid,
            rx2,
        )
        .await
    });
    peer.send(&format!(
        "{}\n",
        postfix_auth(2, "PLAIN", 9, Some(&plain("", ALICE, "wrong")))
    ))
    .await;
    assert_eq!(
        peer.line().await.as_deref(),
        Some(format!("FAIL\t2\tuser={ALICE}").as_str())
    );
    peer.writer.shutdown().await.unwrap();
    assert!(matches!(second.await.unwrap(), Ok(Ended::Closed)));
}

#[tokio::test(start_paused = true)]
async fn a_verification_in_flight_is_answered_before_the_hand_off() {
    let mock = Mock::new();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (tx, rx) = watch::channel(false);
    let first = first_server(server, mock.clone(), rx);
    let mut peer = Peer::new(client);
    peer.handshake().await;
    peer.send(&format!(
        "{}\n",
        postfix_auth(1, "PLAIN", 9, Some(&plain("", SLOW, PASSWORD)))
    ))
    .await;
    tokio::task::yield_now().await;
    tx.send(true).unwrap();
    // The slow verification finishes and is answered by the first server...
    assert_eq!(
        peer.line().await.as_deref(),
        Some(format!("OK\t1\tuser={SLOW}").as_str())
    );
    // ...which then hands the connection off.
    let _ = handed_off(first).await;
}

#[tokio::test(start_paused = true)]
async fn a_login_exchange_half_done_is_finished_before_the_hand_off() {
    let mock = Mock::new();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (tx, rx) = watch::channel(false);
    let first = first_server(server, mock.clone(), rx);
    let mut peer = Peer::new(client);
    peer.handshake().await;
    peer.send(&format!("{}\n", postfix_auth(1, "LOGIN", 9, None)))
        .await;
    assert!(peer.line().await.unwrap().starts_with("CONT\t1\t"));
    tx.send(true).unwrap();
    tokio::task::yield_now().await;
    assert!(!first.is_finished(), "the LOGIN exchange is still open");
    peer.send(&format!("CONT\t1\t{}\n", b64(ALICE.as_bytes())))
        .await;
    assert!(peer.line().await.unwrap().starts_with("CONT\t1\t"));
    peer.send(&format!("CONT\t1\t{}\n", b64(PASSWORD.as_bytes())))
        .await;
    assert_eq!(
        peer.line().await.as_deref(),
        Some(format!("OK\t1\tuser={ALICE}").as_str())
    );
    let _ = handed_off(first).await;
}

#[tokio::test(start_paused = true)]
async fn a_request_line_half_received_is_not_handed_off_mid_line() {
    let mock = Mock::new();
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (tx, rx) = watch::channel(false);
    let first = first_server(server, mock.clone(), rx);
    let mut peer = Peer::new(client);
    peer.handshake().await;
    let line = postfix_auth(1, "PLAIN", 9, Some(&plain("", ALICE, PASSWORD)));
    let (a, b) = line.split_at(20);
    peer.send(a).await;
    tokio::task::yield_now().await;
    tx.send(true).unwrap();
    tokio::task::yield_now().await;
    assert!(!first.is_finished(), "half a request line is buffered");
    peer.send(&format!("{b}\n")).await;
    assert_eq!(
        peer.line().await.as_deref(),
        Some(format!("OK\t1\tuser={ALICE}").as_str())
    );
    let _ = handed_off(first).await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_the_client_closed_ends_closed_not_handed_off() {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (_tx, rx) = watch::channel(false);
    let first = first_server(server, Mock::new(), rx);
    let mut peer = Peer::new(client);
    peer.handshake().await;
    peer.writer.shutdown().await.unwrap();
    assert!(matches!(first.await.unwrap(), Ok(Ended::Closed)));
}
