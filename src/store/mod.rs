//! The store: the only code that speaks SQL. One method per question the rest asks.
//!
//! SQLite in WAL mode with foreign keys on and a busy timeout. Every write runs in an
//! `IMMEDIATE` transaction (so a writer waits for the lock instead of failing on upgrade),
//! and every admin change appends its `admin` event in the same transaction.
//! Nothing is cached: each question reads the database, so a change made by another
//! process is seen at the next query.

mod schema;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};
use serde::Serialize;

pub use schema::MIGRATIONS;

use crate::policy::{AccountFact, DomainFact, Facts};

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

fn refused<T>(msg: impl Into<String>) -> Result<T> {
    Err(StoreError::Refused(msg.into()))
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 3339 (UTC, seconds) of a stored time.
pub fn format_time(t: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)).to_string()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SenderCheck {
    Account,
    Domain,
}

impl SenderCheck {
    pub fn as_str(self) -> &'static str {
        match self {
            SenderCheck::Account => "account",
            SenderCheck::Domain => "domain",
        }
    }
    pub fn parse(s: &str) -> Option<SenderCheck> {
        match s {
            "account" => Some(SenderCheck::Account),
            "domain" => Some(SenderCheck::Domain),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    EndUser,
    SilentUser,
    Functional,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::EndUser => "end_user",
            AccountKind::SilentUser => "silent_user",
            AccountKind::Functional => "functional",
        }
    }
    pub fn parse(s: &str) -> Option<AccountKind> {
        match s {
            "end_user" => Some(AccountKind::EndUser),
            "silent_user" => Some(AccountKind::SilentUser),
            "functional" => Some(AccountKind::Functional),
            _ => None,
        }
    }
}

fn sql_enum<T>(parse: fn(&str) -> Option<T>, s: String) -> rusqlite::Result<T> {
    parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, s.into())
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct Organization {
    pub name: String,
    pub sender_check: SenderCheck,
    pub created: i64,
    pub domains: i64,
    pub accounts: i64,
    pub credentials: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Domain {
    /// A-label form.
    pub name: String,
    pub organization: String,
    pub active: bool,
    pub created: i64,
    pub accounts: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub address: String,
    pub kind: AccountKind,
    pub domain: String,
    pub organization: String,
    pub domain_active: bool,
    pub created: i64,
}

/// What `credential list` shows: never a password or hash.
#[derive(Debug, Clone, Serialize)]
pub struct Credential {
    pub organization: String,
    pub label: String,
    pub username: String,
    pub created: i64,
    pub last_used: Option<i64>,
    pub last_ip: Option<String>,
    pub revoked: Option<i64>,
}

/// What the auth verifier needs about a login.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub credential_id: i64,
    pub organization: String,
    pub hash: String,
    pub revoked: bool,
}

/// A DKIM key as the CLI lists it: never the private key.
#[derive(Debug, Clone, Serialize)]
pub struct DkimKeyInfo {
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub public_key: String,
    pub state: String,
    pub created: i64,
    pub activated: Option<i64>,
    pub retired: Option<i64>,
}

/// An active key with its private part, for signing.
#[derive(Clone)]
pub struct DkimSigningKey {
    pub domain: String,
    pub selector: String,
    pub algorithm: String,
    pub private_key: Vec<u8>,
}

impl fmt::Debug for DkimSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DkimSigningKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("private_key", &"<hidden>")
            .finish()
    }
}

/// A sender accepted in `domain` mode that is not a registered account.
#[derive(Debug, Clone, Serialize)]
pub struct Discovered {
    pub organization: String,
    pub address: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub messages: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Auth,
    Mail,
    Admin,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Auth => "auth",
            EventKind::Mail => "mail",
            EventKind::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<EventKind> {
        match s {
            "auth" => Some(EventKind::Auth),
            "mail" => Some(EventKind::Mail),
            "admin" => Some(EventKind::Admin),
            _ => None,
        }
    }
}

/// One line of the append-only log.
#[derive(Debug, Clone, Serialize)]
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
}

#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub kind: Option<EventKind>,
    pub login: Option<String>,
    pub org: Option<String>,
    pub sender: Option<String>,
    pub since: Option<i64>,
    pub limit: Option<u32>,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Who makes admin changes through this handle (recorded as the admin event's login).
    actor: String,
}

fn fault(path: &Path, e: rusqlite::Error) -> StoreError {
    let what = match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            "database is locked by another process (busy timeout expired)".to_string()
        }
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::CannotOpen
                && std::fs::File::open(path)
                    .is_err_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied) =>
        {
            "permission denied: run as root or as the store's owner".to_string()
        }
        other => other.to_string(),
    };
    StoreError::Fault(format!("store {}: {what}", path.display()))
}

impl Store {
    /// Opens (creating if needed) and migrates the database. For the admin commands and
    /// the daemon's start.
    pub fn open(path: &Path, busy_timeout: Duration, actor: &str) -> Result<Store> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let existed = path.exists();
        let mut store = Store::open_with(path, flags, busy_timeout, actor)?;
        if !existed {
            give_to_directory_owner(path);
        }
        store.migrate()?;
        // The store holds DKIM private keys and password hashes: never world-readable.
        // (SQLite gives its -wal and -shm files the database file's mode.)
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode();
                if mode & 0o007 != 0 {
                    let _ = std::fs::set_permissions(
                        path,
                        std::fs::Permissions::from_mode(mode & 0o770),
                    );
                }
            }
        }
        Ok(store)
    }

    /// Opens an existing, fully migrated database; never creates one. The daemon opens
    /// one per request, so a deleted or replaced store is a fault, never an empty store.
    pub fn open_existing(path: &Path, busy_timeout: Duration) -> Result<Store> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let store = Store::open_with(path, flags, busy_timeout, "postwarden")?;
        let version = store.schema_version()?;
        if version != MIGRATIONS.len() as i64 {
            return Err(StoreError::Fault(format!(
                "store {}: schema version {version}, this postwarden needs {}",
                path.display(),
                MIGRATIONS.len()
            )));
        }
        Ok(store)
    }

    /// `open_existing` on the configured store with the configured busy timeout: how the
    /// daemon opens it for each request.
    pub fn open_configured(cfg: &crate::config::Config) -> Result<Store> {
        Store::open_existing(&cfg.store_path(), cfg.store.busy_timeout.0)
    }

    fn open_with(
        path: &Path,
        flags: OpenFlags,
        busy_timeout: Duration,
        actor: &str,
    ) -> Result<Store> {
        let conn = Connection::open_with_flags(path, flags).map_err(|e| fault(path, e))?;
        conn.busy_timeout(busy_timeout)
            .map_err(|e| fault(path, e))?;
        let setup = || -> rusqlite::Result<()> {
            conn.pragma_update(None, "foreign_keys", "ON")?;
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(rusqlite::Error::InvalidQuery);
            }
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            Ok(())
        };
        setup().map_err(|e| fault(path, e))?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            actor: actor.to_string(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a query (cached statement) and maps each row.
    fn query_list<T, P: rusqlite::Params>(
        &self,
        sql: &str,
        params: P,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.f())?;
        let rows = stmt.query_map(params, map).map_err(self.f())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.f())
    }

    fn f(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| fault(&self.path, e)
    }

    pub fn schema_version(&self) -> Result<i64> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.f())
    }

    fn migrate(&mut self) -> Result<()> {
        let known = MIGRATIONS.len() as i64;
        let version = self.schema_version()?;
        if version > known {
            return Err(StoreError::Fault(format!(
                "store {}: schema version {version} is newer than this postwarden knows ({known}); \
                 run a newer postwarden or restore a matching backup",
                self.path.display()
            )));
        }
        if version == known {
            return Ok(());
        }
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| fault(&path, e))?;
        // Re-read inside the lock: another process may have migrated meanwhile.
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| fault(&path, e))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql).map_err(|e| fault(&path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| fault(&path, e))?;
        }
        tx.commit().map_err(|e| fault(&path, e))
    }

    fn write<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| fault(&path, e))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| fault(&path, e))?;
        Ok(out)
    }

    fn admin_event(
        tx: &Transaction<'_>,
        path: &Path,
        actor: &str,
        org: Option<&str>,
        what: String,
    ) -> Result<()> {
        let mut ev = Event::new(EventKind::Admin, "ok");
        ev.login = Some(actor.to_string());
        ev.org = org.map(str::to_string);
        ev.reason = Some(what);
        insert_event(tx, &ev).map_err(|e| fault(path, e))
    }

    // ---- organizations ----

    fn org_id(tx: &Connection, path: &Path, name: &str) -> Result<(i64, String)> {
        tx.query_row(
            "SELECT id, name FROM organization WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(|e| fault(path, e))?
        .map_or_else(|| refused(format!("no organization named {name:?}")), Ok)
    }

    pub fn org_add(&mut self, name: &str, sender_check: SenderCheck) -> Result<()> {
        validate_org_name(name)?;
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let exists: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM organization WHERE name = ?1)",
                    [name],
                    |r| r.get(0),
                )
                .map_err(|e| fault(&path, e))?;
            if exists {
                return refused(format!("organization {name:?} already exists"));
            }
            tx.execute(
                "INSERT INTO organization (name, sender_check, created) VALUES (?1, ?2, ?3)",
                params![name, sender_check.as_str(), now()],
            )
            .map_err(|e| fault(&path, e))?;
            Self::admin_event(
                tx,
                &path,
                &actor,
                Some(name),
                format!("org add {name} sender_check={}", sender_check.as_str()),
            )
        })
    }

    pub fn org_set_sender_check(&mut self, name: &str, sender_check: SenderCheck) -> Result<()> {
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let (id, name) = Self::org_id(tx, &path, name)?;
            tx.execute(
                "UPDATE organization SET sender_check = ?1 WHERE id = ?2",
                params![sender_check.as_str(), id],
            )
            .map_err(|e| fault(&path, e))?;
            Self::admin_event(
                tx,
                &path,
                &actor,
                Some(&name),
                format!("org set {name} sender_check={}", sender_check.as_str()),
            )
        })
    }

    pub fn org_list(&self) -> Result<Vec<Organization>> {
        self.query_list(
            "SELECT o.name, o.sender_check, o.created,
                        (SELECT COUNT(*) FROM domain d WHERE d.organization_id = o.id),
                        (SELECT COUNT(*) FROM account a JOIN domain d ON a.domain_id = d.id WHERE d.organization_id = o.id),
                        (SELECT COUNT(*) FROM credential c WHERE c.organization_id = o.id AND c.revoked IS NULL)
                 FROM organization o ORDER BY o.name",
            [],
            |r| {
                Ok(Organization {
                    name: r.get(0)?,
                    sender_check: sql_enum(SenderCheck::parse, r.get(1)?)?,
                    created: r.get(2)?,
                    domains: r.get(3)?,
                    accounts: r.get(4)?,
                    credentials: r.get(5)?,
                })
            },
        )
    }

    /// Removes an organization. Refused while it has domains or live credentials, unless `force`
    /// (then its domains, accounts and credentials go with it).
    pub fn org_remove(&mut self, name: &str, force: bool) -> Result<()> {
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let (id, name) = Self::org_id(tx, &path, name)?;
            let (domains, creds): (i64, i64) = tx
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM domain WHERE organization_id = ?1),
                            (SELECT COUNT(*) FROM credential WHERE organization_id = ?1 AND revoked IS NULL)",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(|e| fault(&path, e))?;
            if !force && (domains > 0 || creds > 0) {
                return refused(format!(
                    "organization {name:?} still has {domains} domain(s) and {creds} credential(s); remove them first or use --force"
                ));
            }
            tx.execute("DELETE FROM organization WHERE id = ?1", [id])
                .map_err(|e| fault(&path, e))?;
            let detail = if force {
                format!("org remove {name} --force ({domains} domain(s), {creds} credential(s) removed)")
            } else {
                format!("org remove {name}")
            };
            Self::admin_event(tx, &path, &actor, Some(&name), detail)
        })
    }

    // ---- domains ----

    /// Adds a domain (already normalised to its A-label) to an organization.
    pub fn domain_add(&mut self, domain: &str, org: &str, active: bool) -> Result<()> {
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let (org_id, org) = Self::org_id(tx, &path, org)?;
            let owner: Option<String> = tx
                .query_row(
                    "SELECT o.name FROM domain d JOIN organization o ON d.organization_id = o.id WHERE d.name = ?1",
                    [domain],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| fault(&path, e))?;
            match owner {
                Some(owner) if owner == org => {
                    return refused(format!("domain {domain} is already registered to organization {org:?}"))
                }
                Some(_) => {
                    return refused(format!(
                        "domain {domain} is registered to another organization; remove it there first"
                    ))
                }
                None => {}
            }
            tx.execute(
                "INSERT INTO domain (name, organization_id, active, created) VALUES (?1, ?2, ?3, ?4)",
                params![domain, org_id, active, now()],
            )
            .map_err(|e| fault(&path, e))?;
            let state = if active { "active" } else { "inactive" };
            Self::admin_event(tx, &path, &actor, Some(&org), format!("domain add {domain} org={org} {state}"))
        })
    }

    fn domain_row(tx: &Connection, path: &Path, domain: &str) -> Result<(i64, String, bool)> {
        tx.query_row(
            "SELECT d.id, o.name, d.active FROM domain d JOIN organization o ON d.organization_id = o.id WHERE d.name = ?1",
            [domain],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(|e| fault(path, e))?
        .map_or_else(|| refused(format!("domain {domain} is not registered")), Ok)
    }

    pub fn domain_set_active(&mut self, domain: &str, active: bool) -> Result<()> {
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let (id, org, was) = Self::domain_row(tx, &path, domain)?;
            let verb = if active { "activate" } else { "deactivate" };
            if was == active {
                let state = if active { "active" } else { "inactive" };
                return refused(format!("domain {domain} is already {state}"));
            }
            tx.execute(
                "UPDATE domain SET active = ?1 WHERE id = ?2",
                params![active, id],
            )
            .map_err(|e| fault(&path, e))?;
            Self::admin_event(
                tx,
                &path,
                &actor,
                Some(&org),
                format!("domain {verb} {domain}"),
            )
        })
    }

    pub fn domain_list(&self, org: Option<&str>) -> Result<Vec<Domain>> {
        if let Some(org) = org {
            Self::org_id(&self.conn, &self.path, org)?;
        }
        self.query_list(
            "SELECT d.name, o.name, d.active, d.created,
                        (SELECT COUNT(*) FROM account a WHERE a.domain_id = d.id)
                 FROM domain d JOIN organization o ON d.organization_id = o.id
                 WHERE ?1 IS NULL OR o.name = ?1 ORDER BY o.name, d.name",
            [org],
            |r| {
                Ok(Domain {
                    name: r.get(0)?,
                    organization: r.get(1)?,
                    active: r.get(2)?,
                    created: r.get(3)?,
                    accounts: r.get(4)?,
                })
            },
        )
    }

    /// Removes a domain. Refused while it has accounts, unless `force` (they go with it).
    pub fn domain_remove(&mut self, domain: &str, force: bool) -> Result<()> {
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let (id, org, _) = Self::domain_row(tx, &path, domain)?;
            let (accounts, keys): (i64, i64) = tx
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM account WHERE domain_id = ?1),
                            (SELECT COUNT(*) FROM dkim_key WHERE domain_id = ?1)",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(|e| fault(&path, e))?;
            if (accounts > 0 || keys > 0) && !force {
                return refused(format!(
                    "domain {domain} still has {accounts} account(s) and {keys} DKIM key(s); \
                     remove the accounts first, or use --force (the DKIM private keys are deleted with it)"
                ));
            }
            tx.execute("DELETE FROM domain WHERE id = ?1", [id])
                .map_err(|e| fault(&path, e))?;
            let detail = if accounts > 0 || keys > 0 {
                format!("domain remove {domain} --force ({accounts} account(s), {keys} DKIM key(s) removed)")
            } else {
                format!("domain remove {domain}")
            };
            Self::admin_event(tx, &path, &actor, Some(&org), detail)
        })
    }

    // ---- accounts ----

    /// Adds an account (address already normalised). Its domain must be registered.
    pub fn account_add(&mut self, address: &str, domain: &str, kind: AccountKind) -> Result<()> {
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let (domain_id, org, _) = tx
                .query_row(
                    "SELECT d.id, o.name, d.active FROM domain d JOIN organization o ON d.organization_id = o.id WHERE d.name = ?1",
                    [domain],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, bool>(2)?)),
                )
                .optional()
                .map_err(|e| fault(&path, e))?
                .map_or_else(
                    || refused(format!(
                        "domain {domain} is not registered; add it first with `postwarden domain add {domain} --org NAME`"
                    )),
                    Ok,
                )?;
            let exists: bool = tx
                .query_row("SELECT EXISTS(SELECT 1 FROM account WHERE address = ?1)", [address], |r| r.get(0))
                .map_err(|e| fault(&path, e))?;
            if exists {
                return refused(format!("account {address} already exists"));
            }
            tx.execute(
                "INSERT INTO account (address, domain_id, kind, created) VALUES (?1, ?2, ?3, ?4)",
                params![address, domain_id, kind.as_str(), now()],
            )
            .map_err(|e| fault(&path, e))?;
            Self::admin_event(tx, &path, &actor, Some(&org), format!("account add {address} kind={}", kind.as_str()))
        })
    }

    pub fn account_list(&self, org: Option<&str>) -> Result<Vec<Account>> {
        if let Some(org) = org {
            Self::org_id(&self.conn, &self.path, org)?;
        }
        self.query_list(
            "SELECT a.address, a.kind, d.name, o.name, d.active, a.created
                 FROM account a JOIN domain d ON a.domain_id = d.id JOIN organization o ON d.organization_id = o.id
                 WHERE ?1 IS NULL OR o.name = ?1 ORDER BY o.name, a.address",
            [org],
            |r| {
                Ok(Account {
                    address: r.get(0)?,
                    kind: sql_enum(AccountKind::parse, r.get(1)?)?,
                    domain: r.get(2)?,
                    organization: r.get(3)?,
                    domain_active: r.get(4)?,
                    created: r.get(5)?,
                })
            },
        )
    }

    pub fn account_remove(&mut self, address: &str) -> Result<()> {
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let org: Option<String> = tx
                .query_row(
                    "SELECT o.name FROM account a JOIN domain d ON a.domain_id = d.id JOIN organization o ON d.organization_id = o.id WHERE a.address = ?1",
                    [address],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| fault(&path, e))?;
            let Some(org) = org else {
                return refused(format!("no account {address}"));
            };
            tx.execute("DELETE FROM account WHERE address = ?1", [address])
                .map_err(|e| fault(&path, e))?;
            Self::admin_event(tx, &path, &actor, Some(&org), format!("account remove {address}"))
        })
    }

    // ---- credentials ----

    /// Stores a new credential (username generated, password already hashed by the caller).
    pub fn credential_add(
        &mut self,
        org: &str,
        label: &str,
        username: &str,
        hash: &str,
    ) -> Result<()> {
        validate_label(label)?;
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let (org_id, org) = Self::org_id(tx, &path, org)?;
            let taken: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM credential WHERE organization_id = ?1 AND label = ?2 AND revoked IS NULL)",
                    params![org_id, label],
                    |r| r.get(0),
                )
                .map_err(|e| fault(&path, e))?;
            if taken {
                return refused(format!(
                    "organization {org:?} already has a credential labelled {label:?}; choose another label or revoke that one"
                ));
            }
            let user_taken: bool = tx
                .query_row("SELECT EXISTS(SELECT 1 FROM credential WHERE username = ?1)", [username], |r| r.get(0))
                .map_err(|e| fault(&path, e))?;
            if user_taken {
                return refused(format!("username {username} is taken"));
            }
            tx.execute(
                "INSERT INTO credential (organization_id, label, username, hash, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![org_id, label, username, hash, now()],
            )
            .map_err(|e| fault(&path, e))?;
            Self::admin_event(tx, &path, &actor, Some(&org), format!("credential new {username} label={label}"))
        })
    }

    pub fn username_exists(&self, username: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS(SELECT 1 FROM credential WHERE username = ?1)",
                [username],
                |r| r.get(0),
            )
            .map_err(self.f())
    }

    pub fn credential_list(&self, org: Option<&str>) -> Result<Vec<Credential>> {
        if let Some(org) = org {
            Self::org_id(&self.conn, &self.path, org)?;
        }
        self.query_list(
            "SELECT o.name, c.label, c.username, c.created, c.last_used, c.last_ip, c.revoked
                 FROM credential c JOIN organization o ON c.organization_id = o.id
                 WHERE ?1 IS NULL OR o.name = ?1 ORDER BY o.name, c.label, c.created",
            [org],
            |r| {
                Ok(Credential {
                    organization: r.get(0)?,
                    label: r.get(1)?,
                    username: r.get(2)?,
                    created: r.get(3)?,
                    last_used: r.get(4)?,
                    last_ip: r.get(5)?,
                    revoked: r.get(6)?,
                })
            },
        )
    }

    pub fn credential_revoke(&mut self, username: &str) -> Result<()> {
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let row: Option<(i64, String, Option<i64>)> = tx
                .query_row(
                    "SELECT c.id, o.name, c.revoked FROM credential c JOIN organization o ON c.organization_id = o.id WHERE c.username = ?1",
                    [username],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()
                .map_err(|e| fault(&path, e))?;
            let Some((id, org, revoked)) = row else {
                return refused(format!("no credential with username {username}"));
            };
            if let Some(t) = revoked {
                return refused(format!("credential {username} was already revoked at {}", format_time(t)));
            }
            tx.execute("UPDATE credential SET revoked = ?1 WHERE id = ?2", params![now(), id])
                .map_err(|e| fault(&path, e))?;
            Self::admin_event(tx, &path, &actor, Some(&org), format!("credential revoke {username}"))
        })
    }

    /// The record behind a login name, compared exactly as stored.
    pub fn login_record(&self, username: &str) -> Result<Option<LoginRecord>> {
        self.conn
            .query_row(
                "SELECT c.id, o.name, c.hash, c.revoked IS NOT NULL
                 FROM credential c JOIN organization o ON c.organization_id = o.id
                 WHERE c.username = ?1 COLLATE BINARY",
                [username],
                |r| {
                    Ok(LoginRecord {
                        credential_id: r.get(0)?,
                        organization: r.get(1)?,
                        hash: r.get(2)?,
                        revoked: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(self.f())
    }

    /// Records a successful login: time and client IP.
    pub fn credential_used(&mut self, credential_id: i64, client_ip: Option<&str>) -> Result<()> {
        self.conn
            .execute(
                "UPDATE credential SET last_used = ?1, last_ip = ?2 WHERE id = ?3",
                params![now(), client_ip, credential_id],
            )
            .map(|_| ())
            .map_err(self.f())
    }

    // ---- sender decisions ----

    /// What the sender rule needs about `login`'s organization: its mode, all its domains,
    /// and those of `addresses` that are its accounts. `None` when the login is unknown;
    /// `Some((facts, revoked))` otherwise.
    pub fn sender_facts(&self, login: &str, addresses: &[String]) -> Result<Option<(Facts, bool)>> {
        let row: Option<(i64, String, String, bool)> = self
            .conn
            .query_row(
                "SELECT o.id, o.name, o.sender_check, c.revoked IS NOT NULL
                 FROM credential c JOIN organization o ON c.organization_id = o.id
                 WHERE c.username = ?1 COLLATE BINARY",
                [login],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(self.f())?;
        let Some((org_id, organization, sender_check, revoked)) = row else {
            return Ok(None);
        };
        let sender_check = SenderCheck::parse(&sender_check).ok_or_else(|| {
            StoreError::Fault(format!(
                "store {}: bad sender_check {sender_check:?}",
                self.path.display()
            ))
        })?;
        let domains = self.query_list(
            "SELECT name, active FROM domain WHERE organization_id = ?1 ORDER BY name",
            [org_id],
            |r| {
                Ok(DomainFact {
                    name: r.get(0)?,
                    active: r.get(1)?,
                })
            },
        )?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT a.address, a.kind FROM account a JOIN domain d ON a.domain_id = d.id
                 WHERE d.organization_id = ?1 AND a.address = ?2",
            )
            .map_err(self.f())?;
        let mut accounts = Vec::new();
        for address in addresses {
            let found = stmt
                .query_row(params![org_id, address], |r| {
                    Ok(AccountFact {
                        address: r.get(0)?,
                        kind: sql_enum(AccountKind::parse, r.get(1)?)?,
                    })
                })
                .optional()
                .map_err(self.f())?;
            accounts.extend(found);
        }
        Ok(Some((
            Facts {
                organization,
                sender_check,
                domains,
                accounts,
            },
            revoked,
        )))
    }

    /// Records senders accepted in `domain` mode that are not registered accounts.
    pub fn record_discovered(&mut self, org: &str, addresses: &[String]) -> Result<()> {
        let path = self.path.clone();
        self.write(|tx| {
            let (org_id, _) = Self::org_id(tx, &path, org)?;
            for a in addresses {
                tx.execute(
                    "INSERT INTO discovered_sender (organization_id, address, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?3)
                     ON CONFLICT (organization_id, address)
                     DO UPDATE SET last_seen = excluded.last_seen, messages = messages + 1",
                    params![org_id, a, now()],
                )
                .map_err(|e| fault(&path, e))?;
            }
            Ok(())
        })
    }

    /// Discovered senders that are still not registered accounts, newest first.
    pub fn discovered(&self, org: Option<&str>) -> Result<Vec<Discovered>> {
        if let Some(org) = org {
            Self::org_id(&self.conn, &self.path, org)?;
        }
        self.query_list(
            "SELECT o.name, s.address, s.first_seen, s.last_seen, s.messages
                 FROM discovered_sender s JOIN organization o ON s.organization_id = o.id
                 WHERE (?1 IS NULL OR o.name = ?1)
                   AND NOT EXISTS (SELECT 1 FROM account a WHERE a.address = s.address)
                 ORDER BY s.last_seen DESC, s.address",
            [org],
            |r| {
                Ok(Discovered {
                    organization: r.get(0)?,
                    address: r.get(1)?,
                    first_seen: r.get(2)?,
                    last_seen: r.get(3)?,
                    messages: r.get(4)?,
                })
            },
        )
    }

    // ---- DKIM keys ----

    /// Stores a new (pending) DKIM key for a registered domain.
    pub fn dkim_add(
        &mut self,
        domain: &str,
        selector: &str,
        algorithm: &str,
        private_key: &[u8],
        public_key: &str,
    ) -> Result<()> {
        validate_selector(selector)?;
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let (domain_id, org, _) = Self::domain_row(tx, &path, domain)?;
            let taken: bool = tx
                .query_row(
                    "SELECT EXISTS(SELECT 1 FROM dkim_key WHERE domain_id = ?1 AND selector = ?2)",
                    params![domain_id, selector],
                    |r| r.get(0),
                )
                .map_err(|e| fault(&path, e))?;
            if taken {
                return refused(format!("domain {domain} already has a key with selector {selector}; choose another --selector"));
            }
            tx.execute(
                "INSERT INTO dkim_key (domain_id, selector, algorithm, private_key, public_key, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![domain_id, selector, algorithm, private_key, public_key, now()],
            )
            .map_err(|e| fault(&path, e))?;
            Self::admin_event(tx, &path, &actor, Some(&org), format!("dkim keygen {domain} selector={selector} algorithm={algorithm}"))
        })
    }

    /// DKIM keys (without private keys), optionally of one domain.
    pub fn dkim_list(&self, domain: Option<&str>) -> Result<Vec<DkimKeyInfo>> {
        self.query_list(
            "SELECT d.name, k.selector, k.algorithm, k.public_key, k.state, k.created, k.activated, k.retired
                 FROM dkim_key k JOIN domain d ON k.domain_id = d.id
                 WHERE ?1 IS NULL OR d.name = ?1 ORDER BY d.name, k.created, k.selector",
            [domain],
            |r| {
                Ok(DkimKeyInfo {
                    domain: r.get(0)?,
                    selector: r.get(1)?,
                    algorithm: r.get(2)?,
                    public_key: r.get(3)?,
                    state: r.get(4)?,
                    created: r.get(5)?,
                    activated: r.get(6)?,
                    retired: r.get(7)?,
                })
            },
        )
    }

    /// Makes a key sign. An active key of the same algorithm for the domain is retired
    /// (the switch of a rotation); returns its selector.
    pub fn dkim_activate(&mut self, domain: &str, selector: &str) -> Result<Option<String>> {
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let (domain_id, org, _) = Self::domain_row(tx, &path, domain)?;
            let (id, algorithm, state) = Self::dkim_row(tx, &path, domain_id, domain, selector)?;
            if state == "active" {
                return refused(format!("key {selector} of {domain} is already active"));
            }
            let previous: Option<(i64, String)> = tx
                .query_row(
                    "SELECT id, selector FROM dkim_key WHERE domain_id = ?1 AND algorithm = ?2 AND state = 'active'",
                    params![domain_id, algorithm],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(|e| fault(&path, e))?;
            if let Some((old, _)) = &previous {
                tx.execute("UPDATE dkim_key SET state = 'retired', retired = ?1 WHERE id = ?2", params![now(), old])
                    .map_err(|e| fault(&path, e))?;
            }
            tx.execute("UPDATE dkim_key SET state = 'active', activated = ?1, retired = NULL WHERE id = ?2", params![now(), id])
                .map_err(|e| fault(&path, e))?;
            let detail = match &previous {
                Some((_, old)) => format!("dkim activate {domain} selector={selector} (retired {old})"),
                None => format!("dkim activate {domain} selector={selector}"),
            };
            Self::admin_event(tx, &path, &actor, Some(&org), detail)?;
            Ok(previous.map(|(_, s)| s))
        })
    }

    /// Stops signing with a key (it stays listed, for the DNS overlap).
    pub fn dkim_retire(&mut self, domain: &str, selector: &str) -> Result<()> {
        let (path, actor) = (self.path.clone(), self.actor.clone());
        self.write(|tx| {
            let (domain_id, org, _) = Self::domain_row(tx, &path, domain)?;
            let (id, _, state) = Self::dkim_row(tx, &path, domain_id, domain, selector)?;
            if state == "retired" {
                return refused(format!("key {selector} of {domain} is already retired"));
            }
            tx.execute(
                "UPDATE dkim_key SET state = 'retired', retired = ?1 WHERE id = ?2",
                params![now(), id],
            )
            .map_err(|e| fault(&path, e))?;
            Self::admin_event(
                tx,
                &path,
                &actor,
                Some(&org),
                format!("dkim retire {domain} selector={selector}"),
            )
        })
    }

    fn dkim_row(
        tx: &Connection,
        path: &Path,
        domain_id: i64,
        domain: &str,
        selector: &str,
    ) -> Result<(i64, String, String)> {
        tx.query_row(
            "SELECT id, algorithm, state FROM dkim_key WHERE domain_id = ?1 AND selector = ?2",
            params![domain_id, selector],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(|e| fault(path, e))?
        .map_or_else(
            || {
                refused(format!(
                    "domain {domain} has no DKIM key with selector {selector}"
                ))
            },
            Ok,
        )
    }

    /// The active signing keys of a domain (private keys included): for the signer only.
    pub fn dkim_signing_keys(&self, domain: &str) -> Result<Vec<DkimSigningKey>> {
        self.query_list(
            "SELECT d.name, k.selector, k.algorithm, k.private_key
                 FROM dkim_key k JOIN domain d ON k.domain_id = d.id
                 WHERE d.name = ?1 AND k.state = 'active' AND d.active = 1
                 ORDER BY k.algorithm DESC, k.selector",
            [domain],
            |r| {
                Ok(DkimSigningKey {
                    domain: r.get(0)?,
                    selector: r.get(1)?,
                    algorithm: r.get(2)?,
                    private_key: r.get(3)?,
                })
            },
        )
    }

    // ---- events ----

    pub fn record_event(&mut self, ev: &Event) -> Result<()> {
        insert_event(&self.conn, ev).map_err(self.f())
    }

    /// Appends several events in one transaction.
    pub fn record_events(&mut self, events: &[Event]) -> Result<()> {
        let path = self.path.clone();
        self.write(|tx| {
            for ev in events {
                insert_event(tx, ev).map_err(|e| fault(&path, e))?;
            }
            Ok(())
        })
    }

    /// Events matching `filter`, oldest first; with a limit, the newest `limit` of them.
    pub fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let limit = filter.limit.map(i64::from).unwrap_or(-1);
        self.query_list(
            "SELECT * FROM (
                   SELECT id, time, kind, outcome, login, org, client_ip, sender, header_from, rcpt_count, queue_id, reason
                   FROM event
                   WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR login = ?2)
                     AND (?6 IS NULL OR org = ?6 COLLATE NOCASE)
                     AND (?3 IS NULL OR sender = ?3 OR header_from LIKE '%' || ?3 || '%')
                     AND (?4 IS NULL OR time >= ?4)
                   ORDER BY id DESC LIMIT ?5
                 ) ORDER BY id",
            params![
                    filter.kind.map(EventKind::as_str),
                    filter.login,
                    filter.sender,
                    filter.since,
                    limit,
                filter.org
            ],
            |r| {
                Ok(Event {
                        id: r.get(0)?,
                        time: r.get(1)?,
                        kind: sql_enum(EventKind::parse, r.get(2)?)?,
                        outcome: r.get(3)?,
                        login: r.get(4)?,
                        org: r.get(5)?,
                        client_ip: r.get(6)?,
                        sender: r.get(7)?,
                        header_from: r.get(8)?,
                        rcpt_count: r.get(9)?,
                        queue_id: r.get(10)?,
                        reason: r.get(11)?,
                    })
            },
        )
    }

    /// Deletes events older than `before` (Unix seconds); returns how many.
    pub fn prune_events(&mut self, before: i64) -> Result<usize> {
        self.conn
            .execute("DELETE FROM event WHERE time < ?1", [before])
            .map_err(self.f())
    }
}

fn insert_event(conn: &Connection, ev: &Event) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO event (time, kind, outcome, login, org, client_ip, sender, header_from, rcpt_count, queue_id, reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            ev.time,
            ev.kind.as_str(),
            ev.outcome,
            ev.login,
            ev.org,
            ev.client_ip,
            ev.sender,
            ev.header_from,
            ev.rcpt_count,
            ev.queue_id,
            ev.reason
        ],
    )
    .map(|_| ())
}

/// A store that root creates in a directory another user owns (the daemon's data
/// directory) goes to that user, so the daemon can open it. SQLite gives its -wal and -shm
/// files the database file's owner when it runs as root.
fn give_to_directory_owner(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let (true, Ok(d)) = (is_root, std::fs::metadata(dir)) {
        if d.uid() != 0 {
            let _ = std::os::unix::fs::chown(path, Some(d.uid()), Some(d.gid()));
        }
    }
}

/// Organization names: 1-64 of letters, digits, `.`, `_`, `-`, starting with a letter or digit.
pub fn validate_org_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        refused(format!(
            "invalid organization name {name:?}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        ))
    }
}

/// DKIM selectors: 1-63 letters, digits or inner hyphens (one DNS label).
pub fn validate_selector(selector: &str) -> Result<()> {
    let ok = !selector.is_empty()
        && selector.len() <= 63
        && selector
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !selector.starts_with('-')
        && !selector.ends_with('-');
    if ok {
        Ok(())
    } else {
        refused(format!(
            "invalid selector {selector:?}: use 1-63 letters, digits or inner hyphens"
        ))
    }
}

/// Credential labels: 1-64 printable characters, no control characters.
pub fn validate_label(label: &str) -> Result<()> {
    if label.trim().is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control)
    {
        return refused(format!(
            "invalid label {label:?}: use 1-64 printable characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
