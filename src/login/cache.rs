//! Verified-login cache: a login repeated with the password that was verified lately skips
//! argon2, and nothing else.
//!
//! - In memory only (never written anywhere), bounded (`auth.login_cache_entries`, each
//!   entry expires after `auth.login_cache_ttl`), per process.
//! - An entry holds the credential's id, its stored PHC string and a keyed hash (BLAKE2b,
//!   a key drawn at start) of the password, never the password. It counts only while the
//!   credential row the login reads anyway still has that id and that PHC string, and the
//!   row is read at every login: a revoke, a reset, a deletion apply at the very next
//!   login, on every front end, cache or not.
//! - Only a successful login fills it; a failure never does, and a row that no longer
//!   matches removes the entry.
//! - Everything else a login does still happens: the throttle counts it, the event is
//!   written, the last use is recorded.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use blake2::digest::{consts::U32, Mac};
use blake2::Blake2bMac;

type Tag = [u8; 32];

struct Entry {
    credential_id: i64,
    hash: String,
    tag: Tag,
    until: Instant,
}

/// See the module documentation.
pub struct LoginCache {
    key: [u8; 32],
    max: usize,
    ttl: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

/// Constant-time equality of two tags.
fn same(a: &Tag, b: &Tag) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl LoginCache {
    /// A cache of at most `max` entries (0: off), each valid for `ttl`.
    pub fn new(max: usize, ttl: Duration) -> LoginCache {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        LoginCache {
            key,
            max,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn tag(&self, password: &str) -> Tag {
        let mut mac =
            <Blake2bMac<U32> as Mac>::new_from_slice(&self.key).expect("a 32-byte BLAKE2b key");
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `password` is the one verified lately for `username` (before the row is
    /// read: such an attempt need not wait for an argon2 slot).
    pub fn knows(&self, username: &str, password: &str) -> bool {
        if self.max == 0 {
            return false;
        }
        let tag = self.tag(password);
        let entries = self.lock();
        entries
            .get(username)
            .is_some_and(|e| e.until > Instant::now() && same(&e.tag, &tag))
    }

    /// Whether `password` was verified lately against this very row (`credential_id`,
    /// `hash`): then it matches without argon2. An entry for another row is removed.
    pub fn verified(&self, username: &str, credential_id: i64, hash: &str, password: &str) -> bool {
        if self.max == 0 {
            return false;
        }
        let tag = self.tag(password);
        let mut entries = self.lock();
        let Some(e) = entries.get(username) else {
            return false;
        };
        if e.until <= Instant::now() || e.credential_id != credential_id || e.hash != hash {
            entries.remove(username);
            return false;
        }
        same(&e.tag, &tag)
    }

    /// Remembers a successful verification of `password` against this row.
    pub fn remember(&self, username: &str, credential_id: i64, hash: &str, password: &str) {
        if self.max == 0 {
            return;
        }
        let tag = self.tag(password);
        let now = Instant::now();
        let mut entries = self.lock();
        if entries.len() >= self.max && !entries.contains_key(username) {
            entries.retain(|_, e| e.until > now);
            if entries.len() >= self.max {
                // Full of live entries: the one closest to expiry goes.
                if let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.until)
                    .map(|(k, _)| k.clone())
                {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            username.to_string(),
            Entry {
                credential_id,
                hash: hash.to_string(),
                tag,
                until: now + self.ttl,
            },
        );
    }

    /// How many entries it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H1: &str = "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    const H2: &str = "$argon2id$v=19$m=64,t=1,p=1$b3RoZXJzYWx0$aGFzaGhhc2hoYXNo";

    #[test]
    fn only_the_remembered_password_on_the_same_row_counts() {
        let c = LoginCache::new(10, Duration::from_secs(60));
        assert!(!c.knows("u", "pw"));
        assert!(!c.verified("u", 1, H1, "pw"));
        c.remember("u", 1, H1, "pw");
        assert!(c.knows("u", "pw"));
        assert!(!c.knows("u", "other"));
        assert!(!c.knows("v", "pw"));
        assert!(c.verified("u", 1, H1, "pw"));
        assert!(!c.verified("u", 1, H1, "Pw"));
        // A reset (new PHC string) or a re-created credential (new id) voids the entry.
        assert!(!c.verified("u", 1, H2, "pw"));
        assert!(!c.knows("u", "pw"), "the stale entry is gone");
        c.remember("u", 1, H1, "pw");
        assert!(!c.verified("u", 2, H1, "pw"));
        assert!(c.is_empty());
    }

    #[test]
    fn entries_expire_and_the_size_is_bounded() {
        let c = LoginCache::new(3, Duration::from_millis(50));
        for i in 0..5 {
            c.remember(&format!("u{i}"), i, H1, "pw");
        }
        assert_eq!(c.len(), 3);
        assert!(c.knows("u4", "pw"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(!c.knows("u4", "pw"));
        assert!(!c.verified("u4", 4, H1, "pw"));
    }

    #[test]
    fn a_zero_size_cache_is_off() {
        let c = LoginCache::new(0, Duration::from_secs(60));
        c.remember("u", 1, H1, "pw");
        assert!(!c.knows("u", "pw"));
        assert!(!c.verified("u", 1, H1, "pw"));
    }

    #[test]
    fn the_key_differs_per_cache() {
        let (a, b) = (
            LoginCache::new(1, Duration::from_secs(1)),
            LoginCache::new(1, Duration::from_secs(1)),
        );
        assert_ne!(a.tag("pw"), b.tag("pw"));
    }
}
