//! Memory of the daemon under malformed traffic, and how much of it comes back after.
//!
//! Starts the real `postwarden run` (milters and auth socket on loopback), measures its
//! idle resident memory, then drives malformed traffic at it from several threads for a
//! while: milter sessions that send a large message body and then a garbage packet or
//! hang up before the end of the message, milter packets announcing a 1 MB payload that
//! never comes whole, and auth connections that send lines past the limit, garbage and
//! half-finished LOGIN exchanges. Then it stops the traffic and watches the resident
//! memory until it settles (at most `POSTWARDEN_ABUSE_SETTLE_SECS`, default 30 s).
//!
//! It prints idle, peak and settled RSS and the ratio settled / idle (the target is at
//! most 2). It prints, it does not assert.
//!
//! Run: cargo bench --bench memory_abuse
//! (POSTWARDEN_ABUSE_SECS: how long the traffic lasts, default 60; the report
//! was after 300.)

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_postwarden");
const MILTER_CLIENTS: usize = 12;
const AUTH_CLIENTS: usize = 6;

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// VmRSS and VmHWM (peak) of `pid`, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// One milter protocol packet: length, command, data.
fn packet(cmd: u8, data: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(5 + data.len());
    p.extend_from_slice(&(data.len() as u32 + 1).to_be_bytes());
    p.push(cmd);
    p.extend_from_slice(data);
    p
}

/// Reads and discards whatever the daemon answers, until it closes.
fn drain(stream: &TcpStream) -> std::thread::JoinHandle<()> {
    let mut r = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while matches!(r.read(&mut buf), Ok(n) if n > 0) {}
    })
}

/// One abusive milter session; `round` varies what it does.
fn milter_session(port: u16, round: u64, sent: &AtomicU64) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let reader = drain(&s);
    let mut out = Vec::new();
    // Option negotiation: version 6, all actions and protocol steps offered, as Postfix does.
    let mut optneg = Vec::new();
    optneg.extend_from_slice(&6u32.to_be_bytes());
    optneg.extend_from_slice(&0x1ffu32.to_be_bytes());
    optneg.extend_from_slice(&0x1f_ffffu32.to_be_bytes());
    out.extend(packet(b'O', &optneg));
    match round % 3 {
        // A message body of several MiB, then a packet with an unknown command.
        0 | 1 => {
            out.extend(packet(b'C', b"client.example\x004\x9c\x40192.0.2.9\x00"));
            out.extend(packet(b'H', b"client.example\x00"));
            out.extend(packet(
                b'D',
                b"M{auth_authen}\x00someone\x00i\x00ABC123\x00",
            ));
            out.extend(packet(b'M', b"<a@client.example>\x00"));
            out.extend(packet(b'R', b"<b@example.net>\x00"));
            out.extend(packet(b'L', b"From\x00a@client.example\x00"));
            out.extend(packet(b'L', b"Subject\x00abuse\x00"));
            out.extend(packet(b'N', b""));
            let _ = s.write_all(&out);
            out.clear();
            let chunk = vec![b'x'; 65_535];
            let chunks = 16 + (round * 7919 % 96) as usize; // 1 to 7 MiB
            for _ in 0..chunks {
                if s.write_all(&packet(b'B', &chunk)).is_err() {
                    break;
                }
                sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            }
            if round.is_multiple_of(3) {
                let _ = s.write_all(&packet(b'Z', b"garbage"));
            }
        }
        // A packet announcing almost 1 MB, of which half arrives before the hang-up.
        _ => {
            let _ = s.write_all(&out);
            let mut p = Vec::new();
            p.extend_from_slice(&1_000_000u32.to_be_bytes());
            p.push(b'B');
            p.extend(std::iter::repeat_n(b'y', 500_000));
            let _ = s.write_all(&p);
            sent.fetch_add(p.len() as u64, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let _ = s.shutdown(Shutdown::Both);
    let _ = reader.join();
}

/// One abusive auth connection.
fn auth_session(port: u16, round: u64, sent: &AtomicU64) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    let reader = drain(&s);
    let _ = s.write_all(b"VERSION\t1\t0\nCPID\t77\n");
    match round % 3 {
        // A line far past the 16 KiB limit.
        0 => {
            let long = vec![b'A'; 64 * 1024];
            let _ = s.write_all(b"AUTH\t1\tPLAIN\tservice=smtp\tresp=");
            let _ = s.write_all(&long);
            sent.fetch_add(long.len() as u64, Ordering::Relaxed);
        }
        // Open LOGIN exchanges left hanging, then garbage.
        1 => {
            for id in 1..=32 {
                let _ = s.write_all(
                    format!("AUTH\t{id}\tLOGIN\tservice=smtp\trip=192.0.2.{id}\tsecured\n")
                        .as_bytes(),
                );
            }
            let _ = s.write_all(b"\x00\x01\x02 not a command\n");
        }
        // An oversized response just under the line limit.
        _ => {
            let resp = vec![b'Q'; 15 * 1024];
            let _ = s.write_all(b"AUTH\t1\tPLAIN\tservice=smtp\tsecured\tresp=");
            let _ = s.write_all(&resp);
            let _ = s.write_all(b"\n");
            sent.fetch_add(resp.len() as u64, Ordering::Relaxed);
        }
    }
    let _ = s.shutdown(Shutdown::Write);
    std::thread::sleep(Duration::from_millis(20));
    let _ = s.shutdown(Shutdown::Both);
    let _ = reader.join();
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if self.0.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let traffic = Duration::from_secs(env_secs("POSTWARDEN_ABUSE_SECS", 60));
    let settle = Duration::from_secs(env_secs("POSTWARDEN_ABUSE_SETTLE_SECS", 30));
    let dir = tempfile::tempdir().unwrap();
    let (auth, submission, inbound) = (free_port(), free_port(), free_port());
    let config = dir.path().join("postwarden.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nlog_level = \"error\"\n\
             [auth]\nlisten = \"inet:127.0.0.1:{auth}\"\n\
             [submission]\nlisten = \"inet:127.0.0.1:{submission}\"\n\
             [inbound]\nlisten = \"inet:127.0.0.1:{inbound}\"\n\
             [dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout = \"200ms\"\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .env_remove("RUST_LOG")
        .env_remove("POSTWARDEN_DATA_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("postwarden run");
    let daemon = Daemon(child);
    let pid = daemon.0.id();
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", inbound)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(30), "daemon not up");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (idle, _) = rss_kib(pid);

    println!(
        "memory_abuse: {} s of malformed traffic ({MILTER_CLIENTS} milter and {AUTH_CLIENTS} auth clients), then up to {} s to settle",
        traffic.as_secs(),
        settle.as_secs()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sessions = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for c in 0..MILTER_CLIENTS + AUTH_CLIENTS {
        let (stop, sent, sessions) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&sessions));
        clients.push(std::thread::spawn(move || {
            let mut round = c as u64;
            while !stop.load(Ordering::Relaxed) {
                if c < MILTER_CLIENTS {
                    let port = if c % 2 == 0 { inbound } else { submission };
                    milter_session(port, round, &sent);
                } else {
                    auth_session(auth, round, &sent);
                }
                sessions.fetch_add(1, Ordering::Relaxed);
                round += 1;
            }
        }));
    }
    let begin = Instant::now();
    while begin.elapsed() < traffic {
        std::thread::sleep(Duration::from_millis(250));
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let (_, peak) = rss_kib(pid);

    // Settled: the RSS once it stops falling, or after `settle`.
    let stopped = Instant::now();
    let mut samples = vec![rss_kib(pid).0];
    while stopped.elapsed() < settle {
        std::thread::sleep(Duration::from_secs(1));
        samples.push(rss_kib(pid).0);
        let n = samples.len();
        if n >= 6 && samples[n - 6..].iter().all(|&s| s == samples[n - 1]) {
            break;
        }
    }
    let after = *samples.last().unwrap();
    println!(
        "  traffic      {} sessions, {:.0} MiB sent",
        sessions.load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed) as f64 / 1048576.0
    );
    println!("  idle RSS     {:8.1} MiB", mib(idle));
    println!("  peak RSS     {:8.1} MiB", mib(peak));
    println!(
        "  after RSS    {:8.1} MiB ({} s after the traffic stopped)",
        mib(after),
        stopped.elapsed().as_secs()
    );
    println!(
        "  ratio        after / idle: {:.2} (target: at most 2)",
        after as f64 / idle.max(1) as f64
    );
    drop(daemon);
}
