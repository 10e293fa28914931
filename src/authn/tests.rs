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
            note: None,
        }],
        dmarc: DmarcVerdict {
            result: Outcome::Pass,
            from_domain: "b.example".into(),
            policy: Some(Policy::Reject),
            record: Some(PublishedPolicy {
                domain: "b.example".into(),
                rua: vec![ReportUri {
                    address: "dmarc@b.example".into(),
                    max_size: 0,
                }],
                fo: Some("0".into()),
                p: Policy::Reject,
                sp: Policy::Reject,
                np: Policy::Reject,
                strict_dkim: false,
                strict_spf: false,
                testing: false,
                pct: 100,
            }),
            spf_aligned: Outcome::Pass,
            dkim_aligned: Outcome::Pass,
            reason: None,
            sampled_out: false,
        },
        from_domains: vec!["b.example".into()],
        list_id: None,
        arc: super::ArcVerdict::none(),
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

// ---- DKIM as RFC 6376 says ---------------------------------------------------------

/// dk.test: DMARC p=reject, no SPF, the Ed25519 key under several selectors whose
/// records differ in one tag each.
fn dkim_zone() -> StaticZone {
    let p = &ed_key().public_key_b64;
    let mut zone = StaticZone::new();
    zone.txt("_dmarc.dk.test", "v=DMARC1; p=reject");
    for (selector, tags) in [
        ("plain", ""),
        ("sha1only", "h=sha1; "),
        ("sha1both", "h=sha1:sha256; "),
        ("other", "s=other; "),
        ("email", "s=email; "),
        ("strict", "t=s; "),
    ] {
        zone.txt(
            &format!("{selector}._domainkey.dk.test"),
            &format!("v=DKIM1; k=ed25519; {tags}p={p}"),
        );
    }
    zone.txt("revoked._domainkey.dk.test", "v=DKIM1; k=ed25519; p=");
    zone
}

#[derive(Default)]
struct SignOpts<'a> {
    auid: Option<&'a str>,
    body_length: bool,
    simple: bool,
}

/// A message from `a@dk.test` signed by dk.test with `selector` (mail-auth's signer, so
/// that `i=`, `l=` and simple canonicalization can be asked for).
fn dk_message(selector: &str, body: &str, opts: SignOpts<'_>) -> String {
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter as _;
    use mail_auth::dkim::{Canonicalization, DkimSigner};
    let text = format!(
        "From: a@dk.test\r\nTo: rcpt@receiver.test\r\nSubject: dkim rules\r\n\
         Date: Mon, 03 Mar 2025 10:00:00 +0000\r\n\r\n{body}"
    );
    let key = Ed25519Key::from_pkcs8_der(&ed_key().private_pkcs8_der).unwrap();
    let c = if opts.simple {
        Canonicalization::Simple
    } else {
        Canonicalization::Relaxed
    };
    let mut signer = DkimSigner::from_key(key)
        .domain("dk.test")
        .selector(selector)
        .headers(["From", "To", "Subject", "Date"])
        .header_canonicalization(c)
        .body_canonicalization(c)
        .body_length(opts.body_length);
    if let Some(auid) = opts.auid {
        signer = signer.agent_user_identifier(auid);
    }
    let sig = signer.sign(text.as_bytes()).unwrap();
    format!("{}{text}", sig.to_header())
}

fn dk_verdicts(auth: &Authenticator, msg: &str) -> Verdicts {
    evaluate(
        auth,
        "203.0.113.9",
        "relay.test",
        "a@dk.test",
        msg.as_bytes(),
    )
}

#[test]
fn dkim_body_length_signatures_verify_and_say_what_is_unsigned() {
    let auth = Authenticator::with_zone(dkim_zone());
    let opts = || SignOpts {
        body_length: true,
        ..Default::default()
    };
    let msg = dk_message("plain", "hello\r\n", opts());
    assert!(msg.contains("l=7;"), "{msg}");
    let v = dk_verdicts(&auth, &msg);
    assert_eq!(v.dkim[0].result, Outcome::Pass, "{:?}", v.dkim[0]);
    assert_eq!(v.dkim[0].note, None);
    assert_eq!(v.dmarc.result, Outcome::Pass);

    // A footer added in transit: still a pass (RFC 6376), and the header says so.
    let appended = format!("{msg}-- \r\nlist footer\r\n");
    let v = dk_verdicts(&auth, &appended);
    assert_eq!(v.dkim[0].result, Outcome::Pass, "{:?}", v.dkim[0]);
    assert_eq!(
        v.dkim[0].note.as_deref(),
        Some("l=7: 17 bytes after the signed body")
    );
    assert_eq!(v.dmarc.result, Outcome::Pass);
    let ar = authentication_results("mx.receiver.test", &v);
    assert!(
        ar.contains("dkim=pass (l=7: 17 bytes after the signed body) header.d=dk.test header.s=plain header.a=ed25519-sha256 header.b="),
        "{ar}"
    );

    // A change inside the signed part fails.
    let v = dk_verdicts(&auth, &appended.replace("hello", "HELLO"));
    assert_eq!(v.dkim[0].result, Outcome::Fail);
    assert!(v.dkim[0].reason.as_deref().unwrap().contains("body hash"));

    // Local policy: l= signatures are neutral, named, and do not carry DMARC.
    let strict =
        Authenticator::with_zone(dkim_zone()).with_dkim_body_length(DkimBodyLength::Neutral);
    let v = dk_verdicts(&strict, &appended);
    assert_eq!(v.dkim[0].result, Outcome::Neutral);
    assert_eq!(v.dmarc.result, Outcome::Fail);
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);
    let ar = authentication_results("mx.receiver.test", &v);
    assert!(
        ar.contains("dkim=neutral (body length limit l= not accepted by local policy) header.d=dk.test header.s=plain"),
        "{ar}"
    );
    // Signatures without l= are not affected by that policy.
    let v = dk_verdicts(
        &strict,
        &dk_message("plain", "hello\r\n", SignOpts::default()),
    );
    assert_eq!(v.dkim[0].result, Outcome::Pass);
}

#[test]
fn dkim_body_hash_of_a_length_limit_is_taken_after_canonicalization() {
    use mail_auth::common::crypto::HashAlgorithm;
    use mail_auth::dkim::Canonicalization;
    let hash = |data: &[u8]| {
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            HashAlgorithm::Sha256.hash(data).as_ref(),
        )
    };
    // Relaxed: "a  b \r\n" becomes "a b\r\n" (5 octets); l=5 covers exactly that, while
    // 5 raw octets ("a  b ") would canonicalize to something else.
    for (l, body, signed) in [
        ("5", "a  b \r\nmore\r\n", &b"a b\r\n"[..]),
        ("0", "anything\r\n", &b""[..]),
        ("99", "short\r\n", &b"never"[..]),
    ] {
        let raw = format!(
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=dk.test; s=plain;\r\n\
             \tl={l}; h=from; bh={}; b=AAAA\r\nFrom: a@dk.test\r\n\r\n{body}",
            hash(signed)
        );
        let m = crate::authn::dkim::parse(raw.as_bytes()).unwrap();
        assert_eq!(m.dkim_headers.len(), 1, "l={l} kept");
        let sig = &m.dkim_headers[0].header;
        let (_, _, _, computed) = m
            .body_hashes
            .iter()
            .find(|(c, h, len, _)| {
                *c == Canonicalization::Relaxed && *h == HashAlgorithm::Sha256 && *len == sig.l
            })
            .unwrap();
        if l == "99" {
            assert!(computed.is_empty(), "l= past the body matches nothing");
        } else {
            assert_eq!(computed, &sig.bh, "l={l}");
        }
    }
}

#[test]
fn dkim_key_record_h_and_s_are_enforced() {
    let auth = Authenticator::with_zone(dkim_zone());
    for (selector, pass, reason) in [
        ("plain", true, ""),
        ("sha1only", false, "key record h= does not allow sha256"),
        ("sha1both", true, ""),
        ("other", false, "key record s=other is not for email"),
        ("email", true, ""),
    ] {
        let v = dk_verdicts(&auth, &dk_message(selector, "hi\r\n", SignOpts::default()));
        let d = &v.dkim[0];
        if pass {
            assert_eq!(d.result, Outcome::Pass, "{selector}: {d:?}");
            assert_eq!(v.dmarc.result, Outcome::Pass, "{selector}");
        } else {
            assert_eq!(d.result, Outcome::Fail, "{selector}: {d:?}");
            assert_eq!(d.reason.as_deref(), Some(reason), "{selector}");
            assert_eq!(
                (d.domain.as_str(), d.selector.as_str()),
                ("dk.test", selector)
            );
            // DMARC sees the failure: nothing else authenticates dk.test here.
            assert_eq!(v.dmarc.result, Outcome::Fail, "{selector}");
            assert_eq!(v.dmarc_disposition(), Disposition::Reject, "{selector}");
        }
    }
}

#[test]
fn dkim_t_s_expiry_and_revocation_fail() {
    let auth = Authenticator::with_zone(dkim_zone());
    let signed = |selector: &str, auid: Option<&str>| {
        let opts = SignOpts {
            auid,
            simple: true,
            ..Default::default()
        };
        dk_verdicts(&auth, &dk_message(selector, "hi\r\n", opts)).dkim[0].clone()
    };
    // t=s: i= must be in d= itself, not a subdomain.
    assert_eq!(signed("strict", Some("x@dk.test")).result, Outcome::Pass);
    let d = signed("strict", Some("x@sub.dk.test"));
    assert_eq!(d.result, Outcome::Fail, "{d:?}");
    assert!(d.reason.as_deref().unwrap().contains("t=s"), "{d:?}");
    assert_eq!(signed("plain", Some("x@sub.dk.test")).result, Outcome::Pass);

    // A revoked key (empty p=) is a failure, not an error.
    let d = signed("revoked", None);
    assert_eq!(d.result, Outcome::Fail, "{d:?}");
    assert_eq!(d.reason.as_deref(), Some("public key revoked"));

    // Expired (x= in the past): a failure. mail-auth looks at x= before anything else,
    // so the signature need not be valid otherwise.
    let msg = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=dk.test;\r\n\
               \ts=plain; t=1600000000; x=1600003600; h=from; bh=AAAA; b=AAAA\r\n\
               From: a@dk.test\r\n\r\nhi\r\n";
    let v = dk_verdicts(&auth, msg);
    assert_eq!(v.dkim[0].result, Outcome::Fail, "{:?}", v.dkim[0]);
    assert_eq!(v.dkim[0].reason.as_deref(), Some("signature expired"));
    let ar = authentication_results("mx.receiver.test", &v);
    assert!(
        ar.contains("dkim=fail (signature expired) header.d=dk.test header.s=plain header.a=ed25519-sha256 header.b="),
        "{ar}"
    );
}

/// Policy discovery and alignment with the Public Suffix List (RFC 7489 sections 3.2 and
/// 6.6.3), `sp=` and `np=` (RFC 9091).
#[test]
fn zone_public_suffix_list_sp_and_np() {
    let mut z = zone();
    // example.co.uk: its organizational domain holds the policy, sp= stricter than p=,
    // np= strictest; news.example.co.uk exists (an MX), ghost.example.co.uk does not.
    z.txt(
        "_dmarc.example.co.uk",
        "v=DMARC1; p=none; sp=quarantine; np=reject",
    )
    .mx("news.example.co.uk", 10, "mx.example.co.uk")
    // A record published at an intermediate name is not the organizational domain's:
    // RFC 7489 asks only the From domain and its organizational domain.
    .txt("_dmarc.b.example.co.uk", "v=DMARC1; p=reject")
    // github.io is a public suffix: alice.github.io is its own organization, and a
    // record at the suffix covers nobody.
    .txt("_dmarc.github.io", "v=DMARC1; p=reject")
    // A subdomain with its own p=reject whose mail is signed by the parent: relaxed
    // alignment compares organizational domains, so the parent's signature aligns.
    .txt("_dmarc.sub.signer.test", "v=DMARC1; p=reject")
    .dkim_key(&ed_key().dns_record("signer.test", "ed1"))
    // Two DMARC records: no policy at all (step 5).
    .txt("_dmarc.twice.test", "v=DMARC1; p=reject")
    .txt("_dmarc.twice.test", "v=DMARC1; p=none")
    // Strict DKIM alignment: the parent's signature does not align.
    .txt("_dmarc.strict.signer2.test", "v=DMARC1; p=reject; adkim=s")
    .dkim_key(&ed_key().dns_record("signer2.test", "ed1"));
    let auth = Authenticator::with_zone(z);
    let run = |from: &str, sign_as: Option<&str>| {
        let msg = message(from, "hi\r\n", sign_as);
        evaluate(
            &auth,
            "203.0.113.9",
            "relay.test",
            "bounce@elsewhere.test",
            &msg,
        )
    };

    let v = run("x@news.example.co.uk", None);
    assert_eq!(v.dmarc.result, Outcome::Fail);
    assert_eq!(
        v.dmarc.policy,
        Some(Policy::Quarantine),
        "sp= for an existing subdomain"
    );
    assert_eq!(v.dmarc.record.as_ref().unwrap().domain, "example.co.uk");

    let v = run("x@ghost.example.co.uk", None);
    assert_eq!(
        v.dmarc.policy,
        Some(Policy::Reject),
        "np= for a name that does not exist"
    );

    let v = run("x@example.co.uk", None);
    assert_eq!(
        v.dmarc.policy,
        Some(Policy::None),
        "p= for the domain itself"
    );

    let v = run("x@a.b.example.co.uk", None);
    assert_eq!(
        v.dmarc.record.as_ref().unwrap().domain,
        "example.co.uk",
        "the organizational domain's record, not the intermediate one"
    );
    assert_eq!(
        v.dmarc.policy,
        Some(Policy::Reject),
        "np=: a.b.example.co.uk does not exist"
    );

    let v = run("x@alice.github.io", None);
    assert_eq!(v.dmarc.result, Outcome::None, "{:?}", v.dmarc);

    let v = run("x@sub.signer.test", Some("signer.test"));
    assert_eq!(v.dkim[0].result, Outcome::Pass);
    assert_eq!(v.dmarc.dkim_aligned, Outcome::Pass, "{:?}", v.dmarc);
    assert_eq!(v.dmarc.result, Outcome::Pass);

    let v = run("x@strict.signer2.test", Some("signer2.test"));
    assert_eq!(v.dkim[0].result, Outcome::Pass);
    assert_eq!(
        v.dmarc.dkim_aligned,
        Outcome::Fail,
        "adkim=s: {:?}",
        v.dmarc
    );
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);

    let v = run("x@twice.test", None);
    assert_eq!(v.dmarc.result, Outcome::None, "two records: {:?}", v.dmarc);

    // The same, with a list that makes co.uk an ordinary domain: example.co.uk is then a
    // subdomain of the organizational domain co.uk, which publishes nothing.
    let custom =
        crate::authn::PublicSuffixes::parse("// ===BEGIN ICANN DOMAINS===\nuk\n", "test list")
            .unwrap();
    let mut z = StaticZone::new();
    z.txt("_dmarc.example.co.uk", "v=DMARC1; p=reject");
    let auth = Authenticator::with_zone(z).with_public_suffixes(custom);
    let msg = message("x@news.example.co.uk", "hi\r\n", None);
    let v = evaluate(&auth, "203.0.113.9", "relay.test", "b@elsewhere.test", &msg);
    assert_eq!(v.dmarc.result, Outcome::None, "{:?}", v.dmarc);
}
