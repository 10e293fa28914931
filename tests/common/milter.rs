//! Runs a milter in-process on a loopback port for indymilter-test.
#![allow(dead_code)]

use std::net::SocketAddr;

use postwarden::config::{ListenAddr, SocketMode};
use postwarden::daemon::{serve_milter, Listener};
use tokio::sync::watch;

/// Serves `callbacks` on 127.0.0.1 and a free port. The milter runs until the returned
/// sender sends `true` or is dropped, so the caller keeps it.
pub async fn spawn<T: Send + 'static>(
    callbacks: indymilter::Callbacks<T>,
) -> (SocketAddr, watch::Sender<bool>) {
    let listener = Listener::bind(
        &ListenAddr::Inet("127.0.0.1:0".parse().unwrap()),
        SocketMode(0o660),
        "",
    )
    .await
    .unwrap();
    let ListenAddr::Inet(addr) = listener.local_addr() else {
        unreachable!("a TCP listener")
    };
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(serve_milter(
        "test",
        listener,
        callbacks,
        100,
        std::time::Duration::from_secs(600),
        std::time::Duration::ZERO,
        stopped,
    ));
    (addr, stop)
}
