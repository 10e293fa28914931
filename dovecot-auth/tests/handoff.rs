//! Hand-off: a connection given back between requests and resumed by another server (as a
//! restarting daemon passes its connections to the next process), without the client
//! noticing.

mod support;

use std::sync::Arc;

use dovecot_auth::{resume_connection, serve_until_handoff, ConnectionIds, Ended, ServerConfig};
use support::*;
use tokio::io::DuplexStream;
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

/// A client after its handshake with a server that hands off when the sender says so.
async fn connected() -> (Client, Handed, watch::Sender<bool>) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let (tx, rx) = watch::channel(false);
    let verifier: Arc<Mock> = Mock::new();
    let first = tokio::spawn(async move {
        serve_until_handoff(server, verifier, &ServerConfig::default(), ids(1), rx).await
    });
    let mut client = Client::new(client);
    client.handshake().await;
    (client, first, tx)
}

fn plain_auth(id: u32, login: &str, password: &str) -> String {
    postfix_auth(id, "PLAIN", 9, Some(&plain("", login, password)))
}

async fn handed_off(server: Handed) -> (DuplexStream, u32) {
    match server.await.unwrap().unwrap() {
        Ended::HandedOff { stream, client_pid } => (stream, client_pid),
        Ended::Closed => panic!("closed instead of handed off"),
    }
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_handed_off_and_resumed_without_a_second_handshake() {
    let (mut client, first, tx) = connected().await;
    client.send_line(&plain_auth(1, ALICE, PASSWORD)).await;
    client.expect(&format!("OK\t1\tuser={ALICE}")).await;

    tx.send(true).unwrap();
    let (stream, client_pid) = handed_off(first).await;
    assert_eq!(
        client_pid, 22324,
        "the client's CPID goes with the connection"
    );

    // The next server answers the next request; no handshake is sent again.
    let (_tx2, rx2) = watch::channel(false);
    let second = tokio::spawn(async move {
        let config = ServerConfig::default();
        resume_connection(stream, Mock::new(), &config, ids(7), client_pid, rx2).await
    });
    client.send_line(&plain_auth(2, ALICE, "wrong")).await;
    client.expect(&format!("FAIL\t2\tuser={ALICE}")).await;
    client.shutdown().await;
    assert!(matches!(second.await.unwrap(), Ok(Ended::Closed)));
}

#[tokio::test(start_paused = true)]
async fn a_verification_in_flight_is_answered_before_the_hand_off() {
    let (mut client, first, tx) = connected().await;
    client.send_line(&plain_auth(1, SLOW, PASSWORD)).await;
    tokio::task::yield_now().await;
    tx.send(true).unwrap();
    // The slow verification finishes and is answered by the first server...
    client.expect(&format!("OK\t1\tuser={SLOW}")).await;
    // ...which then hands the connection off.
    let _ = handed_off(first).await;
}

#[tokio::test(start_paused = true)]
async fn a_login_exchange_half_done_is_finished_before_the_hand_off() {
    let (mut client, first, tx) = connected().await;
    client.send_line(&postfix_auth(1, "LOGIN", 9, None)).await;
    assert!(client.line().await.unwrap().starts_with("CONT\t1\t"));
    tx.send(true).unwrap();
    tokio::task::yield_now().await;
    assert!(!first.is_finished(), "the LOGIN exchange is still open");
    client
        .send_line(&format!("CONT\t1\t{}", b64(ALICE.as_bytes())))
        .await;
    assert!(client.line().await.unwrap().starts_with("CONT\t1\t"));
    client
        .send_line(&format!("CONT\t1\t{}", b64(PASSWORD.as_bytes())))
        .await;
    client.expect(&format!("OK\t1\tuser={ALICE}")).await;
    let _ = handed_off(first).await;
}

#[tokio::test(start_paused = true)]
async fn a_request_line_half_received_is_not_handed_off_mid_line() {
    let (mut client, first, tx) = connected().await;
    let line = plain_auth(1, ALICE, PASSWORD);
    let (a, b) = line.split_at(20);
    client.send(a).await;
    tokio::task::yield_now().await;
    tx.send(true).unwrap();
    tokio::task::yield_now().await;
    assert!(!first.is_finished(), "half a request line is buffered");
    client.send_line(b).await;
    client.expect(&format!("OK\t1\tuser={ALICE}")).await;
    let _ = handed_off(first).await;
}

#[tokio::test(start_paused = true)]
async fn a_connection_the_client_closed_ends_closed_not_handed_off() {
    let (mut client, first, _tx) = connected().await;
    client.shutdown().await;
    assert!(matches!(first.await.unwrap(), Ok(Ended::Closed)));
}
