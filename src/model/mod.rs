//! The shared vocabulary: organizations, domains, accounts, credentials, DKIM keys,
//! events and sender decisions, with the string forms they have in the store, the logs
//! and `--json`. No I/O; every other module speaks these types.

mod decision;
mod dmarc;
mod event;
mod throttle;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use decision::{Decision, Rejection, Role, Rule};
pub use dmarc::{
    DkimAuth, DmarcRow, PolicyOverride, PublishedTags, ReportUri, SentReport, SpfAuth,
};
pub use event::{AuthReason, Event, EventFilter, EventKind};
pub use throttle::{
    KnownAddress, ThrottleAttempt, ThrottleCount, ThrottleEntry, ThrottleKind, ThrottleRelease,
};

/// An enum with one fixed string form per variant: `as_str`, `parse`, `Display`,
/// `FromStr` and `Serialize` all use it, so the store, the logs and `--json` agree.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $( $(#[$vmeta])* $variant ),+ }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string form (as stored, logged and printed).
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The variant whose string form is `s` (exactly).
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::model::UnknownName;
            /// Like [`parse`](Self::parse), but ignoring case and surrounding blanks (for
            /// what people type).
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let t = s.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str().eq_ignore_ascii_case(t))
                    .ok_or_else(|| $crate::model::UnknownName {
                    what: stringify!($name),
                    value: s.to_string(),
                    expected: $name::ALL.iter().map(|v| v.as_str()).collect(),
                })
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                $name::parse(&s).ok_or_else(|| {
                    serde::de::Error::unknown_variant(&s, &[$($text),+])
                })
            }
        }
    };
}
pub(crate) use string_enum;

/// A string that names no variant of a [`string_enum!`] type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: Vec<&'static str>,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} {:?} (expected {})",
            self.what,
            self.value,
            self.expected
                .iter()
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>()
                .join(" or ")
        )
    }
}

impl std::error::Error for UnknownName {}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 3339 (UTC, seconds) of a stored time.
pub fn format_time(t: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)).to_string()
}

string_enum! {
    /// How an organization's senders are checked (DESIGN.md, "The sender rule").
    pub enum SenderCheck {
        /// Only registered accounts may send.
        Account = "account",
        /// Any address of an active domain may send; unregistered ones are reported.
        Domain = "domain",
    }
}

string_enum! {
    /// What a sender account is.
    pub enum AccountKind {
        EndUser = "end_user",
        SilentUser = "silent_user",
        Functional = "functional",
    }
}

string_enum! {
    /// A DKIM key algorithm; the string form is the `k=` tag of the DNS record.
    pub enum DkimAlgorithm {
        /// RSA (2048-bit keys generated here), signatures `a=rsa-sha256`.
        Rsa = "rsa",
        /// Ed25519 (RFC 8463), signatures `a=ed25519-sha256`.
        Ed25519 = "ed25519",
    }
}

string_enum! {
    /// Where a DKIM key is in its life: generated, signing, or no longer signing (it may
    /// stay published during the overlap of a rotation).
    pub enum DkimKeyState {
        Pending = "pending",
        Active = "active",
        Retired = "retired",
    }
}

/// An organization as `org list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Organization {
    pub name: String,
    pub sender_check: SenderCheck,
    pub created: i64,
    pub domains: i64,
    pub accounts: i64,
    pub credentials: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Domain {
    /// A-label form.
    pub name: String,
    pub organization: String,
    pub active: bool,
    pub created: i64,
    pub accounts: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub address: String,
    pub kind: AccountKind,
    pub domain: String,
    pub organization: String,
    pub domain_active: bool,
    pub created: i64,
}

/// What `credential list` shows: never a password or hash.
#[derive(Debug, Clone, Serialize)]
pub struct Credential {
    pub organization: String,
    pub label: String,
    pub username: String,
    pub created: i64,
    pub last_used: Option<i64>,
    pub last_ip: Option<String>,
    pub revoked: Option<i64>,
}

/// What the login check needs about a username.
#[derive(Debug, Clone)]
pub struct LoginRecord {
    pub credential_id: i64,
    pub organization: String,
    pub hash: String,
    pub revoked: bool,
}

/// A DKIM key as the CLI lists it: never the private key.
#[derive(Debug, Clone, Serialize)]
pub struct DkimKeyInfo {
    pub domain: String,
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// As published in DNS (`p=`), base64.
    pub public_key: String,
    pub state: DkimKeyState,
    pub created: i64,
    pub activated: Option<i64>,
    pub retired: Option<i64>,
}

/// A key to sign with: an active key with its private part. The only signing-key type.
#[derive(Clone)]
pub struct SigningKey {
    /// Signing domain (d=), e.g. `acme.example`.
    pub domain: String,
    /// Selector (s=); the public key is at `selector._domainkey.domain`.
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// Private key, PKCS#8 DER (RSA keys may also be PKCS#1 DER).
    pub private_pkcs8_der: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("private_pkcs8_der", &"<redacted>")
            .finish()
    }
}

/// A sender accepted in `domain` mode that is not a registered account.
#[derive(Debug, Clone, Serialize)]
pub struct Discovered {
    pub organization: String,
    pub address: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub messages: i64,
}

/// What the store knows about a login's organization, as far as the sender decision
/// needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub organization: String,
    pub sender_check: SenderCheck,
    /// Every domain of the organization (A-labels) with its active flag.
    pub domains: Vec<DomainFact>,
    /// The organization's accounts (at least those among the addresses being judged).
    pub accounts: Vec<AccountFact>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DomainFact {
    pub name: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccountFact {
    pub address: String,
    pub kind: AccountKind,
}

/// What the store says about a login and its organization for a sender decision.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginFacts {
    /// No credential has this username.
    Unknown,
    /// The credential exists but is revoked.
    Revoked { organization: String },
    /// A live credential: the facts of its organization.
    Live(Facts),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_forms_round_trip_and_unknown_names_say_what_is_expected() {
        for k in AccountKind::ALL {
            assert_eq!(AccountKind::parse(k.as_str()), Some(*k));
            assert_eq!(k.to_string().parse::<AccountKind>(), Ok(*k));
        }
        assert_eq!(SenderCheck::ALL.len(), 2);
        assert_eq!(DkimKeyState::parse("active"), Some(DkimKeyState::Active));
        assert_eq!(EventKind::parse("Mail"), None);
        let e = "dsa".parse::<DkimAlgorithm>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown DkimAlgorithm \"dsa\" (expected \"rsa\" or \"ed25519\")"
        );
        assert_eq!(
            serde_json::to_string(&AccountKind::SilentUser).unwrap(),
            "\"silent_user\""
        );
    }
}
