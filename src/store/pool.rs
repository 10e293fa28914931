//! The daemon's open store handles. Opening a store per request costs file opens, a
//! schema check and, at each close, a WAL checkpoint; the pool keeps a few handles open
//! instead. A handle is checked before each use ([`Store::is_current`]): one whose
//! database was deleted or replaced is dropped and the store opened anew, which fails for
//! a missing store, so a deleted store is still a fault and never an empty store. A
//! handle that saw a fault is not kept.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use super::{Result, Store, StoreError};
use crate::config::Config;

/// Open handles kept at most when idle.
const MAX_IDLE: usize = 8;

type Opener = dyn Fn() -> Result<Box<dyn Store>> + Send + Sync;

pub struct Pool {
    open: Box<Opener>,
    idle: Mutex<Vec<Box<dyn Store>>>,
}

impl Pool {
    /// A pool over the configured store, opened as the daemon does
    /// ([`super::open_existing`]).
    pub fn new(cfg: &Config) -> Arc<Pool> {
        let cfg = cfg.clone();
        Pool::with_opener(move || super::open_existing(&cfg))
    }

    /// A pool whose handles come from `open`.
    pub fn with_opener(
        open: impl Fn() -> Result<Box<dyn Store>> + Send + Sync + 'static,
    ) -> Arc<Pool> {
        Arc::new(Pool {
            open: Box::new(open),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// A handle to use now (blocking: may open the store). It goes back to the pool when
    /// dropped, unless [`Pooled::discard`] was called.
    pub fn get(self: &Arc<Self>) -> Result<Pooled> {
        loop {
            let candidate = self.lock().pop();
            match candidate {
                Some(store) if store.is_current() => {
                    return Ok(Pooled {
                        store: Some(store),
                        pool: Arc::clone(self),
                    })
                }
                // Deleted or replaced underneath: forget it, try the next one.
                Some(_) => {}
                None => {
                    return Ok(Pooled {
                        store: Some((self.open)()?),
                        pool: Arc::clone(self),
                    })
                }
            }
        }
    }

    /// Runs `f` with a handle on the blocking pool. A fault drops the handle.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut dyn Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|e| StoreError::Fault(format!("store task failed: {e}")))?
    }

    /// Runs `f` with a handle on this thread (blocking). A fault drops the handle.
    pub fn with<T>(self: &Arc<Self>, f: impl FnOnce(&mut dyn Store) -> Result<T>) -> Result<T> {
        let mut handle = self.get()?;
        let out = f(&mut **handle);
        if matches!(out, Err(StoreError::Fault(_))) {
            handle.discard();
        }
        out
    }

    /// Gives back the caches of the idle handles ([`Store::release_memory`]).
    pub fn release_memory(&self) {
        for store in self.lock().iter() {
            store.release_memory();
        }
    }

    /// Handles kept open now.
    pub fn idle(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Box<dyn Store>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle taken from the pool.
pub struct Pooled {
    store: Option<Box<dyn Store>>,
    pool: Arc<Pool>,
}

impl Pooled {
    /// Closes the handle instead of returning it to the pool.
    pub fn discard(&mut self) {
        self.store = None;
    }
}

impl Deref for Pooled {
    type Target = Box<dyn Store>;
    fn deref(&self) -> &Self::Target {
        self.store.as_ref().expect("a pooled store in use")
    }
}

impl DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.store.as_mut().expect("a pooled store in use")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            let mut idle = self.pool.lock();
            if idle.len() < MAX_IDLE {
                idle.push(store);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::model::SenderCheck;
    use crate::store::sqlite::SqliteStore;

    /// A pool over `path` that counts how often it opens the store.
    fn counting_pool(path: &std::path::Path) -> (Arc<Pool>, Arc<AtomicUsize>) {
        let opens = Arc::new(AtomicUsize::new(0));
        let (p, n) = (path.to_path_buf(), Arc::clone(&opens));
        let pool = Pool::with_opener(move || {
            n.fetch_add(1, Ordering::SeqCst);
            Ok(Box::new(SqliteStore::open_existing(&p, Duration::from_secs(1))?) as Box<dyn Store>)
        });
        (pool, opens)
    }

    #[test]
    fn handles_are_reused_and_a_replaced_or_deleted_store_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut admin = SqliteStore::open(&path, Duration::from_secs(1), "t").unwrap();
        use crate::store::Organizations;
        admin.org_add("acme", SenderCheck::Account).unwrap();
        drop(admin);
        let (pool, opens) = counting_pool(&path);
        for _ in 0..5 {
            assert_eq!(pool.with(|s| s.org_list()).unwrap().len(), 1);
        }
        assert_eq!(opens.load(Ordering::SeqCst), 1, "one open for five uses");
        assert_eq!(pool.idle(), 1);

        // Replaced by another store (a restored backup, say): the next use sees the new one.
        // (The stale handle is closed before the new file is opened, so its WAL is gone.)
        let other = dir.path().join("other.db");
        drop(SqliteStore::open(&other, Duration::from_secs(1), "t").unwrap());
        std::fs::rename(&other, &path).unwrap();
        assert!(pool.with(|s| s.org_list()).unwrap().is_empty());
        assert_eq!(opens.load(Ordering::SeqCst), 2);

        // Deleted: a fault, never an empty store created in its place.
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            pool.with(|s| s.org_list()),
            Err(StoreError::Fault(_))
        ));
        assert!(!path.exists());
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn idle_handles_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        drop(SqliteStore::open(&path, Duration::from_secs(1), "t").unwrap());
        let (pool, _) = counting_pool(&path);
        let held: Vec<Pooled> = (0..MAX_IDLE + 3).map(|_| pool.get().unwrap()).collect();
        drop(held);
        assert_eq!(pool.idle(), MAX_IDLE);
    }
}
