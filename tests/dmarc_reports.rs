//! `postwarden dmarc report` on a store holding DMARC results: the report validates
//! against RFC 7489's schema (xmllint), hostile values included; a sent report is not
//! sent again; a failing sendmail is an error naming it; disabled reports say so.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::{assert_valid_dmarc_report, xmllint_available, BIN};
use postwarden::model::{DkimAuth, DmarcRow, PolicyOverride, PublishedTags, ReportUri, SpfAuth};
use postwarden::store::sqlite::SqliteStore;
use postwarden::store::DmarcResults as _;

const DAY: i64 = 1_795_392_000; // 2026-11-23T00:00:00Z

fn row(time: i64, ip: &str, disposition: &str, header_from: &str) -> DmarcRow {
    DmarcRow {
        time,
        policy_domain: "b.example".into(),
        published: PublishedTags {
            p: "reject".into(),
            sp: "quarantine".into(),
            pct: 100,
            adkim: "r".into(),
            aspf: "s".into(),
            fo: "1".into(),
        },
        header_from: header_from.into(),
        envelope_from: "bounce.b.example".into(),
        source_ip: ip.into(),
        disposition: disposition.into(),
        dkim_aligned: if disposition == "none" {
            "pass"
        } else {
            "fail"
        }
        .into(),
        spf_aligned: "fail".into(),
        reasons: if disposition == "quarantine" {
            vec![PolicyOverride {
                kind: "mailing_list".into(),
                comment: Some("list <l@x> & \"friends\"".into()),
            }]
        } else {
            vec![]
        },
        dkim: vec![DkimAuth {
            domain: "b.example".into(),
            selector: "s<1>".into(),
            result: if disposition == "none" {
                "pass"
            } else {
                "fail"
            }
            .into(),
        }],
        spf: vec![SpfAuth {
            domain: "bounce.b.example".into(),
            scope: "mfrom".into(),
            result: "softfail".into(),
        }],
        rua: vec![ReportUri {
            address: "dmarc@b.example".into(),
            max_size: 0,
        }],
    }
}

struct Setup {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
}

fn setup(sendmail: &str, extra_rows: &[DmarcRow]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let config = dir.path().join("postwarden.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[dmarc_reports]\nenabled = true\norg_name = \"Example & Co\"\nemail = \"reports@mx.example\"\nextra_contact_info = \"https://mx.example/dmarc?a=1&b=2\"\nsendmail = {sendmail:?}\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    let mut store =
        SqliteStore::open(&data.join("postwarden.db"), Duration::from_secs(2), "t").unwrap();
    let mut rows = vec![
        row(DAY + 10, "192.0.2.1", "none", "b.example"),
        row(DAY + 20, "192.0.2.1", "none", "b.example"),
        row(DAY + 30, "2001:db8::7", "reject", "b.example"),
        row(DAY + 40, "192.0.2.9", "quarantine", "<b>&\u{1}.example"),
        // Outside the period.
        row(DAY + 86_400, "192.0.2.1", "none", "b.example"),
    ];
    rows.extend_from_slice(extra_rows);
    store.record_dmarc(&rows).unwrap();
    Setup { dir, config }
}

fn cli(s: &Setup, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .args(["--config", s.config.to_str().unwrap()])
        .env_remove("POSTWARDEN_DATA_DIR")
        .output()
        .unwrap()
}

fn day_args() -> Vec<String> {
    vec![
        "dmarc".into(),
        "report".into(),
        "--begin".into(),
        DAY.to_string(),
        "--end".into(),
        (DAY + 86_399).to_string(),
    ]
}

#[test]
fn dry_run_report_validates_against_rfc7489() {
    if !xmllint_available() {
        return;
    }
    let s = setup("/bin/false", &[]);
    let mut args = day_args();
    args.push("--dry-run".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cli(&s, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let xml = String::from_utf8(out.stdout).unwrap();
    assert_valid_dmarc_report(&xml, s.dir.path());
    // Four messages of the day in three records; the two identical ones counted together.
    assert_eq!(xml.matches("<record>").count(), 3, "{xml}");
    assert!(xml.contains("<count>2</count>"), "{xml}");
    assert!(
        xml.contains("<source_ip>2001:db8:0:0:0:0:0:7</source_ip>"),
        "{xml}"
    );
    assert!(
        xml.contains("<header_from>&lt;b&gt;&amp;\u{FFFD}.example</header_from>"),
        "{xml}"
    );
    assert!(xml.contains(&format!("<begin>{DAY}</begin>")));
    assert!(xml.contains("<org_name>Example &amp; Co</org_name>"));
    let notes = String::from_utf8_lossy(&out.stderr);
    assert!(
        notes.contains("dry run") && notes.contains("dmarc@b.example"),
        "{notes}"
    );
    // A dry run records nothing: the sendmail that fails was never called.
}

#[test]
fn a_report_is_sent_once_and_a_failing_sendmail_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let captured = dir.path().join("captured");
    let fake = dir.path().join("sendmail");
    // A stand-in for Postfix's sendmail that keeps its arguments and the message.
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" > {0}.args\ncat > {0}.msg\n",
            captured.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // An external address that has not published its consent, and one over its limit.
    let mut extra = row(DAY + 50, "192.0.2.1", "none", "b.example");
    extra.rua.push(ReportUri {
        address: "x@unverified.example".into(),
        max_size: 0,
    });
    extra.rua.push(ReportUri {
        address: "small@b.example".into(),
        max_size: 10,
    });
    let s = setup(fake.to_str().unwrap(), &[extra]);
    // The external check asks DNS: point it at a port where nothing answers quickly.
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    std::fs::write(
        &s.config,
        format!("{cfg}[dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout = \"200ms\"\n"),
    )
    .unwrap();
    let mut args = day_args();
    args.push("--json".into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = cli(&s, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rep = &v["reports"][0];
    assert_eq!(rep["status"], "sent", "{v}");
    assert_eq!(rep["messages"], 5);
    assert_eq!(rep["recipients"], serde_json::json!(["dmarc@b.example"]));
    let skipped = rep["skipped"].to_string();
    assert!(
        skipped.contains("x@unverified.example") && skipped.contains("small@b.example"),
        "{skipped}"
    );
    assert!(skipped.contains("exceeds"), "{skipped}");
    let sent_args = std::fs::read_to_string(captured.with_extension("args")).unwrap();
    assert_eq!(
        sent_args.trim(),
        "-i -f reports@mx.example -- dmarc@b.example"
    );
    let msg = std::fs::read_to_string(captured.with_extension("msg")).unwrap();
    assert!(
        msg.contains("Subject: Report Domain: b.example Submitter: Example & Co Report-ID: <"),
        "{msg}"
    );
    assert!(msg.contains(&format!(
        "filename=\"mx.example!b.example!{DAY}!{}.xml.gz\"",
        DAY + 86_399
    )));

    // Again: already sent, sendmail not run.
    std::fs::remove_file(captured.with_extension("msg")).unwrap();
    let out = cli(&s, &args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["reports"][0]["status"], "already sent", "{v}");
    assert!(!captured.with_extension("msg").exists());

    // Another period whose sendmail fails: exit 1, the command and its words named.
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'postdrop: no permission' >&2\nexit 75\n",
    )
    .unwrap();
    let text = ["dmarc", "report", "--day", "2026-11-24"];
    let out = cli(&s, &text);
    assert_eq!(out.status.code(), Some(1));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        said.contains("failed")
            && said.contains("postdrop: no permission")
            && said.contains(fake.to_str().unwrap()),
        "{said}"
    );
}

#[test]
fn disabled_reports_say_so_and_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("p.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n",
            dir.path().join("none").display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["dmarc", "report", "--config", config.to_str().unwrap()])
        .env_remove("POSTWARDEN_DATA_DIR")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("reports are disabled"));
    assert!(
        !Path::new(&dir.path().join("none")).exists(),
        "no store created"
    );
    // check-config refuses enabled reports without a From address.
    std::fs::write(
        &config,
        "[dmarc_reports]\nenabled = true\norg_name = \"X\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dmarc_reports.email"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
