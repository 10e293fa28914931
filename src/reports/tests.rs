//! Grouping, escaping, rua parsing, the RFC 7489 section 7.1 check, and the message.

use super::aggregate::*;
use super::mail::*;
use crate::authn::tests::verdicts;
use crate::authn::{Action, Dns, Outcome, Policy, StaticZone};
use crate::config::Config;
use crate::model::{DmarcRow, ReportUri};

fn cfg() -> Config {
    Config::parse(
        "[dmarc_reports]\nenabled = true\norg_name = \"Example Mail\"\nemail = \"reports@mx.example\"\n",
        "t",
    )
    .unwrap()
}

fn base_row() -> DmarcRow {
    row(&cfg(), &verdicts(), &Action::Deliver, 1_000).expect("a row")
}

#[test]
fn a_row_keeps_what_the_report_needs() {
    let r = base_row();
    assert_eq!(r.policy_domain, "b.example");
    assert_eq!(r.header_from, "b.example");
    assert_eq!(r.envelope_from, "b.example");
    assert_eq!(r.source_ip, "192.0.2.7");
    assert_eq!(
        (
            r.disposition.as_str(),
            r.dkim_aligned.as_str(),
            r.spf_aligned.as_str()
        ),
        ("none", "pass", "pass")
    );
    assert_eq!(r.published.p, "reject");
    assert_eq!((r.published.adkim.as_str(), r.published.pct), ("r", 100));
    assert_eq!(r.dkim[0].selector, "sel");
    assert_eq!(
        (r.spf[0].scope.as_str(), r.spf[0].domain.as_str()),
        ("mfrom", "b.example")
    );
    assert!(r.reasons.is_empty());

    // No rua=: nothing kept; a temporary failure: nothing kept (the message comes again).
    let mut v = verdicts();
    v.dmarc.record.as_mut().unwrap().rua.clear();
    assert!(row(&cfg(), &v, &Action::Deliver, 1).is_none());
    assert!(row(&cfg(), &verdicts(), &Action::Tempfail, 1).is_none());

    // A null sender: the HELO domain, scope helo.
    let mut v = verdicts();
    v.mail_from = String::new();
    let r = row(&cfg(), &v, &Action::Deliver, 1).unwrap();
    assert_eq!(r.envelope_from, "mail.b.example");
    assert_eq!(r.spf[0].scope, "helo");

    // Failing under p=reject: rejected; held by a mailing-list action: quarantine with
    // reason mailing_list; accepted by local configuration: none, local_policy.
    let mut v = verdicts();
    v.dmarc.result = Outcome::Fail;
    v.dmarc.dkim_aligned = Outcome::Fail;
    let r = row(&cfg(), &v, &Action::Reject("x".into()), 1).unwrap();
    assert_eq!(
        (r.disposition.as_str(), r.dkim_aligned.as_str()),
        ("reject", "fail")
    );
    assert!(r.reasons.is_empty());
    v.list_id = Some("<l.example>".into());
    let r = row(&cfg(), &v, &Action::Hold("held".into()), 1).unwrap();
    assert_eq!(r.disposition, "quarantine");
    assert_eq!(r.reasons[0].kind, "mailing_list");
    v.list_id = None;
    let r = row(&cfg(), &v, &Action::Deliver, 1).unwrap();
    assert_eq!(
        (r.disposition.as_str(), r.reasons[0].kind.as_str()),
        ("none", "local_policy")
    );
    // Sampled out by pct=: the milder policy, reason sampled_out.
    v.dmarc.sampled_out = true;
    v.dmarc.policy = Some(Policy::Quarantine);
    v.dmarc.record.as_mut().unwrap().pct = 10;
    let r = row(&cfg(), &v, &Action::Hold("q".into()), 1).unwrap();
    assert_eq!(r.disposition, "quarantine");
    assert_eq!(r.reasons.len(), 1);
    assert_eq!(r.reasons[0].kind, "sampled_out");
}

#[test]
fn identical_results_are_counted_together() {
    let a = base_row();
    let mut b = a.clone();
    b.time += 50; // time does not split a group
    let mut c = a.clone();
    c.source_ip = "192.0.2.8".into();
    let mut d = a.clone();
    d.dkim[0].result = "fail".into();
    let mut e = a.clone();
    e.envelope_from = "bounce.b.example".into();
    let groups = group(&[a.clone(), c.clone(), b, d, a.clone(), e]);
    let counts: Vec<(String, u64)> = groups
        .iter()
        .map(|(g, n)| {
            (
                format!("{} {} {}", g.source_ip, g.dkim[0].result, g.envelope_from),
                *n,
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("192.0.2.7 pass b.example".to_string(), 3),
            ("192.0.2.8 pass b.example".to_string(), 1),
            ("192.0.2.7 fail b.example".to_string(), 1),
            ("192.0.2.7 pass bounce.b.example".to_string(), 1),
        ]
    );
    let meta = Metadata {
        org_name: "Example".into(),
        email: "r@mx.example".into(),
        extra_contact_info: None,
        report_id: "1.b.example.x@mx".into(),
        begin: 0,
        end: 86_399,
    };
    let xml = feedback_xml(&meta, "b.example", &[a.clone(), a.clone(), c]);
    assert_eq!(xml.matches("<record>").count(), 2);
    assert!(
        xml.contains("<count>2</count>") && xml.contains("<count>1</count>"),
        "{xml}"
    );
    assert!(!xml.contains("extra_contact_info"));
}

#[test]
fn hostile_values_are_escaped() {
    assert_eq!(
        escape("a<b>&\"c'\u{1}\u{7f}é"),
        "a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD}\u{7f}é"
    );
    let mut r = base_row();
    r.header_from = "</header_from><evil>&x;".into();
    r.dkim[0].selector = "]]><!--".into();
    r.reasons.push(crate::model::PolicyOverride {
        kind: "local_policy".into(),
        comment: Some("<script>\u{0}".into()),
    });
    let meta = Metadata {
        org_name: "A & B <Mail>".into(),
        email: "r@mx.example".into(),
        extra_contact_info: Some("https://x.example/?a=1&b=2".into()),
        report_id: "id".into(),
        begin: 0,
        end: 1,
    };
    let xml = feedback_xml(&meta, "b.example", &[r]);
    assert!(
        xml.contains("<header_from>&lt;/header_from&gt;&lt;evil&gt;&amp;x;</header_from>"),
        "{xml}"
    );
    assert!(xml.contains("<selector>]]&gt;&lt;!--</selector>"), "{xml}");
    assert!(
        xml.contains("<comment>&lt;script&gt;\u{FFFD}</comment>"),
        "{xml}"
    );
    assert!(xml.contains("<org_name>A &amp; B &lt;Mail&gt;</org_name>"));
    assert!(!xml.contains("<evil>") && !xml.contains('\u{0}'));
}

#[test]
fn ipv6_sources_are_written_in_full() {
    assert_eq!(schema_ip("2001:db8::1"), "2001:db8:0:0:0:0:0:1");
    assert_eq!(schema_ip("::ffff:192.0.2.1"), "192.0.2.1");
    assert_eq!(schema_ip("192.0.2.1"), "192.0.2.1");
}

#[test]
fn rua_addresses_and_sizes_come_from_the_record() {
    let mut zone = crate::authn::StaticZone::new();
    zone.txt(
        "_dmarc.x.example",
        "v=DMARC1; p=none; rua=mailto:a@x.example!10m, mailto:b@y.example,mailto:c@z.example!500k;fo=1",
    );
    let auth = crate::authn::Authenticator::with_zone(zone);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // From a subdomain: the record is the organizational domain's.
    let msg = b"From: a@mail.x.example\r\nSubject: s\r\n\r\nbody\r\n";
    let input = crate::authn::Input {
        client_ip: "192.0.2.1".parse().unwrap(),
        helo: "h.example",
        mail_from: "b@h.example",
        message: msg,
    };
    let v = rt.block_on(auth.evaluate(&input));
    let p = v.dmarc.record.unwrap();
    assert_eq!(
        p.rua,
        [
            ReportUri {
                address: "a@x.example".into(),
                max_size: 10 * 1024 * 1024
            },
            ReportUri {
                address: "b@y.example".into(),
                max_size: 0
            },
            ReportUri {
                address: "c@z.example".into(),
                max_size: 500 * 1024
            },
        ]
    );
    assert_eq!(p.fo.as_deref(), Some("1"));
    assert_eq!(p.domain, "x.example");
}

#[test]
fn external_destinations_need_their_consent() {
    let psl = crate::authn::PublicSuffixes::built_in();
    assert!(same_organization(&psl, "b.example", "b.example"));
    assert!(same_organization(&psl, "b.example", "reports.b.example"));
    assert!(same_organization(&psl, "mail.b.example", "b.example"));
    assert!(same_organization(&psl, "mail.b.co.uk", "reports.b.co.uk"));
    assert!(!same_organization(&psl, "b.example", "evilb.example"));
    assert!(!same_organization(&psl, "b.co.uk", "co.uk"));
    assert!(!same_organization(&psl, "alice.github.io", "bob.github.io"));
    let mut zone = StaticZone::new();
    zone.txt("b.example._report._dmarc.vendor.example", "v=DMARC1")
        .txt("b.example._report._dmarc.other.example", "v=spf1 -all")
        .fail("b.example._report._dmarc.broken.example");
    let dns = Dns::zone(zone);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(
            destination_allowed(&dns, &psl, "b.example", "d@b.example").await,
            Ok(Ok(()))
        );
        assert_eq!(
            destination_allowed(&dns, &psl, "b.example", "d@vendor.example").await,
            Ok(Ok(()))
        );
        let no = destination_allowed(&dns, &psl, "b.example", "d@other.example")
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            no.contains("b.example._report._dmarc.other.example") && no.contains("7.1"),
            "{no}"
        );
        assert!(
            destination_allowed(&dns, &psl, "b.example", "d@nowhere.example")
                .await
                .unwrap()
                .is_err()
        );
        let temp = destination_allowed(&dns, &psl, "b.example", "d@broken.example")
            .await
            .unwrap_err();
        assert!(temp.contains("temporary"), "{temp}");
    });
}

#[test]
fn the_message_carries_the_gzipped_report() {
    let xml = "<feedback>x</feedback>";
    let gz = gzip(xml);
    let to = vec!["a@x.example".to_string(), "b@y.example".to_string()];
    let m = message(
        &Envelope {
            from: "r@mx.example",
            to: &to,
            org_name: "Example\r\nBcc: evil@x",
            policy_domain: "x.example",
            report_id: "7.x.example.ab@mx",
            filename: "mx.example!x.example!0!86399.xml.gz",
            begin: 0,
            end: 86_399,
            date: 1_795_392_000,
            unique: "ab",
        },
        &gz,
    );
    let text = String::from_utf8(m).unwrap();
    assert!(text.contains("Subject: Report Domain: x.example Submitter: Example  Bcc: evil@x Report-ID: <7.x.example.ab@mx>\r\n"), "{text}");
    assert!(!text.contains("\r\nBcc:"));
    assert!(text.contains("To: <a@x.example>, <b@y.example>\r\n"));
    assert!(
        text.contains("Date: Mon, 23 Nov 2026 00:00:00 +0000\r\n"),
        "{text}"
    );
    assert!(text
        .contains("Content-Type: application/gzip; name=\"mx.example!x.example!0!86399.xml.gz\""));
    // The attachment decodes and gunzips back to the XML.
    use base64::Engine as _;
    let b64: String = text
        .split("filename=\"mx.example!x.example!0!86399.xml.gz\"\r\n\r\n")
        .nth(1)
        .unwrap()
        .split("--=_postwarden_ab--")
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut back = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&raw[..]), &mut back).unwrap();
    assert_eq!(back, xml);
}

#[test]
fn previous_day_is_the_last_full_utc_day() {
    assert_eq!(
        super::previous_day(1_795_392_000 + 3_600),
        (1_795_305_600, 1_795_391_999)
    );
}
