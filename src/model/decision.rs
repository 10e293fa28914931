//! Sender decisions: which rule decided about which address, and the refusal a client
//! sees. The rule itself (who may send as whom) is `crate::sender::rule`.

use std::fmt;

use super::AccountKind;

/// Where an address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    EnvelopeSender,
    HeaderFrom,
}

impl Role {
    pub fn noun(self) -> &'static str {
        match self {
            Role::EnvelopeSender => "Sender address",
            Role::HeaderFrom => "From header address",
        }
    }
}

/// The rule that decided, with what an administrator does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// A registered account in an active domain of the organization.
    RegisteredAccount {
        address: String,
        kind: AccountKind,
    },
    /// `domain` mode: an unregistered address in an active domain (accepted, reported).
    DiscoveredInActiveDomain {
        address: String,
    },
    /// Not a syntactically valid address.
    InvalidAddress {
        input: String,
    },
    /// The domain is not one of the organization's (another organization's, or unknown).
    DomainNotOwned {
        address: String,
        domain: String,
    },
    /// The domain is the organization's but inactive.
    DomainInactive {
        address: String,
        domain: String,
    },
    /// `account` mode: the address is not a registered account.
    NotRegistered {
        address: String,
        domain: String,
    },
    /// The message has no From field, or more than one, or one without an address.
    FromFieldCount {
        fields: usize,
    },
    FromWithoutAddress,
    /// A null envelope sender with nothing else to judge (checked again at end of headers).
    NullSender,
}

impl Rule {
    /// Short machine name, used as the event reason.
    pub fn name(&self) -> &'static str {
        match self {
            Rule::RegisteredAccount { .. } => "registered_account",
            Rule::DiscoveredInActiveDomain { .. } => "discovered",
            Rule::InvalidAddress { .. } => "invalid_address",
            Rule::DomainNotOwned { .. } => "domain_not_owned",
            Rule::DomainInactive { .. } => "domain_inactive",
            Rule::NotRegistered { .. } => "not_registered",
            Rule::FromFieldCount { .. } => "from_field_count",
            Rule::FromWithoutAddress => "from_without_address",
            Rule::NullSender => "null_sender",
        }
    }
}

/// A refusal: the SMTP reply and the rule behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub xcode: &'static str,
    pub text: String,
    pub rule: Rule,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.code, self.xcode, self.text)
    }
}

/// The decision on a message (or on its envelope sender alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Every address passed; `rules` says why, one per address judged.
    Accept {
        rules: Vec<Rule>,
    },
    /// Accepted in `domain` mode with unregistered addresses to report.
    AcceptDiscovered {
        rules: Vec<Rule>,
        discovered: Vec<String>,
    },
    Reject(Rejection),
}

impl Decision {
    pub fn is_accept(&self) -> bool {
        !matches!(self, Decision::Reject(_))
    }

    /// The rules that decided.
    pub fn rules(&self) -> Vec<&Rule> {
        match self {
            Decision::Accept { rules } | Decision::AcceptDiscovered { rules, .. } => {
                rules.iter().collect()
            }
            Decision::Reject(r) => vec![&r.rule],
        }
    }
}
