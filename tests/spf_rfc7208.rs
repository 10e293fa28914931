//! The openspf RFC 7208 test suite (`tests/data/spf/rfc7208-tests.yml`, BSD licence beside
//! it, from the pyspf 2.0.14 distribution), run in-process against the inbound evaluator.
//!
//! Each case's `zonedata` becomes a [`StaticZone`]: TXT, A, AAAA, MX, PTR and CNAME records,
//! `TIMEOUT` as a temporary failure of the lookups of the name (see [`zone`]), `TXT: NONE`
//! as no TXT record, any other name NXDOMAIN.
//! Type SPF records are copied to TXT for a name without TXT records, the suite's
//! convention ("auto-magic duplication of SPF to TXT records by test suite drivers"; RFC
//! 7208 evaluators never query type SPF). The case passes when the result for its
//! `mailfrom` (or, for a null sender, `postmaster@<helo>`) from `host` is one of its
//! `result` values.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use postwarden::authn::{Authenticator, Input, StaticZone};
use serde_yaml::Value;

const SUITE: &str = include_str!("data/spf/rfc7208-tests.yml");

/// Cases no SMTP session through Postfix can carry, with the reason. Each still runs and
/// its result is printed; it just does not fail the test.
const SKIPPED: &[(&str, &str)] = &[];

struct Case {
    name: String,
    helo: String,
    host: IpAddr,
    mailfrom: String,
    results: Vec<String>,
    zone: StaticZone,
}

fn string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => panic!("not a scalar: {other:?}"),
    }
}

/// A TXT/SPF value: one string, or a list of character-strings joined.
fn text(v: &Value) -> String {
    match v {
        Value::Sequence(parts) => parts.iter().map(string).collect(),
        other => string(other),
    }
}

/// The address a reverse name (`in-addr.arpa` or nibble `ip6.arpa`) stands for.
fn reverse_ip(name: &str) -> IpAddr {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets: Vec<u8> = rest.split('.').map(|o| o.parse().unwrap()).collect();
        octets.reverse();
        IpAddr::V4(Ipv4Addr::new(octets[0], octets[1], octets[2], octets[3]))
    } else if let Some(rest) = name.strip_suffix(".ip6.arpa") {
        let mut nibbles: Vec<&str> = rest.split('.').collect();
        nibbles.reverse();
        let hex: String = nibbles.concat();
        IpAddr::V6(Ipv6Addr::from(u128::from_str_radix(&hex, 16).unwrap()))
    } else {
        panic!("not a reverse name: {name}")
    }
}

fn zone(zonedata: Option<&Value>) -> StaticZone {
    let mut zone = StaticZone::new();
    let Some(Value::Mapping(names)) = zonedata else {
        return zone;
    };
    for (name, records) in names {
        let name = string(name);
        let records = records.as_sequence().cloned().unwrap_or_default();
        // `TXT: NONE` stands for "no TXT record" (beside a type SPF record).
        let is_none = |r: &Value| r.get("TXT").is_some_and(|v| v.as_str() == Some("NONE"));
        let txt_listed = records
            .iter()
            .any(|r| r.as_mapping().is_some_and(|m| m.contains_key("TXT")));
        let has_txt = txt_listed && !records.iter().any(is_none);
        for record in &records {
            if is_none(record) {
                continue;
            }
            let Value::Mapping(m) = record else {
                assert_eq!(string(record), "TIMEOUT", "record {record:?}");
                // The suite's drivers time out the queries of the types the name holds
                // no records of; the only type queried at these names is TXT, so a name
                // with TXT records answers them (case `spftimeout`: only a type SPF
                // query, which RFC 7208 no longer makes, would time out).
                if !has_txt {
                    zone.fail(&name);
                }
                continue;
            };
            for (kind, value) in m {
                match string(kind).as_str() {
                    "TXT" => {
                        zone.txt(&name, &text(value));
                    }
                    // Copied to TXT only when no TXT entry is listed (not even NONE).
                    "SPF" if !txt_listed => {
                        zone.txt(&name, &text(value));
                    }
                    "SPF" => {}
                    "A" | "AAAA" => {
                        zone.address(&name, string(value).parse().unwrap());
                    }
                    "MX" => {
                        let pair = value.as_sequence().unwrap();
                        let preference = string(&pair[0]).parse().unwrap();
                        zone.mx(&name, preference, &string(&pair[1]));
                    }
                    "PTR" => {
                        zone.ptr(reverse_ip(&name), &string(value));
                    }
                    "CNAME" => {
                        zone.cname(&name, &string(value));
                    }
                    other => panic!("record type {other} at {name}"),
                }
            }
        }
    }
    zone
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(SUITE) {
        let doc = Value::deserialize(document).expect("the suite is valid YAML");
        let zonedata = doc.get("zonedata");
        let Some(Value::Mapping(tests)) = doc.get("tests") else {
            continue;
        };
        for (name, case) in tests {
            let results = match &case["result"] {
                Value::Sequence(list) => list.iter().map(string).collect(),
                one => vec![string(one)],
            };
            out.push(Case {
                name: string(name),
                helo: case.get("helo").map(string).unwrap_or_default(),
                host: string(&case["host"]).parse().unwrap(),
                mailfrom: case.get("mailfrom").map(string).unwrap_or_default(),
                results,
                zone: zone(zonedata),
            });
        }
    }
    out
}

use serde::Deserialize;

#[test]
fn rfc7208_suite() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cases = cases();
    assert_eq!(cases.len(), 203, "cases in the suite");
    let mut passed = 0;
    let mut failures: BTreeMap<String, String> = BTreeMap::new();
    let mut skipped_failing = Vec::new();
    for case in cases {
        let auth = Authenticator::with_zone(case.zone).with_hostname("receiver.test");
        let input = Input {
            client_ip: case.host,
            helo: &case.helo,
            mail_from: &case.mailfrom,
            message: b"",
        };
        let verdicts = rt.block_on(auth.evaluate(&input));
        let got = verdicts.spf_mail_from.result.as_str();
        if case.results.iter().any(|r| r == got) {
            passed += 1;
        } else if let Some((_, reason)) = SKIPPED.iter().find(|(n, _)| *n == case.name) {
            skipped_failing.push(format!("{}: got {got} ({reason})", case.name));
        } else {
            failures.insert(
                case.name.clone(),
                format!("got {got}, expected {}", case.results.join(" or ")),
            );
        }
    }
    for (name, why) in &failures {
        println!("FAIL {name}: {why}");
    }
    for s in &skipped_failing {
        println!("SKIP {s}");
    }
    println!(
        "SPF RFC 7208 suite: {passed}/203 cases pass ({} skipped as impossible over SMTP, {} failing)",
        skipped_failing.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{} cases fail", failures.len());
}
