//! The SQLite backend: one machine's store. WAL mode, foreign keys on, a busy timeout,
//! numbered migrations. Every write runs in an `IMMEDIATE` transaction (so a writer waits
//! for the lock instead of failing on upgrade) through [`SqliteStore::write`], which
//! attaches the path, the actor and the error mapping once. One file per concern.

mod accounts;
mod credentials;
mod dmarc;
mod domains;
mod journal;
mod keys;
mod organizations;
mod schema;
mod senders;
mod throttle;
mod write_turn;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::FromSql;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Params, Row, TransactionBehavior};

use super::{refused, Result, Store, StoreError};
use crate::model::Event;

pub use schema::MIGRATIONS;

pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Who makes admin changes through this handle (recorded as the admin event's login).
    actor: String,
    /// Device and inode of the database file when opened: another file at the same path
    /// (deleted, replaced) is another store.
    file_id: Option<(u64, u64)>,
    /// Whose turn it is to write, among this process's handles of the file.
    turn: Option<std::sync::Arc<write_turn::WriteTurn>>,
    busy_timeout: Duration,
}

fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
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

/// A stored enum value back to its type; anything else is a corrupt row.
fn sql_enum<T>(parse: fn(&str) -> Option<T>, s: String) -> rusqlite::Result<T> {
    parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, s.into())
    })
}

/// A connection (or an open transaction) with the store's path for error messages: every
/// query goes through here, so every error is mapped once.
struct Db<'c> {
    conn: &'c Connection,
    path: &'c Path,
}

impl Db<'_> {
    fn fault(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| fault(self.path, e)
    }

    fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.fault())?;
        stmt.execute(params).map_err(self.fault())
    }

    /// The first row, mapped; `None` when there is none.
    fn row<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Option<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.fault())?;
        stmt.query_row(params, map).optional().map_err(self.fault())
    }

    /// The single value a query always returns (a count, an EXISTS).
    fn value<T: FromSql>(&self, sql: &str, params: impl Params) -> Result<T> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.fault())?;
        stmt.query_row(params, |r| r.get(0)).map_err(self.fault())
    }

    fn list<T>(
        &self,
        sql: &str,
        params: impl Params,
        map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(self.fault())?;
        let rows = stmt.query_map(params, map).map_err(self.fault())?;
        rows.collect::<rusqlite::Result<_>>().map_err(self.fault())
    }

    /// An organization's id and stored name; refused when there is none.
    fn org_id(&self, name: &str) -> Result<(i64, String)> {
        self.row(
            "SELECT id, name FROM organization WHERE name = ?1",
            [name],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?
        .map_or_else(|| refused(format!("no organization named {name:?}")), Ok)
    }

    /// A domain's id, organization name and active flag; `None` when unregistered.
    fn domain(&self, domain: &str) -> Result<Option<(i64, String, bool)>> {
        self.row(
            "SELECT d.id, o.name, d.active FROM domain d JOIN organization o ON d.organization_id = o.id WHERE d.name = ?1",
            [domain],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Like [`domain`](Self::domain), refused when unregistered.
    fn domain_row(&self, domain: &str) -> Result<(i64, String, bool)> {
        self.domain(domain)?
            .map_or_else(|| refused(format!("domain {domain} is not registered")), Ok)
    }

    fn insert_event(&self, ev: &Event) -> Result<()> {
        self.execute(
            "INSERT INTO event (time, kind, outcome, login, org, client_ip, sender, header_from, rcpt_count, queue_id, reason)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            rusqlite::params![
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
        .map(drop)
    }
}

/// An open write transaction, with the actor its admin events name.
struct Tx<'c> {
    db: Db<'c>,
    actor: &'c str,
}

impl<'c> std::ops::Deref for Tx<'c> {
    type Target = Db<'c>;
    fn deref(&self) -> &Db<'c> {
        &self.db
    }
}

impl Tx<'_> {
    /// Appends the `admin` event of the change this transaction makes.
    fn admin(&self, org: Option<&str>, what: String) -> Result<()> {
        self.insert_event(&Event::admin(self.actor, org, what))
    }
}

impl SqliteStore {
    /// Opens (creating if needed) and migrates the database. For the admin commands and
    /// the daemon's start.
    pub fn open(path: &Path, busy_timeout: Duration, actor: &str) -> Result<SqliteStore> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let existed = path.exists();
        let mut store = SqliteStore::open_with(path, flags, busy_timeout, actor)?;
        if !existed {
            give_to_directory_owner(path);
            store.file_id = file_id(path);
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

    /// Opens an existing, fully migrated database; never creates one.
    pub fn open_existing(path: &Path, busy_timeout: Duration) -> Result<SqliteStore> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let store = SqliteStore::open_with(path, flags, busy_timeout, "postwarden")?;
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

    fn open_with(
        path: &Path,
        flags: OpenFlags,
        busy_timeout: Duration,
        actor: &str,
    ) -> Result<SqliteStore> {
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
        let file_id = file_id(path);
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            actor: actor.to_string(),
            file_id,
            turn: file_id.map(write_turn::WriteTurn::for_file),
            busy_timeout,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets `PRAGMA synchronous` (outside a transaction).
    fn set_synchronous(&self, level: &str) -> Result<()> {
        self.conn
            .pragma_update(None, "synchronous", level)
            .map_err(|e| fault(&self.path, e))
    }

    fn db(&self) -> Db<'_> {
        Db {
            conn: &self.conn,
            path: &self.path,
        }
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
        self.write(|tx| {
            // Re-read inside the lock: another process may have migrated meanwhile.
            let version: i64 = tx.value("PRAGMA user_version", [])?;
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.conn.execute_batch(sql).map_err(tx.fault())?;
                tx.conn
                    .pragma_update(None, "user_version", (i + 1) as i64)
                    .map_err(tx.fault())?;
            }
            Ok(())
        })
    }

    /// Runs `f` in an `IMMEDIATE` transaction and commits what it did; on an error
    /// nothing is written.
    fn write<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T>) -> Result<T> {
        let path = self.path.as_path();
        let turn = self.turn.clone();
        let _turn = turn.as_deref().and_then(|t| t.take(self.busy_timeout));
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| fault(path, e))?;
        let out = f(&Tx {
            db: Db { conn: &tx, path },
            actor: &self.actor,
        })?;
        tx.commit().map_err(|e| fault(path, e))?;
        Ok(out)
    }
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn schema_version(&self) -> Result<i64> {
        self.db().value("PRAGMA user_version", [])
    }

    fn is_current(&self) -> bool {
        self.file_id.is_some() && file_id(&self.path) == self.file_id
    }

    /// The page cache of a connection that has read much of the event log can hold up to
    /// its `cache_size` (2 MiB by default) long after.
    fn release_memory(&self) {
        let _ = self.conn.execute_batch("PRAGMA shrink_memory");
    }
}

/// A store that root creates in a directory another user owns (the daemon's data
/// directory) goes to that user, so the daemon can open it. SQLite gives its -wal and -shm
/// files the database file's owner when it runs as root.
fn give_to_directory_owner(path: &Path) {
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

#[cfg(test)]
mod tests;
