//! The submission milter in-process, driven over the milter protocol by indymilter-test.

use std::sync::Arc;
use std::time::Duration;

#[path = "common/milter.rs"]
mod milter_rt;

use indymilter_test::{MacroStage, ProtoOpts, Status, TestConnection};
use postwarden::config::Config;
use postwarden::milter;
use postwarden::model::{AccountKind, EventFilter, EventKind, SenderCheck};
use postwarden::store::{prelude::*, sqlite::SqliteStore as Store, Pool};

struct Fixture {
    dir: tempfile::TempDir,
    cfg: Arc<Config>,
    addr: std::net::SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
}

async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse(
        &format!("data_dir = {:?}\n", dir.path().display().to_string()),
        "test",
    )
    .unwrap();
    let mut store = Store::open(&cfg.store_path(), Duration::from_secs(1), "t").unwrap();
    store.org_add("acme", SenderCheck::Account).unwrap();
    store.org_add("other", SenderCheck::Account).unwrap();
    store.domain_add("acme.example", "acme", true).unwrap();
    store.domain_add("old.example", "acme", false).unwrap();
    store.domain_add("other.example", "other", true).unwrap();
    store
        .account_add("alice@acme.example", "acme.example", AccountKind::EndUser)
        .unwrap();
    store
        .account_add(
            "noreply@acme.example",
            "acme.example",
            AccountKind::SilentUser,
        )
        .unwrap();
    store
        .account_add("bob@other.example", "other.example", AccountKind::EndUser)
        .unwrap();
    store
        .account_add("carol@old.example", "old.example", AccountKind::EndUser)
        .unwrap();
    let hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    store
        .credential_add("acme", "laptop", "acme-laptop", hash)
        .unwrap();
    store
        .credential_add("acme", "old", "acme-old", hash)
        .unwrap();
    store.credential_revoke("acme-old").unwrap();
    let cfg = Arc::new(cfg);
    let callbacks = milter::submission::callbacks(milter::submission::SubmissionMilter::new(
        Arc::clone(&cfg),
        Pool::new(&cfg),
        postwarden::events::EventSink::new(Pool::new(&cfg)),
    ));
    let (addr, stop) = milter_rt::spawn(callbacks).await;
    Fixture {
        dir,
        cfg,
        addr,
        stop,
    }
}

impl Fixture {
    async fn conn(&self) -> TestConnection {
        let mut c = TestConnection::open(self.addr).await.unwrap();
        assert_eq!(
            c.connect("client.example", ([192, 0, 2, 7], 40000))
                .await
                .unwrap(),
            Status::Continue
        );
        c
    }

    fn store(&self) -> Store {
        Store::open_existing(&self.cfg.store_path(), Duration::from_secs(1)).unwrap()
    }

    fn mail_events(&self) -> Vec<postwarden::model::Event> {
        self.store()
            .events(&EventFilter {
                kind: Some(EventKind::Mail),
                ..Default::default()
            })
            .unwrap()
    }
}

fn reply(s: Status) -> String {
    match s {
        Status::Reject { message: Some(m) } | Status::Tempfail { message: Some(m) } => {
            m.to_string_lossy().into_owned()
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// MAIL with the login macro; returns the status.
async fn mail(c: &mut TestConnection, login: Option<&str>, sender: &str) -> Status {
    let mut macros = vec![("i", "4QUEUEID")];
    if let Some(l) = login {
        macros.push(("{auth_authen}", l));
    }
    c.macros(MacroStage::Mail, macros).await.unwrap();
    c.mail([sender]).await.unwrap()
}

/// The rest of a message after an accepted MAIL: one recipient, the From fields, end of headers.
async fn headers(c: &mut TestConnection, from: &[&str]) -> Status {
    assert_eq!(
        c.rcpt(["<rcpt@dest.example>"]).await.unwrap(),
        Status::Continue
    );
    for f in from {
        let s = c.header("From", *f).await.unwrap();
        assert!(matches!(s, Status::Continue | Status::Noreply), "{s:?}");
    }
    c.header("Subject", "test").await.unwrap();
    c.eoh().await.unwrap()
}

#[tokio::test]
async fn negotiates_only_what_it_uses() {
    let f = start().await;
    let c = TestConnection::open(f.addr).await.unwrap();
    let opts = c.negotiated_opts();
    for unused in [
        ProtoOpts::NO_HELO,
        ProtoOpts::NO_DATA,
        ProtoOpts::NO_UNKNOWN,
    ] {
        assert!(opts.contains(unused), "{opts:?} lacks {unused:?}");
    }
    // The body is read for DKIM signing; signatures are inserted as headers.
    assert!(c
        .negotiated_actions()
        .contains(indymilter_test::Actions::ADD_HEADER));
    for used in [
        ProtoOpts::NO_BODY,
        ProtoOpts::NO_CONNECT,
        ProtoOpts::NO_MAIL,
        ProtoOpts::NO_RCPT,
        ProtoOpts::NO_HEADER,
        ProtoOpts::NO_EOH,
    ] {
        assert!(!opts.contains(used), "{opts:?} skips {used:?}");
    }
    let macros = c.requested_macros();
    assert_eq!(
        macros.get(&MacroStage::Mail).unwrap().to_str().unwrap(),
        "{auth_authen} i"
    );
    assert_eq!(macros.get(&MacroStage::Eoh).unwrap().to_str().unwrap(), "i");
    assert_eq!(macros.get(&MacroStage::Eom).unwrap().to_str().unwrap(), "i");
    let _ = f.stop.send(true);
}

#[tokio::test]
async fn owned_sender_is_accepted_and_logged() {
    let f = start().await;
    let mut c = f.conn().await;
    assert_eq!(
        mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await,
        Status::Continue
    );
    assert_eq!(
        headers(&mut c, &["Alice <Alice@ACME.example>"]).await,
        Status::Continue
    );
    let (_, status) = c.eom().await.unwrap();
    assert_eq!(status, Status::Continue);
    let ev = &f.mail_events()[0];
    assert_eq!(ev.outcome, "accept");
    assert_eq!(ev.login.as_deref(), Some("acme-laptop"));
    assert_eq!(ev.org.as_deref(), Some("acme"));
    assert_eq!(ev.sender.as_deref(), Some("alice@acme.example"));
    assert_eq!(ev.header_from.as_deref(), Some("Alice@ACME.example"));
    assert_eq!(ev.rcpt_count, Some(1));
    assert_eq!(ev.queue_id.as_deref(), Some("4QUEUEID"));
    assert_eq!(ev.client_ip.as_deref(), Some("192.0.2.7"));
}

#[tokio::test]
async fn foreign_and_unknown_domains_get_the_same_553() {
    let f = start().await;
    let mut c = f.conn().await;
    let other = reply(mail(&mut c, Some("acme-laptop"), "<bob@other.example>").await);
    c.abort().await.unwrap();
    let unknown = reply(mail(&mut c, Some("acme-laptop"), "<bob@nowhere.example>").await);
    assert_eq!(
        other,
        "553 5.7.1 Sender address <bob@other.example> rejected: other.example is not a sending domain of your organization; use an address of your own domain or ask your provider to register it"
    );
    assert_eq!(
        other.replace("other.example", "X"),
        unknown.replace("nowhere.example", "X")
    );
    let evs = f.mail_events();
    assert_eq!(evs.len(), 2);
    assert!(evs.iter().all(|e| e.outcome == "reject"));
    // A refusal at MAIL still names the login's organization.
    assert!(
        evs.iter().all(|e| e.org.as_deref() == Some("acme")),
        "{evs:?}"
    );
    assert!(evs[0]
        .reason
        .as_deref()
        .unwrap()
        .starts_with("domain_not_owned: "));
}

#[tokio::test]
async fn inactive_domain_and_unregistered_address() {
    let f = start().await;
    let mut c = f.conn().await;
    let r = reply(mail(&mut c, Some("acme-laptop"), "<carol@old.example>").await);
    assert!(r.starts_with("553 5.7.1 Sender address <carol@old.example> rejected: sending domain old.example is inactive"), "{r}");
    c.abort().await.unwrap();
    let r = reply(mail(&mut c, Some("acme-laptop"), "<dave@acme.example>").await);
    assert!(
        r.starts_with(
            "553 5.7.1 Sender address <dave@acme.example> rejected: not a registered sender"
        ),
        "{r}"
    );
    c.abort().await.unwrap();
    // Discovery mode, switched while the connection stays open: accepted and reported.
    f.store()
        .org_set_sender_check("acme", SenderCheck::Domain)
        .unwrap();
    assert_eq!(
        mail(&mut c, Some("acme-laptop"), "<dave@acme.example>").await,
        Status::Continue
    );
    assert_eq!(
        headers(&mut c, &["dave@acme.example"]).await,
        Status::Continue
    );
    assert_eq!(c.eom().await.unwrap().1, Status::Continue);
    let last = f.mail_events().pop().unwrap();
    assert_eq!(last.outcome, "discovered");
    let discovered = f.store().discovered(Some("acme")).unwrap();
    assert_eq!(discovered.len(), 1);
    assert_eq!(discovered[0].address, "dave@acme.example");
}

#[tokio::test]
async fn header_from_is_judged_at_end_of_headers() {
    let f = start().await;
    let mut c = f.conn().await;
    // Spoofed From with an owned envelope sender.
    assert_eq!(
        mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await,
        Status::Continue
    );
    let r = reply(headers(&mut c, &["The CEO <ceo@other.example>"]).await);
    assert!(
        r.starts_with("553 5.7.1 From header address <ceo@other.example> rejected"),
        "{r}"
    );
    c.abort().await.unwrap();
    // No From, two From fields, a From without an address.
    for (fields, expected) in [
        (
            &[][..],
            "550 5.6.0 Message must have exactly one From header field (it has 0)",
        ),
        (
            &["alice@acme.example", "alice@acme.example"][..],
            "550 5.6.0 Message must have exactly one From header field (it has 2)",
        ),
        (
            &["undisclosed-recipients:;"][..],
            "550 5.6.0 Message From header field holds no valid address",
        ),
    ] {
        assert_eq!(
            mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await,
            Status::Continue
        );
        assert_eq!(reply(headers(&mut c, fields).await), expected);
        c.abort().await.unwrap();
    }
    // Several addresses: each must be owned; an encoded display name is fine.
    assert_eq!(
        mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await,
        Status::Continue
    );
    let s = headers(
        &mut c,
        &["=?utf-8?q?Al=C3=AFce?= <alice@acme.example>, noreply@acme.example"],
    )
    .await;
    assert_eq!(s, Status::Continue);
    assert_eq!(c.eom().await.unwrap().1, Status::Continue);
}

#[tokio::test]
async fn null_sender_is_judged_by_header_from() {
    let f = start().await;
    let mut c = f.conn().await;
    assert_eq!(
        mail(&mut c, Some("acme-laptop"), "<>").await,
        Status::Continue
    );
    assert_eq!(
        headers(&mut c, &["noreply@acme.example"]).await,
        Status::Continue
    );
    assert_eq!(c.eom().await.unwrap().1, Status::Continue);
    assert_eq!(
        mail(&mut c, Some("acme-laptop"), "<>").await,
        Status::Continue
    );
    let r = reply(headers(&mut c, &["bob@other.example"]).await);
    assert!(
        r.starts_with("553 5.7.1 From header address <bob@other.example>"),
        "{r}"
    );
    assert_eq!(f.mail_events()[0].sender.as_deref(), Some("<>"));
}

#[tokio::test]
async fn no_login_unknown_login_and_revoked_login_get_530() {
    let f = start().await;
    let mut c = f.conn().await;
    for login in [None, Some("nobody"), Some("acme-old")] {
        let r = reply(mail(&mut c, login, "<alice@acme.example>").await);
        assert_eq!(r, "530 5.7.0 Authentication required", "{login:?}");
        c.abort().await.unwrap();
    }
    let reasons: Vec<String> = f
        .mail_events()
        .into_iter()
        .map(|e| e.reason.unwrap())
        .collect();
    assert_eq!(reasons, ["no_auth", "unknown_login", "revoked_login"]);
}

#[tokio::test]
async fn store_faults_are_tempfails_never_accepts() {
    let f = start().await;
    let mut c = f.conn().await;
    let db = f.cfg.store_path();
    let aside = f.dir.path().join("aside.db");
    std::fs::rename(&db, &aside).unwrap();
    assert_eq!(
        reply(mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await),
        "451 4.3.0 Temporary failure checking the sender; try again later"
    );
    c.abort().await.unwrap();
    // Back, then gone again between MAIL and end of headers.
    std::fs::rename(&aside, &db).unwrap();
    assert_eq!(
        mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await,
        Status::Continue
    );
    std::fs::rename(&db, &aside).unwrap();
    assert_eq!(
        reply(headers(&mut c, &["alice@acme.example"]).await),
        "451 4.3.0 Temporary failure checking the sender; try again later"
    );
    c.abort().await.unwrap();
    std::fs::rename(&aside, &db).unwrap();
    // Locked by another process past the busy timeout (5 s default here would be slow: 1 s).
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .unwrap();
    let cfg_short = Config::parse(
        &format!(
            "data_dir = {:?}\n[store]\nbusy_timeout = \"200ms\"\n",
            f.dir.path().display().to_string()
        ),
        "t",
    )
    .unwrap();
    let c = Arc::new(cfg_short);
    let callbacks = milter::submission::callbacks(milter::submission::SubmissionMilter::new(
        Arc::clone(&c),
        Pool::new(&c),
        postwarden::events::EventSink::new(Pool::new(&c)),
    ));
    let (addr, _stop) = milter_rt::spawn(callbacks).await;
    let mut c2 = TestConnection::open(addr).await.unwrap();
    c2.connect("client.example", ([192, 0, 2, 8], 40000))
        .await
        .unwrap();
    assert_eq!(
        reply(mail(&mut c2, Some("acme-laptop"), "<alice@acme.example>").await),
        "451 4.3.0 Temporary failure checking the sender; try again later"
    );
    conn.execute_batch("COMMIT").unwrap();
}

#[tokio::test]
async fn store_changes_apply_to_the_next_message() {
    let f = start().await;
    let mut c = f.conn().await;
    assert_eq!(
        mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await,
        Status::Continue
    );
    c.abort().await.unwrap();
    f.store().domain_set_active("acme.example", false).unwrap();
    let r = reply(mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await);
    assert!(r.contains("sending domain acme.example is inactive"), "{r}");
    c.abort().await.unwrap();
    f.store().domain_set_active("acme.example", true).unwrap();
    assert_eq!(
        mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await,
        Status::Continue
    );
    c.abort().await.unwrap();
    f.store().account_remove("alice@acme.example").unwrap();
    let r = reply(mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await);
    assert!(r.contains("not a registered sender"), "{r}");
}

#[tokio::test]
async fn odd_headers_never_break_the_session() {
    let f = start().await;
    let mut c = f.conn().await;
    assert_eq!(
        mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await,
        Status::Continue
    );
    c.rcpt(["<r@dest.example>"]).await.unwrap();
    let huge = format!("alice@acme.example {}", "(x)".repeat(30_000));
    c.header("From", huge.as_str()).await.unwrap();
    for _ in 0..100 {
        c.header("From", "bob@other.example").await.unwrap();
    }
    let r = reply(c.eoh().await.unwrap());
    assert!(
        r.starts_with("550 5.6.0 Message must have exactly one From header field"),
        "{r}"
    );
    c.abort().await.unwrap();
    // The session goes on.
    assert_eq!(
        mail(&mut c, Some("acme-laptop"), "<alice@acme.example>").await,
        Status::Continue
    );
}
