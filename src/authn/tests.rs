//! The evaluator against DNS answers held in a [`StaticZone`]: every verdict, fast and
//! without a DNS server. Also the shared `verdicts()` fixture of the module's tests.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::*;
use crate::dkim::{self, Algorithm, KeyPair, SigningKey};

/// A complete set of passing verdicts for `a@b.example` (no DNS involved).
pub(crate) fn verdicts() -> Verdicts {
    Verdicts {
        client_ip: "192.0.2.7".parse().unwrap(),
        helo: "mail.b.example".into(),
        mail_from: "a@b.example".into(),
        spf_helo: SpfVerdict {
            result: Outcome::None,
            domain: "mail.b.example".into(),
            identity: "postmaster@mail.b.example".into(),
            explanation: None,
            cause: None,
        },
        spf_mail_from: SpfVerdict {
            result: Outcome::Pass,
            domain: "b.example".into(),
            identity: "a@b.example".into(),
            explanation: None,
            cause: None,
        },
        dkim: vec![DkimVerdict {
            result: Outcome::Pass,
            domain: "b.example".into(),
            selector: "sel".into(),
            algorithm: "rsa-sha256".into(),
            identity: None,
            b_prefix: "abcd1234".into(),
            reason: None,
        }],
        dmarc: DmarcVerdict {
            result: Outcome::Pass,
            from_domain: "b.example".into(),
            policy: Some(Policy::Reject),
            record: Some(PublishedPolicy {
                p: Policy::Reject,
                sp: Policy::Reject,
                np: Policy::Reject,
                strict_dkim: false,
                strict_spf: false,
                testing: false,
            }),
            spf_aligned: Outcome::Pass,
            dkim_aligned: Outcome::Pass,
            reason: None,
        },
        from_domains: vec!["b.example".into()],
    }
}

#[test]
fn disposition_and_temporary_failure() {
    let mut v = verdicts();
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);
    assert!(!v.dns_temporary_failure());

    v.dmarc.result = Outcome::Fail;
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);
    v.dmarc.policy = Some(Policy::Quarantine);
    assert_eq!(v.dmarc_disposition(), Disposition::Quarantine);
    v.dmarc.policy = Some(Policy::None);
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);

    v.dmarc.policy = Some(Policy::Reject);
    v.dmarc.result = Outcome::TempError;
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);
    assert!(v.dns_temporary_failure());
    v.dmarc.result = Outcome::PermError;
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);
    assert!(!v.dns_temporary_failure());

    v.dmarc.result = Outcome::None;
    v.spf_mail_from.result = Outcome::TempError;
    assert!(v.dns_temporary_failure());
    v.dmarc.result = Outcome::Pass;
    assert!(!v.dns_temporary_failure(), "DMARC passed regardless");
    v.dmarc.result = Outcome::None;
    v.spf_mail_from.result = Outcome::Fail;
    v.dkim[0].result = Outcome::TempError;
    assert!(
        !v.dns_temporary_failure(),
        "a lone DKIM temperror does not matter"
    );
}

#[test]
fn builds_outside_a_runtime_and_from_system_conf() {
    let auth = Authenticator::new(&["192.0.2.53:53".parse().unwrap()], Duration::from_secs(3))
        .unwrap()
        .with_budget(Duration::from_secs(1));
    assert_eq!(
        auth.budget(),
        Duration::from_secs(3),
        "at least one timeout"
    );
    assert!(!auth.dns().is_zone());
    // Empty list: /etc/resolv.conf, which may be missing in a sandbox; no panic.
    match Authenticator::new(&[], Duration::from_secs(1)) {
        Ok(a) => assert_eq!(a.timeout(), Duration::from_secs(1)),
        Err(e) => assert!(e.to_string().contains("resolv.conf"), "{e}"),
    }
    // A zone needs no runtime either.
    assert!(Authenticator::with_zone(StaticZone::new()).dns().is_zone());
}

#[test]
fn evaluate_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let auth = Authenticator::new(&["127.0.0.1:9".parse().unwrap()], Duration::ZERO).unwrap();
        assert_eq!(auth.timeout(), MIN_TIMEOUT);
        assert_eq!(auth.budget(), MIN_TIMEOUT * 4);
        let input = Input {
            client_ip: "127.0.0.1".parse().unwrap(),
            helo: "h",
            mail_from: "",
            message: b"",
        };
        let fut = auth.evaluate(&input);
        assert_send(&fut);
        drop(fut);
    });
}

// ---- The evaluator against a zone ----------------------------------------------------

const CLIENT: &str = "192.0.2.25";

fn ed_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| dkim::generate(Algorithm::Ed25519).expect("Ed25519 keygen"))
}

/// * sender.test: SPF allows CLIENT, DMARC p=reject, Ed25519 key `ed1`;
/// * soft.test: SPF ~all, DMARC p=quarantine;
/// * org.test: p=reject sp=quarantine, no SPF; news.org.test has an address;
/// * down.test: every lookup fails temporarily.
fn zone() -> StaticZone {
    let mut zone = StaticZone::new();
    zone.txt("sender.test", &format!("v=spf1 ip4:{CLIENT} -all"))
        .txt("_dmarc.sender.test", "v=DMARC1; p=reject")
        .dkim_key(&ed_key().dns_record("sender.test", "ed1"))
        .txt("mail.sender.test", &format!("v=spf1 ip4:{CLIENT} -all"))
        .txt("soft.test", "v=spf1 ~all")
        .txt("_dmarc.soft.test", "v=DMARC1; p=quarantine")
        .txt("_dmarc.org.test", "v=DMARC1; p=reject; sp=quarantine")
        .address("news.org.test", "198.51.100.1".parse().unwrap())
        .fail("down.test")
        .fail("_dmarc.down.test");
    zone
}

fn message(from: &str, body: &str, sign_as: Option<&str>) -> Vec<u8> {
    let text = format!(
        "From: {from}\r\nTo: rcpt@receiver.test\r\nSubject: scenario\r\n\
         Date: Mon, 03 Mar 2025 10:00:00 +0000\r\nMessage-ID: <1@scenario.test>\r\n\r\n{body}"
    );
    let Some(domain) = sign_as else {
        return text.into_bytes();
    };
    let key = SigningKey {
        domain: domain.into(),
        selector: "ed1".into(),
        algorithm: Algorithm::Ed25519,
        private_pkcs8_der: ed_key().private_pkcs8_der.clone(),
    };
    let mut out = String::new();
    for h in dkim::sign(text.as_bytes(), &[key]).expect("sign") {
        out.push_str(&h);
        out.push_str("\r\n");
    }
    out.push_str(&text);
    out.into_bytes()
}

fn evaluate(auth: &Authenticator, ip: &str, helo: &str, mail_from: &str, msg: &[u8]) -> Verdicts {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let input = Input {
        client_ip: ip.parse().unwrap(),
        helo,
        mail_from,
        message: msg,
    };
    let start = Instant::now();
    let v = rt.block_on(auth.evaluate(&input));
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "answered from memory: {:?}",
        start.elapsed()
    );
    v
}

#[test]
fn zone_spf_dkim_dmarc_pass() {
    let auth = Authenticator::with_zone(zone());
    let msg = message(
        "Alice <alice@sender.test>",
        "hello\r\n",
        Some("sender.test"),
    );
    let v = evaluate(
        &auth,
        CLIENT,
        "mail.sender.test",
        "<alice@sender.test>",
        &msg,
    );
    assert_eq!(v.spf_mail_from.result, Outcome::Pass);
    assert_eq!(v.spf_helo.result, Outcome::Pass);
    assert_eq!(v.dkim.len(), 1);
    assert_eq!(v.dkim[0].result, Outcome::Pass, "{:?}", v.dkim[0]);
    assert_eq!(v.dkim[0].algorithm, "ed25519-sha256");
    assert_eq!(v.dmarc.result, Outcome::Pass);
    assert_eq!(v.dmarc.policy, Some(Policy::Reject));
    assert_eq!(v.dmarc.spf_aligned, Outcome::Pass);
    assert_eq!(v.dmarc.dkim_aligned, Outcome::Pass);
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);
    let ar = authentication_results("mx.receiver.test", &v);
    assert!(
        ar.contains("dkim=pass header.d=sender.test header.s=ed1"),
        "{ar}"
    );
}

#[test]
fn zone_dkim_alone_carries_dmarc_and_a_changed_body_fails() {
    let auth = Authenticator::with_zone(zone());
    // SPF fails (wrong client), DKIM passes: DMARC passes through DKIM.
    let msg = message("alice@sender.test", "hello\r\n", Some("sender.test"));
    let v = evaluate(
        &auth,
        "203.0.113.9",
        "relay.test",
        "alice@sender.test",
        &msg,
    );
    assert_eq!(v.spf_mail_from.result, Outcome::Fail);
    assert_eq!(v.dkim[0].result, Outcome::Pass);
    assert_eq!(v.dmarc.result, Outcome::Pass);

    // The body changed in transit: DKIM fails, and with SPF failing DMARC fails under
    // p=reject.
    let mut altered = msg.clone();
    let at = altered.len() - 3;
    altered[at] = b'X';
    let v = evaluate(
        &auth,
        "203.0.113.9",
        "relay.test",
        "alice@sender.test",
        &altered,
    );
    assert_eq!(v.dkim[0].result, Outcome::Fail);
    assert!(v.dkim[0].reason.as_deref().unwrap().contains("body hash"));
    assert_eq!(v.dmarc.result, Outcome::Fail);
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);
}

#[test]
fn zone_spf_softfail_and_quarantine() {
    let auth = Authenticator::with_zone(zone());
    let msg = message("bob@soft.test", "hi\r\n", None);
    let v = evaluate(&auth, CLIENT, "relay.test", "bob@soft.test", &msg);
    assert_eq!(v.spf_mail_from.result, Outcome::SoftFail);
    assert!(v.dkim.is_empty());
    assert_eq!(v.dmarc.result, Outcome::Fail);
    assert_eq!(v.dmarc_disposition(), Disposition::Quarantine);
}

#[test]
fn zone_organizational_domain_and_missing_records() {
    let auth = Authenticator::with_zone(zone());
    // A subdomain without its own record gets the parent's sp=.
    let msg = message("x@news.org.test", "hi\r\n", None);
    let v = evaluate(&auth, CLIENT, "relay.test", "x@news.org.test", &msg);
    assert_eq!(v.spf_mail_from.result, Outcome::None);
    assert_eq!(v.dmarc.result, Outcome::Fail);
    assert_eq!(v.dmarc.policy, Some(Policy::Quarantine));
    assert_eq!(v.dmarc.from_domain, "news.org.test");

    // Nothing published anywhere: none across the board.
    let msg = message("x@nowhere.test", "hi\r\n", None);
    let v = evaluate(&auth, CLIENT, "relay.test", "x@nowhere.test", &msg);
    assert_eq!(v.spf_mail_from.result, Outcome::None);
    assert_eq!(v.dmarc.result, Outcome::None);
    assert!(!v.dns_temporary_failure());
}

#[test]
fn zone_temporary_failures() {
    let auth = Authenticator::with_zone(zone());
    let msg = message("x@down.test", "hi\r\n", None);
    let v = evaluate(&auth, CLIENT, "relay.test", "x@down.test", &msg);
    assert_eq!(v.spf_mail_from.result, Outcome::TempError);
    assert_eq!(v.dmarc.result, Outcome::TempError);
    assert!(v.dns_temporary_failure());
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);
}

#[test]
fn zone_second_from_domain_cannot_escape_reject() {
    let auth = Authenticator::with_zone(zone());
    let msg = message("ceo@sender.test, x@nowhere.test", "hi\r\n", None);
    let v = evaluate(&auth, "203.0.113.9", "relay.test", "x@nowhere.test", &msg);
    assert_eq!(v.from_domains, ["sender.test", "nowhere.test"]);
    assert_eq!(v.dmarc.from_domain, "sender.test");
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);
}

#[test]
fn zone_spf_helo_literal_is_none_and_causes_are_named() {
    let auth = Authenticator::with_zone(zone());
    let msg = message("Alice <alice@sender.test>", "hello\r\n", None);
    // A HELO address literal is not checked (RFC 7208 section 2.3); MAIL FROM still is,
    // and its pass carries DMARC through SPF alignment.
    let v = evaluate(&auth, CLIENT, "[192.0.2.25]", "alice@sender.test", &msg);
    assert_eq!(v.spf_helo.result, Outcome::None);
    assert_eq!(v.spf_mail_from.result, Outcome::Pass);
    assert_eq!(
        v.spf_mail_from.cause.as_deref(),
        Some(format!("ip4:{CLIENT}").as_str())
    );
    assert_eq!(v.dmarc.spf_aligned, Outcome::Pass);
    assert_eq!(v.dmarc.result, Outcome::Pass);
    // A fully qualified sender domain (trailing dot) is the same domain.
    let v = evaluate(
        &auth,
        CLIENT,
        "mail.sender.test",
        "alice@sender.test.",
        &msg,
    );
    assert_eq!(v.spf_mail_from.result, Outcome::Pass);
    // A null sender with a HELO literal: nothing to check.
    let v = evaluate(&auth, CLIENT, "[192.0.2.25]", "<>", &msg);
    assert_eq!(v.spf_mail_from.result, Outcome::None);
    // A DNS failure is temperror, with the cause named.
    let v = evaluate(&auth, CLIENT, "mail.sender.test", "a@down.test", &msg);
    assert_eq!(v.spf_mail_from.result, Outcome::TempError);
    assert_eq!(v.spf_mail_from.cause.as_deref(), Some("DNS lookup failed"));
}
