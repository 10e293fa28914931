//! The inbound milter in-process (indymilter-test), with an unreachable DNS server: odd
//! input, forged Authentication-Results, and the DNS-failure actions.

use std::sync::Arc;
use std::time::Duration;

#[path = "common/milter.rs"]
mod milter_rt;

use indymilter_test::{EomAction, Status, TestConnection};
use postwarden::config::Config;
use postwarden::milter;
use postwarden::model::{EventFilter, EventKind};
use postwarden::store::{prelude::*, sqlite::SqliteStore as Store, Pool};

const AUTHSERV: &str = "mx.inbound.test";

struct Fixture {
    _dir: tempfile::TempDir,
    cfg: Arc<Config>,
    addr: std::net::SocketAddr,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // Nothing answers on port 9: every lookup times out (a DNS outage).
    let cfg = Config::parse(
        &format!(
            "data_dir = {:?}\nmax_message_mib = 1\n[dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout = \"100ms\"\n[inbound]\nauthserv_id = \"{AUTHSERV}\"\n{extra}",
            dir.path().display().to_string()
        ),
        "test",
    )
    .unwrap();
    drop(Store::open(&cfg.store_path(), Duration::from_secs(1), "t").unwrap());
    let cfg = Arc::new(cfg);
    let events = postwarden::events::EventSink::new(Pool::new(&cfg));
    let m = milter::inbound::InboundMilter::new(Arc::clone(&cfg), events).unwrap();
    let (addr, stop) = milter_rt::spawn(milter::inbound::callbacks(m)).await;
    Fixture {
        _dir: dir,
        cfg,
        addr,
        _stop: stop,
    }
}

async fn session(f: &Fixture) -> TestConnection {
    let mut c = TestConnection::open(f.addr).await.unwrap();
    assert_eq!(
        c.connect("client.example", ([192, 0, 2, 9], 4000))
            .await
            .unwrap(),
        Status::Continue
    );
    assert_eq!(c.helo("client.example").await.unwrap(), Status::Continue);
    assert_eq!(
        c.mail(["<someone@sender.example>"]).await.unwrap(),
        Status::Continue
    );
    assert_eq!(
        c.rcpt(["<rcpt@postwarden.test>"]).await.unwrap(),
        Status::Continue
    );
    c
}

fn mail_events(f: &Fixture) -> Vec<postwarden::model::Event> {
    let s = Store::open_existing(&f.cfg.store_path(), Duration::from_secs(1)).unwrap();
    s.events(&EventFilter {
        kind: Some(EventKind::Mail),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn dns_outage_is_a_tempfail_by_default() {
    let f = start("").await;
    let mut c = session(&f).await;
    c.header("From", " ceo@sender.example").await.unwrap();
    c.body(b"hello\r\n".as_slice()).await.unwrap();
    let (_, status) = c.eom().await.unwrap();
    match status {
        Status::Tempfail { message: Some(m) } => {
            assert_eq!(
                m.to_str().unwrap(),
                "451 4.7.1 Temporary DNS failure checking SPF/DKIM/DMARC; try again later"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(mail_events(&f)[0].outcome, "tempfail");
}

#[tokio::test]
async fn odd_input_forged_results_and_oversized_bodies_are_handled() {
    let f = start("dns_failure = \"accept\"\n").await;
    let mut c = session(&f).await;
    c.header(
        "Authentication-Results",
        format!(" {AUTHSERV}; dkim=pass header.d=forged.example").as_str(),
    )
    .await
    .unwrap();
    c.header("Authentication-Results", " other.example; spf=pass")
        .await
        .unwrap();
    c.header(
        "Authentication-Results",
        format!(" {}; spf=pass", AUTHSERV.to_uppercase()).as_str(),
    )
    .await
    .unwrap();
    c.header("From", " =?utf-8?B?!!!?= <ceo@sender.example>")
        .await
        .unwrap();
    c.header("X-Empty", "").await.unwrap();
    for i in 0..2000 {
        c.header("X-Many", format!(" {i}").as_str()).await.unwrap();
    }
    c.header("Subject", " \u{fffd}\u{1} odd\n\tfolded")
        .await
        .unwrap();
    let chunk = vec![b'x'; 60_000];
    for _ in 0..40 {
        // 2.4 MB, over max_message_mib = 1
        c.body(chunk.clone()).await.unwrap();
    }
    let (actions, status) = c.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    // The forged ones (1st and 3rd), highest first; the other one stays.
    let changes: Vec<i32> = actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::DeleteHeader { name, index }
                if name.to_str().unwrap() == "Authentication-Results" =>
            {
                Some(*index)
            }
            _ => None,
        })
        .collect();
    assert_eq!(changes, [3, 1], "{actions:?}");
    let ours: Vec<String> = actions
        .actions
        .iter()
        .filter_map(|a| match a {
            EomAction::InsertHeader {
                index: 0,
                name,
                value,
            } if name.to_str().unwrap() == "Authentication-Results" => {
                Some(value.to_string_lossy().into_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(ours.len(), 1, "{actions:?}");
    assert!(
        ours[0].trim_start().starts_with(&format!("{AUTHSERV};")),
        "{}",
        ours[0]
    );
    assert!(ours[0].contains("temperror"), "{}", ours[0]);
    let ev = mail_events(&f).pop().unwrap();
    assert_eq!(ev.outcome, "accept");
    assert!(ev.reason.unwrap().contains("body not fully read"));
    // The session goes on with the next message.
    c.abort().await.unwrap();
    assert_eq!(c.mail(["<>"]).await.unwrap(), Status::Continue);
}
