//! Where the inbound checks get their DNS answers: the configured resolver (hickory,
//! through mail-auth) in production, or a [`StaticZone`] held in memory, for tests that
//! must not depend on a DNS server.
//!
//! The seam is mail-auth's per-call caches (`Parameters::with_txt_cache` and friends): a
//! lookup first asks the cache and only goes to the resolver when the cache has no answer.
//! Every mail-auth call of [`Authenticator`](super::Authenticator) and of `dns-check` goes
//! through [`Dns::params`], which hands mail-auth a [`ZoneCache`]: empty in production
//! (every question reaches the resolver), the zone in tests (every question is answered
//! from memory). Raw TXT reads (`dns-check`) go through [`Dns::txt`].

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::{Atps, DomainKeyReport};
use mail_auth::dmarc::Dmarc;
use mail_auth::hickory_resolver::config::{
    NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::hickory_resolver::net::{DnsError as NetDnsError, NetError, NoRecords};
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::hickory_resolver::proto::rr::{Name, RData, RecordType};
use mail_auth::hickory_resolver::system_conf::read_system_conf;
use mail_auth::spf::{Macro, Spf};
use mail_auth::{
    DnsError, DnssecStatus, Error, MessageAuthenticator, Parameters, RecordSet, ResolverCache, Txt,
    MX,
};

/// Errors setting up the DNS resolver.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    /// No nameservers were given and the system configuration could not be read.
    #[error("cannot read the system DNS configuration (/etc/resolv.conf): {0}")]
    SystemConf(String),
    /// The resolver could not be set up.
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
    /// The configured Public Suffix List could not be loaded.
    #[error("{0}")]
    PublicSuffixList(String),
}

/// The DNS source of one [`Authenticator`](super::Authenticator): a mail-auth resolver and
/// the cache every call consults first. Cheap to clone.
#[derive(Clone)]
pub struct Dns {
    resolver: MessageAuthenticator,
    cache: ZoneCache,
}

impl fmt::Debug for Dns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cache.0 {
            Some(zone) => f.debug_tuple("Dns::Zone").field(zone).finish(),
            None => f.write_str("Dns::Resolver"),
        }
    }
}

impl Dns {
    /// The hickory resolver querying `nameservers` (UDP, with TCP for truncated answers),
    /// or the servers of `/etc/resolv.conf` when the list is empty. `timeout` applies to
    /// each query, which is tried once. The hosts file and search domains are not used.
    pub fn resolver(nameservers: &[SocketAddr], timeout: Duration) -> Result<Self, ResolverError> {
        let (config, mut opts) = if nameservers.is_empty() {
            let (config, opts) =
                read_system_conf().map_err(|e| ResolverError::SystemConf(e.to_string()))?;
            // Keep the servers, drop search domains: every name queried here is absolute.
            let (_, _, servers) = config.into_parts();
            (ResolverConfig::from_name_servers(servers), opts)
        } else {
            let servers = nameservers
                .iter()
                .map(|addr| {
                    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
                    for connection in &mut server.connections {
                        connection.port = addr.port();
                    }
                    server
                })
                .collect();
            (
                ResolverConfig::from_name_servers(servers),
                ResolverOpts::default(),
            )
        };
        opts.timeout = timeout;
        opts.attempts = 1;
        opts.ndots = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        let resolver = MessageAuthenticator::new(config, opts)
            .map_err(|e| ResolverError::Resolver(e.to_string()))?;
        Ok(Dns {
            resolver,
            cache: ZoneCache(None),
        })
    }

    /// Answers from `zone` only. Behind the zone sits a resolver without any server, so a
    /// question the zone leaves to it fails at once as a temporary error; nothing is sent.
    pub fn zone(zone: StaticZone) -> Self {
        let mut opts = ResolverOpts::default();
        opts.attempts = 1;
        opts.ndots = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        let resolver =
            MessageAuthenticator::new(ResolverConfig::from_name_servers(Vec::new()), opts)
                .expect("a resolver without servers needs no system resources");
        Dns {
            resolver,
            cache: ZoneCache(Some(Arc::new(zone))),
        }
    }

    /// Whether answers come from a [`StaticZone`].
    pub fn is_zone(&self) -> bool {
        self.cache.0.is_some()
    }

    /// mail-auth parameters for one call, with this source's cache for every record type.
    /// Every mail-auth verification must be called with these, or it bypasses the zone.
    #[allow(clippy::type_complexity)]
    pub(crate) fn params<P>(
        &self,
        params: P,
    ) -> Parameters<'_, P, ZoneCache, ZoneCache, ZoneCache, ZoneCache, ZoneCache> {
        Parameters::new(params)
            .with_txt_cache(&self.cache)
            .with_mx_cache(&self.cache)
            .with_ipv4_cache(&self.cache)
            .with_ipv6_cache(&self.cache)
            .with_ptr_cache(&self.cache)
    }

    /// The mail-auth authenticator to call with [`params`](Self::params).
    pub(crate) fn authenticator(&self) -> &MessageAuthenticator {
        &self.resolver
    }

    /// The TXT records at `name`, each as one string (its character-strings joined).
    /// `Ok(empty)` when the name or the records do not exist; `Err` for lookup failures.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        let fqdn = fqdn(name);
        if let Some(zone) = &self.cache.0 {
            if zone.failing.contains(fqdn.as_str()) {
                return Err(format!(
                    "DNS lookup of {name} failed: temporary failure (static zone)"
                ));
            }
            return Ok(zone.txt.get(fqdn.as_str()).cloned().unwrap_or_default());
        }
        match self.resolver.resolver().txt_lookup(fqdn.as_str()).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(format!("DNS lookup of {name} failed: {e}")),
        }
    }
}

/// Why a lookup gave no records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupFailure {
    /// The name does not exist (NXDOMAIN), or holds no record of the type asked.
    NotFound,
    /// A temporary failure: timeout, SERVFAIL, no server reachable, a CNAME loop.
    Temporary(String),
}

impl Dns {
    /// The IPv4 addresses of `name`.
    pub async fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, LookupFailure> {
        self.addresses(
            name,
            |z| &z.a,
            RecordType::A,
            |r| match r {
                RData::A(a) => Some(a.0),
                _ => None,
            },
        )
        .await
    }

    /// The IPv6 addresses of `name`.
    pub async fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, LookupFailure> {
        self.addresses(
            name,
            |z| &z.aaaa,
            RecordType::AAAA,
            |r| match r {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            },
        )
        .await
    }

    /// The records of one address type: from the zone's `table`, or those of `kind` the
    /// resolver answers, as `pick` reads them.
    async fn addresses<T: Clone>(
        &self,
        name: &str,
        table: impl FnOnce(&StaticZone) -> &HashMap<Box<str>, Vec<T>>,
        kind: RecordType,
        pick: impl Fn(RData) -> Option<T>,
    ) -> Result<Vec<T>, LookupFailure> {
        if let Some(zone) = &self.cache.0 {
            return zone.lookup(&fqdn(name), table(zone));
        }
        let answers = self.lookup(&fqdn(name), kind).await?;
        non_empty(answers.into_iter().filter_map(pick).collect())
    }

    /// The mail exchangers of `name`, lowest preference first.
    pub async fn mx_hosts(&self, name: &str) -> Result<Vec<String>, LookupFailure> {
        let mut mx: Vec<(u16, String)> = if let Some(zone) = &self.cache.0 {
            zone.lookup(&fqdn(name), &zone.mx)?
                .into_iter()
                .map(|(p, e)| (p, e.into_string()))
                .collect()
        } else {
            self.lookup(&fqdn(name), RecordType::MX)
                .await?
                .into_iter()
                .filter_map(|r| match r {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect()
        };
        mx.sort_by_key(|(p, _)| *p);
        non_empty(mx.into_iter().map(|(_, e)| e).collect())
    }

    /// The TXT records of `name`, each as one string (its character-strings joined).
    pub async fn txt_records(&self, name: &str) -> Result<Vec<String>, LookupFailure> {
        if let Some(zone) = &self.cache.0 {
            return zone.lookup(&fqdn(name), &zone.txt);
        }
        let answers = self.lookup(&fqdn(name), RecordType::TXT).await?;
        non_empty(
            answers
                .into_iter()
                .filter_map(|r| match r {
                    RData::TXT(t) => Some(
                        t.txt_data
                            .iter()
                            .map(|s| String::from_utf8_lossy(s).into_owned())
                            .collect::<String>(),
                    ),
                    _ => None,
                })
                .collect(),
        )
    }

    /// The names `ip` points back to (PTR records of its reverse name).
    pub async fn ptr_names(&self, ip: IpAddr) -> Result<Vec<String>, LookupFailure> {
        let reverse = reverse_name(ip);
        if let Some(zone) = &self.cache.0 {
            if zone.failing.contains(reverse.as_str()) {
                return Err(LookupFailure::Temporary(
                    "temporary failure (static zone)".into(),
                ));
            }
            return non_empty(
                zone.ptr
                    .get(&ip)
                    .map(|v| v.iter().map(|n| n.to_string()).collect())
                    .unwrap_or_default(),
            );
        }
        let answers = self.lookup(&reverse, RecordType::PTR).await?;
        non_empty(
            answers
                .into_iter()
                .filter_map(|r| match r {
                    RData::PTR(p) => Some(p.0.to_ascii()),
                    _ => None,
                })
                .collect(),
        )
    }

    /// The answer records of one query to the resolver.
    async fn lookup(&self, fqdn: &str, kind: RecordType) -> Result<Vec<RData>, LookupFailure> {
        // A name DNS cannot carry (a label over 63 octets, an empty label) has no records:
        // a permanent condition, never a temporary failure.
        let Ok(name) = Name::from_ascii(fqdn) else {
            return Err(LookupFailure::NotFound);
        };
        match self.resolver.resolver().lookup(name, kind).await {
            Ok(lookup) => Ok(lookup.answers().iter().map(|r| r.data.clone()).collect()),
            // NXDOMAIN, or the name exists without records of this type.
            Err(NetError::Dns(NetDnsError::NoRecordsFound(NoRecords {
                response_code: ResponseCode::NXDomain | ResponseCode::NoError,
                ..
            }))) => Err(LookupFailure::NotFound),
            // Timeouts, SERVFAIL, REFUSED, unreachable servers: try again later.
            Err(e) => Err(LookupFailure::Temporary(format!(
                "DNS lookup of {fqdn} {kind} failed: {e}"
            ))),
        }
    }
}

fn non_empty<T>(records: Vec<T>) -> Result<Vec<T>, LookupFailure> {
    if records.is_empty() {
        Err(LookupFailure::NotFound)
    } else {
        Ok(records)
    }
}

/// The reverse-lookup name of `ip` (`in-addr.arpa` or nibble `ip6.arpa`), with the dot.
fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
        }
        IpAddr::V6(v6) => {
            let mut out = String::new();
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            out.push_str("ip6.arpa.");
            out
        }
    }
}

/// DNS answers held in memory: TXT, A, AAAA, MX and PTR records, and names that fail
/// temporarily. Build one, then hand it to
/// [`Authenticator::with_zone`](super::Authenticator::with_zone).
///
/// Names are absolute and compare without regard to ASCII case; a trailing dot is
/// optional. What a lookup gets:
/// * **TXT**: the records added for the name, read the way mail-auth reads DNS (each
///   record's character-strings joined; the first record that parses as what was asked
///   for wins). A name that holds nothing at all is NXDOMAIN; a name that holds only other
///   types answers "no records".
/// * **A, AAAA, MX, PTR**: the records added, or an empty answer when there are none,
///   which SPF and DMARC's `np=` test treat exactly like NXDOMAIN (RFC 9091 counts both
///   as "does not exist"). SPF and DMARC ask through [`Dns::a`] and its siblings, which
///   tell "no records" from a temporary failure.
/// * **CNAME** ([`cname`](Self::cname)): every lookup of the alias is one of its target.
/// * A name given to [`fail`](Self::fail) answers every lookup with a temporary failure
///   (like SERVFAIL or a timeout), immediately.
///
/// Which parser a TXT record goes through follows from its name, as it does in mail-auth:
/// `_dmarc` names hold DMARC records, `_domainkey` names DKIM keys, names added with
/// [`spf_explanation`](Self::spf_explanation) SPF `exp=` texts, every other name SPF.
#[derive(Debug, Default, Clone)]
pub struct StaticZone {
    txt: HashMap<Box<str>, Vec<String>>,
    explanations: HashSet<Box<str>>,
    a: HashMap<Box<str>, Vec<Ipv4Addr>>,
    aaaa: HashMap<Box<str>, Vec<Ipv6Addr>>,
    mx: HashMap<Box<str>, Vec<(u16, Box<str>)>>,
    ptr: HashMap<IpAddr, Vec<Box<str>>>,
    failing: HashSet<Box<str>>,
    /// Aliases (CNAME): a lookup of the name is a lookup of the target.
    cname: HashMap<Box<str>, Box<str>>,
    /// Every name holding at least one record (of any type).
    names: HashSet<Box<str>>,
}

impl StaticZone {
    /// An empty zone: every name is NXDOMAIN.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a TXT record (its character-strings already joined).
    pub fn txt(&mut self, name: &str, text: &str) -> &mut Self {
        let name = self.name(name);
        self.txt.entry(name).or_default().push(text.to_string());
        self
    }

    /// Publishes a DKIM key record, e.g. from [`crate::dkim::KeyPair::dns_record`].
    pub fn dkim_key(&mut self, record: &crate::dkim::DnsRecord) -> &mut Self {
        self.txt(&record.name, &record.strings.concat())
    }

    /// Adds the TXT record an SPF `exp=` modifier points to (macro text, not a policy).
    pub fn spf_explanation(&mut self, name: &str, text: &str) -> &mut Self {
        let key = self.name(name);
        self.explanations.insert(key);
        self.txt(name, text)
    }

    /// Adds an address record: A for IPv4, AAAA for IPv6.
    pub fn address(&mut self, name: &str, ip: IpAddr) -> &mut Self {
        let name = self.name(name);
        match ip {
            IpAddr::V4(v4) => self.a.entry(name).or_default().push(v4),
            IpAddr::V6(v6) => self.aaaa.entry(name).or_default().push(v6),
        }
        self
    }

    /// Adds an MX record.
    pub fn mx(&mut self, name: &str, preference: u16, exchange: &str) -> &mut Self {
        let name = self.name(name);
        let exchange = fqdn(exchange).into_boxed_str();
        self.mx
            .entry(name)
            .or_default()
            .push((preference, exchange));
        self
    }

    /// Adds a PTR record for `ip` (its reverse name).
    pub fn ptr(&mut self, ip: IpAddr, name: &str) -> &mut Self {
        self.ptr
            .entry(ip)
            .or_default()
            .push(fqdn(name).into_boxed_str());
        self
    }

    /// Makes `name` an alias (CNAME) of `target`: every lookup of `name` follows it. A
    /// chain longer than 8 links (or a loop) is a temporary failure, as resolvers answer
    /// SERVFAIL for it.
    pub fn cname(&mut self, name: &str, target: &str) -> &mut Self {
        let name = self.name(name);
        self.cname.insert(name, fqdn(target).into_boxed_str());
        self
    }

    /// The name a lookup of `name` ends at after following aliases; `None` for a loop
    /// or a chain too long.
    pub(crate) fn canonical<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        let mut name = name;
        for _ in 0..=8 {
            match self.cname.get(name) {
                Some(target) => name = target,
                None => return Some(name),
            }
        }
        None
    }

    /// Makes every lookup of `name` (any type) a temporary failure.
    pub fn fail(&mut self, name: &str) -> &mut Self {
        let name = fqdn(name).into_boxed_str();
        self.failing.insert(name);
        self
    }

    /// The normalized name, remembered as existing.
    fn name(&mut self, name: &str) -> Box<str> {
        let name = fqdn(name).into_boxed_str();
        self.names.insert(name.clone());
        name
    }

    /// One type's records at `fqdn`, after aliases: a failing name (or alias loop) is a
    /// temporary failure, no records at all `NotFound`.
    fn lookup<T: Clone>(
        &self,
        fqdn: &str,
        map: &HashMap<Box<str>, Vec<T>>,
    ) -> Result<Vec<T>, LookupFailure> {
        let temporary = || LookupFailure::Temporary("temporary failure (static zone)".into());
        if self.failing.contains(fqdn) {
            return Err(temporary());
        }
        let name = self.canonical(fqdn).ok_or_else(temporary)?;
        if self.failing.contains(name) {
            return Err(temporary());
        }
        non_empty(map.get(name).cloned().unwrap_or_default())
    }

    fn txt_answer<Q>(&self, name: &Q) -> Txt
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.failing.contains(name) {
            return Txt::Error(temporary_failure());
        }
        let Some((key, records)) = self.txt.get_key_value(name) else {
            let code = if self.names.contains(name) {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            return Txt::Error(Error::Dns(DnsError::RecordNotFound(code)));
        };
        let key: &str = key;
        if self.explanations.contains::<str>(key) {
            parse_first::<Macro>(records)
        } else if key.starts_with("_dmarc.") || key.contains("._dmarc.") {
            parse_first::<Dmarc>(records)
        } else if key.starts_with("_report._domainkey.") {
            parse_first::<DomainKeyReport>(records)
        } else if key.contains("._domainkey.") {
            parse_first::<DomainKey>(records)
        } else if key.contains("._atps.") {
            parse_first::<Atps>(records)
        } else {
            parse_first::<Spf>(records)
        }
    }

    /// Address-like answers: `None` (left to the server-less resolver: a temporary error)
    /// for a failing name, otherwise the records, possibly none.
    fn records<Q, T: Clone>(
        &self,
        map: &HashMap<Box<str>, Vec<T>>,
        name: &Q,
    ) -> Option<RecordSet<T>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.failing.contains(name) {
            return None;
        }
        let rrset: Arc<[T]> = map
            .get(name)
            .map(|v| v.as_slice().into())
            .unwrap_or_default();
        Some(record_set(rrset))
    }

    fn mx_answer<Q>(&self, name: &Q) -> Option<RecordSet<MX>>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.failing.contains(name) {
            return None;
        }
        // Grouped by preference, lowest first, as mail-auth groups real answers.
        let mut groups: Vec<MX> = Vec::new();
        for (preference, exchange) in self.mx.get(name).into_iter().flatten() {
            match groups.iter_mut().find(|g| g.preference == *preference) {
                Some(g) => {
                    let mut exchanges = std::mem::take(&mut g.exchanges).into_vec();
                    exchanges.push(exchange.clone());
                    g.exchanges = exchanges.into_boxed_slice();
                }
                None => groups.push(MX {
                    preference: *preference,
                    exchanges: vec![exchange.clone()].into_boxed_slice(),
                }),
            }
        }
        groups.sort_unstable_by_key(|g| g.preference);
        Some(record_set(groups.into()))
    }
}

/// The cache mail-auth consults before its resolver: nothing (production) or a zone.
#[derive(Clone, Default)]
pub(crate) struct ZoneCache(Option<Arc<StaticZone>>);

/// A zone cache for answers keyed by name: `get` answers from the zone (`None`: ask the
/// resolver, which has no server in tests), `remove` the same, `insert` keeps nothing.
macro_rules! zone_cache {
    ($value:ty, |$zone:ident, $name:ident| $answer:expr) => {
        impl ResolverCache<Box<str>, $value> for ZoneCache {
            fn get<Q>(&self, $name: &Q) -> Option<$value>
            where
                Box<str>: Borrow<Q>,
                Q: Hash + Eq + ?Sized,
            {
                let $zone = self.0.as_ref()?;
                $answer
            }
            fn remove<Q>(&self, name: &Q) -> Option<$value>
            where
                Box<str>: Borrow<Q>,
                Q: Hash + Eq + ?Sized,
            {
                self.get(name)
            }
            fn insert(&self, _: Box<str>, _: $value, _: Instant) {}
        }
    };
}

zone_cache!(Txt, |zone, name| Some(zone.txt_answer(name)));
zone_cache!(RecordSet<Ipv4Addr>, |zone, name| zone
    .records(&zone.a, name));
zone_cache!(RecordSet<Ipv6Addr>, |zone, name| zone
    .records(&zone.aaaa, name));
zone_cache!(RecordSet<MX>, |zone, name| zone.mx_answer(name));

impl ResolverCache<IpAddr, RecordSet<Box<str>>> for ZoneCache {
    fn get<Q>(&self, ip: &Q) -> Option<RecordSet<Box<str>>>
    where
        IpAddr: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let zone = self.0.as_ref()?;
        let rrset: Arc<[Box<str>]> = zone
            .ptr
            .get(ip)
            .map(|v| v.as_slice().into())
            .unwrap_or_default();
        Some(record_set(rrset))
    }
    fn remove<Q>(&self, ip: &Q) -> Option<RecordSet<Box<str>>>
    where
        IpAddr: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(ip)
    }
    fn insert(&self, _: IpAddr, _: RecordSet<Box<str>>, _: Instant) {}
}

/// What mail-auth makes of a name's TXT records when asked for a `T`: the first record
/// that parses, otherwise the last parse error.
fn parse_first<T: TxtRecordParser + Into<Txt>>(records: &[String]) -> Txt {
    let mut result = Err(Error::Dns(DnsError::InvalidRecordType));
    for record in records {
        result = T::parse(record.as_bytes());
        if result.is_ok() {
            break;
        }
    }
    result.into()
}

fn temporary_failure() -> Error {
    Error::Dns(DnsError::Resolver("temporary failure (static zone)".into()))
}

fn record_set<T>(rrset: Arc<[T]>) -> RecordSet<T> {
    RecordSet {
        rrset,
        dnssec_status: DnssecStatus::Indeterminate,
    }
}

/// Lower-case (ASCII) with exactly one trailing dot, as mail-auth spells the names it
/// looks up.
fn fqdn(name: &str) -> String {
    let mut out = name.trim().trim_end_matches('.').to_ascii_lowercase();
    out.push('.');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::spf::verify::SpfParameters;
    use mail_auth::SpfResult;

    fn spf(dns: &Dns, ip: &str, sender: &str) -> SpfResult {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ip: IpAddr = ip.parse().unwrap();
        let helo = sender.rsplit_once('@').unwrap().1.to_string();
        rt.block_on(async {
            let params = SpfParameters::verify_mail_from(ip, &helo, "mx.test", sender);
            dns.authenticator()
                .verify_spf(dns.params(params))
                .await
                .result()
        })
    }

    #[test]
    fn txt_answers_follow_the_name() {
        let mut zone = StaticZone::new();
        zone.txt("Example.TEST.", "v=spf1 -all")
            .txt("example.test", "site-verification=abc")
            .txt("_dmarc.example.test", "v=DMARC1; p=reject")
            .txt("bad._domainkey.example.test", "v=DKIM1; p=###")
            .address("only-a.example.test", "192.0.2.1".parse().unwrap())
            .fail("broken.example.test");
        let cache = ZoneCache(Some(Arc::new(zone)));
        let get = |name: &str| ResolverCache::<Box<str>, Txt>::get(&cache, name).unwrap();
        assert!(matches!(get("example.test."), Txt::Spf(_)));
        assert!(matches!(get("_dmarc.example.test."), Txt::Dmarc(_)));
        assert!(matches!(get("bad._domainkey.example.test."), Txt::Error(_)));
        assert!(matches!(
            get("nowhere.example.test."),
            Txt::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NXDomain)))
        ));
        assert!(matches!(
            get("only-a.example.test."),
            Txt::Error(Error::Dns(DnsError::RecordNotFound(ResponseCode::NoError)))
        ));
        assert!(matches!(
            get("broken.example.test."),
            Txt::Error(Error::Dns(DnsError::Resolver(_)))
        ));
        // Production: no zone, every question goes to the resolver.
        assert!(ResolverCache::<Box<str>, Txt>::get(&ZoneCache(None), "example.test.").is_none());
    }

    #[test]
    fn spf_mechanisms_against_the_zone() {
        let mut zone = StaticZone::new();
        zone.txt("ip.test", "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all")
            .txt("soft.test", "v=spf1 ~all")
            .txt("a.test", "v=spf1 a mx:mx.a.test -all")
            .address("a.test", "192.0.2.10".parse().unwrap())
            .mx("mx.a.test", 10, "mail.a.test")
            .mx("mx.a.test", 20, "absent.test")
            .address("mail.a.test", "198.51.100.7".parse().unwrap())
            .txt("inc.test", "v=spf1 include:ip.test -all")
            .txt("redir.test", "v=spf1 redirect=soft.test")
            .txt("broken.test", "v=spf1 include:nowhere.test -all")
            .txt("aflaky.test", "v=spf1 a:flaky.test -all")
            .fail("flaky.test")
            .fail("down.test");
        let dns = Dns::zone(zone);
        assert_eq!(spf(&dns, "192.0.2.9", "x@ip.test"), SpfResult::Pass);
        assert_eq!(spf(&dns, "2001:db8::1", "x@ip.test"), SpfResult::Pass);
        assert_eq!(spf(&dns, "203.0.113.1", "x@ip.test"), SpfResult::Fail);
        assert_eq!(spf(&dns, "203.0.113.1", "x@soft.test"), SpfResult::SoftFail);
        assert_eq!(spf(&dns, "192.0.2.10", "x@a.test"), SpfResult::Pass);
        assert_eq!(spf(&dns, "198.51.100.7", "x@a.test"), SpfResult::Pass);
        assert_eq!(spf(&dns, "198.51.100.8", "x@a.test"), SpfResult::Fail);
        assert_eq!(spf(&dns, "192.0.2.9", "x@inc.test"), SpfResult::Pass);
        assert_eq!(spf(&dns, "192.0.2.9", "x@redir.test"), SpfResult::SoftFail);
        assert_eq!(
            spf(&dns, "192.0.2.9", "x@broken.test"),
            SpfResult::PermError
        );
        assert_eq!(spf(&dns, "192.0.2.9", "x@nowhere.test"), SpfResult::None);
        assert_eq!(spf(&dns, "192.0.2.9", "x@down.test"), SpfResult::TempError);
        let start = Instant::now();
        assert_eq!(
            spf(&dns, "192.0.2.9", "x@aflaky.test"),
            SpfResult::TempError
        );
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn resolver_lookups_tell_temporary_from_permanent() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // Nothing answers on port 9: a timeout, temporary.
            let dns = Dns::resolver(
                &["127.0.0.1:9".parse().unwrap()],
                Duration::from_millis(200),
            )
            .unwrap();
            assert!(matches!(
                dns.a("example.test").await,
                Err(LookupFailure::Temporary(_))
            ));
            // A name DNS cannot carry is answered at once, and never as temporary.
            let long = format!("{}.example.test", "a".repeat(64));
            assert_eq!(dns.txt_records(&long).await, Err(LookupFailure::NotFound));
            assert_eq!(
                dns.mx_hosts("a..example.test").await,
                Err(LookupFailure::NotFound)
            );
        });
    }

    #[test]
    fn zone_lookups_follow_aliases_and_fail_on_loops() {
        let mut zone = StaticZone::new();
        zone.cname("alias.test", "target.test")
            .address("target.test", "192.0.2.1".parse().unwrap())
            .cname("loop1.test", "loop2.test")
            .cname("loop2.test", "loop1.test")
            .fail("down.test")
            .ptr("192.0.2.1".parse().unwrap(), "target.test");
        let dns = Dns::zone(zone);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(
                dns.a("Alias.test.").await,
                Ok(vec!["192.0.2.1".parse::<Ipv4Addr>().unwrap()])
            );
            assert_eq!(dns.aaaa("alias.test").await, Err(LookupFailure::NotFound));
            assert_eq!(dns.a("nowhere.test").await, Err(LookupFailure::NotFound));
            assert!(matches!(
                dns.a("loop1.test").await,
                Err(LookupFailure::Temporary(_))
            ));
            assert!(matches!(
                dns.txt_records("down.test").await,
                Err(LookupFailure::Temporary(_))
            ));
            assert_eq!(
                dns.ptr_names("192.0.2.1".parse().unwrap()).await,
                Ok(vec!["target.test.".to_string()])
            );
        });
    }

    #[test]
    fn raw_txt_for_dns_check() {
        let mut zone = StaticZone::new();
        zone.txt("example.test", "v=spf1 -all")
            .txt("example.test", "other")
            .fail("down.test");
        let dns = Dns::zone(zone);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(
                dns.txt("EXAMPLE.test.").await.unwrap(),
                ["v=spf1 -all", "other"]
            );
            assert!(dns.txt("nowhere.test").await.unwrap().is_empty());
            assert!(dns.txt("down.test").await.is_err());
        });
        assert!(dns.is_zone());
    }
}
