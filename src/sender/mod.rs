//! "May this login send as these addresses?": one answer for every front end. The
//! submission milter, `postwarden explain` (and later the policy service and the web
//! interface) call [`decide`]; the rule itself is the pure [`rule`] module.

pub mod rule;

use crate::address::normalize_address;
use crate::model::{Decision, Event, EventKind, Facts, LoginFacts};
use crate::store::{Result, Senders};

pub use rule::{envelope_address, judge_address, judge_envelope, judge_message};

/// What is judged.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// The envelope sender alone (at MAIL); `None` is the null sender.
    Envelope(Option<&'a str>),
    /// The whole message: the envelope sender and the addresses of each From header
    /// field (`from_fields[i]` = the addresses found in the i-th field).
    Message {
        envelope: Option<&'a str>,
        from_fields: &'a [Vec<String>],
    },
}

impl Subject<'_> {
    /// Every address the subject carries, as written.
    fn addresses(&self) -> impl Iterator<Item = &str> {
        let (envelope, fields): (_, &[Vec<String>]) = match *self {
            Subject::Envelope(e) => (e, &[]),
            Subject::Message {
                envelope,
                from_fields,
            } => (envelope, from_fields),
        };
        envelope
            .into_iter()
            .chain(fields.iter().flatten().map(String::as_str))
    }
}

/// The answer for one login and subject.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No credential has this username.
    UnknownLogin,
    /// The credential is revoked.
    RevokedLogin { organization: String },
    /// The rule decided, on these facts.
    Decided { facts: Facts, decision: Decision },
}

impl Verdict {
    /// The login's organization, when the login is known.
    pub fn organization(&self) -> Option<&str> {
        match self {
            Verdict::UnknownLogin => None,
            Verdict::RevokedLogin { organization } => Some(organization),
            Verdict::Decided { facts, .. } => Some(&facts.organization),
        }
    }
}

/// Loads what the store knows about `login` and the subject's addresses, and runs the
/// sender rule on it (blocking: reads the store).
pub fn decide(store: &dyn Senders, login: &str, subject: Subject<'_>) -> Result<Verdict> {
    // Facts are looked up by normalised address; invalid ones are refused by the rule.
    let normalized: Vec<String> = subject
        .addresses()
        .filter_map(|a| normalize_address(a).ok().map(|a| a.to_string()))
        .collect();
    Ok(match store.sender_facts(login, &normalized)? {
        LoginFacts::Unknown => Verdict::UnknownLogin,
        LoginFacts::Revoked { organization } => Verdict::RevokedLogin { organization },
        LoginFacts::Live(facts) => {
            let decision = match subject {
                Subject::Envelope(envelope) => judge_envelope(&facts, envelope),
                Subject::Message {
                    envelope,
                    from_fields,
                } => judge_message(&facts, envelope, from_fields),
            };
            Verdict::Decided { facts, decision }
        }
    })
}

/// One message as a front end saw it, for its `mail` event.
#[derive(Debug, Clone, Default)]
pub struct Transaction {
    pub login: Option<String>,
    pub organization: Option<String>,
    pub client_ip: Option<String>,
    /// The MAIL FROM address; `None` for the null sender.
    pub envelope: Option<String>,
    /// The addresses of each From header field, in order.
    pub from_fields: Vec<Vec<String>>,
    pub rcpts: i64,
    pub queue_id: Option<String>,
}

impl Transaction {
    /// The `mail` event recording this message's `outcome` and `reason`.
    pub fn event(&self, outcome: &str, reason: String) -> Event {
        let mut ev = Event::new(EventKind::Mail, outcome);
        ev.login = self.login.clone();
        ev.org = self.organization.clone();
        ev.client_ip = self.client_ip.clone();
        ev.sender = Some(self.envelope.clone().unwrap_or_else(|| "<>".into()));
        let from: Vec<&str> = self
            .from_fields
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        ev.header_from = (!from.is_empty()).then(|| from.join(", "));
        ev.rcpt_count = Some(self.rcpts);
        ev.queue_id = self.queue_id.clone();
        ev.reason = Some(reason);
        ev
    }
}
