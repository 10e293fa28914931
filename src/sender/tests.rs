use super::*;
use crate::model::{AccountFact, AccountKind, DomainFact};

fn facts(mode: SenderCheck) -> Facts {
    Facts {
        organization: "acme".into(),
        sender_check: mode,
        domains: vec![
            DomainFact {
                name: "acme.example".into(),
                active: true,
            },
            DomainFact {
                name: "old.example".into(),
                active: false,
            },
            DomainFact {
                name: "xn--bcher-kva.example".into(),
                active: true,
            },
        ],
        accounts: vec![
            AccountFact {
                address: "alice@acme.example".into(),
                kind: AccountKind::EndUser,
            },
            AccountFact {
                address: "noreply@acme.example".into(),
                kind: AccountKind::SilentUser,
            },
            AccountFact {
                address: "billing@acme.example".into(),
                kind: AccountKind::Functional,
            },
            AccountFact {
                address: "carol@old.example".into(),
                kind: AccountKind::EndUser,
            },
            AccountFact {
                address: "info@xn--bcher-kva.example".into(),
                kind: AccountKind::EndUser,
            },
        ],
    }
}

fn rejection(d: Decision) -> Rejection {
    match d {
        Decision::Reject(r) => r,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn from(addrs: &[&str]) -> Vec<Vec<String>> {
    vec![addrs.iter().map(|s| s.to_string()).collect()]
}

#[test]
fn every_account_kind_is_accepted_as_envelope_and_header_from() {
    for mode in [SenderCheck::Account, SenderCheck::Domain] {
        let f = facts(mode);
        for (addr, kind) in [
            ("alice@acme.example", AccountKind::EndUser),
            ("noreply@acme.example", AccountKind::SilentUser),
            ("billing@acme.example", AccountKind::Functional),
        ] {
            let d = judge_message(&f, Some(addr), &from(&[addr]));
            let expected = Rule::RegisteredAccount {
                address: addr.into(),
                kind,
            };
            assert_eq!(
                d,
                Decision::Accept {
                    rules: vec![expected.clone(), expected]
                }
            );
            assert_eq!(
                judge_envelope(&f, Some(addr)),
                Decision::Accept {
                    rules: vec![Rule::RegisteredAccount {
                        address: addr.into(),
                        kind
                    }]
                }
            );
        }
    }
}

#[test]
fn inactive_domain_is_refused_naming_the_domain() {
    let r = rejection(judge_envelope(
        &facts(SenderCheck::Account),
        Some("carol@old.example"),
    ));
    assert_eq!(r.code, "553");
    assert_eq!(r.xcode, "5.7.1");
    assert_eq!(
        r.text,
        "Sender address <carol@old.example> rejected: sending domain old.example is inactive; ask your provider to activate it"
    );
    assert!(r
        .rule
        .explanation("acme")
        .contains("postwarden domain activate old.example"));
    // Discovery mode does not open an inactive domain either.
    let r = rejection(judge_envelope(
        &facts(SenderCheck::Domain),
        Some("new@old.example"),
    ));
    assert_eq!(r.rule.name(), "domain_inactive");
}

#[test]
fn foreign_and_unknown_domains_get_the_same_reply() {
    // The facts hold only the login's own organization: whether other.example belongs to
    // another organization cannot change the reply.
    let f = facts(SenderCheck::Account);
    let other = rejection(judge_envelope(&f, Some("bob@other.example")));
    let unknown = rejection(judge_envelope(&f, Some("bob@unknown.example")));
    assert_eq!(
        other.text.replace("other.example", "X"),
        unknown.text.replace("unknown.example", "X")
    );
    assert_eq!(other.code, "553");
    assert_eq!(other.xcode, "5.7.1");
    assert_eq!(
        other.text,
        "Sender address <bob@other.example> rejected: other.example is not a sending domain of your organization; use an address of your own domain or ask your provider to register it"
    );
    assert!(!other.text.contains("acme"), "{}", other.text);
}

#[test]
fn unregistered_address_in_own_domain_depends_on_mode() {
    let r = rejection(judge_envelope(
        &facts(SenderCheck::Account),
        Some("dave@acme.example"),
    ));
    assert_eq!(r.rule.name(), "not_registered");
    assert_eq!(
        r.text,
        "Sender address <dave@acme.example> rejected: not a registered sender of your organization; ask your provider to register it"
    );
    let d = judge_message(
        &facts(SenderCheck::Domain),
        Some("dave@acme.example"),
        &from(&["Dave@Acme.Example"]),
    );
    assert_eq!(
        d,
        Decision::AcceptDiscovered {
            rules: vec![
                Rule::DiscoveredInActiveDomain {
                    address: "dave@acme.example".into()
                },
                Rule::DiscoveredInActiveDomain {
                    address: "dave@acme.example".into()
                },
            ],
            discovered: vec!["dave@acme.example".into()],
        }
    );
    // Discovery mode still refuses foreign domains.
    let r = rejection(judge_envelope(
        &facts(SenderCheck::Domain),
        Some("bob@other.example"),
    ));
    assert_eq!(r.rule.name(), "domain_not_owned");
}

#[test]
fn null_sender_is_judged_by_header_from() {
    let f = facts(SenderCheck::Account);
    assert_eq!(
        judge_envelope(&f, None),
        Decision::Accept {
            rules: vec![Rule::NullSender]
        }
    );
    assert!(judge_message(&f, None, &from(&["alice@acme.example"])).is_accept());
    let r = rejection(judge_message(&f, None, &from(&["bob@other.example"])));
    assert!(
        r.text
            .starts_with("From header address <bob@other.example> rejected"),
        "{}",
        r.text
    );
    assert_eq!(envelope_address("<>"), None);
    assert_eq!(
        envelope_address("<alice@acme.example>"),
        Some("alice@acme.example")
    );
    assert_eq!(
        envelope_address("alice@acme.example"),
        Some("alice@acme.example")
    );
}

#[test]
fn case_differences_do_not_matter() {
    let f = facts(SenderCheck::Account);
    for a in [
        "ALICE@ACME.EXAMPLE",
        "Alice@acme.Example",
        "<alice@ACME.example>",
    ] {
        assert!(judge_envelope(&f, envelope_address(a)).is_accept(), "{a}");
    }
}

#[test]
fn idn_u_label_and_a_label_are_equal() {
    let f = facts(SenderCheck::Account);
    for a in [
        "info@bücher.example",
        "info@BÜCHER.example",
        "info@xn--bcher-kva.example",
    ] {
        assert!(judge_message(&f, Some(a), &from(&[a])).is_accept(), "{a}");
    }
    let r = rejection(judge_envelope(&f, Some("other@bücher.example")));
    assert_eq!(
        r.rule,
        Rule::NotRegistered {
            address: "other@xn--bcher-kva.example".into(),
            domain: "xn--bcher-kva.example".into()
        }
    );
}

#[test]
fn envelope_owned_but_header_from_spoofed() {
    let f = facts(SenderCheck::Account);
    let r = rejection(judge_message(
        &f,
        Some("alice@acme.example"),
        &from(&["ceo@other.example"]),
    ));
    assert_eq!(r.code, "553");
    assert!(
        r.text
            .starts_with("From header address <ceo@other.example> rejected"),
        "{}",
        r.text
    );
    // Every address of the field counts.
    let r = rejection(judge_message(
        &f,
        Some("alice@acme.example"),
        &from(&["alice@acme.example", "ceo@other.example"]),
    ));
    assert_eq!(r.rule.name(), "domain_not_owned");
}

#[test]
fn from_field_count_and_content() {
    let f = facts(SenderCheck::Account);
    let r = rejection(judge_message(&f, Some("alice@acme.example"), &[]));
    assert_eq!((r.code, r.xcode), ("550", "5.6.0"));
    assert_eq!(
        r.text,
        "Message must have exactly one From header field (it has 0)"
    );
    let two = vec![
        vec!["alice@acme.example".to_string()],
        vec!["alice@acme.example".to_string()],
    ];
    let r = rejection(judge_message(&f, Some("alice@acme.example"), &two));
    assert_eq!(
        r.text,
        "Message must have exactly one From header field (it has 2)"
    );
    let r = rejection(judge_message(&f, Some("alice@acme.example"), &[vec![]]));
    assert_eq!(r.rule, Rule::FromWithoutAddress);
    // The envelope is judged first.
    let r = rejection(judge_message(&f, Some("x@other.example"), &[]));
    assert_eq!(r.rule.name(), "domain_not_owned");
}

#[test]
fn invalid_addresses_are_refused() {
    let f = facts(SenderCheck::Domain);
    for a in [
        "alice",
        "alice@",
        "@acme.example",
        "\"a b\"@acme.example",
        "a..b@acme.example",
    ] {
        let r = rejection(judge_envelope(&f, Some(a)));
        assert_eq!(r.rule.name(), "invalid_address", "{a}");
        assert_eq!(r.code, "553");
    }
}

/// Every combination of mode, domain state, registration and role against the rule's table.
#[test]
fn exhaustive_table() {
    #[derive(Clone, Copy, Debug)]
    enum Dom {
        OwnActive,
        OwnInactive,
        Foreign,
    }
    for mode in [SenderCheck::Account, SenderCheck::Domain] {
        for dom in [Dom::OwnActive, Dom::OwnInactive, Dom::Foreign] {
            for registered in [false, true] {
                for role in [Role::EnvelopeSender, Role::HeaderFrom] {
                    for kind in [
                        AccountKind::EndUser,
                        AccountKind::SilentUser,
                        AccountKind::Functional,
                    ] {
                        let domain = match dom {
                            Dom::OwnActive => "a.example",
                            Dom::OwnInactive => "i.example",
                            Dom::Foreign => "f.example",
                        };
                        let address = format!("u@{domain}");
                        let f = Facts {
                            organization: "o".into(),
                            sender_check: mode,
                            domains: vec![
                                DomainFact {
                                    name: "a.example".into(),
                                    active: true,
                                },
                                DomainFact {
                                    name: "i.example".into(),
                                    active: false,
                                },
                            ],
                            // A registered account in a foreign domain cannot exist in the store;
                            // the facts never list one, whatever `registered` says.
                            accounts: if registered && !matches!(dom, Dom::Foreign) {
                                vec![AccountFact {
                                    address: address.clone(),
                                    kind,
                                }]
                            } else {
                                vec![]
                            },
                        };
                        let got = judge_address(&f, role, &address.to_uppercase());
                        let expected: Result<&str, &str> =
                            match (dom, registered && !matches!(dom, Dom::Foreign), mode) {
                                (Dom::Foreign, _, _) => Err("domain_not_owned"),
                                (Dom::OwnInactive, _, _) => Err("domain_inactive"),
                                (Dom::OwnActive, true, _) => Ok("registered_account"),
                                (Dom::OwnActive, false, SenderCheck::Domain) => Ok("discovered"),
                                (Dom::OwnActive, false, SenderCheck::Account) => {
                                    Err("not_registered")
                                }
                            };
                        let got_name = match &got {
                            Ok(rule) => Ok(rule.name()),
                            Err(d) => Err(rejection(d.clone()).rule.name()),
                        };
                        assert_eq!(
                            got_name, expected,
                            "{mode:?} {dom:?} registered={registered} {role:?} {kind:?}"
                        );
                        if let Err(d) = got {
                            let r = rejection(d);
                            assert_eq!((r.code, r.xcode), ("553", "5.7.1"));
                            assert!(r.text.starts_with(role.noun()), "{}", r.text);
                            assert!(!r.text.contains(" o "), "organization named: {}", r.text);
                        }
                    }
                }
            }
        }
    }
}
