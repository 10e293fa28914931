//! Login throttling as the store keeps it: failure counters per client address and per
//! username over a window, and the addresses a username has logged in from.

use serde::Serialize;

use super::string_enum;

string_enum! {
    /// What a throttle counter counts attempts of.
    pub enum ThrottleKind {
        /// One client address (IPv4), or one IPv6 /64.
        Address = "address",
        /// One login name, as the client sent it.
        Username = "username",
    }
}

/// One login attempt, counted before its password is checked.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleAttempt<'a> {
    /// The client's throttling key (its address, or its IPv6 /64).
    pub address: &'a str,
    /// The login name; `None` when there is none (a protocol refusal) or it is not counted.
    pub username: Option<&'a str>,
    /// Unix seconds.
    pub now: i64,
    /// Seconds a counter lasts after its last attempt.
    pub window: i64,
    /// Attempts from one address in the window that get their password checked; past
    /// it, the username is not counted either (its attempts cost nothing). 0: no limit.
    pub address_limit: u32,
}

/// The counters after an attempt, this one included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleCount {
    /// Attempts from the address in the window.
    pub address: u32,
    /// Attempts for the username in the window from addresses not known for it; `None`
    /// when not counted (no username, a known address, or the address past its limit).
    pub username: Option<u32>,
    /// The address logged in with this username successfully within the known-address
    /// time (only asked when the address is within its limit).
    pub known: bool,
}

/// What to give back for an attempt whose password was right or never checked.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleRelease<'a> {
    pub address: &'a str,
    /// The username whose counter the attempt counted in (`ThrottleCount::username` was
    /// `Some`).
    pub username: Option<&'a str>,
    /// After a successful login: the username, and until when (Unix seconds) `address`
    /// is known for it.
    pub known: Option<(&'a str, i64)>,
}

/// An address a username logged in from recently: its attempts for that username are not
/// held to the per-username budget (`throttle list --known`).
#[derive(Debug, Clone, Serialize)]
pub struct KnownAddress {
    pub username: String,
    /// The address key (IPv4, or an IPv6 /64).
    pub address: String,
    /// Until when (Unix seconds), unless another successful login moves it on.
    pub expires: i64,
}

/// A live counter, as `throttle list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ThrottleEntry {
    pub kind: ThrottleKind,
    pub key: String,
    pub failures: u32,
    /// When the counter is forgotten unless another attempt comes (Unix seconds).
    pub window_end: i64,
}
