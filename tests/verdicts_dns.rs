//! SPF, DKIM and DMARC verdicts against a real DNS server (dnsmasq on loopback), with
//! keys and signatures from `postwarden::dkim`.
//!
//! Skipped with "SKIPPED: ..." when dnsmasq is missing, unless CI=true or
//! POSTWARDEN_E2E_REQUIRED=true (then a missing dnsmasq fails the run).

#[path = "common/dns.rs"]
mod dns;

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use dns::{DnsServer, Record};
use postwarden::authn::{
    authentication_results, claims_authserv_id, Authenticator, Disposition, Input, Outcome, Policy,
    Verdicts,
};
use postwarden::dkim::{self, Algorithm, KeyPair, SigningKey};

const AUTHSERV: &str = "mx.receiver.example";
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

fn rsa_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| dkim::generate(Algorithm::Rsa).expect("RSA keygen"))
}

fn ed_key() -> &'static KeyPair {
    static KEY: OnceLock<KeyPair> = OnceLock::new();
    KEY.get_or_init(|| dkim::generate(Algorithm::Ed25519).expect("Ed25519 keygen"))
}

fn signing_key(pair: &KeyPair, domain: &str, selector: &str) -> SigningKey {
    SigningKey {
        domain: domain.into(),
        selector: selector.into(),
        algorithm: pair.algorithm,
        private_pkcs8_der: pair.private_pkcs8_der.clone(),
    }
}

/// The zone used by most tests.
///
/// * sender.example: SPF allows only 127.0.0.1; DMARC p=reject; RSA key `rsa1` (published
///   as two character-strings) and Ed25519 key `ed1`; HELO name mail.sender.example with
///   its own SPF record.
/// * quarantine.example / monitor.example: SPF -all for everyone, DMARC p=quarantine /
///   p=none.
/// * org.example: p=reject, sp=quarantine, np=reject; news.org.example exists (A record),
///   ghost.org.example does not.
/// * attacker.example: a valid Ed25519 key `atk`, no DMARC.
/// * nodmarc.example: SPF allows 127.0.0.1, no DMARC record.
fn zone() -> Vec<Record> {
    let rsa = rsa_key().dns_record("sender.example", "rsa1");
    assert!(
        rsa.strings.len() >= 2,
        "a 2048-bit RSA key needs several strings"
    );
    vec![
        Record::txt_strings(&rsa.name, &rsa.strings),
        Record::txt(
            &ed_key().dns_record("sender.example", "ed1").name,
            &ed_key().dns_record("sender.example", "ed1").value,
        ),
        Record::txt("sender.example", "v=spf1 ip4:127.0.0.1 -all"),
        Record::txt("_dmarc.sender.example", "v=DMARC1; p=reject"),
        Record::a("mail.sender.example", LOOPBACK),
        Record::txt("mail.sender.example", "v=spf1 a -all"),
        Record::txt("quarantine.example", "v=spf1 -all"),
        Record::txt("_dmarc.quarantine.example", "v=DMARC1; p=quarantine"),
        Record::txt("monitor.example", "v=spf1 -all"),
        Record::txt("_dmarc.monitor.example", "v=DMARC1; p=none"),
        Record::txt(
            "_dmarc.org.example",
            "v=DMARC1; p=reject; sp=quarantine; np=reject",
        ),
        Record::txt("org.example", "v=spf1 -all"),
        Record::a("news.org.example", Ipv4Addr::new(192, 0, 2, 80)),
        Record::txt(
            &ed_key().dns_record("attacker.example", "atk").name,
            &ed_key().dns_record("attacker.example", "atk").value,
        ),
        Record::txt("attacker.example", "v=spf1 -all"),
        Record::txt("nodmarc.example", "v=spf1 ip4:127.0.0.1 -all"),
    ]
}

struct Fixture {
    _dir: tempfile::TempDir,
    dns: DnsServer,
    auth: Authenticator,
}

fn fixture() -> Option<Fixture> {
    if !dns::dnsmasq_available() {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let dns = DnsServer::start(dir.path(), &zone()).expect("dnsmasq starts");
    let auth = Authenticator::new(&[dns.addr()], Duration::from_secs(2))
        .expect("authenticator")
        .with_hostname(AUTHSERV);
    Some(Fixture {
        _dir: dir,
        dns,
        auth,
    })
}

fn message(from: &str, body: &str) -> String {
    format!(
        "From: {from}\r\n\
         To: rcpt@receiver.example\r\n\
         Subject: Test message\r\n\
         Date: Tue, 04 Mar 2025 09:00:00 +0000\r\n\
         Message-ID: <{}@test>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {body}\r\n",
        std::process::id()
    )
}

fn signed(message: &str, keys: &[SigningKey]) -> Vec<u8> {
    let mut out = String::new();
    for h in dkim::sign(message.as_bytes(), keys).expect("sign") {
        out.push_str(&h);
        out.push_str("\r\n");
    }
    out.push_str(message);
    out.into_bytes()
}

async fn evaluate(
    auth: &Authenticator,
    ip: &str,
    helo: &str,
    mail_from: &str,
    msg: &[u8],
) -> Verdicts {
    let input = Input {
        client_ip: ip.parse().unwrap(),
        helo,
        mail_from,
        message: msg,
    };
    auth.evaluate(&input).await
}

#[tokio::test]
async fn dual_signed_message_passes_spf_dkim_dmarc() {
    let Some(f) = fixture() else { return };
    let msg = signed(
        &message("Alice <a@sender.example>", "Hello from sender."),
        &[
            signing_key(rsa_key(), "sender.example", "rsa1"),
            signing_key(ed_key(), "sender.example", "ed1"),
        ],
    );
    let v = evaluate(
        &f.auth,
        "127.0.0.1",
        "mail.sender.example",
        "<a@sender.example>",
        &msg,
    )
    .await;
    let ar = authentication_results(AUTHSERV, &v);
    let ctx = format!("{v:#?}\n{ar}\n{}", f.dns.log());
    eprintln!("Authentication-Results: {ar}");

    assert_eq!(v.spf_mail_from.result, Outcome::Pass, "{ctx}");
    assert_eq!(v.spf_mail_from.domain, "sender.example");
    assert_eq!(v.spf_helo.result, Outcome::Pass, "{ctx}");
    assert_eq!(v.dkim.len(), 2, "{ctx}");
    for (d, selector, algorithm) in [
        (&v.dkim[0], "rsa1", "rsa-sha256"),
        (&v.dkim[1], "ed1", "ed25519-sha256"),
    ] {
        assert_eq!(d.result, Outcome::Pass, "{ctx}");
        assert_eq!(d.domain, "sender.example");
        assert_eq!(d.selector, selector);
        assert_eq!(d.algorithm, algorithm);
        assert_eq!(d.b_prefix.len(), 8);
    }
    assert_eq!(v.dmarc.result, Outcome::Pass, "{ctx}");
    assert_eq!(v.dmarc.from_domain, "sender.example");
    assert_eq!(v.dmarc.policy, Some(Policy::Reject));
    assert_eq!(v.dmarc.record.as_ref().map(|r| r.p), Some(Policy::Reject));
    assert_eq!(v.dmarc.spf_aligned, Outcome::Pass);
    assert_eq!(v.from_domains, vec!["sender.example".to_string()]);
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);
    assert!(!v.dns_temporary_failure());

    assert!(ar.starts_with("mx.receiver.example;"), "{ar}");
    assert!(
        ar.contains("spf=pass smtp.mailfrom=a@sender.example"),
        "{ar}"
    );
    assert!(
        ar.contains("spf=pass smtp.helo=mail.sender.example"),
        "{ar}"
    );
    assert!(
        ar.contains("dkim=pass header.d=sender.example header.s=rsa1 header.a=rsa-sha256"),
        "{ar}"
    );
    assert!(
        ar.contains("dkim=pass header.d=sender.example header.s=ed1 header.a=ed25519-sha256"),
        "{ar}"
    );
    assert!(ar.contains("dmarc=pass"), "{ar}");
    assert!(ar.contains("header.from=sender.example"), "{ar}");
    assert!(claims_authserv_id(&ar, AUTHSERV));
}

/// The RSA key really is served as several character-strings, and the resolver
/// mail-auth uses joins them.
#[tokio::test]
async fn rsa_key_record_is_served_as_multiple_strings() {
    use mail_auth::hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
    use mail_auth::hickory_resolver::net::runtime::TokioRuntimeProvider;
    use mail_auth::hickory_resolver::proto::rr::RData;
    use mail_auth::hickory_resolver::TokioResolver;

    let Some(f) = fixture() else { return };
    let mut ns = NameServerConfig::udp_and_tcp(f.dns.addr().ip());
    for c in &mut ns.connections {
        c.port = f.dns.port();
    }
    let resolver = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    )
    .with_options(ResolverOpts::default())
    .build()
    .unwrap();
    let lookup = resolver
        .txt_lookup("rsa1._domainkey.sender.example.")
        .await
        .expect("TXT lookup");
    let record = rsa_key().dns_record("sender.example", "rsa1");
    let mut seen = 0;
    for answer in lookup.answers() {
        if let RData::TXT(txt) = &answer.data {
            seen += 1;
            let strings: Vec<&[u8]> = txt.txt_data.iter().map(|s| &s[..]).collect();
            assert!(strings.len() >= 2, "served as {} string(s)", strings.len());
            assert!(strings.iter().all(|s| s.len() <= 255));
            assert_eq!(strings.concat(), record.value.as_bytes());
            let joined = String::from_utf8(strings.concat()).unwrap();
            assert!(dkim::record_matches(
                &joined,
                Algorithm::Rsa,
                &rsa_key().public_key_b64
            ));
        }
    }
    assert_eq!(seen, 1);
}

#[tokio::test]
async fn forged_from_of_reject_domain_is_rejected() {
    let Some(f) = fixture() else { return };
    // No signature at all, from an address SPF does not allow.
    let msg = message("CEO <ceo@sender.example>", "Please wire the money.");
    let v = evaluate(
        &f.auth,
        "192.0.2.1",
        "bad.example",
        "ceo@sender.example",
        msg.as_bytes(),
    )
    .await;
    let ctx = format!("{v:#?}\n{}", f.dns.log());
    assert_eq!(v.spf_mail_from.result, Outcome::Fail, "{ctx}");
    assert!(v.dkim.is_empty());
    assert_eq!(v.dmarc.result, Outcome::Fail, "{ctx}");
    assert_eq!(v.dmarc.policy, Some(Policy::Reject));
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);
    assert!(!v.dns_temporary_failure());
    let ar = authentication_results(AUTHSERV, &v);
    assert!(
        ar.contains("spf=fail smtp.mailfrom=ceo@sender.example"),
        "{ar}"
    );
    assert!(ar.contains("dkim=none"), "{ar}");
    assert!(ar.contains("dmarc=fail"), "{ar}");
    assert!(ar.contains("dis=reject"), "{ar}");

    // A valid signature by another domain, and an SPF pass for the attacker's own
    // envelope domain: neither is aligned with sender.example.
    let msg = signed(
        &message("ceo@sender.example", "Please wire the money."),
        &[signing_key(ed_key(), "attacker.example", "atk")],
    );
    let v = evaluate(
        &f.auth,
        "127.0.0.1",
        "x.example",
        "bounce@nodmarc.example",
        &msg,
    )
    .await;
    let ctx = format!("{v:#?}\n{}", f.dns.log());
    assert_eq!(v.spf_mail_from.result, Outcome::Pass, "{ctx}");
    assert_eq!(v.dkim.len(), 1);
    assert_eq!(v.dkim[0].result, Outcome::Pass, "{ctx}");
    assert_eq!(v.dkim[0].domain, "attacker.example");
    assert_eq!(v.dmarc.result, Outcome::Fail, "{ctx}");
    assert_eq!(v.dmarc.spf_aligned, Outcome::Fail);
    assert_eq!(v.dmarc.dkim_aligned, Outcome::Fail);
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);
}

#[tokio::test]
async fn quarantine_and_none_policies() {
    let Some(f) = fixture() else { return };
    let cases = [
        (
            "x@quarantine.example",
            Policy::Quarantine,
            Disposition::Quarantine,
        ),
        ("x@monitor.example", Policy::None, Disposition::Accept),
        // Subdomain without its own record: sp= applies.
        (
            "x@news.org.example",
            Policy::Quarantine,
            Disposition::Quarantine,
        ),
        // Non-existent subdomain: np= applies (DMARCbis).
        ("x@ghost.org.example", Policy::Reject, Disposition::Reject),
        ("x@org.example", Policy::Reject, Disposition::Reject),
    ];
    for (from, policy, disposition) in cases {
        let msg = message(from, "hi");
        let v = evaluate(&f.auth, "192.0.2.1", "bad.example", from, msg.as_bytes()).await;
        let ctx = format!("{from}: {v:#?}\n{}", f.dns.log());
        assert_eq!(v.dmarc.result, Outcome::Fail, "{ctx}");
        assert_eq!(v.dmarc.policy, Some(policy), "{ctx}");
        assert_eq!(v.dmarc_disposition(), disposition, "{ctx}");
        assert!(!v.dns_temporary_failure(), "{ctx}");
    }

    // No DMARC record at all: none, accept.
    let msg = message("x@nodmarc.example", "hi");
    let v = evaluate(
        &f.auth,
        "192.0.2.1",
        "bad.example",
        "x@nodmarc.example",
        msg.as_bytes(),
    )
    .await;
    assert_eq!(v.dmarc.result, Outcome::None, "{v:#?}");
    assert_eq!(v.dmarc.policy, None);
    assert_eq!(v.spf_mail_from.result, Outcome::Fail);
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);
}

#[tokio::test]
async fn tampered_body_fails_dkim() {
    let Some(f) = fixture() else { return };
    let original = message("a@sender.example", "Pay invoice 1001.");
    let msg = signed(
        &original,
        &[
            signing_key(rsa_key(), "sender.example", "rsa1"),
            signing_key(ed_key(), "sender.example", "ed1"),
        ],
    );
    let tampered = String::from_utf8(msg)
        .unwrap()
        .replace("invoice 1001", "invoice 6666");
    let v = evaluate(
        &f.auth,
        "192.0.2.1",
        "bad.example",
        "a@sender.example",
        tampered.as_bytes(),
    )
    .await;
    let ctx = format!("{v:#?}\n{}", f.dns.log());
    assert_eq!(v.dkim.len(), 2, "{ctx}");
    for d in &v.dkim {
        assert_eq!(d.result, Outcome::Fail, "{ctx}");
        assert!(
            d.reason.as_deref().unwrap_or("").contains("body hash"),
            "{ctx}"
        );
    }
    assert_eq!(v.dmarc.result, Outcome::Fail, "{ctx}");
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);
    let ar = authentication_results(AUTHSERV, &v);
    assert!(ar.contains("dkim=fail (body hash mismatch"), "{ar}");

    // Tampering with a signed header breaks the signature too.
    let msg = String::from_utf8(signed(
        &original,
        &[signing_key(ed_key(), "sender.example", "ed1")],
    ))
    .unwrap()
    .replace("Subject: Test message", "Subject: Urgent");
    let v = evaluate(
        &f.auth,
        "192.0.2.1",
        "bad.example",
        "a@sender.example",
        msg.as_bytes(),
    )
    .await;
    assert_eq!(v.dkim[0].result, Outcome::Fail, "{v:#?}");
}

#[tokio::test]
async fn null_sender_uses_helo_identity() {
    let Some(f) = fixture() else { return };
    let msg = message("MAILER-DAEMON@sender.example", "Delivery report");
    let v = evaluate(
        &f.auth,
        "127.0.0.1",
        "mail.sender.example",
        "<>",
        msg.as_bytes(),
    )
    .await;
    let ctx = format!("{v:#?}\n{}", f.dns.log());
    assert_eq!(v.mail_from, "");
    assert_eq!(v.spf_helo.result, Outcome::Pass, "{ctx}");
    assert_eq!(v.spf_helo.identity, "postmaster@mail.sender.example");
    assert_eq!(v.spf_mail_from, v.spf_helo);
    // mail.sender.example aligns (relaxed) with sender.example.
    assert_eq!(v.dmarc.result, Outcome::Pass, "{ctx}");
    let ar = authentication_results(AUTHSERV, &v);
    assert!(
        ar.contains("spf=pass smtp.helo=mail.sender.example"),
        "{ar}"
    );
    assert!(!ar.contains("smtp.mailfrom"), "{ar}");

    // A HELO the SPF record does not allow.
    let v = evaluate(
        &f.auth,
        "192.0.2.9",
        "mail.sender.example",
        "",
        msg.as_bytes(),
    )
    .await;
    assert_eq!(v.spf_helo.result, Outcome::Fail);
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);
}

#[tokio::test]
async fn second_from_domain_cannot_escape_reject() {
    let Some(f) = fixture() else { return };
    // SPF passes for nodmarc.example (no DMARC), but sender.example (p=reject) is in
    // From too: the strictest result applies.
    let msg = message("a@nodmarc.example, ceo@sender.example", "hi");
    let v = evaluate(
        &f.auth,
        "127.0.0.1",
        "x.example",
        "a@nodmarc.example",
        msg.as_bytes(),
    )
    .await;
    assert_eq!(
        v.from_domains,
        vec!["nodmarc.example".to_string(), "sender.example".to_string()]
    );
    assert_eq!(v.dmarc.from_domain, "sender.example", "{v:#?}");
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);

    // Two From fields.
    let msg = format!(
        "From: ceo@sender.example\r\n{}",
        message("a@nodmarc.example", "hi")
    );
    let v = evaluate(
        &f.auth,
        "127.0.0.1",
        "x.example",
        "a@nodmarc.example",
        msg.as_bytes(),
    )
    .await;
    assert_eq!(v.from_domains.len(), 2, "{v:#?}");
    assert_eq!(v.dmarc_disposition(), Disposition::Reject);
}

#[tokio::test]
async fn stopped_dns_server_gives_temperror_not_reject() {
    let Some(mut f) = fixture() else { return };
    let msg = signed(
        &message("ceo@sender.example", "hi"),
        &[signing_key(ed_key(), "sender.example", "ed1")],
    );
    f.dns.stop();
    assert!(!f.dns.is_running());
    // A fresh authenticator: nothing cached.
    let auth = Authenticator::new(&[f.dns.addr()], Duration::from_secs(1)).unwrap();
    let start = Instant::now();
    let v = evaluate(
        &auth,
        "192.0.2.1",
        "bad.example",
        "ceo@sender.example",
        &msg,
    )
    .await;
    let elapsed = start.elapsed();
    let ctx = format!("{elapsed:?} {v:#?}");
    eprintln!("evaluation with the DNS server stopped took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(15), "{ctx}");
    assert_eq!(v.spf_mail_from.result, Outcome::TempError, "{ctx}");
    assert_eq!(v.dkim[0].result, Outcome::TempError, "{ctx}");
    assert_eq!(v.dmarc.result, Outcome::TempError, "{ctx}");
    assert!(v.dns_temporary_failure(), "{ctx}");
    assert_ne!(v.dmarc_disposition(), Disposition::Reject, "{ctx}");
    let ar = authentication_results(AUTHSERV, &v);
    assert!(ar.contains("spf=temperror"), "{ar}");
    assert!(ar.contains("dmarc=temperror"), "{ar}");
}

/// A server that swallows queries (UDP bound but silent, TCP accepted by the kernel but
/// never answered): evaluation ends on its time budget, with temperrors.
#[tokio::test]
async fn silent_dns_server_is_bounded_by_the_budget() {
    if !dns::dnsmasq_available() {
        return;
    }
    let (udp, port) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = udp.local_addr().unwrap().port();
        if let Ok(tcp) = TcpListener::bind(("127.0.0.1", port)) {
            break ((udp, tcp), port);
        }
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let auth = Authenticator::new(&[addr], Duration::from_millis(500)).unwrap();
    assert_eq!(auth.budget(), Duration::from_secs(2));
    let msg = signed(
        &message("ceo@sender.example", "hi"),
        &[signing_key(ed_key(), "sender.example", "ed1")],
    );
    let start = Instant::now();
    let v = evaluate(
        &auth,
        "192.0.2.1",
        "bad.example",
        "ceo@sender.example",
        &msg,
    )
    .await;
    let elapsed = start.elapsed();
    drop(udp);
    let ctx = format!("{elapsed:?} {v:#?}");
    eprintln!("evaluation against a silent DNS server took {elapsed:?}");
    assert!(elapsed < Duration::from_secs(15), "{ctx}");
    assert!(
        elapsed < Duration::from_secs(5),
        "budget 2 s plus slack: {ctx}"
    );
    assert_eq!(v.spf_mail_from.result, Outcome::TempError, "{ctx}");
    assert_eq!(v.dmarc.result, Outcome::TempError, "{ctx}");
    assert!(v.dns_temporary_failure());
    assert_eq!(v.dmarc_disposition(), Disposition::Accept);
}

#[tokio::test]
async fn garbage_input_does_not_panic() {
    let Some(f) = fixture() else { return };
    for (helo, mail_from, msg) in [
        ("", "", &b""[..]),
        ("[127.0.0.1]", "<>", b"\r\n\r\nbody only"),
        ("x", "not-an-address", b"From: \r\n\r\n"),
        (
            "a..b",
            "@",
            b"DKIM-Signature: v=1; garbage\r\nFrom: a@nodmarc.example\r\n\r\nx",
        ),
        ("h.example", "a@b@c", b"\xff\xfe\x00:\r\n"),
    ] {
        let v = evaluate(&f.auth, "::1", helo, mail_from, msg).await;
        let _ = authentication_results(AUTHSERV, &v);
        assert_ne!(v.dmarc_disposition(), Disposition::Reject, "{v:#?}");
    }
}

#[test]
fn claims_authserv_id_cases() {
    for (value, claimed) in [
        (
            "mx.receiver.example; spf=pass smtp.mailfrom=a@b.example",
            true,
        ),
        ("MX.Receiver.Example; none", true),
        ("mx.receiver.example.; none", true),
        (
            " \t(forged by someone) mx.receiver.example 1; dkim=pass",
            true,
        ),
        ("\"mx.receiver.example\"; dmarc=pass", true),
        ("mx.receiver.example", true),
        ("mx.receiver.example.attacker.example; spf=pass", false),
        (
            "relay.other.example; spf=pass smtp.mailfrom=mx.receiver.example",
            false,
        ),
        ("receiver.example; none", false),
        ("; none", false),
        ("", false),
    ] {
        assert_eq!(claims_authserv_id(value, AUTHSERV), claimed, "{value:?}");
    }
}
