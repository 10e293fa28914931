//! The caller's side: what a login attempt looks like and how the caller decides it.

use std::fmt;
use std::future::Future;
use std::net::IpAddr;

/// A SASL mechanism this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// RFC 4616 `PLAIN`: one message `authzid NUL authcid NUL password`.
    Plain,
    /// The non-standard but ubiquitous `LOGIN`: user name and password in two steps.
    Login,
}

impl Mechanism {
    /// The name used on the wire (`PLAIN`, `LOGIN`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
        }
    }

    /// Looks a mechanism up by its wire name. Mechanism names are protocol tokens, not
    /// identities, and are matched ASCII case-insensitively as Dovecot does: Postfix forwards the
    /// name as the SMTP client typed it (`AUTH plain` is valid SMTP).
    pub fn from_name(name: &[u8]) -> Option<Self> {
        if name.eq_ignore_ascii_case(b"PLAIN") {
            Some(Self::Plain)
        } else if name.eq_ignore_ascii_case(b"LOGIN") {
            Some(Self::Login)
        } else {
            None
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One login attempt, with everything the client told about it.
///
/// Passed to [`Verifier::verify`] (complete) and to [`Verifier::refused`] (see there for which
/// fields may be empty). The `Debug` output never shows the password.
#[derive(Clone)]
pub struct Attempt {
    /// The request id chosen by the client (unique among the connection's pending requests).
    pub id: u32,
    /// The mechanism used.
    pub mechanism: Mechanism,
    /// The `service=` parameter (`smtp` for Postfix), tab-unescaped.
    pub service: String,
    /// `lip=`: the address the SMTP client connected to, if given and parseable.
    /// IPv4-mapped IPv6 addresses are turned into IPv4.
    pub local_ip: Option<IpAddr>,
    /// `rip=`: the SMTP client's address, if given and parseable.
    /// IPv4-mapped IPv6 addresses are turned into IPv4.
    pub remote_ip: Option<IpAddr>,
    /// `lport=`, if given and parseable (Postfix 3.7 does not send it).
    pub local_port: Option<u16>,
    /// `rport=`, if given and parseable (Postfix 3.7 does not send it).
    pub remote_port: Option<u16>,
    /// The `secured` flag: Postfix sets it after STARTTLS.
    pub secured: bool,
    /// The login name (PLAIN's authentication identity, LOGIN's user name), exactly as sent: no
    /// case folding, no trimming.
    pub login: String,
    /// PLAIN's authorization identity when the client gave a non-empty one. In an attempt passed
    /// to [`Verifier::verify`] it is always equal to `login` (byte for byte).
    pub authzid: Option<String>,
    /// The password, exactly as sent.
    pub password: String,
    /// The process id the client announced with `CPID` (Postfix: the smtpd process).
    pub client_pid: u32,
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("id", &self.id)
            .field("mechanism", &self.mechanism)
            .field("service", &self.service)
            .field("local_ip", &self.local_ip)
            .field("remote_ip", &self.remote_ip)
            .field("local_port", &self.local_port)
            .field("remote_port", &self.remote_port)
            .field("secured", &self.secured)
            .field("login", &self.login)
            .field("authzid", &self.authzid)
            .field("password", &"<hidden>")
            .field("client_pid", &self.client_pid)
            .finish()
    }
}

/// The caller's decision on an [`Attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accept. `user` is sent as `user=`: Postfix makes it the `sasl_username` (what a milter sees
    /// as `{auth_authen}`). It may differ from the login (a canonical name). It must not be empty:
    /// an empty `user` is treated as [`Verdict::Fault`].
    Ok {
        /// The authenticated user name.
        user: String,
    },
    /// Refuse (Postfix answers `535 5.7.8`). `reason`, when given and not empty, is shown by Postfix
    /// to the SMTP client word for word, so it must never reveal internals (or whether the user
    /// exists).
    Fail {
        /// Text for the SMTP client, if any.
        reason: Option<String>,
    },
    /// An internal fault (for example the credential store is unreadable). The connection is
    /// closed without an answer, which makes Postfix answer `454 4.7.0` (temporary failure). The
    /// message is only logged and returned in [`ProtocolError::VerifierFault`](crate::ProtocolError).
    Fault(String),
}

/// Why the protocol layer refused an attempt without asking [`Verifier::verify`].
///
/// Each of these is answered with `FAIL` (Postfix: `535`); the connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// PLAIN with a non-empty authorization identity that differs from the login: this crate
    /// never lets one user act as another.
    AuthzidMismatch,
    /// The login, authorization identity or password is not valid UTF-8 after base64 decoding.
    NotUtf8,
    /// The mechanism data is not well formed: PLAIN without exactly two NUL separators, or a NUL
    /// inside a LOGIN user name or a password.
    Malformed,
    /// The response is not decodable base64 (bad length or padding). The SMTP client sends this
    /// data through Postfix, which only checks the alphabet.
    InvalidBase64,
    /// The login name is empty.
    EmptyLogin,
    /// A decoded response is larger than
    /// [`ServerConfig::max_response_size`](crate::ServerConfig::max_response_size).
    TooLarge,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AuthzidMismatch => "authorization identity differs from the login",
            Self::NotUtf8 => "credentials are not valid UTF-8",
            Self::Malformed => "malformed mechanism data",
            Self::InvalidBase64 => "undecodable base64 response",
            Self::EmptyLogin => "empty login name",
            Self::TooLarge => "response too large",
        })
    }
}

/// Decides logins. Implemented by the caller; shared by all connections through an `Arc`.
///
/// `verify` may take its time (for example to throttle a client address) without holding up
/// other requests or connections: each verification runs in its own tokio task. Keep every answer
/// well under 10 s, though: Postfix gives up after 10 s and answers `454`. A verifier that does
/// CPU-heavy work (password hashing) should move it off the async threads, e.g. with
/// `tokio::task::spawn_blocking`.
///
/// ```
/// use dovecot_auth::{Attempt, Verdict, Verifier};
///
/// struct OnlyAlice;
///
/// impl Verifier for OnlyAlice {
///     async fn verify(&self, attempt: &Attempt) -> Verdict {
///         if attempt.login == "alice@example.test" && attempt.password == "secret" {
///             Verdict::Ok { user: attempt.login.clone() }
///         } else {
///             Verdict::Fail { reason: None }
///         }
///     }
/// }
/// ```
pub trait Verifier: Send + Sync + 'static {
    /// Decides one attempt. The attempt has passed the protocol's own checks: its login is not
    /// empty, and its `authzid`, if any, equals the login.
    fn verify(&self, attempt: &Attempt) -> impl Future<Output = Verdict> + Send;

    /// Called (synchronously, on the connection's task) when the protocol itself refused an
    /// attempt, so the caller can log or count it; the client gets `FAIL` right after. The
    /// default does nothing.
    ///
    /// In such an attempt `password` is always empty (it is never handed over for a refused
    /// attempt), `login` is empty when it was not decoded (for [`Refusal::InvalidBase64`],
    /// [`Refusal::TooLarge`], [`Refusal::Malformed`] of PLAIN) and is converted lossily (U+FFFD)
    /// when it is not UTF-8; `authzid` is likewise lossy. The request information (`id`,
    /// `service`, addresses, ports, `secured`, `client_pid`) is always complete.
    fn refused(&self, _attempt: &Attempt, _why: Refusal) {}
}
