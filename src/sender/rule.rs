//! Who may send as whom: a pure function of what the store knows about the login's
//! organization and the addresses a message carries. No I/O, no async.
//!
//! The rule (DESIGN.md, "The sender rule"): the envelope sender and every header From
//! address must be
//! - `account` mode: a registered account (end_user, silent_user or functional) of the
//!   organization, in a domain registered to it and active;
//! - `domain` mode ("discovery"): any address in an active domain of the organization;
//!   addresses that are not registered accounts are accepted and reported as discovered.
//!
//! Everything else is refused with `553 5.7.1` and a reply that says what to fix without
//! revealing what other organizations own: a domain of another organization and an
//! unknown domain get the same text.

use crate::address::{display_domain, normalize_address, Address};
use crate::model::{Decision, Facts, Rejection, Role, Rule, SenderCheck};

impl Rule {
    /// What decided, for the administrator (`postwarden explain`), with the fix where one
    /// exists. May name things the SMTP client must not see.
    pub fn explanation(&self, org: &str) -> String {
        match self {
            Rule::RegisteredAccount { address, kind } => format!(
                "{address} is a registered {} account of organization {org} in an active domain",
                kind.as_str()
            ),
            Rule::DiscoveredInActiveDomain { address } => format!(
                "{address} is not a registered account, but organization {org} uses sender check \
                 `domain` and its domain is active: accepted and reported as discovered \
                 (register it with `postwarden account add {address} --kind end_user`)"
            ),
            Rule::InvalidAddress { input } => format!("{input:?} is not a valid mail address"),
            Rule::DomainNotOwned { domain, .. } => format!(
                "domain {} is not registered to organization {org}: register it with \
                 `postwarden domain add {domain} --org {org}` if it is theirs",
                display_domain(domain)
            ),
            Rule::DomainInactive { domain, .. } => format!(
                "domain {} is registered to this organization but inactive: run \
                 `postwarden domain activate {domain}`",
                display_domain(domain)
            ),
            Rule::NotRegistered { address, .. } => format!(
                "{address} is not a registered account of organization {org} (sender check \
                 `account`): run `postwarden account add {address} --kind end_user`, or \
                 `postwarden org set {org} --sender-check domain` to accept any address of its \
                 active domains"
            ),
            Rule::FromFieldCount { fields } => format!(
                "the message has {fields} From header fields; RFC 5322 requires exactly one"
            ),
            Rule::FromWithoutAddress => "the From header field holds no address".to_string(),
            Rule::NullSender => {
                "null envelope sender: the message is judged by its From header".to_string()
            }
        }
    }
}

/// Text from the message fit for an SMTP reply line: printable ASCII only, at most
/// `max` characters (a reply line has room for 980).
fn reply_safe(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().count() > max {
        out.push_str("...");
    }
    out
}

fn reject(role: Role, rule: Rule) -> Decision {
    let text = match &rule {
        Rule::InvalidAddress { input } => {
            format!(
                "{} \"{}\" is not a valid address",
                role.noun(),
                reply_safe(input, 100)
            )
        }
        Rule::DomainNotOwned { address, domain } => format!(
            "{} <{address}> rejected: {} is not a sending domain of your organization; \
             use an address of your own domain or ask your provider to register it",
            role.noun(),
            display_domain(domain)
        ),
        Rule::DomainInactive { address, domain } => format!(
            "{} <{address}> rejected: sending domain {} is inactive; ask your provider to \
             activate it",
            role.noun(),
            display_domain(domain)
        ),
        Rule::NotRegistered { address, .. } => format!(
            "{} <{address}> rejected: not a registered sender of your organization; ask your \
             provider to register it",
            role.noun()
        ),
        Rule::FromFieldCount { fields } => {
            format!("Message must have exactly one From header field (it has {fields})")
        }
        Rule::FromWithoutAddress => "Message From header field holds no valid address".into(),
        // Accepting rules never reach here.
        other => format!("{} rejected ({})", role.noun(), other.name()),
    };
    let (code, xcode) = match rule {
        Rule::FromFieldCount { .. } | Rule::FromWithoutAddress => ("550", "5.6.0"),
        _ => ("553", "5.7.1"),
    };
    Decision::Reject(Rejection {
        code,
        xcode,
        text,
        rule,
    })
}

/// Judges one address. `Ok(rule)` accepts (the rule says how), `Err` refuses.
pub fn judge_address(facts: &Facts, role: Role, input: &str) -> Result<Rule, Decision> {
    let address: Address = normalize_address(input).map_err(|_| {
        reject(
            role,
            Rule::InvalidAddress {
                input: input.to_string(),
            },
        )
    })?;
    let full = address.to_string();
    let domain = address.domain.clone();
    let Some(d) = facts.domains.iter().find(|d| d.name == domain) else {
        return Err(reject(
            role,
            Rule::DomainNotOwned {
                address: full,
                domain,
            },
        ));
    };
    if !d.active {
        return Err(reject(
            role,
            Rule::DomainInactive {
                address: full,
                domain,
            },
        ));
    }
    if let Some(a) = facts.accounts.iter().find(|a| a.address == full) {
        return Ok(Rule::RegisteredAccount {
            address: full,
            kind: a.kind,
        });
    }
    match facts.sender_check {
        SenderCheck::Domain => Ok(Rule::DiscoveredInActiveDomain { address: full }),
        SenderCheck::Account => Err(reject(
            role,
            Rule::NotRegistered {
                address: full,
                domain,
            },
        )),
    }
}

/// Strips the angle brackets of a MAIL FROM argument; `None` for the null sender `<>`.
pub fn envelope_address(arg: &str) -> Option<&str> {
    let a = arg.trim();
    let a = a
        .strip_prefix('<')
        .and_then(|x| x.strip_suffix('>'))
        .unwrap_or(a);
    (!a.is_empty()).then_some(a)
}

fn collect(rules: Vec<Rule>) -> Decision {
    let discovered: Vec<String> = rules
        .iter()
        .filter_map(|r| match r {
            Rule::DiscoveredInActiveDomain { address } => Some(address.clone()),
            _ => None,
        })
        .collect();
    if discovered.is_empty() {
        Decision::Accept { rules }
    } else {
        let mut unique = discovered;
        unique.sort();
        unique.dedup();
        Decision::AcceptDiscovered {
            rules,
            discovered: unique,
        }
    }
}

/// Judges the envelope sender alone (at MAIL). A null sender passes here; the message is
/// then judged by its From header.
pub fn judge_envelope(facts: &Facts, envelope: Option<&str>) -> Decision {
    match envelope {
        None => Decision::Accept {
            rules: vec![Rule::NullSender],
        },
        Some(addr) => match judge_address(facts, Role::EnvelopeSender, addr) {
            Ok(rule) => collect(vec![rule]),
            Err(d) => d,
        },
    }
}

/// Judges a whole message: the envelope sender (`None` = null sender) and the addresses of
/// each From header field (`from_fields[i]` = the addresses found in the i-th field).
pub fn judge_message(
    facts: &Facts,
    envelope: Option<&str>,
    from_fields: &[Vec<String>],
) -> Decision {
    let mut rules = Vec::new();
    if let Some(addr) = envelope {
        match judge_address(facts, Role::EnvelopeSender, addr) {
            Ok(rule) => rules.push(rule),
            Err(d) => return d,
        }
    }
    if from_fields.len() != 1 {
        return reject(
            Role::HeaderFrom,
            Rule::FromFieldCount {
                fields: from_fields.len(),
            },
        );
    }
    if from_fields[0].is_empty() {
        return reject(Role::HeaderFrom, Rule::FromWithoutAddress);
    }
    for addr in &from_fields[0] {
        match judge_address(facts, Role::HeaderFrom, addr) {
            Ok(rule) => rules.push(rule),
            Err(d) => return d,
        }
    }
    collect(rules)
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;

#[cfg(test)]
mod reply_tests {
    use super::*;

    #[test]
    fn reply_text_from_odd_input_stays_short_and_ascii() {
        let long = format!("{}@x", "a".repeat(3000));
        let r = match judge_address(
            &Facts {
                organization: "o".into(),
                sender_check: SenderCheck::Account,
                domains: vec![],
                accounts: vec![],
            },
            Role::HeaderFrom,
            &long,
        ) {
            Err(Decision::Reject(r)) => r,
            other => panic!("{other:?}"),
        };
        assert!(r.text.len() < 200, "{}", r.text);
        assert!(
            r.text.ends_with("...\" is not a valid address"),
            "{}",
            r.text
        );
        assert_eq!(reply_safe("bad\u{7}ü\r\n", 10), "bad????");
    }
}
