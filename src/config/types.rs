//! The value types of the configuration: how a duration, an address, a socket mode, a
//! nameserver, a log level or an action is written in the TOML file.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DnsFailureAction {
    Tempfail,
    Accept,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DmarcRejectAction {
    Reject,
    Quarantine,
    Accept,
}

/// `inbound.dmarc_reject_list`: what a message from a mailing list (it has a `List-Id`
/// field) that fails DMARC under `p=reject` gets. Lists change the subject or the body
/// and resend from their own server, so their mail fails the author's DMARC through no
/// fault of the author; holding it lets an operator release it.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DmarcListAction {
    /// 550 5.7.1, like any other message.
    Reject,
    /// Postfix's hold queue.
    Hold,
    /// Delivered with an X-Postwarden-Quarantine header.
    Header,
    /// Delivered, marked only in Authentication-Results and the event.
    Accept,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DmarcQuarantineAction {
    Hold,
    Header,
    Accept,
}

/// `inbound.dkim_body_length`: what a DKIM signature with a body length limit (`l=`,
/// which leaves whatever follows the signed part of the body unsigned) counts as.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DkimBodyLength {
    /// Verified as RFC 6376 says: the first `l=` octets of the canonicalized body; a
    /// pass counts like any other (content after the signed part is noted in the
    /// Authentication-Results comment).
    #[default]
    Verify,
    /// Not accepted: reported as `neutral` (with the signature's `header.d`/`header.s`),
    /// so it never counts for DMARC.
    Neutral,
}

/// A nameserver: "IP" (port 53) or "IP:PORT".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nameserver(pub SocketAddr);

impl<'de> Deserialize<'de> for Nameserver {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Nameserver(SocketAddr::new(ip, 53)));
        }
        parse_socket_addr(&s).map(Nameserver).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "invalid nameserver {s:?}: expected \"IP\" or \"IP:PORT\" with a numeric IP"
            ))
        })
    }
}

impl Serialize for Nameserver {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

/// A duration written the human way ("5s", "10min", "90days").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(HumanDuration).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?}: {e} (write e.g. \"500ms\", \"5s\", \"10min\", \"1h\", \"90days\")"
            ))
        })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl fmt::Display for HumanDuration {
    /// The largest whole unit, as an administrator writes it ("90days", "15min", "500ms"),
    /// rather than humantime's calendar split ("2months 29days 2h 52m 48s").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, size) in [
            ("days", 86_400_000),
            ("h", 3_600_000),
            ("min", 60_000),
            ("s", 1_000),
        ] {
            if ms > 0 && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        if self.0.subsec_nanos().is_multiple_of(1_000_000) {
            write!(f, "{ms}ms")
        } else {
            write!(f, "{}", humantime::format_duration(self.0))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// Where a listener binds: a Unix socket path or a TCP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(PathBuf),
    Inet(SocketAddr),
}

impl FromStr for ListenAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("invalid address {s:?}: the unix: path is empty"));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("inet:") {
            return parse_socket_addr(rest)
                .map(ListenAddr::Inet)
                .ok_or_else(|| {
                    format!(
                        "invalid address {s:?}: expected inet:IP:PORT with a numeric IP, e.g. \"inet:127.0.0.1:12345\" or \"inet:[::1]:12345\""
                    )
                });
        }
        Err(format!(
            "invalid address {s:?}: expected \"unix:PATH\" or \"inet:IP:PORT\""
        ))
    }
}

fn parse_socket_addr(s: &str) -> Option<SocketAddr> {
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa);
    }
    // Postfix writes IPv6 without brackets in some places: inet:::1:12345.
    let (host, port) = s.rsplit_once(':')?;
    let ip: IpAddr = host.parse().ok()?;
    let port: u16 = port.parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            ListenAddr::Inet(sa) => write!(f, "inet:{sa}"),
        }
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for ListenAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Unix permission bits written in octal ("0660").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketMode(pub u32);

impl<'de> Deserialize<'de> for SocketMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match u32::from_str_radix(&s, 8) {
            Ok(m) if m <= 0o777 && !s.is_empty() => Ok(SocketMode(m)),
            _ => Err(serde::de::Error::custom(format!(
                "invalid mode {s:?}: expected octal permission bits such as \"0660\""
            ))),
        }
    }
}

impl Serialize for SocketMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", self.0))
    }
}
