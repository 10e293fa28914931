//! End to end with a real DNS server on loopback: the inbound milter's SPF/DKIM/DMARC
//! verdicts and policy on the port-25 service, and DKIM signing of submitted mail checked
//! by an independent verifier (Debian's python3-dkim).

mod common;
#[path = "common/dns.rs"]
mod dns;

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use dns::{DnsServer, Record};
use postwarden::dkim::{self, Algorithm};
use postwarden::store::Keys as _;

const AUTHSERV: &str = "mx.postwarden.test";

struct Keys {
    sender_rsa: dkim::KeyPair,
    acme_rsa: dkim::KeyPair,
    acme_ed: dkim::KeyPair,
}

fn records(k: &Keys) -> Vec<Record> {
    let mut r = vec![
        // An external domain that signs and whose SPF covers the test client (127.0.0.1).
        Record::txt("sender.example", "v=spf1 ip4:127.0.0.1 -all"),
        Record::txt("_dmarc.sender.example", "v=DMARC1; p=reject"),
        Record::txt_strings(
            "rsa1._domainkey.sender.example",
            &k.sender_rsa.dns_record("sender.example", "rsa1").strings,
        ),
        // Domains whose mail the test forges: SPF does not cover 127.0.0.1, no signature.
        Record::txt("rejecting.example", "v=spf1 ip4:192.0.2.1 -all"),
        Record::txt("_dmarc.rejecting.example", "v=DMARC1; p=reject"),
        Record::txt("quarantining.example", "v=spf1 ip4:192.0.2.1 -all"),
        Record::txt("_dmarc.quarantining.example", "v=DMARC1; p=quarantine"),
        // SPF records a sample of the RFC 7208 suite's groups is drawn from (the client is
        // 127.0.0.1; none of these domains publishes DMARC).
        Record::txt("cidr33.example", "v=spf1 ip4:127.0.0.1/33 -all"),
        Record::txt("ip6only.example", "v=spf1 ip6:::ffff:127.0.0.1 -all"),
        Record::txt(
            "exists.example",
            "v=spf1 exists:%{i}.in.exists.example -all",
        ),
        Record::a("127.0.0.1.in.exists.example", Ipv4Addr::LOCALHOST),
        Record::txt(
            "redirect.example",
            "v=spf1 ip4:192.0.2.1 redirect=sender.example",
        ),
        Record::txt("badmacro.example", "v=spf1 ip4:127.0.0.1 foo=%z -all"),
        Record::txt("twice.example", "v=spf1 ip4:127.0.0.1 -all"),
        Record::txt("twice.example", "v=spf1 -all"),
        Record::txt("numeric.example", "v=spf1 a:host.123 ip4:127.0.0.1 -all"),
        // A domain ramping up its policy: p=reject for none of its failing mail yet.
        Record::txt("ramping.example", "v=spf1 ip4:192.0.2.1 -all"),
        Record::txt("_dmarc.ramping.example", "v=DMARC1; p=reject; pct=0"),
        // Our own customer domain: its keys as postwarden stores them.
        Record::txt("acme.example", "v=spf1 ip4:127.0.0.1 -all"),
        Record::txt("_dmarc.acme.example", "v=DMARC1; p=reject"),
        Record::txt_strings(
            "pwr._domainkey.acme.example",
            &k.acme_rsa.dns_record("acme.example", "pwr").strings,
        ),
        Record::txt_strings(
            "pwe._domainkey.acme.example",
            &k.acme_ed.dns_record("acme.example", "pwe").strings,
        ),
        Record::a("client.sender.example", Ipv4Addr::LOCALHOST),
        // sender.example's key again, under a selector whose record allows only sha1.
        Record::txt_strings(
            "sha1only._domainkey.sender.example",
            &dkim::split_txt_strings(&format!(
                "v=DKIM1; k=rsa; h=sha1; p={}",
                k.sender_rsa.public_key_b64
            )),
        ),
    ];
    // The RSA keys must really be split over several strings.
    assert!(
        k.sender_rsa
            .dns_record("sender.example", "rsa1")
            .strings
            .len()
            >= 2
    );
    r.push(Record::txt("postwarden.test", "v=spf1 -all"));
    // ARC: a forwarder (trusted by the gateway in the ARC test), a rogue one, and the
    // gateway's own sealing key; all three publish sender.example's RSA key.
    for name in [
        "arc._domainkey.fwd.example",
        "arc._domainkey.rogue.example",
        "seal1._domainkey.gw.example",
    ] {
        r.push(Record::txt_strings(
            name,
            &dkim::split_txt_strings(&format!(
                "v=DKIM1; k=rsa; p={}",
                k.sender_rsa.public_key_b64
            )),
        ));
    }
    r
}

fn dns_available() -> bool {
    let python_ok = Command::new("/usr/bin/python3")
        .args(["-c", "import dkim, dns.resolver, nacl"])
        .status()
        .is_ok_and(|s| s.success());
    if !python_ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("python3-dkim, python3-dnspython and python3-nacl are needed (CI=true)");
        }
        eprintln!("SKIPPED: python3-dkim, python3-dnspython or python3-nacl missing");
        return false;
    }
    e2e_available() && dns::dnsmasq_available()
}

struct World {
    gw: Gateway,
    dns: DnsServer,
    keys: Keys,
}

fn world(extra: &str) -> World {
    let keys = Keys {
        sender_rsa: dkim::generate(Algorithm::Rsa).unwrap(),
        acme_rsa: dkim::generate(Algorithm::Rsa).unwrap(),
        acme_ed: dkim::generate(Algorithm::Ed25519).unwrap(),
    };
    let dns_dir = tempfile::tempdir().unwrap();
    let dns_path = dns_dir.keep();
    let dns = DnsServer::start(&dns_path, &records(&keys)).unwrap();
    // `{SEAL_KEY}` in `extra` names a file holding sender.example's RSA key (DER).
    let seal_key = dns_path.join("seal.der");
    std::fs::write(&seal_key, &keys.sender_rsa.private_pkcs8_der).unwrap();
    let extra = extra.replace("{SEAL_KEY}", &seal_key.display().to_string());
    let gw = Gateway::start(
        &format!(
            "dns.nameservers = [\"{}\"]\ndns.timeout = \"1s\"\ninbound.authserv_id = \"{AUTHSERV}\"\n{extra}",
            dns.addr()
        ),
        // The port-25 service relays dest.example to the sink (an MX for that domain).
        &PostfixOpts {
            extra_main: "relay_domains = dest.example".into(),
            ..Default::default()
        },
    );
    World { gw, dns, keys }
}

/// A message from `from`, optionally signed with sender.example's key.
fn message(
    from: &str,
    subject: &str,
    extra_headers: &str,
    sign_with: Option<&dkim::KeyPair>,
) -> Vec<u8> {
    let text = format!(
        "From: {from}\r\nTo: rcpt@postwarden.test\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 06:00:00 +0000\r\nMessage-ID: <{subject}@sender.example>\r\n{extra_headers}\r\nHello from {subject}.\r\n"
    );
    match sign_with {
        None => text.into_bytes(),
        Some(k) => {
            let key = dkim::SigningKey {
                domain: "sender.example".into(),
                selector: "rsa1".into(),
                algorithm: Algorithm::Rsa,
                private_pkcs8_der: k.private_pkcs8_der.clone(),
            };
            let sig = dkim::sign(text.as_bytes(), &[key]).unwrap().remove(0);
            format!("{sig}\r\n{text}").into_bytes()
        }
    }
}

/// Sends `data` on port 25 (no AUTH), as `mail_from`, to a recipient Postfix relays.
fn send25(gw: &Gateway, mail_from: &str, data: &[u8]) -> Swaks {
    gw.send25(mail_from, data)
}

#[test]
fn inbound_verdicts_policy_and_authentication_results() {
    if !dns_available() {
        return;
    }
    let w = world("");
    let gw = &w.gw;

    // 1. Signed, SPF pass, p=reject domain: delivered with pass verdicts; a forged
    //    Authentication-Results claiming our id is gone, another one stays.
    let msg = message(
        "Alice <alice@sender.example>",
        "in-pass",
        &format!("Authentication-Results: {AUTHSERV}; dkim=pass header.d=forged.example\r\nAuthentication-Results: other.example; spf=pass\r\n"),
        Some(&w.keys.sender_rsa),
    );
    let r = send25(gw, "alice@sender.example", &msg);
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    let got = gw.sink.wait_message("Subject: in-pass");
    let ours: Vec<&str> = got
        .lines()
        .filter(|l| l.starts_with(&format!("Authentication-Results: {AUTHSERV}")))
        .collect();
    assert_eq!(ours.len(), 1, "{got}");
    let header_block = got.split("\n\n").next().unwrap();
    let unfolded = header_block.replace("\n\t", " ").replace("\r", "");
    let ar = unfolded
        .lines()
        .find(|l| l.starts_with(&format!("Authentication-Results: {AUTHSERV}")))
        .unwrap();
    assert!(ar.contains("spf=pass"), "{ar}");
    assert!(ar.contains("dkim=pass header.d=sender.example"), "{ar}");
    assert!(ar.contains("dmarc=pass"), "{ar}");
    assert!(
        !got.contains("forged.example"),
        "the forged header stayed: {got}"
    );
    assert!(
        got.contains("Authentication-Results: other.example; spf=pass"),
        "{got}"
    );

    // 2. Forged From of a p=reject domain: 550 5.7.1 naming the domain.
    let r = send25(
        gw,
        "ceo@rejecting.example",
        &message("ceo@rejecting.example", "in-reject", "", None),
    );
    let reply = r
        .reply_starting("550")
        .unwrap_or_else(|| panic!("{}", r.out));
    assert!(
        reply.starts_with("550 5.7.1 ")
            && reply.contains("rejecting.example")
            && reply.contains("p=reject"),
        "{reply}"
    );

    // 3. p=quarantine: held in Postfix's hold queue (the default), not delivered.
    let r = send25(
        gw,
        "ceo@quarantining.example",
        &message("ceo@quarantining.example", "in-quarantine", "", None),
    );
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    wait_for(Duration::from_secs(10), "a held message", || {
        gw.postfix.queue_listing().contains('!')
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!gw.sink.has_message("Subject: in-quarantine"));

    let events = gw.daemon.events(&["--kind", "mail"]);
    let outcomes: Vec<&str> = events
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["accept", "reject", "quarantine"], "{events:?}");
    assert!(events[0]["reason"]
        .as_str()
        .unwrap()
        .contains("spf=pass dkim=pass dmarc=pass"));

    // 4. DNS server stopped: temporary failure, never a permanent reject; nothing lost.
    let mut w = w;
    w.dns.stop();
    let r = send25(
        &w.gw,
        "ceo@rejecting.example",
        &message("ceo@rejecting.example", "in-dnsdown", "", None),
    );
    let reply = r
        .reply_starting("451")
        .unwrap_or_else(|| panic!("{}", r.out));
    assert_eq!(
        reply,
        "451 4.7.1 Temporary DNS failure checking SPF/DKIM/DMARC; try again later"
    );
    assert!(!r.has_reply("550"), "{}", r.out);
}

/// The header block of a delivered message with folded lines joined, and our
/// Authentication-Results value in it.
fn our_authentication_results(got: &str) -> String {
    let header_block = got.split("\n\n").next().unwrap();
    let unfolded = header_block.replace("\n\t", " ").replace('\r', "");
    unfolded
        .lines()
        .find(|l| l.starts_with(&format!("Authentication-Results: {AUTHSERV}")))
        .unwrap_or_else(|| panic!("no Authentication-Results of ours: {got}"))
        .to_string()
}

#[test]
fn dkim_body_length_passes_and_key_hash_restriction_rejects() {
    if !dns_available() {
        return;
    }
    let w = world("");
    let gw = &w.gw;
    // The envelope sender's domain has no SPF record: DMARC rests on DKIM alone.
    let bounce = "bounce@client.sender.example";

    // 1. Signed with l= (mail-auth's signer: this plain body is its own canonical form),
    //    then a footer appended in transit: dkim=pass, DMARC pass under p=reject.
    let text = message("alice@sender.example", "in-length", "", None);
    let der: &[u8] = &w.keys.sender_rsa.private_pkcs8_der;
    let key = mail_auth::common::crypto::RsaKey::<mail_auth::common::crypto::Sha256>::from_key_der(
        der.try_into().unwrap(),
    )
    .unwrap();
    let sig = mail_auth::dkim::DkimSigner::from_key(key)
        .domain("sender.example")
        .selector("rsa1")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .header_canonicalization(mail_auth::dkim::Canonicalization::Relaxed)
        .body_canonicalization(mail_auth::dkim::Canonicalization::Relaxed)
        .body_length(true)
        .sign(&text)
        .unwrap();
    let mut msg = mail_auth::common::headers::HeaderWriter::to_header(&sig).into_bytes();
    msg.extend_from_slice(&text);
    msg.extend_from_slice(b"-- \r\nlist footer\r\n");
    let r = send25(gw, bounce, &msg);
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    let ar = our_authentication_results(&gw.sink.wait_message("Subject: in-length"));
    assert!(
        ar.contains("dkim=pass (l=23: 17 bytes after the signed body) header.d=sender.example header.s=rsa1"),
        "{ar}"
    );
    assert!(ar.contains("dmarc=pass"), "{ar}");

    // 2. A valid rsa-sha256 signature, but the key record says h=sha1: dkim=fail, so
    //    DMARC fails and p=reject rejects.
    let text = message("alice@sender.example", "in-sha1", "", None);
    let key = dkim::SigningKey {
        domain: "sender.example".into(),
        selector: "sha1only".into(),
        algorithm: Algorithm::Rsa,
        private_pkcs8_der: w.keys.sender_rsa.private_pkcs8_der.clone(),
    };
    let sig = dkim::sign(&text, &[key]).unwrap().remove(0);
    let mut msg = format!("{sig}\r\n").into_bytes();
    msg.extend_from_slice(&text);
    let r = send25(gw, bounce, &msg);
    let reply = r
        .reply_starting("550")
        .unwrap_or_else(|| panic!("{}", r.out));
    assert!(
        reply.starts_with("550 5.7.1 ") && reply.contains("sender.example"),
        "{reply}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!gw.sink.has_message("Subject: in-sha1"));
    let events = gw.daemon.events(&["--kind", "mail"]);
    let last = events.last().unwrap();
    assert_eq!(last["outcome"], "reject", "{last}");
}

/// A sample of the RFC 7208 suite's groups through the real port-25 service: each
/// message reaches the sink with the RFC's result for its MAIL FROM identity.
#[test]
fn spf_results_follow_rfc7208_through_postfix() {
    if !dns_available() {
        return;
    }
    let w = world("");
    let gw = &w.gw;
    for (domain, expected, why) in [
        ("cidr33.example", "permerror", "a CIDR length over 32"),
        (
            "ip6only.example",
            "fail",
            "an ip6 mechanism never matches an IPv4 client",
        ),
        ("exists.example", "pass", "exists: asks for an A record"),
        (
            "redirect.example",
            "pass",
            "redirect= after mechanisms is followed",
        ),
        (
            "badmacro.example",
            "permerror",
            "a modifier with a bad macro",
        ),
        ("twice.example", "permerror", "two SPF records"),
        (
            "numeric.example",
            "permerror",
            "a numeric top label in a domain-spec",
        ),
    ] {
        let from = format!("someone@{domain}");
        let subject = format!("spf-{}", domain.split('.').next().unwrap());
        let r = send25(gw, &from, &message(&from, &subject, "", None));
        assert!(r.has_reply("250 2.0.0 Ok: queued"), "{domain}: {}", r.out);
        let got = gw.sink.wait_message(&format!("Subject: {subject}"));
        let entry = got
            .split(';')
            .find(|e| e.contains(&format!("smtp.mailfrom={from}")))
            .unwrap_or_else(|| panic!("{domain}: no SPF entry for MAIL FROM in {got}"));
        assert!(
            entry.trim_start().starts_with(&format!("spf={expected}")),
            "{domain} ({why}): expected spf={expected}, got {entry}"
        );
    }
}

#[test]
fn quarantine_as_header_when_configured() {
    if !dns_available() {
        return;
    }
    let w = world("inbound.dmarc_quarantine = \"header\"\n");
    let gw = &w.gw;
    let r = send25(
        gw,
        "ceo@quarantining.example",
        &message("ceo@quarantining.example", "in-marked", "", None),
    );
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    let got = gw.sink.wait_message("Subject: in-marked");
    assert!(
        got.contains(
            "X-Postwarden-Quarantine: DMARC failure, quarantining.example publishes p=quarantine"
        ),
        "{got}"
    );

    // p=reject; pct=0: the failing message is sampled out and gets quarantine (here: the
    // marker header), never 550.
    let r = send25(
        gw,
        "ceo@ramping.example",
        &message("ceo@ramping.example", "in-ramping", "", None),
    );
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    assert!(r.reply_starting("550").is_none(), "{}", r.out);
    let got = gw.sink.wait_message("Subject: in-ramping");
    assert!(
        got.contains("pct=0 sampled-out applied=quarantine dis=quarantine"),
        "{got}"
    );
    assert!(got.contains("this message was sampled out"), "{got}");
}

#[test]
fn submitted_mail_is_dkim_signed_and_verifies_independently() {
    if !dns_available() {
        return;
    }
    let w = world("");
    let gw = &w.gw;
    let (user, pass) = gw.acme();
    // Unsigned while no key is active: delivered, and the event says so.
    let r = gw.submit(
        "PLAIN",
        &user,
        &pass,
        &[
            "--from",
            "alice@acme.example",
            "--to",
            "rcpt@dest.example",
            "--header",
            "Subject: out-unsigned",
        ],
    );
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    let unsigned = gw.sink.wait_message("Subject: out-unsigned");
    assert!(!unsigned.contains("DKIM-Signature"), "{unsigned}");
    let ev = gw.daemon.events(&["--kind", "mail"]).pop().unwrap();
    assert!(
        ev["reason"]
            .as_str()
            .unwrap()
            .contains("dkim: unsigned (no active key for acme.example)"),
        "{ev}"
    );

    // The keys published in DNS, stored and activated: both an RSA and an Ed25519 signature.
    let mut store = postwarden::store::sqlite::SqliteStore::open(
        &gw.daemon.data.join("postwarden.db"),
        Duration::from_secs(2),
        "test",
    )
    .unwrap();
    store
        .dkim_add(
            "acme.example",
            "pwr",
            Algorithm::Rsa,
            &w.keys.acme_rsa.private_pkcs8_der,
            &w.keys.acme_rsa.public_key_b64,
        )
        .unwrap();
    store
        .dkim_add(
            "acme.example",
            "pwe",
            Algorithm::Ed25519,
            &w.keys.acme_ed.private_pkcs8_der,
            &w.keys.acme_ed.public_key_b64,
        )
        .unwrap();
    store.dkim_activate("acme.example", "pwr").unwrap();
    store.dkim_activate("acme.example", "pwe").unwrap();
    let r = gw.submit(
        "PLAIN",
        &user,
        &pass,
        &[
            "--from",
            "alice@acme.example",
            "--to",
            "rcpt@dest.example",
            "--header",
            "Subject: out-signed",
            "--body",
            "Signed body.\nSecond line.\n",
        ],
    );
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    let signed = gw.sink.wait_message("Subject: out-signed");
    assert_eq!(signed.matches("DKIM-Signature:").count(), 2, "{signed}");
    let msg = message_part(&signed);
    let (verified, text) = dkimverify(&w.dns, msg, &[]);
    assert!(
        verified,
        "independent verification failed:\n{text}\n--- message ---\n{msg}"
    );
    assert!(
        text.contains("acme.example pwr pass") && text.contains("acme.example pwe pass"),
        "{text}"
    );
    let ev = gw.daemon.events(&["--kind", "mail"]).pop().unwrap();
    assert!(
        ev["reason"]
            .as_str()
            .unwrap()
            .contains("dkim: signed d=acme.example s=pwr,pwe")
            || ev["reason"]
                .as_str()
                .unwrap()
                .contains("dkim: signed d=acme.example s=pwe,pwr"),
        "{ev}"
    );
}

#[test]
fn dns_check_reports_published_records_and_dns_failure() {
    if !dns_available() {
        return;
    }
    let mut w = world("dns.outbound_addresses = [\"127.0.0.1\"]\n");
    let gw = &w.gw;
    gw.acme();
    let mut store = postwarden::store::sqlite::SqliteStore::open(
        &gw.daemon.data.join("postwarden.db"),
        Duration::from_secs(2),
        "test",
    )
    .unwrap();
    store
        .dkim_add(
            "acme.example",
            "pwr",
            Algorithm::Rsa,
            &w.keys.acme_rsa.private_pkcs8_der,
            &w.keys.acme_rsa.public_key_b64,
        )
        .unwrap();
    store.dkim_activate("acme.example", "pwr").unwrap();
    // A key generated by the CLI is not published: pending, so a warning, not a failure.
    let out = gw.daemon.cli_ok(&[
        "dkim",
        "keygen",
        "acme.example",
        "--algorithm",
        "ed25519",
        "--selector",
        "next",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dns_name"], "next._domainkey.acme.example");
    // Not published: activation is refused, naming the record to publish.
    let out = gw.daemon.cli(&["dkim", "activate", "acme.example", "next"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not activated: no record at next._domainkey.acme.example"),
        "{err}"
    );
    let out = gw.daemon.cli(&["dns-check", "acme.example", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = |check: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"].as_str().unwrap().starts_with(check))
            .map(|c| c["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status("spf").as_deref(), Some("pass"), "{report}");
    assert_eq!(status("dkim pwr").as_deref(), Some("pass"), "{report}");
    assert_eq!(status("dkim next").as_deref(), Some("warn"), "{report}");
    assert_eq!(status("dmarc").as_deref(), Some("pass"), "{report}");
    assert_eq!(out.status.code(), Some(0), "{report}");
    // Published and matching: the CLI activates it after checking.
    gw.daemon.cli_ok(&["dkim", "retire", "acme.example", "pwr"]);
    gw.daemon
        .cli_ok(&["dkim", "activate", "acme.example", "pwr"]);
    // A domain with nothing published fails, with the fixes.
    gw.daemon
        .cli_ok(&["domain", "add", "bare.example", "--org", "acme"]);
    let out = gw.daemon.cli(&["dns-check", "bare.example"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no SPF record: publish TXT bare.example \"v=spf1 ip4:127.0.0.1 -all\""),
        "{text}"
    );
    assert!(text.contains("no DMARC record"), "{text}");
    // DNS server stopped: the failure is reported clearly, exit 1.
    w.dns.stop();
    let out = w.gw.daemon.cli(&["dns-check", "acme.example"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("DNS lookup of acme.example failed"), "{text}");
}

/// sender.example's signed message as a forwarder passes it on: it verified it (DMARC
/// pass), tagged the subject (so the DKIM signature breaks) and ARC-sealed the result as
/// `sealer` (selector `arc`, sender.example's RSA key).
fn forwarded(keys: &Keys, sealer: &str, subject: &str) -> Vec<u8> {
    use mail_auth::common::headers::HeaderWriter;
    let original = message("alice@sender.example", subject, "", Some(&keys.sender_rsa));
    let changed = String::from_utf8(original).unwrap().replacen(
        &format!("Subject: {subject}"),
        &format!("Subject: [list] {subject}"),
        1,
    );
    let parsed = mail_auth::AuthenticatedMessage::parse(changed.as_bytes()).unwrap();
    let dmarc = mail_auth::DmarcOutput::new("sender.example".into())
        .with_dkim_result(mail_auth::DmarcResult::Pass);
    let results = mail_auth::AuthenticationResults::new(sealer).with_dmarc_result(&dmarc);
    let der: &[u8] = &keys.sender_rsa.private_pkcs8_der;
    let key = mail_auth::common::crypto::RsaKey::<mail_auth::common::crypto::Sha256>::from_key_der(
        der.try_into().unwrap(),
    )
    .unwrap();
    let set = mail_auth::arc::ArcSealer::from_key(key)
        .domain(sealer)
        .selector("arc")
        .headers(["From", "To", "Subject", "Date", "Message-ID"])
        .seal(&parsed, &results, &mail_auth::ArcOutput::default())
        .unwrap();
    format!("{}{changed}", set.to_header()).into_bytes()
}

#[test]
fn arc_trusted_sealer_passes_untrusted_does_not_and_our_seal_verifies() {
    if !dns_available() {
        return;
    }
    let w = world(
        "inbound.arc_trusted_sealers = [\"fwd.example\"]\n\
         inbound.arc_seal_domain = \"gw.example\"\n\
         inbound.arc_seal_selector = \"seal1\"\n\
         inbound.arc_seal_key = \"{SEAL_KEY}\"\n",
    );
    let gw = &w.gw;
    // No SPF for the envelope domain: DMARC rests on the (broken) DKIM signature.
    let bounce = "bounce@client.sender.example";

    // Forwarded through the trusted forwarder: DMARC fails, the chain passes, delivered.
    let r = send25(
        gw,
        bounce,
        &forwarded(&w.keys, "fwd.example", "via-trusted"),
    );
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    let got = gw.sink.wait_message("Subject: [list] via-trusted");
    let ar = our_authentication_results(&got);
    assert!(ar.contains("dmarc=fail"), "{ar}");
    assert!(ar.contains("arc=pass (i=1 sealed by fwd.example)"), "{ar}");
    let events = gw.daemon.events(&["--kind", "mail"]);
    let last = events.last().unwrap();
    assert_eq!(last["outcome"], "accept", "{last}");
    assert!(
        last["reason"]
            .as_str()
            .unwrap()
            .contains("overridden (reason arc): the trusted ARC sealer fwd.example saw DMARC pass"),
        "{last}"
    );
    // The gateway sealed it as the second set; Debian's python3-dkim verifies the chain.
    assert!(
        got.contains("ARC-Seal: i=2; a=rsa-sha256; cv=pass; d=gw.example; s=seal1;"),
        "{got}"
    );
    let verified = arc_verify(&w.dns, &got);
    assert!(
        verified.starts_with("pass"),
        "python3-dkim arc_verify: {verified}\n{got}"
    );

    // The same through an untrusted forwarder: the chain passes, the policy applies.
    let r = send25(
        gw,
        bounce,
        &forwarded(&w.keys, "rogue.example", "via-rogue"),
    );
    let reply = r
        .reply_starting("550")
        .unwrap_or_else(|| panic!("{}", r.out));
    assert!(reply.contains("sender.example"), "{reply}");

    // Direct mail that passes: the first set (cv=none), verified independently too.
    let msg = message(
        "alice@sender.example",
        "direct",
        "",
        Some(&w.keys.sender_rsa),
    );
    let r = send25(gw, bounce, &msg);
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    let got = gw.sink.wait_message("Subject: direct");
    assert!(
        got.contains("ARC-Seal: i=1; a=rsa-sha256; cv=none; d=gw.example;"),
        "{got}"
    );
    let verified = arc_verify(&w.dns, &got);
    assert!(
        verified.starts_with("pass"),
        "python3-dkim arc_verify: {verified}\n{got}"
    );
}

/// python3-dkim's ARC verdict on a message: "pass ...", "fail ..." or "none ...".
fn arc_verify(dns: &DnsServer, message: &str) -> String {
    dkimverify(dns, message_part(message), &["--arc"]).1
}

/// Runs the independent verifier (`tests/support/dkimverify.py`, python3-dkim) on
/// `message` with the keys of `dns`: whether it passed, and what it printed.
fn dkimverify(dns: &DnsServer, message: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new("/usr/bin/python3")
        .arg(format!("{}/tests/support/dkimverify.py", REPO))
        .arg(dns.port().to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The message in what the sink wrote: from the first header Postfix or a milter
/// wrote (the sink's own envelope lines come first).
fn message_part(got: &str) -> &str {
    let start = [
        "ARC-Seal:",
        "DKIM-Signature:",
        "Received:",
        "Authentication-Results:",
    ]
    .iter()
    .filter_map(|h| {
        if got.starts_with(h) {
            Some(0)
        } else {
            got.find(&format!("\n{h}")).map(|i| i + 1)
        }
    })
    .min()
    .unwrap_or(0);
    &got[start..]
}
