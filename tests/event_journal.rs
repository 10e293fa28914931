//! Events survive a store outage and a crash: the real daemon, whose store another process
//! holds locked past the busy timeout, gets logins and milter messages, is killed with
//! SIGKILL during the outage, and is started again with the store back. Every event is
//! in `postwarden log` once.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{free_port, wait_for, Daemon};

/// One login attempt on its own connection; returns the reply line ("" when the daemon
/// closed the connection, as it does on a fault).
fn login(port: u16, user: &str, pass: &str) -> String {
    common::dovecot_login(port, user, pass, "192.0.2.5")
}

fn packet(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut p = (data.len() as u32 + 1).to_be_bytes().to_vec();
    p.push(cmd);
    p.extend_from_slice(data);
    p
}

fn read_packet(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    (body[0], body[1..].to_vec())
}

/// A message from `sender` to the submission milter without a login: refused at MAIL
/// (its `mail` event is written, or journaled, before the reply).
fn unauthenticated_mail(port: u16, sender: &str) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut optneg = 6u32.to_be_bytes().to_vec();
    optneg.extend_from_slice(&0x1ffu32.to_be_bytes());
    optneg.extend_from_slice(&0x1f_ffffu32.to_be_bytes());
    s.write_all(&packet(b'O', &optneg)).unwrap();
    assert_eq!(read_packet(&mut s).0, b'O');
    s.write_all(&packet(b'C', b"client.example\x004\x9c\x40192.0.2.9\x00"))
        .unwrap();
    assert_eq!(read_packet(&mut s).0, b'c', "continue after CONNECT");
    s.write_all(&packet(b'M', format!("<{sender}>\0").as_bytes()))
        .unwrap();
    let (code, _) = read_packet(&mut s);
    assert_eq!(code, b'y', "an SMTP reply (530) to MAIL without a login");
    s.write_all(&packet(b'Q', b"")).unwrap();
}

#[test]
fn events_of_a_store_outage_survive_a_crash_and_are_written_once() {
    let root = tempfile::tempdir().unwrap();
    let (auth, submission) = (free_port(), free_port());
    let mut daemon = Daemon::start(
        root.path(),
        &format!(
            "[store]\nbusy_timeout = \"300ms\"\n\
             [auth]\nlisten = \"inet:127.0.0.1:{auth}\"\n\
             [submission]\nlisten = \"inet:127.0.0.1:{submission}\"\n\
             [auth.throttle]\nfree_failures = 1000\n"
        ),
    );
    daemon.cli_ok(&["org", "add", "acme"]);
    let (user, pass) = daemon.credential("acme", "laptop");
    let db = daemon.data.join("postwarden.db");
    let journal = daemon.data.join("postwarden.db.event-journal");

    // Another process holds the store's write lock past the busy timeout.
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN IMMEDIATE").unwrap();

    let mut expected = Vec::new();
    // Every login attempt is counted in the store before its check (the throttle), so
    // during the outage each one is a fault: the connection closes (Postfix: 454) and
    // its event is kept.
    for i in 0..4 {
        let reply = login(auth, &user, &format!("wrong{i}"));
        assert_eq!(reply, "", "a fault closes the connection");
        expected.push(("auth", user.clone(), "fault"));
        let nobody = format!("nobody{i}");
        assert_eq!(login(auth, &nobody, "x"), "");
        expected.push(("auth", nobody, "fault"));
        let sender = format!("s{i}@acme.example");
        unauthenticated_mail(submission, &sender);
        expected.push(("mail", sender, "no_auth"));
    }
    // The right password too.
    assert_eq!(
        login(auth, &user, &pass),
        "",
        "a fault closes the connection"
    );
    expected.push(("auth", user.clone(), "fault"));

    let kept = std::fs::read_to_string(&journal).expect("an event journal during the outage");
    assert_eq!(kept.lines().count(), 1 + expected.len(), "{kept}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&journal).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // A crash during the outage; then the store comes back and the daemon starts again.
    daemon.kill();
    locker.execute_batch("COMMIT").unwrap();
    drop(locker);
    daemon.restart();
    wait_for(Duration::from_secs(20), "the journal replayed", || {
        !journal.exists()
    });

    let seen = |events: &[serde_json::Value]| -> Vec<(String, String, String)> {
        events
            .iter()
            .filter(|e| e["kind"] != "admin")
            .map(|e| {
                let who = if e["kind"] == "mail" {
                    e["sender"].as_str().unwrap_or("").to_string()
                } else {
                    e["login"].as_str().unwrap_or("").to_string()
                };
                let reason = e["reason"].as_str().unwrap_or("").to_string();
                (e["kind"].as_str().unwrap().to_string(), who, reason)
            })
            .collect()
    };
    let want: Vec<(String, String, String)> = expected
        .iter()
        .map(|(k, w, r)| (k.to_string(), w.clone(), r.to_string()))
        .collect();
    assert_eq!(
        seen(&daemon.events(&[])),
        want,
        "every event, in order, once"
    );
    assert!(
        daemon
            .log_text()
            .contains("event journal written into the store"),
        "{}",
        daemon.log_text()
    );
    // And the running daemon writes new events straight to the store.
    assert!(login(auth, &user, &pass).starts_with("OK\t1"));
    let after = seen(&daemon.events(&[]));
    assert_eq!(after.len(), want.len() + 1);
    assert_eq!(after[..want.len()], want[..]);
    assert!(!journal.exists());
    daemon.stop();
}
