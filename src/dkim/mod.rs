//! DKIM keys: generation, the DNS TXT record to publish, checking a published record,
//! and signing outgoing messages (RFC 6376, with Ed25519 per RFC 8463).
//!
//! Split by verb, the way mail-auth splits each protocol:
//! * [`key`]: generating key pairs, loading stored keys, deriving the public key;
//! * [`record`]: the TXT record text, its 255-byte character-strings, and whether a
//!   published record offers a given key;
//! * [`sign`](mod@sign): the signature, the header fields it covers, and the shape the
//!   submission milter hands to Postfix.
//!
//! Verifying signatures of inbound mail is [`crate::authn`]'s business. This module reads
//! no configuration: callers pass key material in and get text out; its one state is the
//! parsed keys `signer` keeps. Cryptography comes from `mail-auth` (pure-Rust `rsa` and
//! `ed25519-dalek` backends), with RSA signatures of 2048-bit keys and more made by ring.

pub mod key;
pub mod record;
pub mod sign;
mod signer;

#[cfg(test)]
mod fixtures;

pub use crate::model::DkimAlgorithm as Algorithm;
pub use crate::model::SigningKey;
pub(crate) use key::load_key;
pub use key::{generate, public_key_b64, KeyPair, RSA_BITS};
pub use record::{dns_record, record_matches, split_txt_strings, DnsRecord, TXT_STRING_MAX};
pub use sign::{milter_header, sign, SIGNED_HEADERS};

/// Errors from key handling and signing, worded for an administrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkimError {
    /// An algorithm name other than `rsa` or `ed25519`.
    #[error("unknown DKIM key algorithm {0:?} (expected \"rsa\" or \"ed25519\")")]
    UnknownAlgorithm(String),
    /// The random key generation failed (should not happen on a working system).
    #[error("could not generate a new {algorithm} DKIM key: {reason}")]
    KeyGeneration {
        /// Which kind of key.
        algorithm: Algorithm,
        /// The library's explanation.
        reason: String,
    },
    /// The stored private key bytes are not a usable key of the expected algorithm.
    #[error(
        "the {algorithm} private key for selector {selector:?} of {domain} is unusable \
         (expected {expected}): {reason}"
    )]
    BadKey {
        /// Signing domain (d=).
        domain: String,
        /// Selector (s=).
        selector: String,
        /// The algorithm the key was declared as.
        algorithm: Algorithm,
        /// The accepted encodings.
        expected: &'static str,
        /// The library's explanation.
        reason: String,
    },
    /// A domain or selector that cannot appear in a DKIM-Signature or a DNS name.
    #[error("invalid DKIM {what} {value:?}: {reason}")]
    InvalidName {
        /// `domain` or `selector`.
        what: &'static str,
        /// The offending value.
        value: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Signing failed after the key was loaded.
    #[error("DKIM signing with selector {selector:?} of {domain} failed: {reason}")]
    Signing {
        /// Signing domain (d=).
        domain: String,
        /// Selector (s=).
        selector: String,
        /// The library's explanation.
        reason: String,
    },
}
