//! The peer benchmark: postwarden against the programs a stock Postfix would use instead,
//! through a real private Postfix on loopback. Run it with `bench/run` (as root on Debian 12:
//! it installs the peers, builds this bench in release mode and runs it inside a private
//! network and mount namespace whose resolver is the bench's dnsmasq on 127.0.0.1:53).
//!
//! * Logins over the Dovecot auth protocol, spoken directly to the unix sockets: postwarden
//!   (cold: login cache off; repeated: default config, login cache on) against Dovecot's auth
//!   service on the same PHC string and against bare argon2id verifications on every core.
//! * Submission through Postfix: postwarden's auth and submission milter (RSA-2048 DKIM
//!   signing) against Dovecot auth + OpenDKIM, and against Dovecot auth with no milter.
//! * Inbound mail on a port-25 service: postwarden's inbound milter against OpenDKIM (verify)
//!   + OpenDMARC + policyd-spf, over one corpus of signed and unsigned mail.
//! * 1,000 concurrent submission sessions: postwarden's RSS at idle, 500, 1,000 and after.
//!
//! Contenders run interleaved (A, B, C, A, B, C, ...); each figure is the median of the
//! rounds. `BENCH_QUICK=1` runs one short round of everything (a harness check);
//! `BENCH_ONLY=auth,submission,inbound,memory` runs only those parts. The table goes to
//! stdout and, for a full run, to bench/RESULTS.md.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/common/dns.rs"]
mod dns;

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{free_port, stop_child, Daemon, Postfix, PostfixOpts, Sink, BIN, REPO};
use dns::Record;

type R<T> = Result<T, String>;

/// The Postfix instance's myhostname: the authserv-id of every verifier's header.
const AUTHSERV: &str = "mx.postwarden.test";
const SENDER: &str = "alice@acme.example";
const RCPT: &str = "rcpt@dest.example";

// ---------------------------------------------------------------------------------------
// Settings

struct Settings {
    quick: bool,
    rounds: usize,
    /// One auth round, per contender.
    auth_secs: f64,
    /// One SMTP round, per contender.
    smtp_secs: f64,
    /// Concurrent sessions of the memory measurement, in two steps.
    sessions: [usize; 2],
    /// An unmeasured warm-up of each contender before its rounds (Postfix starts its smtpd
    /// processes, and policyd-spf's, on first use).
    warm_secs: f64,
    only: Vec<String>,
}

impl Settings {
    fn from_env() -> Settings {
        let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
        let only = std::env::var("BENCH_ONLY")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if quick {
            Settings {
                quick,
                rounds: 1,
                auth_secs: 1.0,
                smtp_secs: 1.5,
                sessions: [50, 100],
                warm_secs: 0.5,
                only,
            }
        } else {
            Settings {
                quick,
                rounds: 5,
                auth_secs: 3.0,
                smtp_secs: 4.0,
                sessions: [500, 1000],
                warm_secs: 1.5,
                only,
            }
        }
    }

    fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

// ---------------------------------------------------------------------------------------
// Small helpers

/// Runs `f`, turning a panic (the shared test harness panics on failure) into an error.
fn guarded<T>(what: &str, f: impl FnOnce() -> R<T>) -> R<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(|e| format!("{what}: {e}")),
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(format!("{what}: {msg}"))
        }
    }
}

fn io<T>(what: impl std::fmt::Display, r: std::io::Result<T>) -> R<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

fn write_file(path: &Path, text: &str, mode: u32) -> R<()> {
    io(path.display(), fs::write(path, text))?;
    io(
        path.display(),
        fs::set_permissions(path, fs::Permissions::from_mode(mode)),
    )
}

fn command_out(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A child process of the bench, stopped by its PID on drop (SIGTERM, then SIGKILL).
struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: &Path) -> R<Proc> {
        let f = io(log.display(), fs::File::create(log))?;
        let f2 = io(log.display(), f.try_clone())?;
        let child = io(
            format!("starting {name}"),
            cmd.stdin(Stdio::null()).stdout(f).stderr(f2).spawn(),
        )?;
        Ok(Proc {
            name: name.to_string(),
            child: Some(child),
            log: log.to_path_buf(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits until `ready` holds; an error if the process exits or `timeout` passes.
    fn wait_ready(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) -> R<()> {
        let start = Instant::now();
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "{} exited ({status}): {}",
                        self.name,
                        self.log_tail()
                    ));
                }
            }
            if ready() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!(
                    "{} not ready after {timeout:?}: {}",
                    self.name,
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c);
        }
    }
}

/// All CPU time and the time stolen by the hypervisor, in ticks (/proc/stat).
fn cpu_steal() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    Some((v.iter().take(8).sum(), *v.get(7)?))
}

/// The microseconds some task has waited on I/O since boot (/proc/pressure/io).
fn io_stall_us() -> Option<u64> {
    fs::read_to_string("/proc/pressure/io")
        .ok()?
        .lines()
        .find(|l| l.starts_with("some"))?
        .split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

/// Open sockets of a process (listeners and connections).
fn open_sockets(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| {
                fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
            })
            .count()
    })
}

/// Watches for CPU load from processes outside the bench's own process tree (a build
/// running beside the benchmark skews it): every 2 s, the CPU time each such process used.
struct Monitor {
    stop: Arc<std::sync::atomic::AtomicBool>,
    started: Instant,
    /// (seconds since start, process name, CPU seconds in the last 2 s)
    thread: Option<std::thread::JoinHandle<Vec<(f64, String, f64)>>>,
}

impl Monitor {
    fn start() -> Monitor {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let started = Instant::now();
        let thread = std::thread::spawn(move || {
            let me = std::process::id();
            let tick = 100.0; // USER_HZ
            let mut last: std::collections::HashMap<u32, u64> = Default::default();
            let mut outside: Vec<(f64, String, f64)> = Vec::new();
            let mut first = true;
            while !flag.load(Ordering::Relaxed) {
                // pid -> (comm, ppid, utime + stime)
                let mut procs = std::collections::HashMap::new();
                for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                        continue;
                    };
                    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
                        continue;
                    };
                    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                        continue;
                    };
                    let comm = stat[open + 1..close].to_string();
                    let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
                    if f.len() < 13 {
                        continue;
                    }
                    let ppid: u32 = f[1].parse().unwrap_or(0);
                    let cpu = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
                    procs.insert(pid, (comm, ppid, cpu));
                }
                let ours = |mut pid: u32| {
                    for _ in 0..64 {
                        if pid == me {
                            return true;
                        }
                        match procs.get(&pid) {
                            Some((_, ppid, _)) if *ppid != 0 => pid = *ppid,
                            _ => return false,
                        }
                    }
                    false
                };
                for (pid, (comm, _, cpu)) in &procs {
                    let before = last.get(pid).copied();
                    if !first && !ours(*pid) {
                        let used = (cpu - before.unwrap_or(*cpu).min(*cpu)) as f64 / tick;
                        // New processes count from their start.
                        let used = if before.is_none() {
                            *cpu as f64 / tick
                        } else {
                            used
                        };
                        if used > 0.2 {
                            outside.push((started.elapsed().as_secs_f64(), comm.clone(), used));
                        }
                    }
                }
                last = procs.iter().map(|(p, (_, _, c))| (*p, *c)).collect();
                first = false;
                for _ in 0..20 {
                    if flag.load(Ordering::Relaxed) {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            outside
        });
        Monitor {
            stop,
            started,
            thread: Some(thread),
        }
    }

    /// Seconds since the monitor started.
    fn now(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// What processes outside the bench used: (when, name, CPU seconds).
    fn finish(mut self) -> Vec<(f64, String, f64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

/// VmRSS of a process in MiB.
fn rss_mib(pid: u32) -> R<f64> {
    let status = io(
        format!("/proc/{pid}/status"),
        fs::read_to_string(format!("/proc/{pid}/status")),
    )?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .ok_or_else(|| format!("no VmRSS for pid {pid}"))
}

// ---------------------------------------------------------------------------------------
// DNS: dnsmasq on 127.0.0.1:53, answering only from the bench's records (no query log, so
// that the peers, which cache less, pay nothing the DNS server adds).

fn start_dnsmasq(dir: &Path, records: &[Record]) -> R<Proc> {
    let conf = dir.join("dnsmasq.conf");
    let mut c = String::from(
        "port=53\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\n\
         keep-in-foreground\npid-file=\nuser=root\n",
    );
    c.push_str(&dns::record_lines(records)?);
    write_file(&conf, &c, 0o644)?;
    let mut p = Proc::spawn(
        "dnsmasq",
        Command::new(dns::DNSMASQ).arg(format!("--conf-file={}", conf.display())),
        &dir.join("dnsmasq.log"),
    )?;
    let server: SocketAddr = "127.0.0.1:53".parse().unwrap();
    let mut id = 0x4200u16;
    p.wait_ready(Duration::from_secs(10), || {
        id = id.wrapping_add(1);
        dns::query(server, "ready.bench.invalid", 1, id).is_some()
    })?;
    Ok(p)
}

// ---------------------------------------------------------------------------------------
// SMTP client (plain TCP: the benchmark's submission services run without TLS)

struct Smtp {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Smtp {
    fn connect(port: u16, timeout: Duration) -> R<Smtp> {
        let s = io(
            format!("connect to 127.0.0.1:{port}"),
            TcpStream::connect(("127.0.0.1", port)),
        )?;
        let _ = s.set_read_timeout(Some(timeout));
        let _ = s.set_nodelay(true);
        let w = io("socket", s.try_clone())?;
        let mut c = Smtp {
            r: BufReader::new(s),
            w,
        };
        c.expect(None, 220)?;
        Ok(c)
    }

    fn reply(&mut self) -> R<(u16, String)> {
        let mut text = String::new();
        loop {
            let mut l = String::new();
            let n = io("reading the reply", self.r.read_line(&mut l))?;
            if n == 0 {
                return Err(format!("connection closed {text}"));
            }
            text.push_str(l.trim_end());
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                let code = l.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Ok((code, text));
            }
            text.push(' ');
        }
    }

    fn cmd(&mut self, line: &str) -> R<(u16, String)> {
        io(
            "sending",
            self.w.write_all(format!("{line}\r\n").as_bytes()),
        )?;
        self.reply()
    }

    fn expect(&mut self, line: Option<&str>, code: u16) -> R<()> {
        let (c, text) = match line {
            Some(l) => self.cmd(l)?,
            None => self.reply()?,
        };
        if c == code {
            Ok(())
        } else {
            let what = line
                .map(|l| l.split_whitespace().next().unwrap_or(""))
                .unwrap_or("greeting");
            Err(format!("{what}: {text}"))
        }
    }

    /// DATA, the message (CRLF lines, nothing to dot-stuff) and the end-of-data reply.
    fn data(&mut self, msg: &[u8]) -> R<(u16, String)> {
        self.expect(Some("DATA"), 354)?;
        let mut buf = Vec::with_capacity(msg.len() + 5);
        buf.extend_from_slice(msg);
        if !msg.ends_with(b"\r\n") {
            buf.extend_from_slice(b"\r\n");
        }
        buf.extend_from_slice(b".\r\n");
        io("sending the message", self.w.write_all(&buf))?;
        self.reply()
    }

    fn quit(mut self) {
        let _ = self.cmd("QUIT");
    }
}

fn plain_token(user: &str, pass: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
}

/// The body of every message: about 3 KB of text.
fn body_3k() -> String {
    let line = "The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs.";
    let mut b = String::new();
    for i in 0..38 {
        let _ = write!(b, "{i:02} {line}\r\n");
    }
    b
}

fn submission_message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Alice <{SENDER}>\r\nTo: <{RCPT}>\r\nSubject: {subject}\r\n\
         Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@acme.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    )
    .into_bytes()
}

/// One submission session: EHLO, AUTH PLAIN, `msgs` messages, QUIT. Returns the messages
/// accepted with 250 and the first error.
fn submission_session(
    port: u16,
    token: &str,
    msgs: usize,
    tag: &str,
    seq: &AtomicUsize,
    body: &str,
) -> (usize, Option<String>) {
    let mut accepted = 0;
    let r = (|| -> R<()> {
        let mut s = Smtp::connect(port, Duration::from_secs(60))?;
        s.expect(Some("EHLO client.bench.example"), 250)?;
        s.expect(Some(&format!("AUTH PLAIN {token}")), 235)?;
        for _ in 0..msgs {
            let n = seq.fetch_add(1, Ordering::Relaxed);
            s.expect(Some(&format!("MAIL FROM:<{SENDER}>")), 250)?;
            s.expect(Some(&format!("RCPT TO:<{RCPT}>")), 250)?;
            let (code, text) = s.data(&submission_message(&format!("{tag}-{n}"), body))?;
            if code != 250 {
                return Err(format!("end of data: {text}"));
            }
            accepted += 1;
        }
        s.quit();
        Ok(())
    })();
    (accepted, r.err())
}

/// One inbound session on a port-25 service: EHLO and `msgs` corpus messages from `first`.
fn inbound_session(
    port: u16,
    corpus: &[InMsg],
    first: usize,
    msgs: usize,
) -> (usize, Option<String>) {
    let mut accepted = 0;
    let mut refused = None;
    let r = (|| -> R<()> {
        let mut s = Smtp::connect(port, Duration::from_secs(60))?;
        s.expect(Some("EHLO client.sender.example"), 250)?;
        for i in 0..msgs {
            let m = &corpus[(first + i) % corpus.len()];
            s.expect(Some(&format!("MAIL FROM:<{}>", m.mail_from)), 250)?;
            s.expect(Some(&format!("RCPT TO:<{RCPT}>")), 250)?;
            let (code, text) = s.data(&m.data)?;
            if code == 250 {
                accepted += 1;
            } else {
                refused.get_or_insert(format!("{}: {text}", m.domain));
                s.expect(Some("RSET"), 250)?;
            }
        }
        s.quit();
        Ok(())
    })();
    (accepted, r.err().or(refused))
}

// ---------------------------------------------------------------------------------------
// Dovecot auth protocol client

static CPID: AtomicU32 = AtomicU32::new(40_000);

struct AuthConn {
    r: BufReader<UnixStream>,
    w: UnixStream,
    next_id: u64,
}

impl AuthConn {
    fn connect(socket: &Path) -> R<AuthConn> {
        let s = io(
            format!("connect to {}", socket.display()),
            UnixStream::connect(socket),
        )?;
        let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
        let mut w = io("socket", s.try_clone())?;
        let mut r = BufReader::new(s);
        // Dovecot refuses a second connection claiming the same client PID.
        let cpid = CPID.fetch_add(1, Ordering::Relaxed);
        io(
            "handshake",
            w.write_all(format!("VERSION\t1\t0\nCPID\t{cpid}\n").as_bytes()),
        )?;
        loop {
            let mut line = String::new();
            if io("handshake", r.read_line(&mut line))? == 0 {
                return Err("connection closed during the handshake".into());
            }
            if line.trim_end() == "DONE" {
                break;
            }
        }
        Ok(AuthConn { r, w, next_id: 1 })
    }

    /// One PLAIN login; Ok(()) on OK, the reply otherwise.
    fn login(&mut self, token: &str) -> R<()> {
        let id = self.next_id;
        self.next_id += 1;
        io(
            "AUTH",
            self.w.write_all(
                format!("AUTH\t{id}\tPLAIN\tservice=smtp\trip=127.0.0.1\tsecured\tresp={token}\n")
                    .as_bytes(),
            ),
        )?;
        let mut line = String::new();
        if io("AUTH reply", self.r.read_line(&mut line))? == 0 {
            return Err("connection closed".into());
        }
        if line.starts_with("OK\t") {
            Ok(())
        } else {
            Err(format!("login refused: {}", line.trim_end()))
        }
    }
}

/// What one round of a rate measurement saw.
#[derive(Default, Clone)]
struct Round {
    count: usize,
    secs: f64,
    /// Latencies in ms (auth only).
    lat: Vec<f64>,
    failures: usize,
    first_error: Option<String>,
}

impl Round {
    fn rate(&self) -> f64 {
        self.count as f64 / self.secs
    }
}

/// `conns` connections logging in with `token` until `secs` pass.
fn auth_round(socket: &Path, conns: usize, secs: f64, token: &str) -> R<Round> {
    let barrier = Barrier::new(conns + 1);
    let (results, wall) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..conns)
            .map(|_| {
                let barrier = &barrier;
                s.spawn(move || -> R<Vec<f64>> {
                    // Connected and past the handshake before the clock starts.
                    let conn = AuthConn::connect(socket);
                    barrier.wait();
                    let mut conn = conn?;
                    let deadline = Instant::now() + Duration::from_secs_f64(secs);
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        conn.login(token)?;
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(lat)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let r: Vec<R<Vec<f64>>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect();
        (r, start.elapsed().as_secs_f64())
    });
    let mut round = Round {
        secs: wall,
        ..Default::default()
    };
    for r in results {
        let lat = r?;
        round.count += lat.len();
        round.lat.extend(lat);
    }
    Ok(round)
}

/// Bare argon2id verifications of `phc` on `threads` threads until `secs` pass.
fn bare_round(phc: &str, password: &str, threads: usize, secs: f64) -> R<Round> {
    use argon2::password_hash::Output;
    use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
    let bad = |e: argon2::password_hash::Error| format!("PHC string: {e}");
    let parsed = PasswordHash::new(phc).map_err(bad)?;
    let params = Params::try_from(&parsed).map_err(bad)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err("PHC string without salt or hash".into());
    };
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf).map_err(bad)?.to_vec();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let barrier = Barrier::new(threads + 1);
    let (results, wall) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (barrier, argon2, salt, params) = (&barrier, &argon2, &salt, &params);
                s.spawn(move || -> R<Vec<f64>> {
                    // The hash alone: argon2's memory allocated once per thread and reused.
                    let mut memory = vec![Block::default(); params.block_count()];
                    let mut out = vec![0u8; expected.len()];
                    barrier.wait();
                    let deadline = Instant::now() + Duration::from_secs_f64(secs);
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        argon2
                            .hash_password_into_with_memory(
                                password.as_bytes(),
                                salt,
                                &mut out,
                                &mut memory,
                            )
                            .map_err(|e| format!("argon2: {e}"))?;
                        let computed = Output::new(&out).map_err(|e| format!("argon2: {e}"))?;
                        if computed != expected {
                            return Err("bare verification: wrong hash".into());
                        }
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    Ok(lat)
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let r: Vec<R<Vec<f64>>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect();
        (r, start.elapsed().as_secs_f64())
    });
    let mut round = Round {
        secs: wall,
        ..Default::default()
    };
    for r in results {
        let lat = r?;
        round.count += lat.len();
        round.lat.extend(lat);
    }
    Ok(round)
}

/// `threads` client threads running `session` until `secs` pass; each session returns the
/// messages it had accepted and its error.
fn smtp_round(
    threads: usize,
    secs: f64,
    session: impl Fn(usize, usize) -> (usize, Option<String>) + Sync,
) -> Round {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let per_thread: Vec<(usize, usize, Option<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let session = &session;
                s.spawn(move || {
                    let (mut accepted, mut failures, mut first) = (0, 0, None);
                    let mut n = 0;
                    while Instant::now() < deadline {
                        let (a, err) = session(t, n);
                        n += 1;
                        accepted += a;
                        if let Some(e) = err {
                            failures += 1;
                            first.get_or_insert(e);
                            std::thread::sleep(Duration::from_millis(50));
                        }
                    }
                    (accepted, failures, first)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or((0, 1, Some("client thread panicked".into())))
            })
            .collect()
    });
    let mut round = Round {
        secs: start.elapsed().as_secs_f64(),
        ..Default::default()
    };
    for (a, f, e) in per_thread {
        round.count += a;
        round.failures += f;
        if round.first_error.is_none() {
            round.first_error = e;
        }
    }
    round
}

// ---------------------------------------------------------------------------------------
// Results of one contender in one configuration, over the rounds

#[derive(Default)]
struct Series {
    rounds: Vec<Round>,
    error: Option<String>,
}

impl Series {
    fn add(&mut self, r: R<Round>) {
        match r {
            Ok(r) => {
                if r.count == 0 && self.error.is_none() {
                    self.error = Some(
                        r.first_error
                            .clone()
                            .unwrap_or_else(|| "nothing completed".into()),
                    );
                }
                self.rounds.push(r)
            }
            Err(e) => {
                if self.error.is_none() {
                    self.error = Some(e);
                }
            }
        }
    }

    fn failed(&self) -> bool {
        self.error.is_some()
    }

    /// The median rate over the rounds; None when the contender failed.
    fn rate(&self) -> Option<f64> {
        if self.failed() || self.rounds.is_empty() {
            return None;
        }
        Some(median(
            &self.rounds.iter().map(Round::rate).collect::<Vec<_>>(),
        ))
    }

    fn latencies(&self) -> (f64, f64) {
        let mut all: Vec<f64> = self.rounds.iter().flat_map(|r| r.lat.clone()).collect();
        all.sort_by(|a, b| a.total_cmp(b));
        (percentile(&all, 0.5), percentile(&all, 0.99))
    }

    fn failures(&self) -> (usize, Option<String>) {
        let n = self.rounds.iter().map(|r| r.failures).sum();
        let e = self.rounds.iter().find_map(|r| r.first_error.clone());
        (n, e)
    }

    /// "78.1/s", or the error.
    fn cell(&self, unit: &str) -> String {
        match (&self.error, self.rate()) {
            (Some(e), _) => format!("error: {}", short(e)),
            (None, Some(r)) => format!("{}{unit}", fmt_num(r)),
            _ => "not run".into(),
        }
    }

    /// "78.1/s (p50 12.0 ms, p99 14.2 ms)".
    fn cell_lat(&self) -> String {
        match self.rate() {
            Some(r) => {
                let (p50, p99) = self.latencies();
                format!("{}/s (p50 {p50:.1} ms, p99 {p99:.1} ms)", fmt_num(r))
            }
            None => self.cell("/s"),
        }
    }
}

fn short(e: &str) -> String {
    clip(e, 160)
}

/// One line, no table separators, at most `n` characters.
fn clip(e: &str, n: usize) -> String {
    let one = e.replace(['\n', '|'], " ");
    if one.chars().count() > n {
        format!("{}...", one.chars().take(n).collect::<String>())
    } else {
        one
    }
}

fn fmt_num(x: f64) -> String {
    if x >= 1000.0 {
        format!("{x:.0}")
    } else if x >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

/// One line of the table.
struct Row {
    work: String,
    ours: String,
    peers: String,
    ratio: String,
    target: String,
    verdict: String,
}

/// The ratio of `ours` to `peer`: the median of the per-round ratios (each round measures
/// the contenders back to back, so a slow spell of the machine hits both sides of a ratio),
/// or None when either failed.
fn paired(ours: &Series, peer: &Series) -> Option<f64> {
    ours.rate()?;
    peer.rate()?;
    let ratios: Vec<f64> = ours
        .rounds
        .iter()
        .zip(&peer.rounds)
        .filter(|(_, p)| p.rate() > 0.0)
        .map(|(o, p)| o.rate() / p.rate())
        .collect();
    (!ratios.is_empty()).then(|| median(&ratios))
}

/// A ratio cell and a verdict against a minimum (`min` None: no target).
fn compare(ours: &Series, peer: &Series, peer_name: &str, min: Option<f64>) -> (String, String) {
    match paired(ours, peer) {
        Some(r) => {
            // Three decimals below 10: 0.948 must not show as a 0.95 that misses 0.95.
            let ratio = if r < 10.0 {
                format!("{r:.3} x {peer_name}")
            } else {
                format!("{r:.1} x {peer_name}")
            };
            let verdict = match min {
                Some(m) if r >= m => "pass".to_string(),
                Some(_) => "miss".to_string(),
                None => String::new(),
            };
            (ratio, verdict)
        }
        None => (
            "n/a".into(),
            if min.is_some() {
                "n/a (failed)".into()
            } else {
                String::new()
            },
        ),
    }
}

// ---------------------------------------------------------------------------------------
// The corpus of inbound mail

struct InMsg {
    domain: String,
    mail_from: String,
    data: Vec<u8>,
}

/// The sending domains: (domain, DKIM-signed, SPF record, DMARC policy).
const INBOUND_DOMAINS: &[(&str, bool, Option<&str>, &str)] = &[
    (
        "signed-none.example",
        true,
        Some("v=spf1 ip4:127.0.0.1 -all"),
        "none",
    ),
    (
        "signed-quarantine.example",
        true,
        Some("v=spf1 ip4:127.0.0.1 -all"),
        "quarantine",
    ),
    ("signed-nospf.example", true, None, "quarantine"),
    (
        "signed-spffail.example",
        true,
        Some("v=spf1 ip4:192.0.2.0/24 -all"),
        "none",
    ),
    (
        "spf-pass.example",
        false,
        Some("v=spf1 ip4:127.0.0.1 -all"),
        "none",
    ),
    (
        "spf-pass-quarantine.example",
        false,
        Some("v=spf1 ip4:127.0.0.0/8 ~all"),
        "quarantine",
    ),
    (
        "spf-fail.example",
        false,
        Some("v=spf1 ip4:192.0.2.0/24 -all"),
        "none",
    ),
    ("spf-none.example", false, None, "none"),
];

const CORPUS_SELECTOR: &str = "bench";
const PER_DOMAIN: usize = 6;

/// The DNS records of the corpus domains and the corpus itself (6 messages a domain, in an
/// order that mixes the domains).
fn corpus(key: &postwarden::dkim::KeyPair) -> R<(Vec<Record>, Vec<InMsg>)> {
    use postwarden::dkim::{sign, Algorithm, SigningKey};
    let mut records = Vec::new();
    for (domain, signed, spf, dmarc) in INBOUND_DOMAINS {
        if let Some(spf) = spf {
            records.push(Record::txt(domain, spf));
        }
        records.push(Record::txt(
            &format!("_dmarc.{domain}"),
            &format!("v=DMARC1; p={dmarc}"),
        ));
        if *signed {
            let rec = key.dns_record(domain, CORPUS_SELECTOR);
            records.push(Record::txt_strings(&rec.name, &rec.strings));
        }
    }
    let body = body_3k();
    let mut msgs = Vec::new();
    for i in 0..PER_DOMAIN {
        for (domain, signed, _, _) in INBOUND_DOMAINS {
            let from = format!("user{i}@{domain}");
            let text = format!(
                "From: User {i} <{from}>\r\nTo: <{RCPT}>\r\nSubject: inbound corpus {i} from {domain}\r\n\
                 Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <corpus-{i}@{domain}>\r\n\
                 MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
            );
            let mut data = Vec::new();
            if *signed {
                let sk = SigningKey {
                    domain: domain.to_string(),
                    selector: CORPUS_SELECTOR.into(),
                    algorithm: Algorithm::Rsa,
                    private_pkcs8_der: key.private_pkcs8_der.clone(),
                };
                let sigs = sign(text.as_bytes(), &[sk]).map_err(|e| format!("signing: {e}"))?;
                for s in sigs {
                    data.extend_from_slice(s.as_bytes());
                    data.extend_from_slice(b"\r\n");
                }
            }
            data.extend_from_slice(text.as_bytes());
            msgs.push(InMsg {
                domain: domain.to_string(),
                mail_from: from,
                data,
            });
        }
    }
    Ok((records, msgs))
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push('\n');
    }
    let _ = writeln!(out, "-----END {label}-----");
    out
}

// ---------------------------------------------------------------------------------------
// The environment: every process the bench starts

struct Credential {
    user: String,
    pass: String,
    token: String,
}

struct Env {
    // Dropped in declaration order: Postfix first, the DNS server last.
    postfix: Postfix,
    opendkim_sign: R<Proc>,
    opendkim_verify: R<Proc>,
    opendmarc: R<Proc>,
    dovecot: R<Proc>,
    pw_cold: R<Proc>,
    pw: Proc,
    _cli: Daemon,
    _store_dir: tempfile::TempDir,
    sink: Sink,
    _dns: Proc,
    _dir: tempfile::TempDir,
    /// The ports of the contenders' services.
    port_sub_dovecot: u16,
    port_sub_opendkim: u16,
    port_inbound_chain: u16,
    auth_socket: PathBuf,
    cold_socket: PathBuf,
    dovecot_socket: PathBuf,
    /// The credential of the login benchmark and its PHC string.
    auth_cred: Credential,
    phc: String,
    /// One credential per submission client thread.
    sub_creds: Vec<Credential>,
    corpus: Vec<InMsg>,
    notes: Vec<String>,
    checks: Vec<String>,
}

fn cli_json(d: &Daemon, args: &[&str]) -> R<serde_json::Value> {
    let out = d.cli(args);
    if !out.status.success() {
        return Err(format!(
            "postwarden {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("postwarden {}: {e}", args.join(" ")))
}

fn new_credential(d: &Daemon, label: &str) -> R<Credential> {
    let v = cli_json(
        d,
        &[
            "credential",
            "new",
            "--org",
            "acme",
            "--label",
            label,
            "--json",
        ],
    )?;
    let user = v["username"].as_str().ok_or("no username")?.to_string();
    let pass = v["password"].as_str().ok_or("no password")?.to_string();
    Ok(Credential {
        token: plain_token(&user, &pass),
        user,
        pass,
    })
}

fn wait_socket(p: &mut Proc, path: &Path) -> R<()> {
    let path = path.to_path_buf();
    p.wait_ready(Duration::from_secs(20), || {
        UnixStream::connect(&path).is_ok()
    })
}

fn start_postwarden(name: &str, config: &Path, log: &Path) -> R<Proc> {
    let mut p = Proc::spawn(
        name,
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            // The configured log level (info), as in production: no debug logging.
            .env_remove("RUST_LOG")
            .env_remove("POSTWARDEN_DATA_DIR"),
        log,
    )?;
    let log = log.to_path_buf();
    p.wait_ready(Duration::from_secs(30), || {
        fs::read_to_string(&log).is_ok_and(|t| t.contains("postwarden ready"))
    })?;
    Ok(p)
}

fn start_dovecot(dir: &Path, socket: &Path, passwd: &str) -> R<Proc> {
    io(dir.display(), fs::create_dir_all(dir.join("run")))?;
    io(dir.display(), fs::create_dir_all(dir.join("state")))?;
    // The auth process (user dovecot) reads it.
    write_file(&dir.join("passwd"), passwd, 0o644)?;
    let conf = dir.join("dovecot.conf");
    write_file(
        &conf,
        &format!(
            "# private instance for the peer benchmark: only the auth service\n\
             base_dir = {d}/run\nstate_dir = {d}/state\ninstance_name = postwarden-bench\n\
             protocols =\nssl = no\n\
             log_path = {d}/dovecot.log\n\
             auth_mechanisms = plain login\ndisable_plaintext_auth = no\n\
             default_internal_user = dovecot\ndefault_login_user = dovenull\n\
             passdb {{\n  driver = passwd-file\n  args = {d}/passwd\n}}\n\
             userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home=/nonexistent\n}}\n\
             service auth {{\n  unix_listener {s} {{\n    mode = 0666\n  }}\n}}\n",
            d = dir.display(),
            s = socket.display()
        ),
        0o644,
    )?;
    let mut p = Proc::spawn(
        "dovecot",
        Command::new("/usr/sbin/dovecot")
            .arg("-F")
            .arg("-c")
            .arg(&conf),
        &dir.join("dovecot.stderr"),
    )?;
    let socket = socket.to_path_buf();
    let log = dir.join("dovecot.log");
    p.wait_ready(Duration::from_secs(20), || {
        AuthConn::connect(&socket).is_ok()
    })
    .map_err(|e| format!("{e}; {}", fs::read_to_string(&log).unwrap_or_default()))?;
    Ok(p)
}

fn start_opendkim(dir: &Path, name: &str, conf: &str, socket: &Path) -> R<Proc> {
    let path = dir.join(format!("{name}.conf"));
    write_file(&path, conf, 0o644)?;
    let mut p = Proc::spawn(
        name,
        Command::new("/usr/sbin/opendkim")
            .arg("-f")
            .arg("-x")
            .arg(&path),
        &dir.join(format!("{name}.log")),
    )?;
    wait_socket(&mut p, socket)?;
    Ok(p)
}

/// Writes the Postfix instance: the shipped snippets (postwarden's submission service and
/// port-25 milter, as tests/common does), plus the peers' services.
fn prepare_postfix(
    root: &Path,
    sink_port: u16,
    policyd_conf: &Path,
) -> R<(Postfix, u16, u16, u16)> {
    let opts = PostfixOpts {
        extra_main: "\
relay_domains = dest.example
# 1,000 concurrent submission sessions, each with an smtpd and a cleanup process
default_process_limit = 1200
smtpd_client_connection_count_limit = 0
smtpd_client_event_limit_exceptions = 127.0.0.0/8
# the same for every contender: acceptance is not slowed to the delivery rate
in_flow_delay = 0s
# idle smtpd processes (each holding an auth connection) exit after 30 s instead of 100 s:
# the memory measurement waits for that
max_idle = 30s
policyd-spf_time_limit = 3600s
bench_chain_milters = unix:private/opendkim-verify, unix:private/opendmarc
bench_chain_recipient_restrictions = check_policy_service unix:private/policyd-spf
"
        .into(),
        // No TLS client here: every contender's submission service runs without TLS.
        submission_extra: vec![
            "smtpd_tls_security_level=none".into(),
            "smtpd_tls_auth_only=no".into(),
        ],
        submission_maxproc: Some(1100),
    };
    let pf = guarded("preparing Postfix", || {
        Ok(Postfix::prepare(root, sink_port, &opts))
    })?;
    let master_cf = pf.config_dir.join("master.cf");
    let master = io(master_cf.display(), fs::read_to_string(&master_cf))?;
    let start = master
        .find(&format!("127.0.0.1:{} ", pf.submission_port))
        .ok_or("no submission entry in master.cf")?;
    let block = master[start..].to_string();
    let head = format!("127.0.0.1:{} ", pf.submission_port);
    let peer = |port: u16, name: &str, milters: &str| -> R<String> {
        let mut b = block.replacen(&head, &format!("127.0.0.1:{port} "), 1);
        for (from, to) in [
            (
                "syslog_name=postfix/submission",
                format!("syslog_name=postfix/{name}"),
            ),
            (
                "smtpd_sasl_path=private/postwarden-auth",
                "smtpd_sasl_path=private/dovecot-auth".to_string(),
            ),
            (
                "smtpd_milters=unix:private/postwarden-submission",
                format!("smtpd_milters={milters}"),
            ),
        ] {
            if !b.contains(from) {
                return Err(format!("the submission entry has no {from}"));
            }
            b = b.replace(from, &to);
        }
        Ok(b)
    };
    let (p_dovecot, p_opendkim, p_chain) = (free_port(), free_port(), free_port());
    let mut text = master.clone();
    text.push_str("# --- peer benchmark: the peers' services ---\n");
    text.push_str(&peer(p_dovecot, "sub-dovecot", "")?);
    text.push_str(&peer(
        p_opendkim,
        "sub-opendkim",
        "unix:private/opendkim-sign",
    )?);
    let _ = write!(
        text,
        "127.0.0.1:{p_chain} inet n - n - - smtpd\n  -o syslog_name=postfix/chain\n  \
         -o smtpd_milters=$bench_chain_milters\n  \
         -o smtpd_recipient_restrictions=$bench_chain_recipient_restrictions\n\
         policyd-spf unix - n n - 0 spawn\n  user=policyd-spf argv=/usr/bin/policyd-spf {}\n",
        policyd_conf.display()
    );
    io(master_cf.display(), fs::write(&master_cf, text))?;
    let out = io(
        "postfix check",
        Command::new("/usr/sbin/postfix")
            .arg("-c")
            .arg(&pf.config_dir)
            .arg("check")
            .output(),
    )?;
    if !out.status.success() {
        return Err(format!(
            "postfix check: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((pf, p_dovecot, p_opendkim, p_chain))
}

impl Env {
    fn start() -> R<Env> {
        let dir = io(
            "temp dir",
            tempfile::Builder::new()
                .prefix("postwarden-bench")
                .tempdir(),
        )?;
        let root = dir.path().to_path_buf();
        // Postfix's and Dovecot's unprivileged processes traverse to their files.
        io(
            "chmod",
            fs::set_permissions(&root, fs::Permissions::from_mode(0o755)),
        )?;
        let mut notes = Vec::new();
        let mut checks = Vec::new();

        let sink = guarded("smtp-sink", || Ok(Sink::start(&root)))?;

        // policyd-spf: headers only, no rejection (neither side rejects on SPF alone), and
        // no address skipped (its default skips 127.0.0.0/8, where all of our mail comes from).
        let policyd_conf = root.join("policyd-spf.conf");
        write_file(
            &policyd_conf,
            "debugLevel = 0\nTestOnly = 1\nHELO_reject = False\nMail_From_reject = False\n\
             PermError_reject = False\nTempError_Defer = False\nskip_addresses = 192.0.2.255/32\n\
             Header_Type = SPF\n",
            0o644,
        )?;
        let (postfix, port_sub_dovecot, port_sub_opendkim, port_inbound_chain) =
            prepare_postfix(&root, sink.port, &policyd_conf)?;
        let private = postfix.private_dir();
        let auth_socket = private.join("postwarden-auth");
        let dovecot_socket = private.join("dovecot-auth");

        // postwarden: the store through the admin CLI; the daemon on the default config but
        // for its sockets, plaintext logins (no TLS here) and the bench's DNS server.
        // The store on disk (bench/run puts /tmp on a tmpfs): postwarden's writes count.
        let store_dir = io(
            "temp dir in /var/tmp",
            tempfile::Builder::new()
                .prefix("postwarden-bench-store")
                .tempdir_in("/var/tmp"),
        )?;
        let pw_root = store_dir.path().to_path_buf();
        let cli = Daemon::configure(
            &pw_root,
            &format!(
                "auth.listen = \"unix:{}\"\nsubmission.listen = \"unix:{}\"\n\
                 inbound.listen = \"unix:{}\"\nsockets.group = \"postfix\"\n\
                 auth.allow_plaintext = true\ndns.nameservers = [\"127.0.0.1:53\"]\n\
                 inbound.authserv_id = \"{AUTHSERV}\"\n",
                auth_socket.display(),
                private.join("postwarden-submission").display(),
                private.join("postwarden-inbound").display(),
            ),
        );
        for args in [
            &["org", "add", "acme", "--json"][..],
            &["domain", "add", "acme.example", "--org", "acme", "--json"],
            &["account", "add", SENDER, "--kind", "end_user", "--json"],
        ] {
            cli_json(&cli, args)?;
        }
        let auth_cred = new_credential(&cli, "bench-auth")?;
        let sub_creds = (0..4)
            .map(|i| new_credential(&cli, &format!("bench-sub{i}")))
            .collect::<R<Vec<_>>>()?;
        let key = cli_json(
            &cli,
            &[
                "dkim",
                "keygen",
                "acme.example",
                "--algorithm",
                "rsa",
                "--selector",
                "pwbench",
                "--json",
            ],
        )?;
        let pw_key_strings: Vec<String> = key["dns_strings"]
            .as_array()
            .ok_or("dkim keygen: no dns_strings")?
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();

        // The PHC strings postwarden stored, for Dovecot's passwd-file.
        let db = cli.data.join("postwarden.db");
        let hashes: Vec<(String, String)> = {
            let conn =
                rusqlite::Connection::open(&db).map_err(|e| format!("{}: {e}", db.display()))?;
            let mut st = conn
                .prepare("SELECT username, hash FROM credential")
                .map_err(|e| e.to_string())?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| e.to_string())?;
            rows.collect::<Result<_, _>>().map_err(|e| e.to_string())?
        };
        let phc = hashes
            .iter()
            .find(|(u, _)| *u == auth_cred.user)
            .map(|(_, h)| h.clone())
            .ok_or("the login benchmark's credential is not in the store")?;
        checks.push(format!("PHC string of every credential: `{}`", {
            let mut parts = phc.split('$');
            let _ = parts.next();
            let alg = parts.next().unwrap_or("");
            let ver = parts.next().unwrap_or("");
            let params = parts.next().unwrap_or("");
            format!("${alg}${ver}${params}$...")
        }));

        // The peers' keys and the inbound corpus.
        let gen = |what: &str| {
            postwarden::dkim::generate(postwarden::dkim::Algorithm::Rsa)
                .map_err(|e| format!("{what}: {e}"))
        };
        let odk_key = gen("OpenDKIM's key")?;
        let corpus_key = gen("the corpus key")?;
        let (mut records, corpus) = corpus(&corpus_key)?;
        records.push(Record::txt_strings(
            "pwbench._domainkey.acme.example",
            &pw_key_strings,
        ));
        let odk_rec = odk_key.dns_record("acme.example", "odkbench");
        records.push(Record::txt_strings(&odk_rec.name, &odk_rec.strings));
        records.push(Record::txt("acme.example", "v=spf1 ip4:127.0.0.1 -all"));
        records.push(Record::txt("_dmarc.acme.example", "v=DMARC1; p=none"));
        let dns = start_dnsmasq(&root, &records)?;

        match cli_json(
            &cli,
            &["dkim", "activate", "acme.example", "pwbench", "--json"],
        ) {
            Ok(_) => checks.push(
                "postwarden's RSA-2048 key activated after `dkim activate` found its record in DNS"
                    .into(),
            ),
            Err(e) => {
                notes.push(format!(
                    "dkim activate refused ({}); activated with --force",
                    short(&e)
                ));
                cli_json(
                    &cli,
                    &[
                        "dkim",
                        "activate",
                        "acme.example",
                        "pwbench",
                        "--force",
                        "--json",
                    ],
                )?;
            }
        }

        let pw = start_postwarden("postwarden", &cli.config, &pw_root.join("postwarden.log"))?;
        // A second daemon on the same store for cold logins: login cache off, throttling
        // relaxed (as benches/auth_throughput.rs), its own sockets.
        let cold_root = root.join("postwarden-cold");
        io("mkdir", fs::create_dir_all(&cold_root))?;
        let cold_socket = cold_root.join("auth");
        let cold_conf = cold_root.join("postwarden.toml");
        let pw_cold = write_file(
            &cold_conf,
            &format!(
                "data_dir = \"{d}\"\nstore.path = \"{db}\"\nauth.listen = \"unix:{s}\"\n\
                 auth.allow_plaintext = true\nauth.login_cache_entries = 0\n\
                 auth.throttle.block_after = 0\nauth.throttle.free_failures = 1000000\n\
                 auth.throttle.user_budget = 0\ndns.nameservers = [\"127.0.0.1:53\"]\n",
                d = cold_root.display(),
                db = db.display(),
                s = cold_socket.display()
            ),
            0o644,
        )
        .and_then(|_| {
            start_postwarden(
                "postwarden (cold)",
                &cold_conf,
                &cold_root.join("postwarden.log"),
            )
        });

        // Dovecot on the same PHC strings.
        let dovecot_dir = root.join("dovecot");
        let passwd: String = hashes
            .iter()
            .map(|(u, h)| format!("{u}:{{ARGON2ID}}{h}\n"))
            .collect();
        let dovecot = (|| {
            let out = io(
                "doveadm pw -t",
                Command::new("/usr/bin/doveadm")
                    .args(["pw", "-t"])
                    .arg(format!("{{ARGON2ID}}{phc}"))
                    .arg("-p")
                    .arg(&auth_cred.pass)
                    .output(),
            )?;
            if !out.status.success() {
                return Err(format!(
                    "Dovecot does not verify postwarden's PHC string: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            start_dovecot(&dovecot_dir, &dovecot_socket, &passwd)
        })();
        if dovecot.is_ok() {
            checks.push(
                "Dovecot verifies postwarden's PHC string (`doveadm pw -t '{ARGON2ID}$argon2id$...'`: verified)"
                    .into(),
            );
        }

        // OpenDKIM signing (submission) and verifying (inbound), OpenDMARC.
        let odk_dir = root.join("opendkim");
        io("mkdir", fs::create_dir_all(&odk_dir))?;
        let keyfile = odk_dir.join("odkbench.pem");
        write_file(
            &keyfile,
            &pem("PRIVATE KEY", &odk_key.private_pkcs8_der),
            0o600,
        )?;
        let sign_socket = private.join("opendkim-sign");
        let opendkim_sign = start_opendkim(
            &odk_dir,
            "opendkim-sign",
            &format!(
                "Syslog no\nBackground no\nMode s\nDomain acme.example\nSelector odkbench\n\
                 KeyFile {k}\nRequireSafeKeys false\nCanonicalization relaxed/relaxed\nSignatureAlgorithm rsa-sha256\n\
                 OversignHeaders From\nSocket local:{s}\nUMask 000\n",
                k = keyfile.display(),
                s = sign_socket.display()
            ),
            &sign_socket,
        );
        // The verifier must not take 127.0.0.1 (where the test mail comes from) for an
        // internal host to sign for, nor OpenDMARC for a host to ignore.
        let nobody_hosts = root.join("no-internal-hosts");
        write_file(&nobody_hosts, "192.0.2.255\n", 0o644)?;
        let verify_socket = private.join("opendkim-verify");
        let opendkim_verify = start_opendkim(
            &odk_dir,
            "opendkim-verify",
            &format!(
                "Syslog no\nBackground no\nMode v\nAuthservID {AUTHSERV}\nInternalHosts {h}\n\
                 Nameservers 127.0.0.1\nSocket local:{s}\nUMask 000\n",
                h = nobody_hosts.display(),
                s = verify_socket.display()
            ),
            &verify_socket,
        );
        let dmarc_socket = private.join("opendmarc");
        let opendmarc = (|| {
            let conf = odk_dir.join("opendmarc.conf");
            write_file(
                &conf,
                &format!(
                    "Syslog false\nBackground false\nSocket local:{s}\nUMask 000\n\
                     AuthservID {AUTHSERV}\nTrustedAuthservIDs {AUTHSERV}\nIgnoreHosts {h}\n\
                     PublicSuffixList {REPO}/config/public_suffix_list.dat\n\
                     RejectFailures true\nHoldQuarantinedMessages true\n\
                     SPFIgnoreResults false\nSPFSelfValidate false\nFailureReports false\n",
                    s = dmarc_socket.display(),
                    h = nobody_hosts.display()
                ),
                0o644,
            )?;
            let mut p = Proc::spawn(
                "opendmarc",
                Command::new("/usr/sbin/opendmarc")
                    .arg("-f")
                    .arg("-c")
                    .arg(&conf),
                &odk_dir.join("opendmarc.log"),
            )?;
            wait_socket(&mut p, &dmarc_socket)?;
            Ok(p)
        })();

        let mut postfix = postfix;
        guarded("starting Postfix", || {
            postfix.start();
            Ok(())
        })?;
        for port in [port_sub_dovecot, port_sub_opendkim, port_inbound_chain] {
            let start = Instant::now();
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                if start.elapsed() > Duration::from_secs(10) {
                    return Err(format!("Postfix is not listening on {port}"));
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }

        Ok(Env {
            postfix,
            opendkim_sign,
            opendkim_verify,
            opendmarc,
            dovecot,
            pw_cold,
            pw,
            _cli: cli,
            _store_dir: store_dir,
            sink,
            _dns: dns,
            _dir: dir,
            port_sub_dovecot,
            port_sub_opendkim,
            port_inbound_chain,
            auth_socket,
            cold_socket,
            dovecot_socket,
            auth_cred,
            phc,
            sub_creds,
            corpus,
            notes,
            checks,
        })
    }

    /// Messages still to be handed to the sink (incoming and active queues).
    fn queue_backlog(&self) -> usize {
        fn count(p: &Path) -> usize {
            fs::read_dir(p).map_or(0, |rd| {
                rd.filter_map(Result::ok)
                    .map(|e| {
                        let p = e.path();
                        if p.is_dir() {
                            count(&p)
                        } else {
                            1
                        }
                    })
                    .sum()
            })
        }
        ["incoming", "active", "maildrop"]
            .iter()
            .map(|q| count(&self.postfix.queue_dir.join(q)))
            .sum()
    }

    /// Waits (at most 30 s) until Postfix has delivered what earlier rounds queued.
    fn drain(&self) {
        let start = Instant::now();
        while self.queue_backlog() > 0 && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
        // smtp-sink's files of the rounds before (thousands a round).
        self.clear_sink();
    }
}

/// The header fields named `names` of a message, unfolded, one a line.
fn header_fields(msg: &str, names: &[&str]) -> Vec<String> {
    let head = msg
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .split("\n\n")
        .next()
        .unwrap_or("");
    let mut fields: Vec<String> = Vec::new();
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            fields.push(line.to_string());
        }
    }
    fields
        .into_iter()
        .filter(|f| {
            names.iter().any(|n| {
                f.to_ascii_lowercase()
                    .starts_with(&format!("{}:", n.to_ascii_lowercase()))
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The measurements

struct Report {
    rows: Vec<Row>,
    /// Every round's figure of every series, in the order run.
    rounds: Vec<String>,
    notes: Vec<String>,
    checks: Vec<String>,
}

impl Report {
    fn log_rounds(&mut self, what: &str, series: &Series) {
        let v: Vec<String> = series.rounds.iter().map(|r| fmt_num(r.rate())).collect();
        self.rounds.push(format!(
            "{what}: {}{}",
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(", ")
            },
            series
                .error
                .as_ref()
                .map(|e| format!(" (error: {})", short(e)))
                .unwrap_or_default()
        ));
    }

    fn row(
        &mut self,
        work: &str,
        ours: String,
        peers: String,
        ratio: String,
        target: &str,
        verdict: String,
    ) {
        self.rows.push(Row {
            work: work.into(),
            ours,
            peers,
            ratio,
            target: target.into(),
            verdict,
        });
    }
}

fn contender<'a>(r: &'a R<Proc>, what: &str) -> R<&'a Proc> {
    r.as_ref()
        .map_err(|e| format!("{what} did not start: {}", short(e)))
}

fn measure_auth(env: &Env, s: &Settings, _checks: &Checks, rep: &mut Report) {
    let token = &env.auth_cred.token;
    let cold_ok = contender(&env.pw_cold, "postwarden (cold)").map(|_| ());
    let dovecot_ok = contender(&env.dovecot, "Dovecot").map(|_| ());
    let conns = [1usize, 2, 8];
    let mut cold: Vec<Series> = conns.iter().map(|_| Series::default()).collect();
    let mut dove: Vec<Series> = conns.iter().map(|_| Series::default()).collect();
    let mut bare = Series::default();
    let repeated_conns = [1usize, 8];
    let mut rep_s: Vec<Series> = repeated_conns.iter().map(|_| Series::default()).collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    // One login each first: a contender that cannot log in is reported, not measured.
    let check = |socket: &Path| AuthConn::connect(socket).and_then(|mut c| c.login(token));
    let cold_ok = cold_ok.and_then(|_| check(&env.cold_socket));
    let dovecot_ok = dovecot_ok.and_then(|_| check(&env.dovecot_socket));
    let pw_ok = check(&env.auth_socket);

    // Postfix delivers what the memory measurement queued first; then a warm-up of each.
    env.drain();
    for (ok, socket) in [
        (&cold_ok, &env.cold_socket),
        (&dovecot_ok, &env.dovecot_socket),
        (&pw_ok, &env.auth_socket),
    ] {
        if ok.is_ok() {
            let _ = auth_round(socket, 8, s.warm_secs, token);
        }
    }
    for round in 0..s.rounds {
        eprintln!("logins: round {} of {}", round + 1, s.rounds);
        for (i, &c) in conns.iter().enumerate() {
            cold[i].add(
                cold_ok
                    .clone()
                    .and_then(|_| auth_round(&env.cold_socket, c, s.auth_secs, token)),
            );
            dove[i].add(
                dovecot_ok
                    .clone()
                    .and_then(|_| auth_round(&env.dovecot_socket, c, s.auth_secs, token)),
            );
        }
        bare.add(bare_round(
            &env.phc,
            &env.auth_cred.pass,
            cores,
            s.auth_secs,
        ));
        for (i, &c) in repeated_conns.iter().enumerate() {
            rep_s[i].add(
                pw_ok
                    .clone()
                    .and_then(|_| auth_round(&env.auth_socket, c, s.auth_secs, token)),
            );
        }
    }

    for (i, &c) in conns.iter().enumerate() {
        rep.log_rounds(&format!("cold logins/s, {c} conn, postwarden"), &cold[i]);
        rep.log_rounds(&format!("cold logins/s, {c} conn, Dovecot"), &dove[i]);
    }
    rep.log_rounds(&format!("bare argon2id/s, {cores} threads"), &bare);
    for (i, &c) in repeated_conns.iter().enumerate() {
        rep.log_rounds(
            &format!("repeated logins/s, {c} conn, postwarden"),
            &rep_s[i],
        );
    }
    for (i, &c) in conns.iter().enumerate() {
        let mut peers = format!("Dovecot {}", dove[i].cell_lat());
        let (ratio, verdict, target) = if c == 8 {
            peers = format!(
                "bare argon2id, {cores} threads: {}; {peers}",
                bare.cell_lat()
            );
            let (r, v) = compare(&cold[i], &bare, "bare", Some(0.95));
            (r, v, ">= 0.95 x bare argon2id")
        } else if c == 1 {
            let (r, v) = compare(&cold[i], &dove[i], "Dovecot", Some(1.0));
            (r, v, ">= 1.0 x Dovecot")
        } else {
            let (r, v) = compare(&cold[i], &dove[i], "Dovecot", None);
            (r, v, "")
        };
        rep.row(
            &format!(
                "cold logins, {c} connection{}",
                if c == 1 { "" } else { "s" }
            ),
            cold[i].cell_lat(),
            peers,
            ratio,
            target,
            verdict,
        );
    }
    for (i, &c) in repeated_conns.iter().enumerate() {
        let di = conns.iter().position(|&x| x == c).unwrap();
        let (ratio, _) = compare(&rep_s[i], &dove[di], "Dovecot", None);
        rep.row(
            &format!(
                "repeated logins of one credential (login cache), {c} connection{}",
                if c == 1 { "" } else { "s" }
            ),
            rep_s[i].cell_lat(),
            format!(
                "Dovecot {} (the cold run: it verifies every login)",
                dove[di].cell("/s")
            ),
            ratio,
            "",
            String::new(),
        );
    }
    let ci = conns.iter().position(|&x| x == 8).unwrap();
    let (ratio, verdict) = compare(&rep_s[1], &cold[ci], "cold", Some(50.0));
    rep.row(
        "postwarden repeated / cold logins, 8 connections",
        format!("{} / {}", rep_s[1].cell("/s"), cold[ci].cell("/s")),
        String::new(),
        ratio,
        ">= 50 x cold",
        verdict,
    );
}

/// Whether each contender passed its check (one message through it, looked at at the sink).
struct Checks {
    sub_pw: R<()>,
    sub_opendkim: R<()>,
    sub_dovecot: R<()>,
    in_pw: R<()>,
    in_chain: R<()>,
}

impl Env {
    /// Empties the sink's directory (the checks look for their message in it; the loads
    /// would fill it with thousands of files a round).
    fn clear_sink(&self) {
        if let Ok(rd) = fs::read_dir(&self.sink.dir) {
            for e in rd.filter_map(Result::ok) {
                let _ = fs::remove_file(e.path());
            }
        }
    }

    /// The first message delivered to the sink, waiting up to 20 s.
    fn first_delivered(&self) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if let Some(m) = self.sink.messages().into_iter().next() {
                return Some(m);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

/// One message through each contender, checked at the sink: a submission service signs as
/// it should, an inbound chain writes its verdicts (which the report quotes). A contender
/// that fails its check is reported, not measured.
fn run_checks(env: &Env, rep: &mut Report) -> Checks {
    let body = body_3k();
    let sample = |port: u16, tag: &str| -> R<String> {
        env.clear_sink();
        let (n, e) = submission_session(
            port,
            &env.sub_creds[0].token,
            1,
            tag,
            &AtomicUsize::new(0),
            &body,
        );
        if n != 1 {
            return Err(e.unwrap_or_else(|| "not accepted".into()));
        }
        env.first_delivered()
            .ok_or_else(|| format!("{tag}: accepted but never delivered"))
    };
    let sub_pw = sample(env.postfix.submission_port, "check-postwarden").and_then(|m| {
        if m.contains("s=pwbench") && m.contains("d=acme.example") {
            Ok(())
        } else {
            Err("delivered without postwarden's DKIM signature".into())
        }
    });
    let sub_dovecot = contender(&env.dovecot, "Dovecot")
        .and_then(|_| sample(env.port_sub_dovecot, "check-dovecot"))
        .and_then(|m| {
            if m.contains("DKIM-Signature") {
                Err("unexpectedly signed".to_string())
            } else {
                Ok(())
            }
        });
    let sub_opendkim = contender(&env.opendkim_sign, "OpenDKIM (signing)")
        .and(sub_dovecot.clone())
        .and_then(|_| sample(env.port_sub_opendkim, "check-opendkim"))
        .and_then(|m| {
            if m.contains("s=odkbench") {
                Ok(())
            } else {
                Err("delivered without OpenDKIM's signature".to_string())
            }
        });
    if sub_pw.is_ok() && sub_opendkim.is_ok() {
        rep.checks.push(
            "submission: a sample message from each contender reached the sink; postwarden's \
             signed (s=pwbench), OpenDKIM's signed (s=odkbench), both rsa-sha256 with 2048-bit \
             keys; the no-milter one unsigned"
                .into(),
        );
    }

    // A signed message and an SPF-only one through each inbound contender, with the
    // header fields each side wrote.
    let mut inbound = |port: u16, who: &str, names: &[&str]| -> R<()> {
        // signed-nospf.example (DKIM pass only), spf-pass-quarantine.example (SPF pass
        // only), spf-fail.example (SPF fail, DMARC p=none).
        for idx in [2usize, 5, 6] {
            let m = &env.corpus[idx];
            env.clear_sink();
            let (n, e) = inbound_session(port, std::slice::from_ref(m), 0, 1);
            if n != 1 {
                return Err(e.unwrap_or_else(|| "not accepted".into()));
            }
            let msg = env
                .first_delivered()
                .ok_or_else(|| format!("{}: accepted but not delivered", m.domain))?;
            let fields = header_fields(&msg, names);
            rep.checks.push(format!(
                "inbound, {who}, {}: {}",
                m.domain,
                fields
                    .iter()
                    .map(|f| format!("`{}`", clip(f, 400)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        Ok(())
    };
    let in_pw = inbound(
        env.postfix.smtp_port,
        "postwarden",
        &["Authentication-Results"],
    );
    let in_chain = contender(&env.opendkim_verify, "OpenDKIM (verifying)")
        .and(contender(&env.opendmarc, "OpenDMARC"))
        .and_then(|_| {
            inbound(
                env.port_inbound_chain,
                "OpenDKIM+OpenDMARC+policyd-spf",
                &["Authentication-Results", "Received-SPF"],
            )
        });
    env.clear_sink();
    Checks {
        sub_pw,
        sub_opendkim,
        sub_dovecot,
        in_pw,
        in_chain,
    }
}

fn measure_submission(env: &Env, s: &Settings, checks: &Checks, rep: &mut Report) {
    let body = body_3k();
    let seq = AtomicUsize::new(0);
    let contenders: [(&str, u16, &R<()>); 3] = [
        ("postwarden", env.postfix.submission_port, &checks.sub_pw),
        (
            "Postfix+Dovecot+OpenDKIM",
            env.port_sub_opendkim,
            &checks.sub_opendkim,
        ),
        ("Postfix+Dovecot", env.port_sub_dovecot, &checks.sub_dovecot),
    ];
    for msgs in [1usize, 10] {
        let mut series: Vec<Series> = contenders.iter().map(|_| Series::default()).collect();
        for (i, (_, port, ok)) in contenders.iter().enumerate() {
            if ok.is_ok() {
                env.drain();
                let tag = format!("warm-{i}-{msgs}");
                smtp_round(4, s.warm_secs, |t, _| {
                    submission_session(*port, &env.sub_creds[t].token, msgs, &tag, &seq, &body)
                });
            }
        }
        for round in 0..s.rounds {
            eprintln!(
                "submission, {msgs} msg/session: round {} of {}",
                round + 1,
                s.rounds
            );
            for (i, (_, port, ok)) in contenders.iter().enumerate() {
                if let Err(e) = ok {
                    series[i].add(Err(e.clone()));
                    continue;
                }
                env.drain();
                let tag = format!("sub-{i}-{msgs}-{round}");
                series[i].add(Ok(smtp_round(4, s.smtp_secs, |t, _| {
                    submission_session(*port, &env.sub_creds[t].token, msgs, &tag, &seq, &body)
                })));
            }
        }
        for (i, (name, _, _)) in contenders.iter().enumerate() {
            rep.log_rounds(
                &format!("submission msgs/s, {msgs} msg/session, {name}"),
                &series[i],
            );
            let (n, e) = series[i].failures();
            if n > 0 {
                rep.notes.push(format!(
                    "submission, {msgs} msg/session, {name}: {n} session(s) failed, e.g. {}",
                    short(&e.unwrap_or_default())
                ));
            }
        }
        let label = format!(
            "submission msgs/s, {msgs} msg{}/session, 4 clients",
            if msgs == 1 { "" } else { "s" }
        );
        let (ratio, verdict) = compare(&series[0], &series[1], "OpenDKIM", Some(1.2));
        rep.row(
            &label,
            series[0].cell("/s"),
            format!("Postfix+Dovecot+OpenDKIM {}", series[1].cell("/s")),
            ratio,
            ">= 1.2 x Postfix+Dovecot+OpenDKIM",
            verdict,
        );
        let (ratio, _) = compare(&series[0], &series[2], "no milter", None);
        rep.row(
            &format!("{label}, against no milter"),
            series[0].cell("/s"),
            format!("Postfix+Dovecot, no milter {}", series[2].cell("/s")),
            ratio,
            "",
            String::new(),
        );
    }
}

fn measure_inbound(env: &Env, s: &Settings, checks: &Checks, rep: &mut Report) {
    let corpus = &env.corpus;
    let contenders: [(&str, u16, &R<()>); 2] = [
        ("postwarden", env.postfix.smtp_port, &checks.in_pw),
        (
            "OpenDKIM+OpenDMARC+policyd-spf",
            env.port_inbound_chain,
            &checks.in_chain,
        ),
    ];
    for conns in [1usize, 4] {
        let mut series: Vec<Series> = contenders.iter().map(|_| Series::default()).collect();
        for (_, port, ok) in contenders.iter() {
            if ok.is_ok() {
                env.drain();
                smtp_round(conns, s.warm_secs, |t, n| {
                    inbound_session(*port, corpus, (t * 17 + n * 10) % corpus.len(), 10)
                });
            }
        }
        for round in 0..s.rounds {
            eprintln!(
                "inbound, {conns} connection(s): round {} of {}",
                round + 1,
                s.rounds
            );
            for (i, (_, port, ok)) in contenders.iter().enumerate() {
                if let Err(e) = ok {
                    series[i].add(Err(e.clone()));
                    continue;
                }
                env.drain();
                series[i].add(Ok(smtp_round(conns, s.smtp_secs, |t, n| {
                    inbound_session(*port, corpus, (t * 17 + n * 10) % corpus.len(), 10)
                })));
            }
        }
        for (i, (name, _, _)) in contenders.iter().enumerate() {
            rep.log_rounds(&format!("inbound msgs/s, {conns} conn, {name}"), &series[i]);
            let (n, e) = series[i].failures();
            if n > 0 {
                rep.notes.push(format!(
                    "inbound, {conns} connection(s), {name}: {n} session(s) with a failure or a refused message, e.g. {}",
                    short(&e.unwrap_or_default())
                ));
            }
        }
        let (ratio, verdict) = compare(&series[0], &series[1], "chain", Some(2.0));
        rep.row(
            &format!(
                "inbound msgs/s, {conns} connection{}, 10 msgs/session",
                if conns == 1 { "" } else { "s" }
            ),
            series[0].cell("/s"),
            format!("OpenDKIM+OpenDMARC+policyd-spf {}", series[1].cell("/s")),
            ratio,
            ">= 2 x the chain",
            verdict,
        );
    }
}

/// Holds sessions open at the barrier until the main thread says go.
struct Gate {
    ready: AtomicUsize,
    failed: AtomicUsize,
    go: Mutex<bool>,
    cv: Condvar,
}

fn measure_memory(env: &Env, s: &Settings, _checks: &Checks, rep: &mut Report) {
    let pid = env.pw.pid();
    let port = env.postfix.submission_port;
    let body = body_3k();
    // Idle: after the checks above (every service has served a session), settled.
    std::thread::sleep(Duration::from_secs(3));
    let idle = rss_mib(pid);
    let idle_sockets = open_sockets(pid);
    let gate = Arc::new(Gate {
        ready: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        go: Mutex::new(false),
        cv: Condvar::new(),
    });
    let served = Arc::new(AtomicUsize::new(0));
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut handles = Vec::new();
    let mut at = Vec::new();
    let mut opened = 0;
    let start_all = Instant::now();
    for &target in &s.sessions {
        eprintln!("memory: opening sessions up to {target}");
        while opened < target {
            let (g, served, errs) = (Arc::clone(&gate), Arc::clone(&served), Arc::clone(&errors));
            let token = env.sub_creds[opened % env.sub_creds.len()].token.clone();
            let msg = submission_message(&format!("memory-{opened}"), &body);
            let h = std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let open = (|| -> R<Smtp> {
                        let mut c = Smtp::connect(port, Duration::from_secs(300))?;
                        c.expect(Some("EHLO client.bench.example"), 250)?;
                        c.expect(Some(&format!("AUTH PLAIN {token}")), 235)?;
                        c.expect(Some(&format!("MAIL FROM:<{SENDER}>")), 250)?;
                        c.expect(Some(&format!("RCPT TO:<{RCPT}>")), 250)?;
                        Ok(c)
                    })();
                    let mut c = match open {
                        Ok(c) => {
                            g.ready.fetch_add(1, Ordering::SeqCst);
                            c
                        }
                        Err(e) => {
                            g.failed.fetch_add(1, Ordering::SeqCst);
                            errs.lock().unwrap().push(e);
                            return;
                        }
                    };
                    {
                        let mut go = g.go.lock().unwrap();
                        while !*go {
                            go = g.cv.wait(go).unwrap();
                        }
                    }
                    match c.data(&msg) {
                        Ok((250, _)) => {
                            served.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok((_, t)) => errs.lock().unwrap().push(format!("end of data: {t}")),
                        Err(e) => errs.lock().unwrap().push(e),
                    }
                    c.quit();
                });
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    gate.failed.fetch_add(1, Ordering::SeqCst);
                    errors.lock().unwrap().push(format!("thread: {e}"));
                }
            }
            opened += 1;
            // Connect at about 200 sessions a second: Postfix's master spawns an smtpd for each.
            std::thread::sleep(Duration::from_millis(5));
        }
        let wait_start = Instant::now();
        while gate.ready.load(Ordering::SeqCst) + gate.failed.load(Ordering::SeqCst) < opened
            && wait_start.elapsed() < Duration::from_secs(180)
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(1));
        let open_now = gate.ready.load(Ordering::SeqCst);
        at.push((target, open_now, rss_mib(pid)));
        eprintln!("memory: {open_now} of {target} sessions open");
    }
    {
        *gate.go.lock().unwrap() = true;
        gate.cv.notify_all();
    }
    for h in handles {
        let _ = h.join();
    }
    let served = served.load(Ordering::SeqCst);
    let total_secs = start_all.elapsed().as_secs_f64();
    // The daemon gives memory back on its trim tick (every 10 s; argon2's buffers once
    // unused for 10 s): a few seconds after, and after two ticks.
    std::thread::sleep(Duration::from_secs(5));
    let after_5 = rss_mib(pid);
    std::thread::sleep(Duration::from_secs(15));
    let after = rss_mib(pid);
    // Then Postfix's idle smtpd processes exit (max_idle) and close their auth
    // connections; two more trim ticks.
    let closed_start = Instant::now();
    while open_sockets(pid) > idle_sockets + 2 && closed_start.elapsed() < Duration::from_secs(90) {
        std::thread::sleep(Duration::from_millis(500));
    }
    let closed_secs = closed_start.elapsed().as_secs_f64() + 20.0;
    let sockets_left = open_sockets(pid);
    std::thread::sleep(Duration::from_secs(21));
    let after_closed = rss_mib(pid);
    let errors = errors.lock().unwrap().clone();
    if !errors.is_empty() {
        rep.notes.push(format!(
            "concurrent sessions: {} failed, e.g. {}",
            errors.len(),
            short(&errors[0])
        ));
    }
    rep.notes.push(format!(
        "concurrent sessions: opened at about 200/s, all {opened} served in {total_secs:.0} s from the first connection"
    ));
    let n_max = *s.sessions.last().unwrap();
    rep.row(
        &format!("{n_max} concurrent submission sessions served (each: AUTH, MAIL, RCPT, wait for all, DATA)"),
        format!("{served} of {opened}"),
        String::new(),
        String::new(),
        &format!("{n_max} served"),
        if served >= n_max { "pass".into() } else { "miss".into() },
    );
    let mib = |r: &R<f64>| match r {
        Ok(v) => format!("{v:.1} MiB"),
        Err(e) => format!("error: {}", short(e)),
    };
    rep.row(
        "postwarden RSS, idle",
        mib(&idle),
        String::new(),
        String::new(),
        "",
        String::new(),
    );
    for (target, open_now, rss) in &at {
        let (t, v) = if *target == s.sessions[0] {
            let v = match rss {
                Ok(r) if *r < 64.0 => "pass",
                Ok(_) => "miss",
                Err(_) => "n/a",
            };
            ("< 64 MiB", v.to_string())
        } else {
            ("", String::new())
        };
        rep.row(
            &format!("postwarden RSS, {target} sessions open ({open_now} open)"),
            mib(rss),
            String::new(),
            String::new(),
            t,
            v,
        );
    }
    let (ratio, verdict) = match (&after, &idle) {
        (Ok(a), Ok(i)) => (
            format!("{:.2} x idle", a / i),
            if a / i <= 1.5 { "pass" } else { "miss" }.to_string(),
        ),
        _ => ("n/a".into(), "n/a".into()),
    };
    rep.row(
        "postwarden RSS, 5 s after the sessions ended",
        mib(&after_5),
        String::new(),
        match (&after_5, &idle) {
            (Ok(a), Ok(i)) => format!("{:.2} x idle", a / i),
            _ => "n/a".into(),
        },
        "",
        String::new(),
    );
    let closed_row = (
        format!(
            "postwarden RSS once Postfix's idle smtpd processes closed their auth connections \
             (max_idle; {sockets_left} sockets open, {idle_sockets} at idle), 21 s later \
             ({:.0} s after the sessions ended)",
            closed_secs + 21.0
        ),
        mib(&after_closed),
        match (&after_closed, &idle) {
            (Ok(a), Ok(i)) => format!("{:.2} x idle", a / i),
            _ => "n/a".into(),
        },
    );
    rep.row(
        &format!(
            "postwarden RSS, 20 s after the sessions ended (two trim ticks; Postfix's {n_max} \
             idle smtpd processes still hold their auth connections)"
        ),
        mib(&after),
        String::new(),
        ratio,
        "<= 1.5 x idle (back near idle)",
        verdict,
    );
    rep.row(
        &closed_row.0,
        closed_row.1,
        String::new(),
        closed_row.2,
        "",
        String::new(),
    );
}

// ---------------------------------------------------------------------------------------
// The report

fn machine() -> Vec<String> {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| {
            v.split_whitespace()
                .next()
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let debian = fs::read_to_string("/etc/debian_version").unwrap_or_default();
    let mut versions = Vec::new();
    for p in [
        "postfix",
        "dovecot-core",
        "opendkim",
        "opendmarc",
        "postfix-policyd-spf-python",
        "dnsmasq-base",
    ] {
        versions.push(format!(
            "{p} {}",
            command_out("dpkg-query", &["-W", "-f=${Version}", p])
        ));
    }
    let rev = command_out("git", &["-C", REPO, "rev-parse", "--short", "HEAD"]);
    let dirty = !command_out(
        "git",
        &["-C", REPO, "status", "--porcelain", "--untracked-files=no"],
    )
    .is_empty();
    vec![
        format!("CPU: {model}, {cores} cores; memory {mem}"),
        format!("Linux {}, Debian {}", kernel.trim(), debian.trim()),
        format!("Peers (Debian packages): {}", versions.join(", ")),
        format!(
            "postwarden: git {}{} (release build)",
            if rev.is_empty() { "unknown" } else { &rev },
            if dirty {
                " with uncommitted changes"
            } else {
                ""
            }
        ),
    ]
}

fn table(rows: &[Row]) -> String {
    let mut t = String::from(
        "| work | postwarden | peer(s) | ratio | target | pass/miss |\n|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {} | {} |",
            r.work, r.ours, r.peers, r.ratio, r.target, r.verdict
        );
    }
    t
}

fn how(s: &Settings) -> String {
    format!(
        "\
- Everything runs on this one machine, on loopback, inside a private network namespace:
  a private Postfix instance (its own config and queue; relays to smtp-sink), a private
  dnsmasq on 127.0.0.1:53 that every program resolves through (postwarden's
  `[dns] nameservers`, OpenDKIM's `Nameservers`, the system resolver of OpenDMARC and
  policyd-spf), and private instances of each peer, configured by the bench. No caching
  resolver sits in between: postwarden's resolver and OpenDKIM's libunbound cache answers
  themselves, OpenDMARC and policyd-spf ask dnsmasq every time (as they would ask a local
  resolver on a real host).
- Contenders run interleaved, A B C A B C ..., {rounds} round(s) each of {auth} s (logins) or
  {smtp} s (SMTP), after an unmeasured warm-up of {warm} s each (Postfix starts its smtpd
  processes, and policyd-spf's, on first use); each figure is the median of the rounds,
  each ratio the median of the per-round ratios (a round measures the contenders back to
  back, so a slow spell of the machine weighs on both sides of its ratio);
  latencies are percentiles over every login of every round. Before each round the bench
  waits until Postfix has delivered what the previous one queued.
- Logins: the client speaks the Dovecot auth protocol to the unix socket (handshake once
  per connection, then `AUTH PLAIN` after `AUTH PLAIN`, each answered before the next).
  Every login uses the same credential and PHC string (argon2id m=19456 KiB, t=2, p=1, as
  `postwarden credential new` made it). \"Cold\" is a second postwarden daemon on the same
  store with `auth.login_cache_entries = 0` and throttling relaxed; \"repeated\" is the daemon
  on the default config (login cache on). Dovecot: its auth service alone (`protocols =`),
  passdb passwd-file with `{{ARGON2ID}}` + the PHC string, default settings (no auth cache).
  Bare: the argon2 crate verifying the PHC string, one thread per core, each reusing its
  argon2 memory (the hash alone, nothing else). postwarden and the bare row hash with the
  RustCrypto argon2 crate, Dovecot with libsodium's argon2id.
- Submission: 4 client threads, each with its own credential of org acme, sending
  alice@acme.example -> rcpt@dest.example, 3 KB messages, EHLO + AUTH PLAIN + N x (MAIL,
  RCPT, DATA) + QUIT; msgs/s = messages accepted with 250 / wall time. The three
  submission services are copies of the shipped `postfix/master.cf` entry differing only in
  `smtpd_sasl_path` and `smtpd_milters`. **No TLS**: there is no TLS client in the bench,
  so every submission service runs with `smtpd_tls_security_level=none
  smtpd_tls_auth_only=no` (and postwarden with `auth.allow_plaintext = true`); TLS would
  cost every contender the same handshake. postwarden signs with its RSA-2048 key,
  OpenDKIM (`Mode s`, relaxed/relaxed, rsa-sha256) with another RSA-2048 key.
- Inbound: one corpus of 48 messages (3 KB, from 8 domains, half of them DKIM-signed with
  RSA-2048 by the bench; SPF pass, fail and none; DMARC p=none and p=quarantine), sent 10
  per session to the port-25 service. postwarden: its inbound milter (default policy:
  quarantine = hold). The chain: OpenDKIM (`Mode v`), OpenDMARC (`RejectFailures true`,
  `HoldQuarantinedMessages true`) and policyd-spf (`check_policy_service`, headers only:
  `HELO_reject = False`, `Mail_From_reject = False`, `skip_addresses` emptied of 127.0.0.0/8).
  OpenDMARC takes SPF from policyd-spf's `Received-SPF` header (`SPFIgnoreResults false`,
  `SPFSelfValidate false`: no second SPF check) and DKIM from OpenDKIM's
  Authentication-Results (`TrustedAuthservIDs {AUTHSERV}`).
- Concurrent sessions: {n0} and then {n1} submission sessions opened (about 200 a second),
  each connected, past EHLO, AUTH, MAIL and RCPT, waiting until all are open; then each
  sends its message and QUITs, with the credentials of the submission clients (so logins
  after the first of each hit the login cache). RSS is the daemon's VmRSS from /proc (one
  process serves auth and both milters). This part runs first: \"idle\" is the daemon after
  the checks below (one message through each of its services), settled 3 s; \"after\" is
  5 s and 20 s after the last session ended (the daemon trims its memory every 10 s), and
  once Postfix's idle smtpd processes have exited and closed their auth connections.
- Files: Postfix's queue, smtp-sink's files and the peers' runtime files are on a tmpfs
  (bench/run mounts one on /tmp in its private mount namespace): Postfix fsyncs each queue
  file before it answers 250, and this VM disk's fsync latency varied about 2x between
  rounds, for every contender alike. postwarden's SQLite store is on disk (/var/tmp), so
  its own writes (throttle counters, last use, events) count; the peers write nothing.
- Postfix settings for every contender: `in_flow_delay = 0s` (acceptance not held to the
  delivery rate), `max_idle = 30s`, `default_process_limit = 1200`, submission maxproc 1100,
  `smtpd_client_connection_count_limit = 0`.
",
        rounds = s.rounds,
        auth = s.auth_secs,
        smtp = s.smtp_secs,
        warm = s.warm_secs,
        n0 = s.sessions[0],
        n1 = s.sessions[1],
    )
}

/// Root, and every program the bench starts.
fn preflight() -> R<()> {
    use std::os::unix::fs::MetadataExt;
    let mut missing: Vec<&str> = [
        "/usr/sbin/postfix",
        "/usr/lib/postfix/sbin/master",
        "/usr/sbin/smtp-sink",
        "/usr/bin/openssl",
        dns::DNSMASQ,
        "/usr/sbin/dovecot",
        "/usr/bin/doveadm",
        "/usr/sbin/opendkim",
        "/usr/sbin/opendmarc",
        "/usr/bin/policyd-spf",
    ]
    .into_iter()
    .filter(|p| !Path::new(p).exists())
    .collect();
    if fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
        missing.push("root privileges");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {}", missing.join(", ")))
    }
}

fn main() {
    let s = Settings::from_env();
    let started = Instant::now();
    let date = command_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    if let Err(e) = preflight() {
        eprintln!("peers: {e}; run bench/run (as root: it installs them)");
        std::process::exit(2);
    }
    let monitor = Monitor::start();
    let env = match Env::start() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("peers: could not set up the benchmark: {e}");
            std::process::exit(1);
        }
    };
    eprintln!(
        "peers: everything started in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let mut rep = Report {
        rows: Vec::new(),
        rounds: Vec::new(),
        notes: env.notes.clone(),
        checks: env.checks.clone(),
    };
    // The checks first (every service serves a message), then memory, on a daemon that has
    // only served the checks: its idle is an idle.
    let checks = run_checks(&env, &mut rep);
    type Part = fn(&Env, &Settings, &Checks, &mut Report);
    let parts: [(&str, Part); 4] = [
        ("memory", measure_memory),
        ("auth", measure_auth),
        ("submission", measure_submission),
        ("inbound", measure_inbound),
    ];
    let mut sections: Vec<(&str, Vec<Row>)> = Vec::new();
    let mut phases: Vec<(&str, f64, f64)> = Vec::new();
    let mut io_pressure: Vec<String> = Vec::new();
    let mut steal: Vec<String> = Vec::new();
    for (name, f) in parts {
        if !s.runs(name) {
            continue;
        }
        let before = rep.rows.len();
        let t0 = monitor.now();
        let io0 = io_stall_us();
        let cpu0 = cpu_steal();
        if let Err(e) = guarded(name, || {
            f(&env, &s, &checks, &mut rep);
            Ok(())
        }) {
            rep.notes.push(format!("{name}: aborted: {}", short(&e)));
        }
        let rows = rep.rows.split_off(before);
        phases.push((name, t0, monitor.now()));
        if let (Some((t0, s0)), Some((t1, s1))) = (cpu0, cpu_steal()) {
            steal.push(format!(
                "{name} {:.1} %",
                (s1 - s0) as f64 * 100.0 / (t1 - t0).max(1) as f64
            ));
        }
        if let (Some(a), Some(b)) = (io0, io_stall_us()) {
            io_pressure.push(format!(
                "{name} {:.0} %",
                (b - a) as f64 / 1e4 / (monitor.now() - t0).max(0.001)
            ));
        }
        sections.push((name, rows));
    }
    // The table in the order the brief reads: logins, submission, inbound, memory.
    let mut rows = Vec::new();
    for want in ["auth", "submission", "inbound", "memory"] {
        for (name, r) in sections.iter_mut() {
            if *name == want {
                rows.append(r);
            }
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let outside = monitor.finish();
    let outside_secs: f64 = outside.iter().map(|o| o.2).sum::<f64>() + 0.0;
    if outside_secs >= 5.0 {
        // Which parts it fell in, and who it was.
        let mut per_phase: Vec<(String, f64)> = Vec::new();
        for (when, _, used) in &outside {
            let phase = phases
                .iter()
                .find(|(_, a, b)| when >= a && when <= b)
                .map_or("setup and checks", |p| p.0)
                .to_string();
            match per_phase.iter_mut().find(|(p, _)| *p == phase) {
                Some(e) => e.1 += used,
                None => per_phase.push((phase, *used)),
            }
        }
        let mut names: Vec<(String, f64)> = Vec::new();
        for (_, n, used) in &outside {
            match names.iter_mut().find(|(m, _)| m == n) {
                Some(e) => e.1 += used,
                None => names.push((n.clone(), *used)),
            }
        }
        names.sort_by(|a, b| b.1.total_cmp(&a.1));
        let list = |v: &[(String, f64)]| {
            v.iter()
                .take(5)
                .map(|(n, s)| format!("{n} {s:.0} s"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        rep.notes.insert(
            0,
            format!(
                "**Other load on the machine during the run**: processes outside the benchmark \
                 used {outside_secs:.0} CPU seconds ({}), in: {}; those parts are skewed",
                list(&names),
                list(&per_phase)
            ),
        );
    } else {
        rep.notes.push(format!(
            "processes outside the benchmark used {outside_secs:.1} CPU seconds during the run \
             (a quiet machine)"
        ));
    }
    if !steal.is_empty() {
        rep.notes.push(format!(
            "CPU time stolen by the VM's host (/proc/stat steal, share of all CPU time): {}",
            steal.join(", ")
        ));
    }
    if !io_pressure.is_empty() {
        rep.notes.push(format!(
            "I/O pressure (/proc/pressure/io, share of the time some task waited on I/O, the \
             benchmark's own Postfix queue writes included): {}",
            io_pressure.join(", ")
        ));
    }
    let t = table(&rows);
    println!("\n{t}");
    for n in &rep.notes {
        println!("note: {n}");
    }
    let mut md = String::new();
    let _ = writeln!(md, "# postwarden against its peers\n");
    let _ = writeln!(
        md,
        "`bench/run` on {date}{}; the benchmark took {:.0} s after the build. \
         The bench is `benches/peers.rs`.\n",
        if s.quick {
            " (BENCH_QUICK=1: one short round, a harness check, not a measurement)"
        } else {
            ""
        },
        wall
    );
    let _ = writeln!(md, "## Machine\n");
    for l in machine() {
        let _ = writeln!(md, "- {l}");
    }
    let _ = writeln!(md, "\n## How it is measured\n\n{}", how(&s));
    let _ = writeln!(md, "## Results\n\n{t}");
    if !rep.notes.is_empty() {
        let _ = writeln!(md, "## Notes\n");
        for n in &rep.notes {
            let _ = writeln!(md, "- {n}");
        }
        md.push('\n');
    }
    if !rep.rounds.is_empty() {
        let _ = writeln!(md, "## Every round (in the order run)\n");
        for r in &rep.rounds {
            let _ = writeln!(md, "- {r}");
        }
        md.push('\n');
    }
    if !rep.checks.is_empty() {
        let _ = writeln!(md, "## Checks made before measuring\n");
        for c in &rep.checks {
            let _ = writeln!(md, "- {c}");
        }
    }
    let path = if s.quick || !s.only.is_empty() {
        PathBuf::from(REPO).join("target/peers-RESULTS.md")
    } else {
        PathBuf::from(REPO).join("bench/RESULTS.md")
    };
    match fs::write(&path, md) {
        Ok(()) => eprintln!("peers: wrote {} ({wall:.0} s)", path.display()),
        Err(e) => eprintln!("peers: writing {}: {e}", path.display()),
    }
    drop(env);
}
