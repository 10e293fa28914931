//! `postwarden dns-check DOMAIN`: reads the domain's published SPF, DKIM (for its stored
//! selectors) and DMARC records through the configured resolver and says, for each, pass,
//! warn or fail, with the fix.

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::{Authenticator, Outcome};
use crate::config::Config;
use crate::dkim::{self, Algorithm};
use crate::model::{DkimKeyInfo, DkimKeyState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub domain: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.checks.iter().any(|c| c.status == Status::Fail)
    }

    fn push(&mut self, check: impl Into<String>, status: Status, detail: impl Into<String>) {
        self.checks.push(Check {
            check: check.into(),
            status,
            detail: detail.into(),
        });
    }
}

fn spf_fix(domain: &str, addrs: &[IpAddr]) -> String {
    let mechs: Vec<String> = addrs
        .iter()
        .map(|a| match a {
            IpAddr::V4(v4) => format!("ip4:{v4}"),
            IpAddr::V6(v6) => format!("ip6:{v6}"),
        })
        .collect();
    let mechs = if mechs.is_empty() {
        "ip4:YOUR-OUTBOUND-IP".to_string()
    } else {
        mechs.join(" ")
    };
    format!("publish TXT {domain} \"v=spf1 {mechs} -all\"")
}

/// Whether the DKIM record of one stored key is published and matches it, looked up
/// through `auth`'s DNS source.
pub async fn check_key(auth: &Authenticator, domain: &str, k: &DkimKeyInfo) -> Check {
    let name = format!("{}._domainkey.{domain}", k.selector);
    let check = |status, detail: String| Check {
        check: format!("dkim {} ({}, {})", k.selector, k.algorithm, k.state),
        status,
        detail,
    };
    let algorithm: Algorithm = k.algorithm;
    let expected = dkim::dns_record(domain, &k.selector, algorithm, &k.public_key);
    // A missing record matters for a key that signs; a pending one should be published
    // before activation; a retired one may already be gone.
    let missing = if k.state == DkimKeyState::Active {
        Status::Fail
    } else {
        Status::Warn
    };
    match auth.dns().txt(&name).await {
        Err(e) => check(Status::Fail, e),
        Ok(records) if records.is_empty() => check(
            missing,
            format!("no record at {name}: publish {}", expected.zone_line()),
        ),
        Ok(records)
            if records
                .iter()
                .any(|r| dkim::record_matches(r, algorithm, &k.public_key)) =>
        {
            check(Status::Pass, format!("{name} matches the stored key"))
        }
        Ok(_) => check(
            Status::Fail,
            format!(
                "{name} does not match the stored key: publish {}",
                expected.zone_line()
            ),
        ),
    }
}

/// The DKIM check of one key through the configured resolver (for `dkim activate`).
pub async fn check_one_key(cfg: &Config, domain: &str, key: &DkimKeyInfo) -> Result<Check, String> {
    let authenticator = Authenticator::from_config(cfg).map_err(|e| e.to_string())?;
    Ok(check_key(&authenticator, domain, key).await)
}

/// Runs the checks for `domain` with the keys stored for it, through the configured
/// resolver.
pub async fn check(cfg: &Config, domain: &str, keys: &[DkimKeyInfo]) -> Result<Report, String> {
    let authenticator = Authenticator::from_config(cfg).map_err(|e| e.to_string())?;
    Ok(check_with(&authenticator, cfg, domain, keys).await)
}

/// Runs the checks for `domain` with the keys stored for it, every lookup through
/// `auth`'s DNS source (a [`StaticZone`](super::StaticZone) in tests).
pub async fn check_with(
    auth: &Authenticator,
    cfg: &Config,
    domain: &str,
    keys: &[DkimKeyInfo],
) -> Report {
    let mut report = Report {
        domain: domain.to_string(),
        checks: Vec::new(),
    };
    let outbound = &cfg.dns.outbound_addresses;

    // SPF
    match auth.dns().txt(domain).await {
        Err(e) => report.push("spf", Status::Fail, e),
        Ok(records) => {
            let spf: Vec<&String> = records
                .iter()
                .filter(|r| r.to_ascii_lowercase().starts_with("v=spf1"))
                .collect();
            match spf.len() {
                0 => report.push(
                    "spf",
                    Status::Fail,
                    format!("no SPF record: {}", spf_fix(domain, outbound)),
                ),
                1 if outbound.is_empty() => report.push(
                    "spf",
                    Status::Warn,
                    format!(
                        "record found ({}); coverage not checked: set dns.outbound_addresses",
                        spf[0]
                    ),
                ),
                1 => {
                    let mut uncovered = Vec::new();
                    let mut problems = Vec::new();
                    for ip in outbound {
                        // The same RFC 7208 evaluation the inbound milter runs.
                        let sender = format!("postmaster@{domain}");
                        let out = tokio::time::timeout(
                            cfg.dns.timeout.0 * 4 + Duration::from_secs(1),
                            super::spf::check(
                                auth.dns(),
                                "dns-check.postwarden",
                                *ip,
                                domain,
                                Some(&sender),
                            ),
                        )
                        .await;
                        match out.map(|c| c.verdict) {
                            Ok(v) if v.result == Outcome::Pass => {}
                            Ok(v) if v.result == Outcome::TempError => {
                                problems.push(format!("{ip}: temporary DNS failure"))
                            }
                            Err(_) => problems.push(format!("{ip}: temporary DNS failure")),
                            Ok(v) if v.result == Outcome::PermError => problems.push(format!(
                                "{ip}: the record is broken (permerror: {})",
                                v.cause.as_deref().unwrap_or("invalid record")
                            )),
                            Ok(v) => uncovered.push(format!("{ip} ({})", v.result)),
                        }
                    }
                    if !problems.is_empty() {
                        report.push("spf", Status::Fail, problems.join("; "));
                    } else if !uncovered.is_empty() {
                        report.push(
                            "spf",
                            Status::Fail,
                            format!(
                                "{} does not authorize {}: {}",
                                spf[0],
                                uncovered.join(", "),
                                spf_fix(domain, outbound)
                            ),
                        );
                    } else {
                        report.push(
                            "spf",
                            Status::Pass,
                            format!("{} covers {} outbound address(es)", spf[0], outbound.len()),
                        );
                    }
                }
                n => report.push(
                    "spf",
                    Status::Fail,
                    format!("{n} SPF records (receivers answer permerror): keep exactly one"),
                ),
            }
        }
    }

    // DKIM, per stored selector
    if keys.is_empty() {
        report.push(
            "dkim",
            Status::Warn,
            format!("no DKIM key stored: postwarden dkim keygen {domain}"),
        );
    }
    for k in keys {
        let c = check_key(auth, domain, k).await;
        report.checks.push(c);
    }

    // DMARC
    let dmarc_name = format!("_dmarc.{domain}");
    match auth.dns().txt(&dmarc_name).await {
        Err(e) => report.push("dmarc", Status::Fail, e),
        Ok(records) => {
            let dmarc: Vec<&String> = records
                .iter()
                .filter(|r| r.to_ascii_lowercase().starts_with("v=dmarc1"))
                .collect();
            let fix = format!(
                "publish TXT {dmarc_name} \"v=DMARC1; p=quarantine; rua=mailto:dmarc@{domain}\""
            );
            match dmarc.as_slice() {
                [] => report.push("dmarc", Status::Fail, format!("no DMARC record: {fix}")),
                [one] => {
                    let p = one
                        .split(';')
                        .filter_map(|t| t.trim().split_once('='))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case("p"))
                        .map(|(_, v)| v.trim().to_ascii_lowercase());
                    match p.as_deref() {
                        Some("reject") | Some("quarantine") => report.push("dmarc", Status::Pass, one.to_string()),
                        Some("none") => report.push(
                            "dmarc",
                            Status::Warn,
                            format!("{one}: p=none only monitors; once reports look clean, move to p=quarantine or p=reject"),
                        ),
                        _ => report.push("dmarc", Status::Fail, format!("{one}: no valid p= tag: {fix}")),
                    }
                }
                _ => report.push(
                    "dmarc",
                    Status::Fail,
                    "several DMARC records: keep exactly one",
                ),
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::StaticZone;

    fn key(state: DkimKeyState) -> DkimKeyInfo {
        DkimKeyInfo {
            domain: "acme.test".into(),
            selector: "ed1".into(),
            algorithm: Algorithm::Ed25519,
            public_key: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".into(),
            state,
            created: 0,
            activated: None,
            retired: None,
        }
    }

    fn run(zone: StaticZone, outbound: &str, keys: &[DkimKeyInfo]) -> Report {
        let cfg = Config::parse(
            &format!("[dns]\noutbound_addresses = [{outbound}]\n"),
            "test",
        )
        .unwrap();
        let auth = Authenticator::with_zone(zone);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(check_with(&auth, &cfg, "acme.test", keys))
    }

    fn status(report: &Report, check: &str) -> Status {
        report
            .checks
            .iter()
            .find(|c| c.check.starts_with(check))
            .unwrap_or_else(|| panic!("no {check} in {report:?}"))
            .status
    }

    #[test]
    fn published_records_pass() {
        let k = key(DkimKeyState::Active);
        let mut zone = StaticZone::new();
        zone.txt("acme.test", "v=spf1 ip4:192.0.2.0/24 -all")
            .txt("_dmarc.acme.test", "v=DMARC1; p=reject")
            .dkim_key(&dkim::dns_record(
                "acme.test",
                "ed1",
                k.algorithm,
                &k.public_key,
            ));
        let report = run(zone, "\"192.0.2.5\"", &[k]);
        assert!(!report.failed(), "{report:?}");
        assert_eq!(status(&report, "spf"), Status::Pass);
        assert_eq!(status(&report, "dkim ed1"), Status::Pass);
        assert_eq!(status(&report, "dmarc"), Status::Pass);
    }

    #[test]
    fn missing_uncovering_and_failing_records() {
        let mut zone = StaticZone::new();
        zone.txt("acme.test", "v=spf1 ip4:192.0.2.0/24 -all")
            .txt("_dmarc.acme.test", "v=DMARC1; p=none");
        let report = run(zone, "\"203.0.113.1\"", &[key(DkimKeyState::Active)]);
        assert!(report.failed());
        assert_eq!(status(&report, "spf"), Status::Fail);
        assert_eq!(status(&report, "dkim ed1"), Status::Fail);
        assert_eq!(status(&report, "dmarc"), Status::Warn);

        let mut zone = StaticZone::new();
        zone.fail("acme.test").fail("_dmarc.acme.test");
        let report = run(zone, "", &[key(DkimKeyState::Pending)]);
        assert_eq!(status(&report, "spf"), Status::Fail);
        assert_eq!(status(&report, "dkim ed1"), Status::Warn);
        assert_eq!(status(&report, "dmarc"), Status::Fail);
        assert!(report.checks[0].detail.contains("failed"), "{report:?}");
    }

    #[test]
    fn a_broken_record_is_reported_as_receivers_see_it() {
        // RFC 7208: a CIDR length over 32 is a syntax error (permerror), never a pass.
        let mut zone = StaticZone::new();
        zone.txt("acme.test", "v=spf1 ip4:192.0.2.5/33 -all")
            .txt("_dmarc.acme.test", "v=DMARC1; p=reject");
        let report = run(zone, "\"192.0.2.5\"", &[]);
        assert_eq!(status(&report, "spf"), Status::Fail, "{report:?}");
        assert!(
            report.checks[0]
                .detail
                .contains("192.0.2.5: the record is broken (permerror"),
            "{report:?}"
        );
    }
}
