use super::*;
use crate::model::*;
use crate::store::prelude::{Store as _, *};
use std::fmt;

type Store = SqliteStore;

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db"), Duration::from_secs(2), "tester").unwrap();
    (dir, store)
}

fn refused_msg<T: fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(StoreError::Refused(m)) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

const HASH: &str = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

#[test]
fn migrations_apply_once_and_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let s = Store::open(&path, Duration::from_secs(1), "t").unwrap();
    assert_eq!(s.schema_version().unwrap(), MIGRATIONS.len() as i64);
    drop(s);
    // Re-opening is a no-op.
    let s = Store::open(&path, Duration::from_secs(1), "t").unwrap();
    s.conn.pragma_update(None, "user_version", 99).unwrap();
    drop(s);
    match Store::open(&path, Duration::from_secs(1), "t") {
        Err(StoreError::Fault(m)) => assert!(m.contains("schema version 99 is newer"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
    match Store::open_existing(&path, Duration::from_secs(1)) {
        Err(StoreError::Fault(m)) => assert!(m.contains("schema version 99"), "{m}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn wal_and_foreign_keys_are_on() {
    let (_d, s) = temp_store();
    let mode: String = s
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = s
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
}

#[test]
fn open_existing_never_creates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    assert!(matches!(
        Store::open_existing(&path, Duration::from_secs(1)),
        Err(StoreError::Fault(_))
    ));
    assert!(!path.exists());
}

#[test]
fn organizations() {
    let (_d, mut s) = temp_store();
    s.org_add("acme", SenderCheck::Account).unwrap();
    assert!(refused_msg(s.org_add("acme", SenderCheck::Domain)).contains("already exists"));
    assert!(refused_msg(s.org_add("ACME", SenderCheck::Domain)).contains("already exists"));
    assert!(refused_msg(s.org_add("", SenderCheck::Domain)).contains("invalid organization name"));
    assert!(
        refused_msg(s.org_add("a b", SenderCheck::Domain)).contains("invalid organization name")
    );
    s.org_set_sender_check("acme", SenderCheck::Domain).unwrap();
    let orgs = s.org_list().unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0].sender_check, SenderCheck::Domain);
    assert!(
        refused_msg(s.org_set_sender_check("nope", SenderCheck::Domain))
            .contains("no organization")
    );
}

#[test]
fn org_remove_refused_while_in_use_unless_forced() {
    let (_d, mut s) = temp_store();
    s.org_add("acme", SenderCheck::Account).unwrap();
    s.domain_add("acme.example", "acme", true).unwrap();
    s.account_add("alice@acme.example", "acme.example", AccountKind::EndUser)
        .unwrap();
    s.credential_add("acme", "laptop", "acme-laptop-x", HASH)
        .unwrap();
    let m = refused_msg(s.org_remove("acme", false));
    assert!(m.contains("1 domain(s) and 1 credential(s)"), "{m}");
    s.org_remove("acme", true).unwrap();
    assert!(s.org_list().unwrap().is_empty());
    assert!(s.domain_list(None).unwrap().is_empty());
    assert!(s.account_list(None).unwrap().is_empty());
    assert!(s.credential_list(None).unwrap().is_empty());
    // An empty organization goes without --force.
    s.org_add("empty", SenderCheck::Account).unwrap();
    s.org_remove("empty", false).unwrap();
}

#[test]
fn domains() {
    let (_d, mut s) = temp_store();
    s.org_add("acme", SenderCheck::Account).unwrap();
    s.org_add("other", SenderCheck::Account).unwrap();
    assert!(refused_msg(s.domain_add("acme.example", "ghost", true)).contains("no organization"));
    s.domain_add("acme.example", "acme", false).unwrap();
    assert!(refused_msg(s.domain_add("acme.example", "acme", true))
        .contains("already registered to organization \"acme\""));
    let m = refused_msg(s.domain_add("acme.example", "other", true));
    assert!(m.contains("registered to another organization"), "{m}");
    assert!(!m.contains("acme\""), "must not name the owner: {m}");
    assert!(!s.domain_list(Some("acme")).unwrap()[0].active);
    s.domain_set_active("acme.example", true).unwrap();
    assert!(refused_msg(s.domain_set_active("acme.example", true)).contains("already active"));
    assert!(s.domain_list(None).unwrap()[0].active);
    assert!(s.domain_list(Some("other")).unwrap().is_empty());
    assert!(refused_msg(s.domain_list(Some("ghost"))).contains("no organization"));
    s.account_add("a@acme.example", "acme.example", AccountKind::Functional)
        .unwrap();
    assert!(refused_msg(s.domain_remove("acme.example", false))
        .contains("1 account(s) and 0 DKIM key(s)"));
    s.domain_remove("acme.example", true).unwrap();
    assert!(s.account_list(None).unwrap().is_empty());
    assert!(refused_msg(s.domain_remove("acme.example", false)).contains("not registered"));
}

#[test]
fn accounts() {
    let (_d, mut s) = temp_store();
    s.org_add("acme", SenderCheck::Account).unwrap();
    s.domain_add("acme.example", "acme", true).unwrap();
    let m = refused_msg(s.account_add("bob@other.example", "other.example", AccountKind::EndUser));
    assert!(m.contains("domain other.example is not registered"), "{m}");
    s.account_add("alice@acme.example", "acme.example", AccountKind::EndUser)
        .unwrap();
    s.account_add(
        "noreply@acme.example",
        "acme.example",
        AccountKind::SilentUser,
    )
    .unwrap();
    assert!(refused_msg(s.account_add(
        "alice@acme.example",
        "acme.example",
        AccountKind::Functional
    ))
    .contains("already exists"));
    let list = s.account_list(Some("acme")).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].kind, AccountKind::EndUser);
    assert_eq!(list[1].kind, AccountKind::SilentUser);
    s.account_remove("alice@acme.example").unwrap();
    assert!(refused_msg(s.account_remove("alice@acme.example")).contains("no account"));
}

#[test]
fn credentials() {
    let (_d, mut s) = temp_store();
    s.org_add("acme", SenderCheck::Account).unwrap();
    s.org_add("other", SenderCheck::Account).unwrap();
    s.credential_add("acme", "laptop", "acme-laptop-a", HASH)
        .unwrap();
    s.credential_add("acme", "phone", "acme-phone-b", HASH)
        .unwrap();
    // Same label in another organization is fine; in the same one it is not.
    s.credential_add("other", "laptop", "other-laptop-c", HASH)
        .unwrap();
    assert!(
        refused_msg(s.credential_add("acme", "laptop", "acme-laptop-d", HASH))
            .contains("already has a credential labelled")
    );
    assert!(refused_msg(s.credential_add("acme", "x", "acme-laptop-a", HASH)).contains("taken"));
    assert!(refused_msg(s.credential_add("acme", "", "u", HASH)).contains("invalid label"));
    // The schema refuses anything but an argon2id PHC string.
    assert!(matches!(
        s.credential_add("acme", "plain", "u2", "secret"),
        Err(StoreError::Fault(_))
    ));
    let rec = s.login_record("acme-laptop-a").unwrap().unwrap();
    assert_eq!(rec.organization, "acme");
    assert!(!rec.revoked);
    assert!(
        s.login_record("ACME-LAPTOP-A").unwrap().is_none(),
        "usernames compare exactly"
    );
    s.credential_used(rec.credential_id, Some("192.0.2.7"))
        .unwrap();
    s.credential_revoke("acme-laptop-a").unwrap();
    assert!(refused_msg(s.credential_revoke("acme-laptop-a")).contains("already revoked"));
    assert!(refused_msg(s.credential_revoke("ghost")).contains("no credential"));
    assert!(s.login_record("acme-laptop-a").unwrap().unwrap().revoked);
    // A revoked credential frees its label.
    s.credential_add("acme", "laptop", "acme-laptop-e", HASH)
        .unwrap();
    let list = s.credential_list(Some("acme")).unwrap();
    assert_eq!(list.len(), 3);
    let used = list.iter().find(|c| c.username == "acme-laptop-a").unwrap();
    assert_eq!(used.last_ip.as_deref(), Some("192.0.2.7"));
    assert!(used.last_used.is_some() && used.revoked.is_some());
}

#[test]
fn admin_changes_are_events_and_filters_work() {
    let (_d, mut s) = temp_store();
    s.org_add("acme", SenderCheck::Account).unwrap();
    s.domain_add("acme.example", "acme", true).unwrap();
    let _ = s.domain_add("acme.example", "acme", true); // refused: no event
    let mut ev = Event::new(EventKind::Auth, "bad_password");
    ev.login = Some("acme-x".into());
    ev.time = now() - 7200;
    s.record_events(&[ev]).unwrap();
    let mut ev = Event::new(EventKind::Mail, "accept");
    ev.sender = Some("alice@acme.example".into());
    s.record_events(&[ev]).unwrap();

    let admin = s
        .events(&EventFilter {
            kind: Some(EventKind::Admin),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(admin.len(), 2);
    assert_eq!(
        admin[0].reason.as_deref(),
        Some("org add acme sender_check=account")
    );
    assert_eq!(admin[0].login.as_deref(), Some("tester"));
    assert_eq!(
        admin[1].reason.as_deref(),
        Some("domain add acme.example org=acme active")
    );
    let all = s.events(&EventFilter::default()).unwrap();
    assert_eq!(all.len(), 4);
    let recent = s
        .events(&EventFilter {
            since: Some(now() - 3600),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(recent.len(), 3);
    let by_login = s
        .events(&EventFilter {
            login: Some("acme-x".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_login.len(), 1);
    let by_sender = s
        .events(&EventFilter {
            sender: Some("alice@acme.example".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(by_sender.len(), 1);
    let last2 = s
        .events(&EventFilter {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(last2.len(), 2);
    assert!(last2[0].id < last2[1].id, "oldest first");
    assert_eq!(last2[1].kind, EventKind::Mail);
    assert_eq!(s.prune_events(now() - 3600).unwrap(), 1);
    assert_eq!(s.events(&EventFilter::default()).unwrap().len(), 3);
}

#[test]
fn another_connection_sees_changes_at_next_query() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut a = Store::open(&path, Duration::from_secs(1), "a").unwrap();
    let b = Store::open_existing(&path, Duration::from_secs(1)).unwrap();
    assert!(b.org_list().unwrap().is_empty());
    a.org_add("acme", SenderCheck::Account).unwrap();
    assert_eq!(b.org_list().unwrap().len(), 1);
}

#[test]
fn locked_past_timeout_is_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let mut a = Store::open(&path, Duration::from_millis(100), "a").unwrap();
    let mut b = Store::open(&path, Duration::from_millis(100), "b").unwrap();
    let tx = a
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .unwrap();
    match b.org_add("acme", SenderCheck::Account) {
        Err(StoreError::Fault(m)) => assert!(m.contains("locked"), "{m}"),
        other => panic!("{other:?}"),
    }
    tx.rollback().unwrap();
    b.org_add("acme", SenderCheck::Account).unwrap();
}

#[test]
fn sender_facts_and_discovered_senders() {
    let (_d, mut s) = temp_store();
    s.org_add("acme", SenderCheck::Domain).unwrap();
    s.org_add("other", SenderCheck::Account).unwrap();
    s.domain_add("acme.example", "acme", true).unwrap();
    s.domain_add("old.example", "acme", false).unwrap();
    s.domain_add("other.example", "other", true).unwrap();
    s.account_add("alice@acme.example", "acme.example", AccountKind::EndUser)
        .unwrap();
    s.account_add("bob@other.example", "other.example", AccountKind::EndUser)
        .unwrap();
    s.credential_add("acme", "laptop", "acme-laptop-x", HASH)
        .unwrap();
    assert_eq!(s.sender_facts("ghost", &[]).unwrap(), LoginFacts::Unknown);
    let facts = match s
        .sender_facts(
            "acme-laptop-x",
            &[
                "alice@acme.example".into(),
                "bob@other.example".into(),
                "dave@acme.example".into(),
            ],
        )
        .unwrap()
    {
        LoginFacts::Live(facts) => facts,
        other => panic!("a live login: {other:?}"),
    };
    assert_eq!(facts.organization, "acme");
    assert_eq!(facts.sender_check, SenderCheck::Domain);
    assert_eq!(
        facts.domains.len(),
        2,
        "only the organization's own domains"
    );
    assert!(facts
        .domains
        .iter()
        .any(|d| d.name == "old.example" && !d.active));
    // Another organization's account is never among the facts.
    assert_eq!(facts.accounts.len(), 1);
    assert_eq!(facts.accounts[0].address, "alice@acme.example");
    s.credential_revoke("acme-laptop-x").unwrap();
    assert_eq!(
        s.sender_facts("acme-laptop-x", &[]).unwrap(),
        LoginFacts::Revoked {
            organization: "acme".into()
        }
    );

    s.record_discovered("acme", &["dave@acme.example".into()])
        .unwrap();
    s.record_discovered(
        "acme",
        &["dave@acme.example".into(), "erin@acme.example".into()],
    )
    .unwrap();
    let d = s.discovered(Some("acme")).unwrap();
    assert_eq!(d.len(), 2);
    let dave = d.iter().find(|x| x.address == "dave@acme.example").unwrap();
    assert_eq!(dave.messages, 2);
    // Registering one removes it from the list.
    s.account_add("dave@acme.example", "acme.example", AccountKind::EndUser)
        .unwrap();
    assert_eq!(s.discovered(None).unwrap().len(), 1);
}

#[test]
fn dkim_keys_rotate_and_the_store_is_not_world_readable() {
    use std::os::unix::fs::PermissionsExt;
    let (d, mut s) = temp_store();
    let mode = std::fs::metadata(d.path().join("t.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o007, 0, "store mode {mode:o}");
    s.org_add("acme", SenderCheck::Account).unwrap();
    s.domain_add("acme.example", "acme", true).unwrap();
    assert!(
        refused_msg(s.dkim_add("ghost.example", "s1", DkimAlgorithm::Rsa, b"k", "p"))
            .contains("not registered")
    );
    assert!(refused_msg(s.dkim_add(
        "acme.example",
        "bad_selector",
        DkimAlgorithm::Rsa,
        b"k",
        "p"
    ))
    .contains("invalid selector"));
    s.dkim_add("acme.example", "s1", DkimAlgorithm::Rsa, b"key1", "pub1")
        .unwrap();
    s.dkim_add(
        "acme.example",
        "e1",
        DkimAlgorithm::Ed25519,
        b"key2",
        "pub2",
    )
    .unwrap();
    assert!(
        refused_msg(s.dkim_add("acme.example", "s1", DkimAlgorithm::Rsa, b"k", "p"))
            .contains("already has a key")
    );
    assert!(
        s.dkim_signing_keys("acme.example").unwrap().is_empty(),
        "pending keys do not sign"
    );
    assert_eq!(s.dkim_activate("acme.example", "s1").unwrap(), None);
    assert_eq!(s.dkim_activate("acme.example", "e1").unwrap(), None);
    let keys = s.dkim_signing_keys("acme.example").unwrap();
    assert_eq!(keys.len(), 2, "both algorithms sign");
    assert!(
        !format!("{keys:?}").contains("key1"),
        "Debug shows no private key"
    );
    // Rotation: a new RSA key takes over; the old one is retired.
    s.dkim_add("acme.example", "s2", DkimAlgorithm::Rsa, b"key3", "pub3")
        .unwrap();
    assert_eq!(
        s.dkim_activate("acme.example", "s2").unwrap(),
        Some("s1".into())
    );
    let list = s.dkim_list(Some("acme.example")).unwrap();
    let state = |sel: &str| list.iter().find(|k| k.selector == sel).unwrap().state;
    assert_eq!(
        (
            state("s1").as_str(),
            state("s2").as_str(),
            state("e1").as_str()
        ),
        ("retired", "active", "active")
    );
    s.dkim_retire("acme.example", "e1").unwrap();
    assert!(refused_msg(s.dkim_retire("acme.example", "e1")).contains("already retired"));
    let keys = s.dkim_signing_keys("acme.example").unwrap();
    assert_eq!(
        keys.iter().map(|k| k.selector.as_str()).collect::<Vec<_>>(),
        ["s2"]
    );
    // An inactive domain does not sign.
    s.domain_set_active("acme.example", false).unwrap();
    assert!(s.dkim_signing_keys("acme.example").unwrap().is_empty());
    // Keys are not removed with their domain unless forced.
    let m = refused_msg(s.domain_remove("acme.example", false));
    assert!(
        m.contains("0 account(s) and 3 DKIM key(s)") && m.contains("--force"),
        "{m}"
    );
    s.domain_remove("acme.example", true).unwrap();
    assert!(s.dkim_list(None).unwrap().is_empty());
}

fn dmarc_row(time: i64, domain: &str, ip: &str) -> DmarcRow {
    DmarcRow {
        time,
        policy_domain: domain.into(),
        published: PublishedTags {
            p: "reject".into(),
            sp: "quarantine".into(),
            pct: 50,
            adkim: "s".into(),
            aspf: "r".into(),
            fo: "1".into(),
        },
        header_from: domain.into(),
        envelope_from: format!("bounce.{domain}"),
        source_ip: ip.into(),
        disposition: "quarantine".into(),
        dkim_aligned: "fail".into(),
        spf_aligned: "pass".into(),
        reasons: vec![PolicyOverride {
            kind: "sampled_out".into(),
            comment: Some("pct=50 <x>".into()),
        }],
        dkim: vec![DkimAuth {
            domain: domain.into(),
            selector: "s1".into(),
            result: "fail".into(),
        }],
        spf: vec![SpfAuth {
            domain: format!("bounce.{domain}"),
            scope: "mfrom".into(),
            result: "pass".into(),
        }],
        rua: vec![ReportUri {
            address: format!("dmarc@{domain}"),
            max_size: 10 * 1024 * 1024,
        }],
    }
}

#[test]
fn dmarc_results_round_trip_prune_and_remember_sent_reports() {
    let (_d, mut s) = temp_store();
    let a = dmarc_row(100, "a.example", "192.0.2.1");
    let b = dmarc_row(200, "b.example", "2001:db8::1");
    let c = dmarc_row(300, "a.example", "192.0.2.2");
    s.record_dmarc(&[a.clone(), b.clone()]).unwrap();
    // Events and results in one batch.
    s.record_batch(
        &[Event::new(EventKind::Mail, "accept")],
        std::slice::from_ref(&c),
    )
    .unwrap();
    assert_eq!(s.events(&EventFilter::default()).unwrap().len(), 1);
    assert_eq!(
        s.dmarc_rows(0, 1000).unwrap(),
        [a.clone(), b.clone(), c.clone()]
    );
    // Both ends of the period are included.
    assert_eq!(s.dmarc_rows(200, 300).unwrap(), [b.clone(), c.clone()]);
    assert_eq!(s.dmarc_rows(201, 299).unwrap(), []);

    assert_eq!(s.dmarc_report_sent("a.example", 0, 999).unwrap(), None);
    let sent = SentReport {
        policy_domain: "a.example".into(),
        begin: 0,
        end: 999,
        report_id: "0.a.example.1@mx".into(),
        recipients: vec!["dmarc@a.example".into()],
        sent: 1000,
    };
    s.record_dmarc_report(&sent).unwrap();
    assert_eq!(
        s.dmarc_report_sent("a.example", 0, 999).unwrap(),
        Some(sent)
    );
    assert_eq!(s.dmarc_report_sent("a.example", 0, 998).unwrap(), None);
    assert_eq!(s.dmarc_report_sent("b.example", 0, 999).unwrap(), None);

    // Pruning removes older results and the records of reports that ended before.
    assert_eq!(s.prune_dmarc(250).unwrap(), 2);
    assert_eq!(s.dmarc_rows(0, 1000).unwrap(), [c]);
    assert!(s.dmarc_report_sent("a.example", 0, 999).unwrap().is_some());
    s.prune_dmarc(1000).unwrap();
    assert_eq!(s.dmarc_report_sent("a.example", 0, 999).unwrap(), None);
}

#[test]
fn a_dmarc_result_outside_the_schema_is_refused() {
    let (_d, mut s) = temp_store();
    let mut r = dmarc_row(1, "a.example", "192.0.2.1");
    r.disposition = "bounce".into();
    assert!(s.record_dmarc(&[r]).is_err());
    assert_eq!(s.dmarc_rows(0, 10).unwrap(), []);
}

fn attempt<'a>(address: &'a str, username: Option<&'a str>, now: i64) -> ThrottleAttempt<'a> {
    ThrottleAttempt {
        address,
        username,
        now,
        window: 60,
        address_limit: 3,
    }
}

#[test]
fn throttle_counts_atomically_forgets_after_the_window_and_knows_addresses() {
    let (_d, mut s) = temp_store();
    let t = 1_000_000;
    let count = |address, username, known| ThrottleCount {
        address,
        username,
        known,
    };
    assert_eq!(
        s.throttle_attempt(&attempt("192.0.2.1", Some("alice"), t))
            .unwrap(),
        count(1, Some(1), false)
    );
    assert_eq!(
        s.throttle_attempt(&attempt("192.0.2.1", Some("alice"), t + 10))
            .unwrap(),
        count(2, Some(2), false)
    );
    // A success gives back its attempt and makes the address known for the username.
    s.throttle_release(&ThrottleRelease {
        address: "192.0.2.1",
        username: Some("alice"),
        known: Some(("alice", t + 1000)),
    })
    .unwrap();
    assert_eq!(
        s.throttle_attempt(&attempt("192.0.2.1", Some("alice"), t + 20))
            .unwrap(),
        count(2, None, true),
        "a known address is not counted against the username"
    );
    assert_eq!(
        s.throttle_attempt(&attempt("192.0.2.9", Some("alice"), t + 20))
            .unwrap(),
        count(1, Some(2), false)
    );
    // Past the address limit (3), the username is not counted.
    s.throttle_attempt(&attempt("192.0.2.1", Some("bob"), t + 20))
        .unwrap();
    assert_eq!(
        s.throttle_attempt(&attempt("192.0.2.1", Some("bob"), t + 20))
            .unwrap(),
        count(4, None, false)
    );
    let list = s.throttle_list(t + 20).unwrap();
    let rows: Vec<(String, String, u32, i64)> = list
        .iter()
        .map(|e| (e.kind.to_string(), e.key.clone(), e.failures, e.window_end))
        .collect();
    assert_eq!(
        rows,
        [
            ("address".into(), "192.0.2.1".into(), 4, t + 80),
            ("username".into(), "alice".into(), 2, t + 80),
            ("address".into(), "192.0.2.9".into(), 1, t + 80),
            ("username".into(), "bob".into(), 1, t + 80),
        ]
    );
    // A window after the last attempt, the counter starts again; the known address too
    // ends with its time.
    assert_eq!(
        s.throttle_attempt(&attempt("192.0.2.1", Some("alice"), t + 80))
            .unwrap(),
        count(1, None, true)
    );
    assert!(s.throttle_list(t + 200).unwrap().is_empty());
    assert_eq!(
        s.throttle_attempt(&attempt("192.0.2.1", Some("alice"), t + 1000))
            .unwrap(),
        count(1, Some(1), false)
    );
    // Pruning removes what has ended: the counters of 192.0.2.9 and bob, and the known
    // address.
    assert_eq!(s.throttle_prune(t + 1000).unwrap(), 2 + 1);
    assert_eq!(s.throttle_list(t + 1000).unwrap().len(), 2);
}

#[test]
fn throttle_clear_is_an_admin_change_and_says_what_to_do_when_nothing_matches() {
    let (_d, mut s) = temp_store();
    let t = now();
    for _ in 0..2 {
        s.throttle_attempt(&attempt("192.0.2.1", Some("alice"), t))
            .unwrap();
    }
    assert_eq!(s.throttle_clear("alice").unwrap(), 1);
    assert_eq!(s.throttle_list(t).unwrap().len(), 1);
    let err = refused_msg(s.throttle_clear("alice"));
    assert!(err.contains("postwarden throttle list"), "{err}");
    assert_eq!(s.throttle_clear("192.0.2.1").unwrap(), 1);
    assert!(s.throttle_list(t).unwrap().is_empty());
    let admin: Vec<String> = s
        .events(&EventFilter {
            kind: Some(EventKind::Admin),
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    assert_eq!(admin, ["throttle clear alice", "throttle clear 192.0.2.1"]);
}
