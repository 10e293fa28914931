//! The configuration: a TOML file whose every key has a default (the embedded
//! `config/postwarden.toml`). Errors name the file, the line and the key.
//!
//! Each key is defined once: a field of the model below (with its type and meaning) and
//! its documented default in `config/postwarden.toml`. Loading (`load.rs`) merges the
//! user's file over that default and deserializes the result; `types.rs` holds how
//! durations, addresses and the like are written.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod load;
mod types;

pub use types::{
    DkimBodyLength, DmarcListAction, DmarcQuarantineAction, DmarcRejectAction, DnsFailureAction,
    HumanDuration, ListenAddr, LogLevel, Nameserver, SocketMode,
};

/// The documented default configuration, embedded in the binary.
pub const DEFAULT_TOML: &str = include_str!("../../config/postwarden.toml");

/// The whole configuration. Each field is one key (or table) of the file; its default
/// and its full description are in `config/postwarden.toml`, and nowhere else.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory of the database and the Unix sockets (relative paths start there).
    pub data_dir: PathBuf,
    /// Log level of the daemon, unless RUST_LOG is set.
    pub log_level: LogLevel,
    /// Largest message (MiB) the milters keep in memory.
    pub max_message_mib: u32,
    /// How long open milter sessions may finish when the daemon stops.
    pub drain_timeout: HumanDuration,
    /// `[store]`: the SQLite database.
    pub store: StoreConfig,
    /// `[password_hash]`: argon2id parameters for new credentials.
    pub password_hash: PasswordHashConfig,
    /// `[sockets]`: permissions of the Unix sockets postwarden creates.
    pub sockets: SocketsConfig,
    /// `[auth]`: the Dovecot-protocol SASL service.
    pub auth: AuthConfig,
    /// `[submission]`: the submission milter.
    pub submission: SubmissionConfig,
    /// `[inbound]`: the inbound (port 25) milter.
    pub inbound: InboundConfig,
    /// `[dns]`: the resolver of the SPF, DKIM and DMARC checks.
    pub dns: DnsConfig,
    /// `[dmarc_reports]`: DMARC aggregate reports to the domains that ask for them.
    pub dmarc_reports: DmarcReportsConfig,
}

/// `[dmarc_reports]`: DMARC aggregate reports (RFC 7489 section 7.2).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DmarcReportsConfig {
    /// Keep the DMARC results of inbound mail and let `postwarden dmarc report` send them.
    pub enabled: bool,
    /// The reporting organization's name (`<org_name>` of the report, the Subject).
    pub org_name: String,
    /// The reports' From address and the report's `<email>`; required when enabled.
    pub email: String,
    /// More contact information for the report's `<extra_contact_info>`; empty: none.
    pub extra_contact_info: String,
    /// Postfix's sendmail, which submits the reports.
    pub sendmail: PathBuf,
    /// Days DMARC results are kept (`postwarden dmarc report` removes older ones).
    pub keep_days: u32,
}

/// `[inbound]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// Where the inbound milter listens.
    pub listen: ListenAddr,
    /// Milter connections open at once at most; further ones wait for a free slot.
    pub max_connections: u32,
    /// How long a milter connection may stay silent before it is closed.
    pub idle_timeout: HumanDuration,
    /// The authserv-id of the Authentication-Results header; empty: the host name.
    pub authserv_id: String,
    /// What a DNS temporary failure during the checks leads to.
    pub dns_failure: DnsFailureAction,
    /// What a DMARC failure under p=reject leads to.
    pub dmarc_reject: DmarcRejectAction,
    /// What a DMARC failure under p=quarantine leads to.
    pub dmarc_quarantine: DmarcQuarantineAction,
    /// What a mailing-list message (with `List-Id`) failing DMARC under p=reject leads to.
    pub dmarc_reject_list: DmarcListAction,
    /// ARC sealers (domains, the `d=` of the newest ARC-Seal) whose passing chain saying
    /// the original DMARC passed lets a message that now fails DMARC through.
    pub arc_trusted_sealers: Vec<String>,
    /// What a DKIM signature with a body length limit (`l=`) counts as: verified, or
    /// neutral by local policy.
    pub dkim_body_length: DkimBodyLength,
    /// The Public Suffix List file for DMARC's organizational domains; the built-in copy
    /// when it does not exist.
    pub public_suffix_list: PathBuf,
    /// ARC sealing: the signing domain (`d=`); empty: inbound mail is not sealed.
    pub arc_seal_domain: String,
    /// ARC sealing: the selector (`s=`) whose `_domainkey` record publishes the key.
    pub arc_seal_selector: String,
    /// ARC sealing: the RSA private key file (PEM or DER; relative: in the data
    /// directory).
    pub arc_seal_key: PathBuf,
}

/// `[dns]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DnsConfig {
    /// Nameservers to ask; empty: the system's resolvers.
    pub nameservers: Vec<Nameserver>,
    /// How long one query may take before it counts as a temporary failure.
    pub timeout: HumanDuration,
    /// This gateway's outbound addresses, which customer SPF records must cover.
    pub outbound_addresses: Vec<IpAddr>,
}

/// `[sockets]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SocketsConfig {
    /// Permission bits of the Unix sockets.
    pub mode: SocketMode,
    /// Group of the Unix sockets; empty: the daemon's own group.
    pub group: String,
}

/// `[submission]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubmissionConfig {
    /// Where the submission milter listens.
    pub listen: ListenAddr,
    /// Milter connections open at once at most; further ones wait for a free slot.
    pub max_connections: u32,
    /// How long a milter connection may stay silent before it is closed.
    pub idle_timeout: HumanDuration,
}

/// `[store]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite database (relative: in the data directory).
    pub path: PathBuf,
    /// How long a query waits for another process's lock before it counts as a fault.
    pub busy_timeout: HumanDuration,
    /// How long events are kept; zero keeps them forever.
    pub event_retention: HumanDuration,
    /// Largest size (MiB) of the event journal, where the daemon keeps the events the
    /// store cannot take (`<path>.event-journal`); past it new events are refused.
    pub journal_max_mib: u32,
}

/// `[password_hash]`: argon2id parameters for new credentials.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PasswordHashConfig {
    /// Memory per hash, in KiB.
    pub memory_kib: u32,
    /// Passes over that memory.
    pub iterations: u32,
    /// Lanes (threads) per hash.
    pub parallelism: u32,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Where the SASL service listens.
    pub listen: ListenAddr,
    /// Whether to accept logins Postfix did not mark as protected by TLS.
    pub allow_plaintext: bool,
    /// How many password checks run at once; 0: one per CPU core.
    pub max_parallel_hashes: u32,
    /// Auth connections open at once at most; further ones are closed at once.
    pub max_connections: u32,
    /// How long an auth connection without a request may stay silent before it is closed.
    pub idle_timeout: HumanDuration,
    /// Usernames whose lately verified password is remembered (0: off).
    pub login_cache_entries: u32,
    /// How long a remembered verification counts.
    pub login_cache_ttl: HumanDuration,
    /// `[auth.throttle]`: brute-force protection.
    pub throttle: ThrottleConfig,
}

/// `[auth.throttle]`: brute-force protection, per client address and per username.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    /// How long failures are counted (from the last one).
    pub window: HumanDuration,
    /// Failures answered without delay.
    pub free_failures: u32,
    /// Delay of the first delayed failure; doubled for each further one.
    pub delay: HumanDuration,
    /// The longest delay (at most 8s).
    pub max_delay: HumanDuration,
    /// Attempts from one client address per window whose password is checked; later
    /// ones fail unchecked. 0: never.
    pub block_after: u32,
    /// Attempts for one username per window, from addresses it has not logged in from,
    /// whose password is checked; later ones from such addresses fail unchecked. 0: never.
    pub user_budget: u32,
    /// How long an address a username logged in from stays exempt from that username's
    /// budget.
    pub known_address_ttl: HumanDuration,
}

/// A configuration error, already phrased for the administrator.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    fn validate(&self, origin: &str, text: &str) -> Result<(), ConfigError> {
        let err = |key: &str, msg: String| {
            let line = load::key_line(text, key)
                .map(|n| format!("line {n}: "))
                .unwrap_or_default();
            Err(ConfigError(format!("{origin}: {line}key `{key}`: {msg}")))
        };
        let ph = &self.password_hash;
        if ph.memory_kib < 8 * ph.parallelism.max(1) {
            return err(
                "password_hash.memory_kib",
                format!(
                    "{} is too small (argon2 needs at least 8 KiB per lane)",
                    ph.memory_kib
                ),
            );
        }
        if ph.iterations == 0 {
            return err("password_hash.iterations", "must be at least 1".into());
        }
        if ph.parallelism == 0 || ph.parallelism > 64 {
            return err(
                "password_hash.parallelism",
                "must be between 1 and 64".into(),
            );
        }
        if self.store.busy_timeout.0 > Duration::from_secs(60) {
            return err(
                "store.busy_timeout",
                "must be at most 60s (a longer wait would outlast Postfix's timeouts)".into(),
            );
        }
        let th = &self.auth.throttle;
        if th.max_delay.0 > Duration::from_secs(8) {
            return err(
                "auth.throttle.max_delay",
                "must be at most 8s (Postfix answers 454 to everyone after 10s)".into(),
            );
        }
        if th.delay.0 > th.max_delay.0 {
            return err(
                "auth.throttle.delay",
                "must not exceed auth.throttle.max_delay".into(),
            );
        }
        if th.window.0.is_zero() {
            return err("auth.throttle.window", "must be longer than 0s".into());
        }
        if th.known_address_ttl.0 < Duration::from_secs(1) {
            return err(
                "auth.throttle.known_address_ttl",
                "must be at least 1s (the real user's addresses keep logging in while their username is under attack)".into(),
            );
        }
        if self.dns.timeout.0.is_zero() || self.dns.timeout.0 > Duration::from_secs(10) {
            return err(
                "dns.timeout",
                "must be between 1ms and 10s (Postfix gives a milter step 30s)".into(),
            );
        }
        if self.store.journal_max_mib == 0 || self.store.journal_max_mib > 65536 {
            return err(
                "store.journal_max_mib",
                "must be between 1 and 65536".into(),
            );
        }
        if self.drain_timeout.0 > Duration::from_secs(25) {
            return err(
                "drain_timeout",
                "must be at most 25s: while the daemon drains, Postfix's new milter \
                 connections wait for the next process, and Postfix gives up after 30s \
                 (milter_command_timeout)"
                    .into(),
            );
        }
        if self.max_message_mib == 0 || self.max_message_mib > 1024 {
            return err("max_message_mib", "must be between 1 and 1024".into());
        }
        if self
            .inbound
            .authserv_id
            .contains(|c: char| c.is_whitespace() || c == ';')
        {
            return err(
                "inbound.authserv_id",
                "must be one token (no spaces or ';')".into(),
            );
        }
        if self.store.path.as_os_str().is_empty() {
            return err("store.path", "must not be empty".into());
        }
        let dr = &self.dmarc_reports;
        if dr.enabled && dr.org_name.trim().is_empty() {
            return err(
                "dmarc_reports.org_name",
                "must be set when dmarc_reports.enabled = true (the name receivers see as the report's sender, e.g. \"Example Mail\")".into(),
            );
        }
        if dr.enabled && dr.email.trim().is_empty() {
            return err(
                "dmarc_reports.email",
                "must be set when dmarc_reports.enabled = true (the reports' From address, e.g. \"dmarc-reports@example.net\")".into(),
            );
        }
        if !dr.email.is_empty()
            && (dr
                .email
                .contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
                || !dr.email.contains('@'))
        {
            return err(
                "dmarc_reports.email",
                format!(
                    "{:?} is not a plain address like dmarc-reports@example.net",
                    dr.email
                ),
            );
        }
        if dr.keep_days == 0 {
            return err("dmarc_reports.keep_days", "must be at least 1".into());
        }
        if dr.sendmail.as_os_str().is_empty() {
            return err("dmarc_reports.sendmail", "must not be empty".into());
        }
        if self.data_dir.as_os_str().is_empty() {
            return err("data_dir", "must not be empty".into());
        }
        Ok(())
    }

    /// What only the machine can tell, for `run` and `check-config`: the listeners are
    /// distinct and bindable in form (Unix paths within the kernel's 107 bytes), and the
    /// socket group exists. Messages name the key.
    pub fn check_listeners(&self, origin: &str) -> Result<(), ConfigError> {
        let listeners = [
            ("auth.listen", self.resolve(&self.auth.listen)),
            ("submission.listen", self.resolve(&self.submission.listen)),
            ("inbound.listen", self.resolve(&self.inbound.listen)),
        ];
        for (i, (key, addr)) in listeners.iter().enumerate() {
            if let ListenAddr::Unix(p) = addr {
                let len = p.as_os_str().len();
                if len > 107 {
                    return Err(ConfigError(format!(
                        "{origin}: key `{key}`: socket path {} is {len} bytes; Unix sockets allow 107 \
                         (use a shorter data_dir or an absolute path)",
                        p.display()
                    )));
                }
            }
            for (other, addr2) in &listeners[..i] {
                if addr == addr2 {
                    return Err(ConfigError(format!(
                        "{origin}: key `{key}`: {addr} is also `{other}`; each listener needs its own address"
                    )));
                }
            }
        }
        if !self.sockets.group.is_empty() && group_id(&self.sockets.group).is_none() {
            return Err(ConfigError(format!(
                "{origin}: key `sockets.group`: no group named {:?} on this machine",
                self.sockets.group
            )));
        }
        if let Err(e) = crate::authn::ArcSealer::from_config(self) {
            return Err(ConfigError(format!("{origin}: {e}")));
        }
        if let Err(e) = crate::authn::PublicSuffixes::load(&self.inbound.public_suffix_list) {
            return Err(ConfigError(format!(
                "{origin}: key `inbound.public_suffix_list`: {e}"
            )));
        }
        Ok(())
    }

    /// `max_message_mib` in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_mib as usize * 1024 * 1024
    }

    /// The database path, resolved against the data directory.
    pub fn store_path(&self) -> PathBuf {
        self.data_dir.join(&self.store.path)
    }

    /// The event journal: beside the store, named after it.
    pub fn event_journal_path(&self) -> PathBuf {
        let mut p = self.store_path().into_os_string();
        p.push(".event-journal");
        PathBuf::from(p)
    }

    /// `store.journal_max_mib` in bytes.
    pub fn journal_max_bytes(&self) -> u64 {
        u64::from(self.store.journal_max_mib) * 1024 * 1024
    }

    /// A listener path resolved against the data directory.
    pub fn resolve(&self, addr: &ListenAddr) -> ListenAddr {
        match addr {
            ListenAddr::Unix(p) => ListenAddr::Unix(self.data_dir.join(p)),
            other => other.clone(),
        }
    }

    /// The effective configuration as TOML (for `check-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("the configuration serializes")
    }
}

/// The numeric id of a group: a number, or a name in /etc/group.
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(gid) = name.parse::<u32>() {
        return Some(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name))
            .then(|| f.nth(1).and_then(|g| g.parse().ok()))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::parse(text, "test.toml").unwrap_err().0
    }

    #[test]
    fn default_is_valid_and_documented() {
        let cfg = Config::default_config();
        assert_eq!(cfg.data_dir, PathBuf::from("postwarden-data"));
        assert_eq!(cfg.password_hash.memory_kib, 19456);
        assert_eq!(cfg.password_hash.iterations, 2);
        assert_eq!(cfg.password_hash.parallelism, 1);
        assert_eq!(cfg.store.busy_timeout.0, Duration::from_secs(5));
        assert_eq!(cfg.auth.listen, ListenAddr::Unix("auth".into()));
        // Every key that exists in the model appears in the documented default with a comment above it.
        for line in DEFAULT_TOML.lines() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') || l.starts_with('[') {
                continue;
            }
            let key = l.split('=').next().unwrap().trim();
            let pos = DEFAULT_TOML.find(line).unwrap();
            let prev = DEFAULT_TOML[..pos].trim_end().lines().last().unwrap_or("");
            assert!(
                prev.trim_start().starts_with('#'),
                "key {key} has no comment above it"
            );
        }
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(Config::parse("", "x").unwrap(), Config::default_config());
    }

    #[test]
    fn partial_file_overrides_only_its_keys() {
        let cfg = Config::parse("[store]\nbusy_timeout = \"250ms\"\n", "x").unwrap();
        assert_eq!(cfg.store.busy_timeout.0, Duration::from_millis(250));
        assert_eq!(cfg.store.path, PathBuf::from("postwarden.db"));
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("log_level = \"info\"\n[store]\nbusy_timout = \"5s\"\n");
        assert!(e.starts_with("test.toml: line 3"), "{e}");
        assert!(e.contains("busy_timout"), "{e}");
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let e = err("[password_hash]\nmemory_kib = \"lots\"\n");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("password_hash.memory_kib"), "{e}");
        assert!(e.contains("invalid type"), "{e}");
    }

    #[test]
    fn bad_duration() {
        let e = err("[store]\nbusy_timeout = \"5 parsecs\"\n");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("store.busy_timeout"), "{e}");
        assert!(e.contains("invalid duration \"5 parsecs\""), "{e}");
    }

    #[test]
    fn bad_address() {
        let e = err("[auth]\nlisten = \"inet:localhost:99\"\n");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("auth.listen"), "{e}");
        assert!(e.contains("invalid address"), "{e}");
        let e = err("[auth]\nlisten = \"/run/auth\"\n");
        assert!(
            e.contains("expected \"unix:PATH\" or \"inet:IP:PORT\""),
            "{e}"
        );
        let e = err("[auth]\nlisten = \"inet:127.0.0.1:99999\"\n");
        assert!(e.contains("invalid address"), "{e}");
    }

    #[test]
    fn addresses_parse() {
        assert_eq!(
            "inet:127.0.0.1:12345".parse::<ListenAddr>().unwrap(),
            ListenAddr::Inet("127.0.0.1:12345".parse().unwrap())
        );
        assert_eq!(
            "inet:[::1]:25".parse::<ListenAddr>().unwrap(),
            ListenAddr::Inet("[::1]:25".parse().unwrap())
        );
        assert_eq!(
            "inet:::1:25".parse::<ListenAddr>().unwrap(),
            ListenAddr::Inet("[::1]:25".parse().unwrap())
        );
    }

    #[test]
    fn bad_mode_and_log_level() {
        let e = err("[sockets]\nmode = \"0999\"\n");
        assert!(e.contains("sockets.mode") && e.contains("octal"), "{e}");
        let e = err("log_level = \"loud\"\n");
        assert!(
            e.contains("log_level") && e.contains("unknown variant"),
            "{e}"
        );
    }

    #[test]
    fn syntax_error_has_line() {
        let e = err("[store\n");
        assert!(e.starts_with("test.toml: line 1"), "{e}");
    }

    #[test]
    fn semantic_checks_name_the_key() {
        let e = err("[password_hash]\niterations = 0\n");
        assert_eq!(
            e,
            "test.toml: line 2: key `password_hash.iterations`: must be at least 1"
        );
        let e = err("[store]\nbusy_timeout = \"2min\"\n");
        assert!(e.contains("store.busy_timeout"), "{e}");
    }

    #[test]
    fn nested_sections_merge_and_validate() {
        let cfg = Config::parse("[auth.throttle]\nblock_after = 5\n", "x").unwrap();
        assert_eq!(cfg.auth.throttle.block_after, 5);
        assert_eq!(cfg.auth.throttle.free_failures, 3);
        let e = err("[auth.throttle]\nmax_delay = \"9s\"\n");
        assert_eq!(
            e,
            "test.toml: line 2: key `auth.throttle.max_delay`: must be at most 8s (Postfix answers 454 to everyone after 10s)"
        );
        assert_eq!(cfg.auth.throttle.user_budget, 50);
        assert_eq!(
            cfg.auth.throttle.known_address_ttl.0,
            Duration::from_secs(30 * 86_400)
        );
        let e = err("[auth.throttle]\nknown_address_ttl = \"0s\"\n");
        assert!(e.contains("auth.throttle.known_address_ttl"), "{e}");
        let e = err("[auth.throttle]\nwindow = 5\n");
        assert!(
            e.contains("auth.throttle.window") && e.contains("line 2"),
            "{e}"
        );
    }

    #[test]
    fn dns_and_inbound_keys() {
        let cfg = Config::parse("[dns]\nnameservers = [\"127.0.0.1:5353\", \"::1\"]\n[inbound]\ndmarc_quarantine = \"header\"\n", "x").unwrap();
        assert_eq!(cfg.dns.nameservers[0].0, "127.0.0.1:5353".parse().unwrap());
        assert_eq!(cfg.dns.nameservers[1].0, "[::1]:53".parse().unwrap());
        assert_eq!(cfg.inbound.dmarc_quarantine, DmarcQuarantineAction::Header);
        assert_eq!(cfg.inbound.dkim_body_length, DkimBodyLength::Verify);
        assert_eq!(cfg.inbound.dmarc_reject_list, DmarcListAction::Hold);
        let e = err("[inbound]\ndmarc_reject_list = \"drop\"\n");
        assert!(e.contains("inbound.dmarc_reject_list"), "{e}");
        let cfg = Config::parse("[inbound]\ndkim_body_length = \"neutral\"\n", "x").unwrap();
        assert_eq!(cfg.inbound.dkim_body_length, DkimBodyLength::Neutral);
        let e = err("[inbound]\ndkim_body_length = \"ignore\"\n");
        assert!(e.contains("inbound.dkim_body_length"), "{e}");
        let e = err("[dns]\nnameservers = [\"dns.example\"]\n");
        assert!(
            e.contains("line 2")
                && e.contains("dns.nameservers")
                && e.contains("invalid nameserver"),
            "{e}"
        );
        let e = err("[inbound]\ndmarc_reject = \"bounce\"\n");
        assert!(
            e.contains("inbound.dmarc_reject") && e.contains("unknown variant"),
            "{e}"
        );
        let e = err("[dns]\ntimeout = \"1min\"\n");
        assert!(e.contains("dns.timeout"), "{e}");
    }

    #[test]
    fn dmarc_reports_need_a_name_and_an_address_when_enabled() {
        let cfg = Config::default_config();
        assert!(!cfg.dmarc_reports.enabled);
        assert_eq!(cfg.dmarc_reports.keep_days, 14);
        assert_eq!(
            cfg.dmarc_reports.sendmail,
            PathBuf::from("/usr/sbin/sendmail")
        );
        let e = err("[dmarc_reports]\nenabled = true\n");
        assert!(
            e.contains("dmarc_reports.org_name") && e.contains("must be set"),
            "{e}"
        );
        let e = err("[dmarc_reports]\nenabled = true\norg_name = \"Example\"\n");
        assert!(
            e.contains("dmarc_reports.email") && e.contains("must be set"),
            "{e}"
        );
        let e = err("[dmarc_reports]\nemail = \"Reports <r@x.example>\"\n");
        assert!(
            e.contains("dmarc_reports.email") && e.contains("plain address"),
            "{e}"
        );
        let cfg = Config::parse(
            "[dmarc_reports]\nenabled = true\norg_name = \"Example\"\nemail = \"r@x.example\"\n",
            "x",
        )
        .unwrap();
        assert!(cfg.dmarc_reports.enabled);
    }

    #[test]
    fn durations_print_in_whole_units() {
        for (text, shown) in [
            ("90days", "90days"),
            ("15min", "15min"),
            ("500ms", "500ms"),
            ("2h", "2h"),
            ("0s", "0ms"),
            ("36h", "36h"),
            ("1day 1h", "25h"),
        ] {
            let d = HumanDuration(humantime::parse_duration(text).unwrap());
            assert_eq!(d.to_string(), shown, "{text}");
            assert_eq!(humantime::parse_duration(&d.to_string()).unwrap(), d.0);
        }
    }

    #[test]
    fn effective_config_round_trips() {
        let cfg = Config::default_config();
        let again = Config::parse(&cfg.to_toml(), "x").unwrap();
        assert_eq!(cfg, again);
    }
}
