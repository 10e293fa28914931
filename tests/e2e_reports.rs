//! End to end: DMARC aggregate reports. Mail from a domain whose DMARC record asks for
//! aggregate reports (rua=) goes through the port-25 service of a private Postfix (with
//! dnsmasq on loopback for DNS and the daemon's inbound milter); then
//! `postwarden dmarc report`, with sendmail pointing at that Postfix instance, mails the
//! report, which arrives at the sink addressed to the rua= mailbox with a gzipped XML
//! attachment that validates against RFC 7489's schema and counts the messages.

mod common;
#[path = "common/dns.rs"]
mod dns;

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::*;
use dns::{DnsServer, Record};

fn records() -> Vec<Record> {
    vec![
        Record::txt("sender.example", "v=spf1 ip4:127.0.0.1 -all"),
        Record::txt(
            "_dmarc.sender.example",
            "v=DMARC1; p=reject; rua=mailto:dmarc@reports.example!10m, mailto:x@unverified.example",
        ),
        // reports.example agrees to take sender.example's reports (RFC 7489 section 7.1);
        // unverified.example does not.
        Record::txt("sender.example._report._dmarc.reports.example", "v=DMARC1"),
        // A domain whose SPF passes for the client but is not aligned with sender.example.
        Record::txt("spoof.example", "v=spf1 ip4:127.0.0.1 -all"),
        Record::txt("postwarden.test", "v=spf1 -all"),
    ]
}

fn send25(gw: &Gateway, mail_from: &str, from: &str, subject: &str) -> Swaks {
    gw.send25(
        mail_from,
        format!(
            "From: {from}\r\nTo: rcpt@dest.example\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 06:00:00 +0000\r\nMessage-ID: <{subject}@sender.example>\r\n\r\nHello.\r\n"
        )
        .as_bytes(),
    )
}

#[test]
fn aggregate_report_reaches_the_rua_mailbox_and_validates() {
    if !(e2e_available() && dns::dnsmasq_available() && xmllint_available()) {
        return;
    }
    let dns_dir = tempfile::tempdir().unwrap();
    let dns = DnsServer::start(dns_dir.path(), &records()).unwrap();
    let root = tempfile::tempdir().unwrap();
    // The report command's sendmail: the private instance's, with its config directory
    // (written once the instance exists; the daemon only needs the path).
    let wrapper = root.path().join("sendmail");
    let gw = Gateway::start(
        &format!(
            "dns.nameservers = [\"{}\"]\ndns.timeout = \"1s\"\ninbound.authserv_id = \"mx.postwarden.test\"\n\
             dmarc_reports.enabled = true\ndmarc_reports.org_name = \"Postwarden Test\"\n\
             dmarc_reports.email = \"dmarc-reports@mx.postwarden.test\"\ndmarc_reports.sendmail = {:?}\n",
            dns.addr(),
            wrapper.display().to_string()
        ),
        &PostfixOpts {
            extra_main: "relay_domains = dest.example".into(),
            ..Default::default()
        },
    );
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec /usr/sbin/sendmail -C {} \"$@\"\n",
            gw.postfix.config_dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let begin = postwarden::model::now() - 5;

    // 1. Aligned SPF pass: delivered. 2. The same From with an unaligned envelope: DMARC
    //    fails under p=reject, refused.
    let r = send25(
        &gw,
        "alice@sender.example",
        "alice@sender.example",
        "pass-1",
    );
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    gw.sink.wait_message("Subject: pass-1");
    let r = send25(
        &gw,
        "bounce@spoof.example",
        "ceo@sender.example",
        "forged-1",
    );
    assert!(r.has_reply("550 5.7.1"), "{}", r.out);
    wait_for(Duration::from_secs(10), "two mail events", || {
        gw.daemon.events(&["--kind", "mail"]).len() >= 2
    });
    let end = postwarden::model::now() + 5;

    let (b, e) = (begin.to_string(), end.to_string());
    let args = ["dmarc", "report", "--begin", &b, "--end", &e, "--json"];
    let out = gw.daemon.cli(&args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rep = &v["reports"][0];
    assert_eq!(rep["policy_domain"], "sender.example", "{v}");
    assert_eq!(rep["status"], "sent", "{v}");
    assert_eq!(rep["messages"], 2, "{v}");
    assert_eq!(
        rep["recipients"],
        serde_json::json!(["dmarc@reports.example"])
    );
    assert!(
        rep["skipped"][0]["why"]
            .as_str()
            .unwrap()
            .contains("sender.example._report._dmarc.unverified.example"),
        "{v}"
    );

    // The report arrives at the sink, for the rua= mailbox.
    let got = gw.sink.wait_message("Report Domain: sender.example");
    assert!(got.contains("dmarc@reports.example"), "{got}");
    assert!(!got.contains("x@unverified.example"), "{got}");
    assert!(got.contains("Submitter: Postwarden Test"), "{got}");
    let filename = format!("mx.postwarden.test!sender.example!{begin}!{end}.xml.gz");
    assert!(got.contains(&format!("filename=\"{filename}\"")), "{got}");
    let b64: String = got
        .split(&format!("filename=\"{filename}\""))
        .nth(1)
        .unwrap()
        .split("--=_postwarden")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let gz = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64 attachment");
    let gunzip = Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        gunzip.stdin.as_ref().unwrap().write_all(&gz).unwrap();
    }
    let xml = String::from_utf8(gunzip.wait_with_output().unwrap().stdout).unwrap();
    assert_valid_dmarc_report(&xml, root.path());
    assert!(xml.contains("<domain>sender.example</domain>"), "{xml}");
    assert!(xml.contains("<source_ip>127.0.0.1</source_ip>"), "{xml}");
    assert_eq!(xml.matches("<count>1</count>").count(), 2, "{xml}");
    assert!(xml.contains("<disposition>reject</disposition>"), "{xml}");
    assert!(xml.contains("<disposition>none</disposition>"), "{xml}");
    assert!(
        xml.contains("<envelope_from>spoof.example</envelope_from>"),
        "{xml}"
    );

    // A second run for the same period sends nothing.
    let out = gw.daemon.cli(&args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reports"][0]["status"], "already sent", "{v}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        gw.sink
            .messages()
            .iter()
            .filter(|m| m.contains("Report Domain: sender.example"))
            .count(),
        1
    );
    drop(gw);
    drop(dns);
}
