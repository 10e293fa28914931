//! Counters over a time window, keyed by string: the one mechanism behind brute-force
//! delays and lockouts (per client IP, per username) and, later, sending rates.
//!
//! A key's count starts when it is first hit and is forgotten `window` after its last
//! hit. Memory is bounded: past `max_keys`, expired keys go first, then the least
//! recently hit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Entry {
    count: u32,
    last: Instant,
}

#[derive(Debug)]
pub struct Counter {
    window: Duration,
    max_keys: usize,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Counter {
    pub fn new(window: Duration, max_keys: usize) -> Counter {
        Counter {
            window,
            max_keys: max_keys.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A poisoned lock only means another thread panicked mid-update of plain counters.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current count of `key` at `now`.
    pub fn count_at(&self, key: &str, now: Instant) -> u32 {
        match self.lock().get(key) {
            Some(e) if now.duration_since(e.last) < self.window => e.count,
            _ => 0,
        }
    }

    pub fn count(&self, key: &str) -> u32 {
        self.count_at(key, Instant::now())
    }

    /// Adds one to `key` at `now`; returns the new count.
    pub fn hit_at(&self, key: &str, now: Instant) -> u32 {
        let mut map = self.lock();
        if map.len() >= self.max_keys && !map.contains_key(key) {
            let window = self.window;
            map.retain(|_, e| now.duration_since(e.last) < window);
            if map.len() >= self.max_keys {
                // Still full of live keys: drop the least recently hit half.
                let mut lasts: Vec<Instant> = map.values().map(|e| e.last).collect();
                lasts.sort();
                let cut = lasts[lasts.len() / 2];
                map.retain(|_, e| e.last > cut);
            }
        }
        let e = map.entry(key.to_string()).or_insert(Entry {
            count: 0,
            last: now,
        });
        if now.duration_since(e.last) >= self.window {
            e.count = 0;
        }
        e.count = e.count.saturating_add(1);
        e.last = now;
        e.count
    }

    pub fn hit(&self, key: &str) -> u32 {
        self.hit_at(key, Instant::now())
    }

    pub fn clear(&self, key: &str) {
        self.lock().remove(key);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The brute-force rule: how long to hold a FAIL and whether to refuse without checking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalty {
    /// Failures (per IP or per username) answered without delay.
    pub free_failures: u32,
    /// Delay of the first delayed failure; doubled for each further one.
    pub delay: Duration,
    /// The longest delay (kept below Postfix's 10 s auth timeout).
    pub max_delay: Duration,
    /// Failures from one IP in the window past which attempts fail unchecked.
    pub block_after: u32,
}

impl Penalty {
    /// The delay before answering a FAIL, given the failure count after this one.
    pub fn delay_for(&self, failures: u32) -> Duration {
        if failures <= self.free_failures {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free_failures - 1).min(16);
        self.delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// Whether an IP with this many failures in the window is refused without checking.
    pub fn blocked(&self, ip_failures: u32) -> bool {
        self.block_after > 0 && ip_failures >= self.block_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_window_and_forgets_after() {
        let c = Counter::new(Duration::from_secs(60), 100);
        let t0 = Instant::now();
        assert_eq!(c.hit_at("a", t0), 1);
        assert_eq!(c.hit_at("a", t0 + Duration::from_secs(30)), 2);
        assert_eq!(
            c.count_at("a", t0 + Duration::from_secs(80)),
            2,
            "window runs from the last hit"
        );
        assert_eq!(c.count_at("a", t0 + Duration::from_secs(91)), 0);
        assert_eq!(c.hit_at("a", t0 + Duration::from_secs(91)), 1);
        assert_eq!(c.count_at("b", t0), 0);
        c.clear("a");
        assert_eq!(c.count_at("a", t0 + Duration::from_secs(91)), 0);
    }

    #[test]
    fn memory_is_bounded() {
        let c = Counter::new(Duration::from_secs(60), 10);
        let t0 = Instant::now();
        for i in 0..1000 {
            c.hit_at(&format!("k{i}"), t0 + Duration::from_millis(i));
            assert!(c.len() <= 10);
        }
        // The most recent key survives.
        assert_eq!(c.count_at("k999", t0 + Duration::from_secs(1)), 1);
    }

    #[test]
    fn penalty_grows_and_caps() {
        let p = Penalty {
            free_failures: 3,
            delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            block_after: 20,
        };
        let delays: Vec<u64> = (1..=10)
            .map(|n| p.delay_for(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [0, 0, 0, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(p.delay_for(u32::MAX), Duration::from_secs(8));
        assert!(!p.blocked(19));
        assert!(p.blocked(20));
        let off = Penalty {
            block_after: 0,
            ..p
        };
        assert!(!off.blocked(1000));
    }
}
