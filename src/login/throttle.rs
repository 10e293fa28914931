//! The brute-force rule: which attempts get their password checked, and how long a FAIL
//! is held. The counters it reads live in the store ([`crate::store::Throttle`]), counted
//! before each check in one atomic step, so the limits bound argon2 work exactly however
//! many connections an attacker opens, survive restarts, and are shared by every front
//! end on the store.

use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::config::ThrottleConfig;
use crate::model::ThrottleCount;

/// The throttling key of a client address: the address for IPv4, its /64 for IPv6 (one
/// host usually holds a whole /64, and could otherwise rotate through it).
pub fn address_key(ip: Option<IpAddr>) -> String {
    match ip {
        None => "unknown".to_string(),
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Login names longer than this are counted by their first this many bytes (a client
/// chooses them; the store keeps them bounded).
pub const MAX_USERNAME_KEY: usize = 255;

/// The throttling key of a login name: the name, cut to [`MAX_USERNAME_KEY`] bytes.
pub fn username_key(login: &str) -> &str {
    if login.len() <= MAX_USERNAME_KEY {
        return login;
    }
    let mut end = MAX_USERNAME_KEY;
    while !login.is_char_boundary(end) {
        end -= 1;
    }
    &login[..end]
}

/// Why an attempt fails without its password being checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Its address is past `block_after` in the window.
    Address,
    /// Its username is past `user_budget` in the window, and the address is not known for
    /// it.
    Username,
}

/// The brute-force rule: how long to hold a FAIL and whether to refuse without checking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalty {
    /// Failures (per address or per username) answered without delay.
    pub free_failures: u32,
    /// Delay of the first delayed failure; doubled for each further one.
    pub delay: Duration,
    /// The longest delay (kept below Postfix's 10 s auth timeout).
    pub max_delay: Duration,
    /// Attempts from one address in the window that are checked; 0: no limit.
    pub block_after: u32,
    /// Attempts for one username from addresses not known for it in the window that are
    /// checked; 0: no limit.
    pub user_budget: u32,
}

impl Penalty {
    pub fn new(cfg: &ThrottleConfig) -> Penalty {
        Penalty {
            free_failures: cfg.free_failures,
            delay: cfg.delay.0,
            max_delay: cfg.max_delay.0,
            block_after: cfg.block_after,
            user_budget: cfg.user_budget,
        }
    }

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

    /// The delay of a FAIL after an attempt with these counts.
    pub fn delay_after(&self, count: &ThrottleCount) -> Duration {
        self.delay_for(count.address.max(count.username.unwrap_or(0)))
    }

    /// Whether an attempt with these counts (itself included) is refused unchecked.
    pub fn block(&self, count: &ThrottleCount) -> Option<Block> {
        if self.address_blocked(count.address) {
            Some(Block::Address)
        } else if count.username.is_some_and(|n| self.username_blocked(n)) {
            Some(Block::Username)
        } else {
            None
        }
    }

    /// Whether an address counter at `attempts` (this attempt included) is past its limit.
    pub fn address_blocked(&self, attempts: u32) -> bool {
        self.block_after > 0 && attempts > self.block_after
    }

    /// Whether a username counter at `attempts` (this attempt included) is past its budget.
    pub fn username_blocked(&self, attempts: u32) -> bool {
        self.user_budget > 0 && attempts > self.user_budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn penalty() -> Penalty {
        Penalty {
            free_failures: 3,
            delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            block_after: 20,
            user_budget: 50,
        }
    }

    #[test]
    fn penalty_grows_and_caps() {
        let p = penalty();
        let delays: Vec<u64> = (1..=10)
            .map(|n| p.delay_for(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [0, 0, 0, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(p.delay_for(u32::MAX), Duration::from_secs(8));
    }

    #[test]
    fn block_after_n_means_n_checks() {
        let p = penalty();
        let count = |address, username| ThrottleCount {
            address,
            username,
            known: false,
        };
        assert_eq!(p.block(&count(20, Some(50))), None);
        assert_eq!(p.block(&count(21, Some(1))), Some(Block::Address));
        assert_eq!(p.block(&count(1, Some(51))), Some(Block::Username));
        assert_eq!(p.block(&count(1, None)), None, "a known address");
        let off = Penalty {
            block_after: 0,
            user_budget: 0,
            ..p
        };
        assert_eq!(off.block(&count(1000, Some(1000))), None);
        assert_eq!(
            p.delay_after(&count(1, Some(5))),
            Duration::from_millis(1000),
            "the busier counter sets the delay"
        );
    }

    #[test]
    fn keys() {
        assert_eq!(address_key(Some("192.0.2.1".parse().unwrap())), "192.0.2.1");
        assert_eq!(
            address_key(Some("2001:db8:1:2:3:4:5:6".parse().unwrap())),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            address_key(Some("::ffff:192.0.2.7".parse().unwrap())),
            "192.0.2.7"
        );
        assert_eq!(address_key(None), "unknown");
        assert_eq!(username_key("alice"), "alice");
        let long = "é".repeat(200);
        assert!(username_key(&long).len() <= MAX_USERNAME_KEY);
        assert!(long.starts_with(username_key(&long)));
    }
}
