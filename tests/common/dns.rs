//! A real DNS server on loopback for tests: Debian's dnsmasq (package dnsmasq-base),
//! started as a child process on 127.0.0.1 and a free port, answering only from the
//! records a test gives it.
//!
//! * TXT records may carry several character-strings (a 2048-bit RSA DKIM key needs
//!   two); they go through a generated configuration file, whose parser honours quotes
//!   (on the command line dnsmasq would keep the quotes and split at every comma).
//! * Every other name under the records' top-level domains (and the reverse trees) is
//!   NXDOMAIN (`local=/tld/`); names elsewhere are REFUSED. Nothing is forwarded.
//! * Readiness is checked with a hand-built UDP query, not a sleep.
//! * [`DnsServer::stop`] (and drop) sends SIGTERM to the child's PID, waits, and only
//!   then kills it if it is still there.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs dnsmasq.
pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// Whether the DNS tests can run. When dnsmasq is missing they are skipped with a
/// `SKIPPED:` message, except under `CI=true` or `POSTWARDEN_E2E_REQUIRED=true`, where a
/// missing component is a failure.
pub fn dnsmasq_available() -> bool {
    if Path::new(DNSMASQ).exists() {
        return true;
    }
    let required = std::env::var("POSTWARDEN_E2E_REQUIRED").is_ok_and(|v| v == "true")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    let msg = format!("DNS tests need {DNSMASQ} (Debian package dnsmasq-base)");
    if required {
        panic!("{msg} (CI=true: a missing component fails the run)");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// A record to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A TXT record made of these character-strings (each at most 255 bytes).
    Txt { name: String, strings: Vec<String> },
    /// An A record.
    A { name: String, addr: Ipv4Addr },
}

impl Record {
    /// A TXT record; `value` is cut into 255-byte character-strings if longer.
    pub fn txt(name: &str, value: &str) -> Record {
        let mut strings = Vec::new();
        let mut rest = value;
        while rest.len() > 255 {
            let mut cut = 255;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            strings.push(rest[..cut].to_string());
            rest = &rest[cut..];
        }
        strings.push(rest.to_string());
        Record::Txt {
            name: name.to_string(),
            strings,
        }
    }

    /// A TXT record with exactly these character-strings.
    pub fn txt_strings(name: &str, strings: &[String]) -> Record {
        Record::Txt {
            name: name.to_string(),
            strings: strings.to_vec(),
        }
    }

    /// An A record.
    pub fn a(name: &str, addr: Ipv4Addr) -> Record {
        Record::A {
            name: name.to_string(),
            addr,
        }
    }

    fn name(&self) -> &str {
        match self {
            Record::Txt { name, .. } | Record::A { name, .. } => name,
        }
    }
}

/// A running dnsmasq.
pub struct DnsServer {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl DnsServer {
    /// Starts dnsmasq serving `records`, with its configuration and query log in `dir`.
    /// Retries with another port if the chosen one was taken meanwhile.
    pub fn start(dir: &Path, records: &[Record]) -> Result<DnsServer, String> {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            match Self::start_on(dir, port, records) {
                Ok(server) => return Ok(server),
                Err(e) => last_error = e,
            }
        }
        Err(format!("dnsmasq did not start: {last_error}"))
    }

    pub fn start_on(dir: &Path, port: u16, records: &[Record]) -> Result<DnsServer, String> {
        let conf = dir.join(format!("dnsmasq-{port}.conf"));
        let log = dir.join(format!("dnsmasq-{port}.log"));
        std::fs::write(&conf, config(port, &log, records)?)
            .map_err(|e| format!("writing {}: {e}", conf.display()))?;
        let mut cmd = Command::new(DNSMASQ);
        cmd.arg(format!("--conf-file={}", conf.display()));
        if is_root() {
            // As root dnsmasq would switch to "nobody", which may not write the log.
            cmd.arg("--user=root");
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(|e| format!("spawning {DNSMASQ}: {e}"))?;
        let mut server = DnsServer {
            child: Some(child),
            port,
            log,
        };
        server.wait_ready(Duration::from_secs(10))?;
        Ok(server)
    }

    /// Polls with UDP queries until dnsmasq answers, or fails if it exited.
    fn wait_ready(&mut self, limit: Duration) -> Result<(), String> {
        let start = Instant::now();
        let mut id: u16 = 0x5a00;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut stderr = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut stderr);
                    }
                    self.child = None;
                    return Err(format!(
                        "dnsmasq exited with {status}: {} {}",
                        stderr.trim(),
                        self.log()
                    ));
                }
            }
            id = id.wrapping_add(1);
            if query(self.addr(), "ready.dns-harness.invalid", 1, id).is_some() {
                return Ok(());
            }
            if start.elapsed() > limit {
                self.stop();
                return Err(format!("dnsmasq did not answer within {limit:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The UDP/TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), self.port)
    }

    /// The query log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops dnsmasq: SIGTERM to its PID, up to 5 s to exit, then SIGKILL. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The dnsmasq configuration file for these records.
fn config(port: u16, log: &Path, records: &[Record]) -> Result<String, String> {
    let mut c = String::new();
    let _ = writeln!(c, "port={port}");
    c.push_str("listen-address=127.0.0.1\n");
    c.push_str("bind-interfaces\n");
    c.push_str("no-resolv\n");
    c.push_str("no-hosts\n");
    c.push_str("no-poll\n");
    c.push_str("keep-in-foreground\n");
    c.push_str("pid-file=\n");
    c.push_str("log-queries\n");
    let _ = writeln!(c, "log-facility={}", log.display());
    c.push_str(&record_lines(records)?);
    Ok(c)
}

/// The lines of a dnsmasq configuration that answer `records` and nothing else in their
/// top-level domains (`local=`), after checking names and TXT strings.
pub fn record_lines(records: &[Record]) -> Result<String, String> {
    let mut c = String::new();
    let mut tlds = vec!["in-addr.arpa".to_string(), "ip6.arpa".to_string()];
    for r in records {
        let name = r.name().trim_end_matches('.');
        check_name(name)?;
        if let Some(tld) = name.rsplit('.').next() {
            let tld = tld.to_ascii_lowercase();
            if !tlds.contains(&tld) {
                tlds.push(tld);
            }
        }
    }
    for tld in &tlds {
        let _ = writeln!(c, "local=/{tld}/");
    }
    for r in records {
        match r {
            Record::Txt { name, strings } => {
                let _ = write!(c, "txt-record={}", name.trim_end_matches('.'));
                for s in strings {
                    if s.len() > 255 {
                        return Err(format!("TXT character-string over 255 bytes for {name}"));
                    }
                    if s.chars().any(|ch| ch.is_control()) {
                        return Err(format!("control character in TXT data for {name}"));
                    }
                    c.push_str(",\"");
                    for ch in s.chars() {
                        if ch == '"' || ch == '\\' {
                            c.push('\\');
                        }
                        c.push(ch);
                    }
                    c.push('"');
                }
                c.push('\n');
            }
            Record::A { name, addr } => {
                let _ = writeln!(c, "host-record={},{addr}", name.trim_end_matches('.'));
            }
        }
    }
    Ok(c)
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!("unsupported DNS name {name:?}"))
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (bound and released; dnsmasq binds it
/// right after, and [`DnsServer::start`] retries on a clash).
fn free_port() -> Result<u16, String> {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = udp.local_addr().map_err(|e| e.to_string())?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no free port on 127.0.0.1".into())
}

/// Sends one query over UDP and returns the response code, or `None` without an answer
/// within 200 ms.
pub fn query(server: SocketAddr, name: &str, qtype: u16, id: u16) -> Option<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&id.to_be_bytes());
    packet.extend_from_slice(&[0x01, 0x00]); // recursion desired
    packet.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    for label in name.trim_end_matches('.').split('.') {
        packet.push(u8::try_from(label.len()).ok()?);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&[0, 1]); // class IN
    socket.send_to(&packet, server).ok()?;
    let mut buf = [0u8; 1500];
    let deadline = Instant::now() + Duration::from_millis(200);
    while Instant::now() < deadline {
        let (n, from) = socket.recv_from(&mut buf).ok()?;
        if from == server && n >= 12 && buf[..2] == id.to_be_bytes() && buf[2] & 0x80 != 0 {
            return Some(buf[3] & 0x0f);
        }
    }
    None
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}
