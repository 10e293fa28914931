//! Writers of one database file inside this process take turns on a condition variable
//! instead of on SQLite's lock.
//!
//! SQLite lets one writer in at a time; the others get SQLITE_BUSY and its busy handler
//! retries them after sleeps of 1, 2, 5, 10 ... 100 ms. Under load (logins, milter
//! sessions and the event writer on the pooled handles at once) most of a write's time
//! was those sleeps, long after the lock was free. Waiting here instead, each writer
//! starts the moment the previous one commits. Other processes (the CLI) still meet the
//! SQLite lock and its busy timeout; a turn not had within the busy timeout is given up
//! and the write goes on to SQLite's lock as before, so the timeout keeps its meaning.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::Duration;

/// The turn of one database file's writers.
#[derive(Default)]
pub struct WriteTurn {
    taken: Mutex<bool>,
    freed: Condvar,
}

/// A turn held until dropped.
pub struct Held<'a>(&'a WriteTurn);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *self.0.taken.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.0.freed.notify_one();
    }
}

impl WriteTurn {
    /// The turn shared by every handle of the file `key` (device and inode) in this
    /// process.
    pub fn for_file(key: (u64, u64)) -> Arc<WriteTurn> {
        type Turns = Mutex<HashMap<(u64, u64), Weak<WriteTurn>>>;
        static TURNS: OnceLock<Turns> = OnceLock::new();
        let mut turns = TURNS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(turn) = turns.get(&key).and_then(Weak::upgrade) {
            return turn;
        }
        turns.retain(|_, t| t.strong_count() > 0);
        let turn = Arc::new(WriteTurn::default());
        turns.insert(key, Arc::downgrade(&turn));
        turn
    }

    /// Waits up to `timeout` for the turn; `None` when another writer kept it longer.
    pub fn take(&self, timeout: Duration) -> Option<Held<'_>> {
        let taken = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let (mut taken, waited) = self
            .freed
            .wait_timeout_while(taken, timeout, |t| *t)
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() && *taken {
            return None;
        }
        *taken = true;
        Some(Held(self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn one_writer_at_a_time_and_a_turn_kept_too_long_is_given_up() {
        let turn = WriteTurn::for_file((1, 1));
        assert!(Arc::ptr_eq(&turn, &WriteTurn::for_file((1, 1))));
        assert!(!Arc::ptr_eq(&turn, &WriteTurn::for_file((1, 2))));
        let inside = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let _held = turn.take(Duration::from_secs(10)).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        let held = turn.take(Duration::from_secs(1)).unwrap();
        assert!(turn.take(Duration::from_millis(20)).is_none());
        drop(held);
        assert!(turn.take(Duration::from_millis(20)).is_some());
    }
}
