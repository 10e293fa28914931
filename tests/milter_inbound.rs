//! The inbound milter in-process (indymilter-test): with an unreachable DNS server (odd
//! input, forged Authentication-Results, a DNS outage), and with DNS answers injected from
//! a `StaticZone` (every SPF, DKIM and DMARC verdict and what the milter does with it,
//! each in milliseconds, no DNS server).

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[path = "common/milter.rs"]
mod milter_rt;

use indymilter_test::{EomAction, Status, TestConnection};
use postwarden::authn::{Authenticator, StaticZone};
use postwarden::config::Config;
use postwarden::dkim::{self, Algorithm, KeyPair, SigningKey};
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
    start_with(extra, None).await
}

/// The milter with `extra` in `[inbound]`; DNS from `zone` if given, otherwise the
/// configured (unreachable) server.
async fn start_with(extra: &str, zone: Option<StaticZone>) -> Fixture {
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
    let m = match zone {
        Some(zone) => milter::inbound::InboundMilter::with_authenticator(
            Arc::clone(&cfg),
            events,
            Authenticator::with_zone(zone),
        ),
        None => milter::inbound::InboundMilter::new(Arc::clone(&cfg), events).unwrap(),
    };
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
    let ours = our_results(&actions);
    assert!(ours.contains("temperror"), "{ours}");
    let ev = mail_events(&f).pop().unwrap();
    assert_eq!(ev.outcome, "accept");
    assert!(ev.reason.unwrap().contains("body not fully read"));
    // The session goes on with the next message.
    c.abort().await.unwrap();
    assert_eq!(c.mail(["<>"]).await.unwrap(), Status::Continue);
}

// ---- Verdicts with DNS answers injected ----------------------------------------------

/// The client address of [`session_from`].
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);

fn dkim_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| dkim::generate(Algorithm::Ed25519).expect("Ed25519 keygen"))
}

/// * pass.test: SPF allows CLIENT, no DMARC; fail.test: SPF -all; soft.test: SPF ~all;
/// * aligned.test: SPF allows CLIENT, DMARC p=reject;
/// * signed.test: SPF -all, DMARC p=reject, the DKIM key `sel` (freshly generated);
/// * quarantine.test: SPF -all, DMARC p=quarantine;
/// * ramp.test / ramp-q.test: SPF -all, DMARC p=reject / p=quarantine with pct=0;
/// * fwd.test / rogue.test: forwarders with the ARC sealing key `arc`;
/// * reported.test: SPF -all, DMARC p=reject asking for aggregate reports (rua=);
/// * down.test: every lookup fails temporarily.
fn zone() -> StaticZone {
    let mut zone = StaticZone::new();
    zone.txt("pass.test", &format!("v=spf1 ip4:{CLIENT} -all"))
        .txt("fail.test", "v=spf1 -all")
        .txt("soft.test", "v=spf1 ~all")
        .txt("aligned.test", &format!("v=spf1 ip4:{CLIENT} -all"))
        .txt("_dmarc.aligned.test", "v=DMARC1; p=reject")
        .txt("signed.test", "v=spf1 -all")
        .txt("_dmarc.signed.test", "v=DMARC1; p=reject")
        .dkim_key(&dkim_key().dns_record("signed.test", "sel"))
        .txt("quarantine.test", "v=spf1 -all")
        .txt("_dmarc.quarantine.test", "v=DMARC1; p=quarantine")
        .txt("ramp.test", "v=spf1 -all")
        .txt("_dmarc.ramp.test", "v=DMARC1; p=reject; pct=0")
        .txt("ramp-q.test", "v=spf1 -all")
        .txt("_dmarc.ramp-q.test", "v=DMARC1; p=quarantine; pct=0")
        .dkim_key(&arc_key().dns_record("fwd.test", "arc"))
        .dkim_key(&arc_key().dns_record("rogue.test", "arc"))
        .txt("reported.test", "v=spf1 -all")
        .txt(
            "_dmarc.reported.test",
            "v=DMARC1; p=reject; rua=mailto:d@reported.test!1m, mailto:x@vendor.example",
        )
        .fail("down.test")
        .fail("_dmarc.down.test");
    zone
}

/// A message from `from`, DKIM-signed with the `sel` key of signed.test when `sign`.
fn message(from: &str, sign: bool) -> String {
    let text = format!(
        "From: {from}\r\nTo: rcpt@postwarden.test\r\nSubject: scenario\r\n\
         Date: Mon, 03 Mar 2025 10:00:00 +0000\r\nMessage-ID: <1@scenario.test>\r\n\
         \r\nHello,\r\n  the figures are attached.\r\n"
    );
    if !sign {
        return text;
    }
    let key = SigningKey {
        domain: "signed.test".into(),
        selector: "sel".into(),
        algorithm: Algorithm::Ed25519,
        private_pkcs8_der: dkim_key().private_pkcs8_der.clone(),
    };
    let mut out = String::new();
    for h in dkim::sign(text.as_bytes(), &[key]).expect("sign") {
        out.push_str(&h);
        out.push_str("\r\n");
    }
    out.push_str(&text);
    out
}

async fn session_from(f: &Fixture, mail_from: &str) -> TestConnection {
    let mut c = TestConnection::open(f.addr).await.unwrap();
    let status = c.connect("relay.example", (CLIENT, 4000)).await.unwrap();
    assert_eq!(status, Status::Continue);
    assert_eq!(c.helo("relay.example").await.unwrap(), Status::Continue);
    let status = c.mail([format!("<{mail_from}>").as_str()]).await.unwrap();
    assert_eq!(status, Status::Continue);
    assert_eq!(
        c.rcpt(["<rcpt@postwarden.test>"]).await.unwrap(),
        Status::Continue
    );
    c
}

/// Sends `raw` (an RFC 5322 message with CRLF line ends) as header fields and body, and
/// returns what the milter did at end of message. No DNS server: the zone's resolver has
/// none to ask, so a name outside the zone is an immediate temporary error.
async fn deliver(c: &mut TestConnection, raw: &str) -> (indymilter_test::EomActions, Status) {
    let (head, body) = raw.split_once("\r\n\r\n").expect("header and body");
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = fields.last_mut().expect("a field before a continuation");
            last.1.push_str("\r\n");
            last.1.push_str(line);
        } else {
            let (name, value) = line.split_once(':').expect("a header field");
            fields.push((name.to_string(), value.trim_start().to_string()));
        }
    }
    for (name, value) in &fields {
        c.header(name.as_str(), value.as_str()).await.unwrap();
    }
    c.body(body.as_bytes().to_vec()).await.unwrap();
    c.eom().await.unwrap()
}

/// Our Authentication-Results value (the one inserted at the top).
fn our_results(actions: &indymilter_test::EomActions) -> String {
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
    ours[0].clone()
}

#[tokio::test]
async fn spf_pass_fail_and_softfail_are_reported() {
    let f = start_with("", Some(zone())).await;
    let pass_mechanism = format!("ip4:{CLIENT}");
    for (sender, result, mechanism) in [
        ("a@pass.test", "pass", pass_mechanism.as_str()),
        ("b@fail.test", "fail", "all"),
        ("c@soft.test", "softfail", "all"),
    ] {
        let mut c = session_from(&f, sender).await;
        let (actions, status) = deliver(&mut c, &message(sender, false)).await;
        assert_eq!(status, Status::Continue, "{sender}");
        let ar = our_results(&actions);
        assert!(
            ar.contains(&format!("spf={result} smtp.mailfrom={sender}")),
            "{ar}"
        );
        // The mechanism that decided it, in a comment after the property.
        assert!(
            ar.contains(&format!(
                "smtp.mailfrom={sender} (mechanism {mechanism} matched)"
            )),
            "{ar}"
        );
        assert!(ar.contains("dkim=none"), "{ar}");
        assert!(ar.contains("dmarc=none"), "{ar}");
    }
    let events = mail_events(&f);
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.outcome == "accept"), "{events:?}");
    assert!(events
        .iter()
        .any(|e| e.reason.as_deref().unwrap().contains("spf=softfail")));
}

#[tokio::test]
async fn dmarc_passes_through_aligned_spf() {
    let f = start_with("", Some(zone())).await;
    let mut c = session_from(&f, "ceo@aligned.test").await;
    let (actions, status) = deliver(&mut c, &message("CEO <ceo@aligned.test>", false)).await;
    assert_eq!(status, Status::Continue);
    let ar = our_results(&actions);
    assert!(
        ar.contains("spf=pass smtp.mailfrom=ceo@aligned.test"),
        "{ar}"
    );
    assert!(
        ar.contains(
            "dmarc=pass (p=reject sp=reject applied=reject dis=none) header.from=aligned.test"
        ),
        "{ar}"
    );
    assert_eq!(mail_events(&f)[0].outcome, "accept");
}

#[tokio::test]
async fn dkim_pass_carries_dmarc_and_an_altered_body_is_rejected() {
    let f = start_with("", Some(zone())).await;
    // SPF fails for signed.test, DKIM passes and aligns: DMARC passes.
    let signed = message("ceo@signed.test", true);
    let mut c = session_from(&f, "ceo@signed.test").await;
    let (actions, status) = deliver(&mut c, &signed).await;
    assert_eq!(status, Status::Continue);
    let ar = our_results(&actions);
    assert!(
        ar.contains("spf=fail smtp.mailfrom=ceo@signed.test"),
        "{ar}"
    );
    assert!(
        ar.contains("dkim=pass header.d=signed.test header.s=sel header.a=ed25519-sha256"),
        "{ar}"
    );
    assert!(ar.contains("dmarc=pass"), "{ar}");

    // The same message with its body changed in transit: DKIM fails, DMARC fails, and
    // signed.test publishes p=reject.
    let altered = signed.replace("figures are attached", "figures are attacked");
    let mut c = session_from(&f, "ceo@signed.test").await;
    let (actions, status) = deliver(&mut c, &altered).await;
    match status {
        Status::Reject { message: Some(m) } => assert_eq!(
            m.to_str().unwrap(),
            "550 5.7.1 Message rejected: it fails DMARC authentication and the domain \
             signed.test publishes p=reject"
        ),
        other => panic!("{other:?} {actions:?}"),
    }
    let events = mail_events(&f);
    let reasons: Vec<&str> = events.iter().filter_map(|e| e.reason.as_deref()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("dkim=fail") && r.contains("dmarc=fail")),
        "{reasons:?}"
    );
    assert!(events.iter().any(|e| e.outcome == "reject"), "{events:?}");
}

#[tokio::test]
async fn dmarc_quarantine_holds_or_marks_as_configured() {
    // Default: Postfix's hold queue.
    let f = start_with("", Some(zone())).await;
    let mut c = session_from(&f, "x@quarantine.test").await;
    let (actions, status) = deliver(&mut c, &message("x@quarantine.test", false)).await;
    assert_eq!(status, Status::Continue);
    assert!(
        actions.actions.iter().any(|a| matches!(
            a,
            EomAction::Quarantine { reason }
                if reason.to_str().unwrap() == "DMARC failure, quarantine.test publishes p=quarantine"
        )),
        "{actions:?}"
    );
    assert!(our_results(&actions).contains("dmarc=fail"));
    assert_eq!(mail_events(&f)[0].outcome, "quarantine");

    // dmarc_quarantine = "header": delivered with a marker header instead.
    let f = start_with("dmarc_quarantine = \"header\"\n", Some(zone())).await;
    let mut c = session_from(&f, "x@quarantine.test").await;
    let (actions, status) = deliver(&mut c, &message("x@quarantine.test", false)).await;
    assert_eq!(status, Status::Continue);
    assert!(
        !actions
            .actions
            .iter()
            .any(|a| matches!(a, EomAction::Quarantine { .. })),
        "{actions:?}"
    );
    assert!(
        actions.actions.iter().any(|a| matches!(
            a,
            EomAction::InsertHeader { index: 1, name, value }
                if name.to_str().unwrap() == "X-Postwarden-Quarantine"
                    && value.to_str().unwrap().contains("quarantine.test publishes p=quarantine")
        )),
        "{actions:?}"
    );
    assert_eq!(mail_events(&f)[0].outcome, "quarantine");
}

#[tokio::test]
async fn dmarc_pct_never_applies_more_than_the_domain_asked_for() {
    // p=reject; pct=0: every failing message is sampled out and gets quarantine (held),
    // never 550.
    let f = start_with("", Some(zone())).await;
    let mut c = session_from(&f, "x@ramp.test").await;
    let (actions, status) = deliver(&mut c, &message("x@ramp.test", false)).await;
    assert_eq!(status, Status::Continue);
    let ar = our_results(&actions);
    assert!(
        ar.contains(
            "dmarc=fail (p=reject sp=reject pct=0 sampled-out applied=quarantine dis=quarantine)"
        ),
        "{ar}"
    );
    assert!(
        actions.actions.iter().any(|a| matches!(
            a,
            EomAction::Quarantine { reason }
                if reason.to_str().unwrap().contains("pct=0% of failing mail; this message was sampled out")
        )),
        "{actions:?}"
    );
    assert_eq!(mail_events(&f)[0].outcome, "quarantine");

    // p=quarantine; pct=0: sampled out to none, delivered as is.
    let mut c = session_from(&f, "x@ramp-q.test").await;
    let (actions, status) = deliver(&mut c, &message("x@ramp-q.test", false)).await;
    assert_eq!(status, Status::Continue);
    assert!(
        our_results(&actions).contains("pct=0 sampled-out applied=none dis=none"),
        "{actions:?}"
    );
    assert!(!actions
        .actions
        .iter()
        .any(|a| matches!(a, EomAction::Quarantine { .. })));
    assert_eq!(mail_events(&f)[1].outcome, "accept");
}

#[tokio::test]
async fn mailing_list_mail_failing_p_reject_is_held_not_rejected() {
    let listed = message("author@signed.test", false).replacen(
        "Subject: scenario\r\n",
        "Subject: [users] scenario\r\nList-Id: Users <users.lists.example>\r\n",
        1,
    );
    // Default: held, and the hold reason and the event say why.
    let f = start_with("", Some(zone())).await;
    let mut c = session_from(&f, "bounces@lists.example").await;
    let (actions, status) = deliver(&mut c, &listed).await;
    assert_eq!(status, Status::Continue);
    let why = "DMARC failure, signed.test publishes p=reject; mailing list Users <users.lists.example>: held instead of rejected";
    assert!(
        actions.actions.iter().any(|a| matches!(
            a,
            EomAction::Quarantine { reason } if reason.to_str().unwrap() == why
        )),
        "{actions:?}"
    );
    let ev = &mail_events(&f)[0];
    assert_eq!(ev.outcome, "quarantine");
    assert!(ev.reason.as_deref().unwrap().ends_with(why), "{ev:?}");

    // The same message without List-Id is refused.
    let mut c = session_from(&f, "bounces@lists.example").await;
    let (_, status) = deliver(&mut c, &message("author@signed.test", false)).await;
    assert!(matches!(status, Status::Reject { .. }), "{status:?}");

    // dmarc_reject_list = "reject": lists get no exception.
    let f = start_with("dmarc_reject_list = \"reject\"\n", Some(zone())).await;
    let mut c = session_from(&f, "bounces@lists.example").await;
    let (_, status) = deliver(&mut c, &listed).await;
    assert!(matches!(status, Status::Reject { .. }), "{status:?}");
}

fn arc_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| dkim::generate(Algorithm::Ed25519).expect("Ed25519 keygen"))
}

/// signed.test's signed message as a forwarder passes it on: it verified it (DMARC
/// pass), tagged the subject (so the DKIM signature breaks) and ARC-sealed the result
/// as `sealer` with its key `arc`.
fn forwarded(sealer: &str) -> String {
    use mail_auth::common::headers::HeaderWriter;
    let changed = message("author@signed.test", true).replacen(
        "Subject: scenario",
        "Subject: [fwd] scenario",
        1,
    );
    let parsed = mail_auth::AuthenticatedMessage::parse(changed.as_bytes()).unwrap();
    let dmarc = mail_auth::DmarcOutput::new("signed.test".into())
        .with_dkim_result(mail_auth::DmarcResult::Pass);
    let results = mail_auth::AuthenticationResults::new(sealer).with_dmarc_result(&dmarc);
    let key = mail_auth::common::crypto::Ed25519Key::from_pkcs8_der(&arc_key().private_pkcs8_der)
        .unwrap();
    let set = mail_auth::arc::ArcSealer::from_key(key)
        .domain(sealer)
        .selector("arc")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .seal(&parsed, &results, &mail_auth::ArcOutput::default())
        .unwrap();
    format!("{}{changed}", set.to_header())
}

#[tokio::test]
async fn a_trusted_arc_sealer_vouches_for_forwarded_mail() {
    let f = start_with("arc_trusted_sealers = [\"fwd.test\"]\n", Some(zone())).await;

    // Sealed by the trusted forwarder: DMARC fails now, the chain passes, delivered.
    let mut c = session_from(&f, "author@signed.test").await;
    let (actions, status) = deliver(&mut c, &forwarded("fwd.test")).await;
    assert_eq!(status, Status::Continue);
    let ar = our_results(&actions);
    assert!(ar.contains("arc=pass (i=1 sealed by fwd.test)"), "{ar}");
    assert!(ar.contains("dmarc=fail"), "{ar}");
    assert!(!actions
        .actions
        .iter()
        .any(|a| matches!(a, EomAction::Quarantine { .. })));
    let ev = &mail_events(&f)[0];
    assert_eq!(ev.outcome, "accept");
    assert!(
        ev.reason
            .as_deref()
            .unwrap()
            .contains("overridden (reason arc): the trusted ARC sealer fwd.test saw DMARC pass"),
        "{ev:?}"
    );

    // The same by an untrusted sealer: the chain passes, the policy applies: 550.
    let mut c = session_from(&f, "author@signed.test").await;
    let (_, status) = deliver(&mut c, &forwarded("rogue.test")).await;
    assert!(matches!(status, Status::Reject { .. }), "{status:?}");

    // A trusted sealer's chain broken after sealing (the body changed): no exception.
    let tampered = forwarded("fwd.test").replace("the figures", "the numbers");
    let mut c = session_from(&f, "author@signed.test").await;
    let (_, status) = deliver(&mut c, &tampered).await;
    assert!(matches!(status, Status::Reject { .. }), "{status:?}");
}

#[tokio::test]
async fn dns_temperror_tempfails_or_accepts_as_configured() {
    let f = start_with("", Some(zone())).await;
    let mut c = session_from(&f, "x@down.test").await;
    let (_, status) = deliver(&mut c, &message("x@down.test", false)).await;
    match status {
        Status::Tempfail { message: Some(m) } => assert_eq!(
            m.to_str().unwrap(),
            "451 4.7.1 Temporary DNS failure checking SPF/DKIM/DMARC; try again later"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(mail_events(&f)[0].outcome, "tempfail");

    let f = start_with("dns_failure = \"accept\"\n", Some(zone())).await;
    let mut c = session_from(&f, "x@down.test").await;
    let (actions, status) = deliver(&mut c, &message("x@down.test", false)).await;
    assert_eq!(status, Status::Continue);
    let ar = our_results(&actions);
    assert!(ar.contains("spf=temperror"), "{ar}");
    assert!(ar.contains("dmarc=temperror"), "{ar}");
    assert_eq!(mail_events(&f)[0].outcome, "accept");
}

fn seal_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| dkim::generate(Algorithm::Rsa).expect("RSA keygen"))
}

/// The message as Postfix delivers it after the milter's header insertions at the top.
fn delivered(raw: &str, actions: &indymilter_test::EomActions) -> String {
    let mut top: Vec<String> = Vec::new();
    for a in &actions.actions {
        if let EomAction::InsertHeader {
            index: 0,
            name,
            value,
        } = a
        {
            let value = value.to_string_lossy().replace('\n', "\r\n");
            top.insert(
                0,
                format!("{}: {}", name.to_str().unwrap(), value.trim_start()),
            );
        }
    }
    format!("{}\r\n{raw}", top.join("\r\n"))
}

#[tokio::test]
async fn delivered_mail_is_arc_sealed_when_configured() {
    use base64::Engine as _;
    let keydir = tempfile::tempdir().unwrap();
    let pem = keydir.path().join("arc.pem");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&seal_key().private_pkcs8_der);
    std::fs::write(
        &pem,
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n"),
    )
    .unwrap();
    let f = start_with(
        &format!(
            "arc_trusted_sealers = [\"fwd.test\"]\narc_seal_domain = \"gw.test\"\n\
             arc_seal_selector = \"seal1\"\narc_seal_key = {:?}\n",
            pem.display().to_string()
        ),
        Some(zone()),
    )
    .await;
    // The customer's server: knows our key (and the forwarder's).
    let mut downstream = zone();
    downstream.dkim_key(&seal_key().dns_record("gw.test", "seal1"));
    let verifier = Authenticator::with_zone(downstream);
    let verify = |msg: String| {
        let verifier = verifier.clone();
        async move {
            let input = postwarden::authn::Input {
                client_ip: "192.0.2.99".parse().unwrap(),
                helo: "gw.test",
                mail_from: "",
                message: msg.as_bytes(),
            };
            verifier.evaluate(&input).await.arc
        }
    };

    // Direct mail that passes DMARC: the first set, cv=none, saying dmarc=pass.
    let raw = message("author@signed.test", true);
    let mut c = session_from(&f, "author@signed.test").await;
    let (actions, status) = deliver(&mut c, &raw).await;
    assert_eq!(status, Status::Continue);
    let out = delivered(&raw, &actions);
    assert!(
        out.starts_with("ARC-Seal: i=1; a=rsa-sha256; cv=none; d=gw.test; s=seal1;"),
        "{out}"
    );
    let ours = our_results(&actions);
    assert!(
        out.contains(&format!(
            "ARC-Authentication-Results: i=1; {}",
            ours.trim_start().replace('\n', "\r\n")
        )),
        "the AAR is our Authentication-Results: {out}"
    );
    let arc = verify(out.clone()).await;
    assert_eq!(
        arc.result,
        postwarden::authn::Outcome::Pass,
        "{arc:?}\n{out}"
    );
    assert_eq!(arc.instances, 1);
    assert_eq!(arc.sealer.as_deref(), Some("gw.test"));
    assert!(arc.sealer_saw_dmarc_pass, "{arc:?}");
    // Changed after sealing: the chain no longer verifies.
    let arc = verify(out.replace("the figures", "the numbers")).await;
    assert_eq!(arc.result, postwarden::authn::Outcome::Fail, "{arc:?}");

    // Forwarded mail with a chain: the second set, cv=pass, and the chain still passes.
    let raw = forwarded("fwd.test");
    let mut c = session_from(&f, "author@signed.test").await;
    let (actions, status) = deliver(&mut c, &raw).await;
    assert_eq!(status, Status::Continue);
    let out = delivered(&raw, &actions);
    assert!(
        out.starts_with("ARC-Seal: i=2; a=rsa-sha256; cv=pass; d=gw.test;"),
        "{out}"
    );
    let arc = verify(out).await;
    assert_eq!(arc.result, postwarden::authn::Outcome::Pass, "{arc:?}");
    assert_eq!(arc.instances, 2);
    assert_eq!(arc.sealer.as_deref(), Some("gw.test"));

    // Rejected mail gets no seal; nothing else changes.
    let raw = message("x@signed.test", false);
    let mut c = session_from(&f, "x@signed.test").await;
    let (actions, status) = deliver(&mut c, &raw).await;
    assert!(matches!(status, Status::Reject { .. }), "{status:?}");
    assert!(actions.actions.is_empty(), "{actions:?}");
}

#[tokio::test]
async fn dmarc_results_are_kept_for_reports_only_when_enabled_and_asked_for() {
    let listed = message("author@reported.test", false).replacen(
        "Subject: scenario\r\n",
        "Subject: [users] scenario\r\nList-Id: Users <users.lists.example>\r\n",
        1,
    );
    let rows = |f: &Fixture| {
        Store::open_existing(&f.cfg.store_path(), Duration::from_secs(1))
            .unwrap()
            .dmarc_rows(0, i64::MAX)
            .unwrap()
    };
    let enabled = "[dmarc_reports]\nenabled = true\norg_name = \"T\"\nemail = \"r@mx.test\"\n";
    let f = start_with(enabled, Some(zone())).await;
    // Held as a mailing-list message: quarantine, reason mailing_list.
    let mut c = session_from(&f, "bounces@lists.example").await;
    assert_eq!(deliver(&mut c, &listed).await.1, Status::Continue);
    // Refused: reject.
    let mut c = session_from(&f, "bounces@lists.example").await;
    let (_, status) = deliver(&mut c, &message("author@reported.test", false)).await;
    assert!(matches!(status, Status::Reject { .. }), "{status:?}");
    // A domain whose record asks for no reports: nothing kept.
    let mut c = session_from(&f, "a@aligned.test").await;
    assert_eq!(
        deliver(&mut c, &message("a@aligned.test", false)).await.1,
        Status::Continue
    );
    let got = rows(&f);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].policy_domain, "reported.test");
    assert_eq!(got[0].disposition, "quarantine");
    assert_eq!(got[0].reasons[0].kind, "mailing_list");
    assert_eq!(got[0].envelope_from, "lists.example");
    assert_eq!(got[0].source_ip, CLIENT.to_string());
    assert_eq!(
        (got[0].spf_aligned.as_str(), got[0].dkim_aligned.as_str()),
        ("fail", "fail")
    );
    assert_eq!(got[0].spf[0].scope, "mfrom");
    assert_eq!(got[0].rua[0].address, "d@reported.test");
    assert_eq!(got[0].rua[0].max_size, 1024 * 1024);
    assert_eq!(got[0].rua[1].address, "x@vendor.example");
    assert_eq!(got[1].disposition, "reject");
    assert!(got[1].reasons.is_empty());
    assert_eq!(mail_events(&f).len(), 3);

    // Disabled (the default): nothing kept.
    let f = start_with("", Some(zone())).await;
    let mut c = session_from(&f, "bounces@lists.example").await;
    assert_eq!(deliver(&mut c, &listed).await.1, Status::Continue);
    assert_eq!(mail_events(&f).len(), 1);
    assert!(rows(&f).is_empty());
}
