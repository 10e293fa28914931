//! The store: the interface every caller uses, and its backends (the only code that
//! speaks SQL). One trait per concern, one method per question the rest asks; callers
//! hold a `Box<dyn Store>` (from [`open`] or the daemon's [`Pool`]) and never see the
//! database engine. Nothing is cached: each question reads the database, so a change made
//! by another process is seen at the next query.
//!
//! Every admin change appends its `admin` event in the same transaction, naming the actor
//! the store was opened for.

mod pool;
pub mod sqlite;
mod validate;

use std::fmt;

use crate::config::Config;
use crate::model::{
    Account, AccountKind, Credential, Discovered, DkimAlgorithm, DkimKeyInfo, DmarcRow, Domain,
    Event, EventFilter, KnownAddress, LoginFacts, LoginRecord, Organization, SenderCheck,
    SentReport, SigningKey, ThrottleAttempt, ThrottleCount, ThrottleEntry, ThrottleRelease,
};

pub use pool::{Pool, Pooled};
pub use validate::{validate_label, validate_org_name, validate_selector};

/// What went wrong, split the way callers act on it.
#[derive(Debug)]
pub enum StoreError {
    /// Refused by a rule (duplicate, unknown name, ...): the message is for the administrator.
    Refused(String),
    /// The database could not answer (missing, unreadable, locked past the timeout, corrupt).
    Fault(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Refused(m) | StoreError::Fault(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StoreError {}

pub type Result<T> = std::result::Result<T, StoreError>;

pub(crate) fn refused<T>(msg: impl Into<String>) -> Result<T> {
    Err(StoreError::Refused(msg.into()))
}

/// Organizations.
pub trait Organizations {
    fn org_add(&mut self, name: &str, sender_check: SenderCheck) -> Result<()>;
    fn org_set_sender_check(&mut self, name: &str, sender_check: SenderCheck) -> Result<()>;
    fn org_list(&self) -> Result<Vec<Organization>>;
    /// Removes an organization. Refused while it has domains or live credentials, unless
    /// `force` (then its domains, accounts and credentials go with it).
    fn org_remove(&mut self, name: &str, force: bool) -> Result<()>;
}

/// Domains of organizations.
pub trait Domains {
    /// Adds a domain (already normalised to its A-label) to an organization.
    fn domain_add(&mut self, domain: &str, org: &str, active: bool) -> Result<()>;
    fn domain_set_active(&mut self, domain: &str, active: bool) -> Result<()>;
    fn domain_list(&self, org: Option<&str>) -> Result<Vec<Domain>>;
    /// Removes a domain. Refused while it has accounts or DKIM keys, unless `force`.
    fn domain_remove(&mut self, domain: &str, force: bool) -> Result<()>;
}

/// Sender accounts.
pub trait Accounts {
    /// Adds an account (address already normalised). Its domain must be registered.
    fn account_add(&mut self, address: &str, domain: &str, kind: AccountKind) -> Result<()>;
    fn account_list(&self, org: Option<&str>) -> Result<Vec<Account>>;
    fn account_remove(&mut self, address: &str) -> Result<()>;
}

/// SMTP AUTH credentials.
pub trait Credentials {
    /// Stores a new credential (username generated, password already hashed by the caller).
    fn credential_add(&mut self, org: &str, label: &str, username: &str, hash: &str) -> Result<()>;
    fn username_exists(&self, username: &str) -> Result<bool>;
    fn credential_list(&self, org: Option<&str>) -> Result<Vec<Credential>>;
    fn credential_revoke(&mut self, username: &str) -> Result<()>;
    /// The record behind a login name, compared exactly as stored.
    fn login_record(&self, username: &str) -> Result<Option<LoginRecord>>;
    /// Records a successful login: time and client IP.
    fn credential_used(&mut self, credential_id: i64, client_ip: Option<&str>) -> Result<()>;
}

/// What the sender rule reads, and the senders it discovers.
pub trait Senders {
    /// What the sender rule needs about `login`'s organization: its mode, all its
    /// domains, and those of `addresses` (normalised) that are its accounts.
    fn sender_facts(&self, login: &str, addresses: &[String]) -> Result<LoginFacts>;
    /// Records senders accepted in `domain` mode that are not registered accounts.
    fn record_discovered(&mut self, org: &str, addresses: &[String]) -> Result<()>;
    /// Discovered senders that are still not registered accounts, newest first.
    fn discovered(&self, org: Option<&str>) -> Result<Vec<Discovered>>;
}

/// DKIM keys.
pub trait Keys {
    /// Stores a new (pending) DKIM key for a registered domain.
    fn dkim_add(
        &mut self,
        domain: &str,
        selector: &str,
        algorithm: DkimAlgorithm,
        private_key: &[u8],
        public_key: &str,
    ) -> Result<()>;
    /// DKIM keys (without private keys), optionally of one domain.
    fn dkim_list(&self, domain: Option<&str>) -> Result<Vec<DkimKeyInfo>>;
    /// Makes a key sign. An active key of the same algorithm for the domain is retired
    /// (the switch of a rotation); returns its selector.
    fn dkim_activate(&mut self, domain: &str, selector: &str) -> Result<Option<String>>;
    /// Stops signing with a key (it stays listed, for the DNS overlap).
    fn dkim_retire(&mut self, domain: &str, selector: &str) -> Result<()>;
    /// The active signing keys of an active domain (private keys included): for the
    /// signer only.
    fn dkim_signing_keys(&self, domain: &str) -> Result<Vec<SigningKey>>;
}

/// The event log.
pub trait Journal {
    /// Appends events in one transaction.
    fn record_events(&mut self, events: &[Event]) -> Result<()>;
    /// Events matching `filter`, oldest first; with a limit, the newest `limit` of them.
    fn events(&self, filter: &EventFilter) -> Result<Vec<Event>>;
    /// Deletes events older than `before` (Unix seconds); returns how many.
    fn prune_events(&mut self, before: i64) -> Result<usize>;
}

/// DMARC results of inbound messages, kept for aggregate reports (RFC 7489 section
/// 7.2), and the reports already sent.
pub trait DmarcResults {
    /// Appends events and DMARC results in one transaction: the daemon's writer hands
    /// both over together ([`crate::events`]).
    fn record_batch(&mut self, events: &[Event], rows: &[DmarcRow]) -> Result<()>;
    /// Appends events and DMARC results replayed from the daemon's event journal (its
    /// entries after `after` up to `upto`), and records in the same transaction that
    /// journal `journal` is written up to `upto`. Writes nothing and returns false when
    /// the store's mark for the journal is not `after` (another writer got there first).
    /// The transaction is made durable before this returns, since the journal is removed
    /// after it ([`crate::events`]).
    fn record_replayed(
        &mut self,
        events: &[Event],
        rows: &[DmarcRow],
        journal: &str,
        after: u64,
        upto: u64,
    ) -> Result<bool>;
    /// The last entry of journal `journal` already written into the store (0: none).
    fn replayed_upto(&self, journal: &str) -> Result<u64>;
    /// Appends DMARC results in one transaction.
    fn record_dmarc(&mut self, rows: &[DmarcRow]) -> Result<()> {
        self.record_batch(&[], rows)
    }
    /// The results from `begin` to `end` (Unix seconds, both included), oldest first.
    fn dmarc_rows(&self, begin: i64, end: i64) -> Result<Vec<DmarcRow>>;
    /// Deletes results older than `before` (Unix seconds), and the records of reports
    /// whose period ended before it; returns how many results went.
    fn prune_dmarc(&mut self, before: i64) -> Result<usize>;
    /// The report sent for `policy_domain` and exactly this period, if there was one.
    fn dmarc_report_sent(
        &self,
        policy_domain: &str,
        begin: i64,
        end: i64,
    ) -> Result<Option<SentReport>>;
    /// Records a report as sent.
    fn record_dmarc_report(&mut self, report: &SentReport) -> Result<()>;
}

/// Login throttling (brute-force protection): attempts per client address and per
/// username over a window, and the addresses each username logged in from. Kept in the
/// store so that it survives restarts and every front end sharing the store counts
/// together. Runs on every login attempt: each method is one transaction of one or two
/// statements on primary keys.
pub trait Throttle {
    /// Counts an attempt before its password is checked, in one atomic step: the
    /// address's counter, then (unless the address is past `address_limit`, or known for
    /// the username) the username's. Concurrent attempts each see a different count, so
    /// a limit on the counts bounds the password checks exactly. A counter past its
    /// window starts again at 1.
    fn throttle_attempt(&mut self, attempt: &ThrottleAttempt) -> Result<ThrottleCount>;
    /// Gives back what [`throttle_attempt`](Self::throttle_attempt) counted for an attempt
    /// whose password was right or was never checked; after a successful login, also
    /// remembers the address as known for the username.
    fn throttle_release(&mut self, release: &ThrottleRelease) -> Result<()>;
    /// A successful login in one transaction: the credential's last use (time and client
    /// IP) and [`throttle_release`](Self::throttle_release).
    fn login_succeeded(
        &mut self,
        credential_id: i64,
        client_ip: Option<&str>,
        release: &ThrottleRelease,
    ) -> Result<()>;
    /// The counters with failures whose window has not ended at `now`, busiest first.
    fn throttle_list(&self, now: i64) -> Result<Vec<ThrottleEntry>>;
    /// The addresses known for a username (a successful login within
    /// `known_address_ttl`) at `now`, by username.
    fn throttle_known(&self, now: i64) -> Result<Vec<KnownAddress>>;
    /// Forgets the counters of `key` (an address key or a username); returns how many
    /// went. Refused when there are none. An admin change.
    fn throttle_clear(&mut self, key: &str) -> Result<usize>;
    /// Deletes counters and known addresses that ended before `now`; returns how many.
    fn throttle_prune(&mut self, now: i64) -> Result<usize>;
}

/// One open store: every concern, plus what the pool and `init` ask about the handle.
pub trait Store:
    Organizations
    + Domains
    + Accounts
    + Credentials
    + Senders
    + Keys
    + Journal
    + DmarcResults
    + Throttle
    + Send
{
    /// Where the store is, for messages (a path, or a database URL without secrets).
    fn location(&self) -> String;
    /// How many migrations the store has applied.
    fn schema_version(&self) -> Result<i64>;
    /// Whether this handle still reaches the store it was opened on (a deleted or
    /// replaced database file is not): the pool reopens otherwise.
    fn is_current(&self) -> bool;
    /// Gives back the memory an idle handle holds for speed (caches); the daemon's memory
    /// tick calls it on the pool's idle handles.
    fn release_memory(&self) {}
}

/// Every trait of the store interface, for callers: `use crate::store::prelude::*;`.
pub mod prelude {
    pub use super::{
        Accounts, Credentials, DmarcResults, Domains, Journal, Keys, Organizations, Senders, Store,
        Throttle,
    };
}

/// A store opened for an administrator.
pub struct Opened {
    pub store: Box<dyn Store>,
    /// The store did not exist and was created.
    pub created: bool,
}

/// Opens the configured store for the admin commands, acting as `actor`; migrates it.
/// Only `create` may create a missing store: a read, or a command run with the wrong
/// --config or --data-dir, must never leave an empty store behind for the daemon to
/// answer "unknown user" from.
pub fn open(cfg: &Config, actor: &str, create: bool) -> Result<Opened> {
    let path = cfg.store_path();
    let exists = path.exists();
    if !exists && !create {
        return refused(format!(
            "no store at {}: check --config / --data-dir, or create it with `postwarden init`",
            path.display()
        ));
    }
    let store = sqlite::SqliteStore::open(&path, cfg.store.busy_timeout.0, actor)?;
    Ok(Opened {
        store: Box::new(store),
        created: !exists,
    })
}

/// Creates and migrates the configured store if needed: the daemon's start.
pub fn prepare(cfg: &Config) -> Result<()> {
    sqlite::SqliteStore::open(&cfg.store_path(), cfg.store.busy_timeout.0, "postwarden").map(drop)
}

/// Opens the configured store as the daemon does: never creating it, and refusing a
/// schema other than this postwarden's, so a deleted or replaced store is a fault, never
/// an empty store.
pub fn open_existing(cfg: &Config) -> Result<Box<dyn Store>> {
    Ok(Box::new(sqlite::SqliteStore::open_existing(
        &cfg.store_path(),
        cfg.store.busy_timeout.0,
    )?))
}
