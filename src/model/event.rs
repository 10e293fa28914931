//! Events: the append-only record of every auth attempt, transaction decision and admin
//! change.

use serde::{Deserialize, Serialize};

use super::{now, string_enum};

string_enum! {
    /// What an event records.
    pub enum EventKind {
        /// A login attempt on the auth socket.
        Auth = "auth",
        /// A message decision of a milter.
        Mail = "mail",
        /// A change made by an administrator.
        Admin = "admin",
    }
}

string_enum! {
    /// Why a login attempt ended the way it did: the `auth` event's reason.
    pub enum AuthReason {
        Ok = "ok",
        BadPassword = "bad_password",
        UnknownUser = "unknown_user",
        Revoked = "revoked",
        NoTls = "no_tls",
        Throttled = "throttled",
        AuthzidMismatch = "authzid_mismatch",
        Malformed = "malformed",
        Fault = "fault",
    }
}

impl AuthReason {
    /// The `auth` event's outcome: `ok`, `tempfail` for a fault, `fail` otherwise.
    pub fn outcome(self) -> &'static str {
        match self {
            AuthReason::Ok => "ok",
            AuthReason::Fault => "tempfail",
            _ => "fail",
        }
    }
}

/// One line of the append-only log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub id: i64,
    pub time: i64,
    pub kind: EventKind,
    pub outcome: String,
    pub login: Option<String>,
    pub org: Option<String>,
    pub client_ip: Option<String>,
    pub sender: Option<String>,
    pub header_from: Option<String>,
    pub rcpt_count: Option<i64>,
    pub queue_id: Option<String>,
    pub reason: Option<String>,
}

impl Event {
    pub fn new(kind: EventKind, outcome: &str) -> Event {
        Event {
            id: 0,
            time: now(),
            kind,
            outcome: outcome.to_string(),
            login: None,
            org: None,
            client_ip: None,
            sender: None,
            header_from: None,
            rcpt_count: None,
            queue_id: None,
            reason: None,
        }
    }

    /// The `auth` event of one login attempt.
    pub fn auth(
        login: &str,
        client_ip: Option<std::net::IpAddr>,
        reason: AuthReason,
        org: Option<String>,
    ) -> Event {
        let mut ev = Event::new(EventKind::Auth, reason.outcome());
        ev.login = (!login.is_empty()).then(|| login.to_string());
        ev.client_ip = client_ip.map(|i| i.to_string());
        ev.reason = Some(reason.as_str().to_string());
        ev.org = org;
        ev
    }

    /// The `admin` event of a change made by `actor`.
    pub fn admin(actor: &str, org: Option<&str>, what: String) -> Event {
        let mut ev = Event::new(EventKind::Admin, "ok");
        ev.login = Some(actor.to_string());
        ev.org = org.map(str::to_string);
        ev.reason = Some(what);
        ev
    }
}

/// Which events `postwarden log` asks for.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kind: Option<EventKind>,
    pub login: Option<String>,
    pub org: Option<String>,
    pub sender: Option<String>,
    pub since: Option<i64>,
    pub limit: Option<u32>,
}
