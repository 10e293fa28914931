// Dependencies: `base64` (decoding SASL responses), `tokio` (async I/O, timers, one task per
// verification) and `tracing` (one log line per abnormal connection end). Dev-dependency added:
// `proptest` (property tests of the line parser, the mechanisms, tab-escaping and whole
// connections), with default features off so that it pulls in no process-forking machinery.

//! The server side of the Dovecot authentication protocol (version 1.x), as Postfix's
//! `smtpd_sasl_type = dovecot` client speaks it, with the `PLAIN` and `LOGIN` mechanisms.
//!
//! The caller accepts connections (a Unix socket such as Postfix's `private/auth`, or TCP), runs
//! [`serve_connection`] in one task per connection and decides each login with its own
//! [`Verifier`]. This crate only speaks the protocol: it stores no credentials and reads no
//! configuration.
//!
//! # The protocol subset
//!
//! Lines end with LF; fields are separated by TAB; values use Dovecot's tab-escaping (see
//! [`tab_escape`]). `S:` is this server, `C:` the client (Postfix):
//!
//! ```text
//! S: VERSION  1  2                  sent at once on connect, as Dovecot does
//! S: MECH  PLAIN  plaintext         one per ServerConfig::mechanisms
//! S: MECH  LOGIN  plaintext
//! S: SPID  <pid>                    ConnectionIds::server_pid
//! S: CUID  <n>                      ConnectionIds::connection_uid
//! S: COOKIE  <32 hex digits>
//! S: DONE
//! C: VERSION  1  <minor>            first line; major must be 1, the rest is ignored
//! C: CPID  <pid>                    second line; a non-zero decimal pid
//! C: AUTH  <id>  PLAIN  service=smtp  nologin  lip=<ip>  rip=<ip>  [secured]  [resp=<base64>]
//! S: CONT  <id>  <base64>           PLAIN without resp=: empty; LOGIN: "Username:", "Password:"
//! C: CONT  <id>  <base64>
//! S: OK  <id>  user=<name>          or  FAIL  <id>  [user=<login>]  [reason=<text>]
//! C: CANCEL  <id>                   drops a pending request (Postfix never sends it)
//! ```
//!
//! * Request ids are unsigned 32-bit decimals chosen by the client; an `AUTH` that reuses the id
//!   of a pending request is a protocol error. `AUTH` parameters: `service=` (required, as in
//!   Dovecot), `lip=`, `rip=`, `lport=`, `rport=` (kept when parseable, otherwise ignored),
//!   `secured`, `resp=` (the initial response; must be last, as in Dovecot). Every other
//!   parameter (`nologin`, `session=`, `local_name=`, `valid-client-cert`, `no-penalty`, ...) is
//!   ignored, as the protocol asks.
//! * `PLAIN` carries `authzid NUL authcid NUL password`. An empty authzid means the login itself;
//!   a non-empty authzid that differs from the login (byte for byte) is answered `FAIL` without
//!   asking the verifier ([`Verifier::refused`] is told). `LOGIN` asks for the user name, then
//!   the password; with `resp=`, the initial response is the user name.
//! * `OK` always carries `user=` (the verifier's user name: Postfix answers `535` to an `OK`
//!   without one). `FAIL` carries `user=` when a valid login is known, and `reason=` only when the
//!   verifier gave one: Postfix shows it to the SMTP client verbatim.
//! * Nothing in this crate folds case, trims or normalises logins and passwords. Mechanism names
//!   are matched ASCII case-insensitively, as Dovecot does, because Postfix forwards them as the
//!   SMTP client typed them (`AUTH plain`).
//!
//! # What closes a connection, and what does not
//!
//! Postfix keeps one auth connection per smtpd process and answers `454 4.7.0` (temporary
//! failure) when it is lost, so the server closes a connection only when it must:
//!
//! * **Protocol errors** close it, with one `warn` log line: an over-long line, a first line that
//!   is not `VERSION` (e.g. `AUTH` before `VERSION`), a major version other than 1, a missing or
//!   bad `CPID`, unknown commands, missing or extra fields, ids that are not unsigned 32-bit
//!   decimals, unsupported mechanisms, a missing `service=`, parameters after `resp=`, non-UTF-8
//!   where text is required, characters outside the base64 alphabet, duplicate ids, a `CONT` for
//!   an unknown id or for a request that is being verified. See [`ProtocolError`]. A well-behaved
//!   Postfix causes none of these.
//! * **Internal faults** close it on purpose: [`Verdict::Fault`], a verifier that panics or
//!   exceeds [`ServerConfig::verify_timeout`]. Closing is the only way to make Postfix answer
//!   `454` instead of `535`.
//! * **Bad credentials from the SMTP client** only fail the request (`FAIL`, and
//!   [`Verifier::refused`] is told why, see [`Refusal`]): data that is not decodable base64,
//!   credentials that are not UTF-8, a PLAIN message without exactly two NULs, an empty login, an
//!   over-large response. Postfix forwards the SMTP client's base64 after checking only its
//!   alphabet, so closing the connection here would let any SMTP client break the auth connection
//!   of the smtpd process serving it. Dovecot answers these with `FAIL` too.
//! * A `CONT` for a request this server recently dropped (timeout or cap, below) is answered with
//!   `FAIL`, as Dovecot does, instead of closing: it is what a person typing a LOGIN password for
//!   longer than the request timeout produces.
//!
//! # Limits, and why
//!
//! All in [`ServerConfig`]:
//!
//! | limit | default | why |
//! |---|---|---|
//! | `max_line_length` | 16 KiB | Dovecot's own limit; Postfix's SMTP line limit keeps it far below |
//! | `max_response_size` | 4 KiB decoded | plenty for login, authzid and password; larger fails the request |
//! | `max_pending_requests` | 16 per connection | Postfix has one request in flight, but a client that cancels `AUTH LOGIN` with `*` leaves a request open here that Postfix never mentions again. At the cap, the request that has waited longest for `CONT` is dropped silently (not the connection: that would give a real user `454`); while every slot is being verified, reading pauses. |
//! | `request_timeout` | 60 s | a request waiting for `CONT` longer than this is dropped silently (see above) |
//! | `handshake_timeout` | 10 s | Postfix sends `VERSION` and `CPID` together right after connecting |
//! | `idle_timeout` | none | Postfix does not reconnect when the server closed an idle connection (it answers `454`); its own `max_idle`/`max_use` end its processes and connections |
//! | `verify_timeout` | 30 s | backstop against a hung verifier (Postfix itself gives up after 10 s) |
//! | `write_timeout` | 30 s | a client that stops reading |
//!
//! Requests of one connection are processed concurrently (each verification is a tokio task), and
//! answers are written as they finish, each line in one piece, so a verifier that delays one
//! attempt (throttling) holds up neither the connection's other requests nor other connections.
//! Keep every verdict well under 10 s: Postfix answers `454` after waiting 10 s.
//!
//! # Not implemented
//!
//! Only what Postfix uses: no master/userdb interface (so the `COOKIE` is not security-relevant
//! and is generated from a non-cryptographic source unless the caller passes one), no other
//! mechanisms, no `CONT` with `*` (Postfix never sends it; it just abandons the request).

mod config;
mod error;
mod escape;
#[cfg(any(test, feature = "fuzz"))]
pub mod fuzz;
mod line;
mod mech;
mod parse;
mod server;
mod verifier;

pub use config::{ConnectionIds, ServerConfig};
pub use error::ProtocolError;
pub use escape::{tab_escape, tab_unescape};
pub use server::{resume_connection, serve_connection, serve_until_handoff, Ended};
pub use verifier::{Attempt, Mechanism, Refusal, Verdict, Verifier};
