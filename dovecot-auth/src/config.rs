//! Limits and per-connection identifiers.

use std::time::Duration;

use crate::Mechanism;

/// Limits and options for [`serve_connection`](crate::serve_connection). Every resource a client
/// can make the server hold is bounded by one of these; see the crate documentation for why each
/// default is what it is.
///
/// Build one with struct-update syntax:
///
/// ```
/// use std::time::Duration;
/// use dovecot_auth::ServerConfig;
///
/// let config = ServerConfig { request_timeout: Duration::from_secs(30), ..ServerConfig::default() };
/// assert_eq!(config.max_pending_requests, 16);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Mechanisms announced in the handshake (one `MECH` line each, in this order) and accepted in
    /// `AUTH`. Default: `PLAIN`, `LOGIN`. Postfix needs at least one.
    pub mechanisms: Vec<Mechanism>,
    /// Longest accepted line in bytes, without its LF. A longer line is a protocol error. Default:
    /// 16384, Dovecot's own limit; Postfix's SMTP line limit (2048 by default) keeps its requests far
    /// below it.
    pub max_line_length: usize,
    /// Largest accepted decoded response (`resp=` or one `CONT`) in bytes. A larger one fails that
    /// request (`FAIL`, [`Refusal::TooLarge`](crate::Refusal::TooLarge)) and keeps the connection.
    /// Default: 4096, room for a long login, authorization identity and password together.
    pub max_response_size: usize,
    /// Most requests one connection may have open at once (waiting for `CONT` or being
    /// verified). Postfix never has more than one in flight, but a client that cancels `AUTH
    /// LOGIN` with `*` leaves its request open here. When a new `AUTH` would exceed the cap, the
    /// request that has waited longest for a `CONT` is dropped silently; when every open request
    /// is being verified, the server stops reading until one finishes. 0 counts as 1.
    /// Default: 16.
    pub max_pending_requests: usize,
    /// How long a request may wait for the client's next `CONT` before it is dropped silently
    /// (counted from the server's last `CONT` prompt). Default: 60 s. A `CONT` that arrives
    /// later for a recently dropped request is answered with `FAIL` (Dovecot does the same).
    pub request_timeout: Duration,
    /// How long the client may take to send `VERSION` and `CPID` after connecting. Postfix sends
    /// both at once. Default: 10 s.
    pub handshake_timeout: Duration,
    /// Close a connection that has no open request and has sent nothing for this long. Default:
    /// `None` (never). Postfix keeps one auth connection per smtpd process for that process's
    /// whole life and does not reconnect when the server has closed it (it answers `454` to the
    /// next login instead), so closing idle connections would hurt real users; Postfix's own
    /// `max_idle` / `max_use` end its processes, and with them their connections. Set a long value
    /// (an hour or more) if clients other than Postfix can connect.
    pub idle_timeout: Option<Duration>,
    /// Longest time one [`Verifier::verify`](crate::Verifier::verify) call may take; a slower one
    /// is treated as an internal fault (the connection is closed, Postfix answers `454`). Postfix
    /// itself gives up after 10 s, so this is only a backstop against a hung verifier.
    /// Default: 30 s.
    pub verify_timeout: Duration,
    /// Longest time writing one reply line may take (a client that does not read). Default: 30 s.
    pub write_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            mechanisms: vec![Mechanism::Plain, Mechanism::Login],
            max_line_length: 16 * 1024,
            max_response_size: 4096,
            max_pending_requests: 16,
            request_timeout: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: None,
            verify_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// What the server announces about itself in one connection's handshake.
///
/// The caller counts its connections and passes each one's number as `connection_uid` (`CUID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionIds {
    /// Sent as `SPID`: the server's process id.
    pub server_pid: u32,
    /// Sent as `CUID`: a number unique to this connection within the server process.
    pub connection_uid: u32,
    /// Sent as `COOKIE` (32 hex digits). `None` makes one from a non-cryptographic source: in
    /// Dovecot the cookie lets a trusted master process look up a finished login, and this crate
    /// implements no master or userdb interface, so the cookie protects nothing here. Postfix
    /// ignores it.
    pub cookie: Option<[u8; 16]>,
}

impl ConnectionIds {
    /// Ids for connection number `connection_uid` of a server whose process id is `server_pid`,
    /// with a generated cookie.
    pub fn new(server_pid: u32, connection_uid: u32) -> Self {
        Self {
            server_pid,
            connection_uid,
            cookie: None,
        }
    }

    /// Ids for connection number `connection_uid` of the current process.
    pub fn for_this_process(connection_uid: u32) -> Self {
        Self::new(std::process::id(), connection_uid)
    }

    pub(crate) fn cookie_hex(&self) -> String {
        let bytes = self
            .cookie
            .unwrap_or_else(|| generated_cookie(self.connection_uid));
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// 16 bytes from std's randomly keyed SipHash: unpredictable enough for an identifier that
/// protects nothing (see [`ConnectionIds::cookie`]); not a cryptographic random source.
fn generated_cookie(connection_uid: u32) -> [u8; 16] {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut out = [0u8; 16];
    for (i, chunk) in out.chunks_mut(8).enumerate() {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(connection_uid);
        hasher.write_u128(nanos);
        hasher.write_usize(i);
        chunk.copy_from_slice(&hasher.finish().to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_32_hex_digits() {
        let ids = ConnectionIds::for_this_process(7);
        let hex = ids.cookie_hex();
        assert_eq!(hex.len(), 32);
        assert!(hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let fixed = ConnectionIds {
            cookie: Some([0xab; 16]),
            ..ids
        };
        assert_eq!(fixed.cookie_hex(), "ab".repeat(16));
        // Two generated cookies differ (RandomState keys differ per instance).
        assert_ne!(ids.cookie_hex(), ids.cookie_hex());
    }
}
