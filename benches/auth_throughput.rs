//! Login throughput of the auth socket, against a baseline measured in the same run.
//!
//! Baseline: the bare argon2id verifications the same hardware does per second, on as
//! many threads as the auth service allows (`max_parallel_hashes` = cores). Measured: full
//! PLAIN logins through the Dovecot protocol on a Unix socket (handshake once per
//! connection, store lookup, argon2id, last-use update, auth event), from several
//! concurrent connections. The ratio says what the protocol, the store and the logging
//! cost on top of the hashing; it prints, it does not assert.
//!
//! It runs three times, each login with the same credential: with the configured (default)
//! argon2id parameters and the login cache off (cold logins, as a first login always is);
//! with deliberately cheap ones (64 KiB, one pass), where the ratio shows what everything
//! beside the hash costs: the protocol, the store and the event log; and with the default
//! parameters and the login cache on (a printer logging in for every message), whose ratio
//! is against the cold logins of the first run.
//!
//! Run: cargo bench --bench auth_throughput

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use postwarden::config::{Config, ListenAddr};
use postwarden::daemon::{serve_auth, Listener};
use postwarden::events::EventSink;
use postwarden::login::credential;
use postwarden::login::AuthService;
use postwarden::model::SenderCheck;
use postwarden::store::{prelude::*, sqlite::SqliteStore as Store, Pool};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const CONNECTIONS: usize = 8;

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("auth_throughput: {cores} core(s), {CONNECTIONS} connections");
    const COLD: &str = "[auth]\nlogin_cache_entries = 0\n";
    // POSTWARDEN_AUTH_BENCH=repeated or =cold: only those logins (for a profile of them).
    let only = std::env::var("POSTWARDEN_AUTH_BENCH").unwrap_or_default();
    if only == "cold" {
        run("default argon2id, cold logins", COLD, 400, cores);
        return;
    }
    let cold = if only == "repeated" {
        f64::NAN
    } else {
        let (_, cold) = run("default argon2id, cold logins", COLD, 400, cores);
        run(
            "cheap argon2id (64 KiB, 1 pass), cold logins",
            &format!("[password_hash]\nmemory_kib = 64\niterations = 1\n{COLD}"),
            4000,
            cores,
        );
        cold
    };
    let (_, repeated) = run(
        "default argon2id, repeated logins of one credential (login cache)",
        "",
        8000,
        cores,
    );
    println!("repeated logins (login cache) / cold logins, default argon2id:");
    println!(
        "  ratio     repeated / cold:               {:10.1}  (target >= 50)",
        repeated / cold
    );
}

/// Measures `logins` logins with the config lines `extra`, against bare verifications;
/// returns (baseline, measured) per second.
fn run(name: &str, extra: &str, logins: usize, cores: usize) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse(
        &format!(
            "data_dir = {:?}\n{extra}[auth.throttle]\nblock_after = 0\nfree_failures = 1000000\n",
            dir.path().display().to_string()
        ),
        "bench",
    )
    .unwrap();
    let mut store = Store::open(&cfg.store_path(), Duration::from_secs(5), "bench").unwrap();
    store.org_add("bench", SenderCheck::Account).unwrap();
    let password = credential::generate_password();
    let hash = credential::hash_password(&password, &cfg.password_hash).unwrap();
    store
        .credential_add("bench", "b", "bench-user", &hash)
        .unwrap();
    drop(store);

    // Baseline: bare verifications on `cores` threads (at most 400: the hash does not
    // depend on the run's login count).
    let bare = logins.min(400);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..cores {
            let (hash, password) = (&hash, &password);
            s.spawn(move || {
                for _ in (t..bare).step_by(cores) {
                    assert!(credential::verify_password(password, hash).unwrap());
                }
            });
        }
    });
    let baseline = bare as f64 / start.elapsed().as_secs_f64();

    // Measured: logins through the auth socket.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let measured = runtime.block_on(async {
        let cfg = Arc::new(cfg);
        let socket = dir.path().join("auth.sock");
        let listener = Listener::bind(&ListenAddr::Unix(socket.clone()), cfg.sockets.mode, "")
            .await
            .unwrap();
        let service = Arc::new(
            AuthService::new(
                Arc::clone(&cfg),
                Pool::new(&cfg),
                EventSink::new(Pool::new(&cfg)),
            )
            .unwrap(),
        );
        tokio::spawn(serve_auth(
            listener,
            service,
            16384,
            Duration::from_secs(3600),
            // Never stopped: the sender is dropped at once.
            tokio::sync::watch::channel(false).1,
            Vec::new(),
        ));
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0bench-user\0{password}"));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..CONNECTIONS {
            let (socket, token) = (socket.clone(), token.clone());
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
                let (r, mut w) = stream.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"VERSION\t1\t0\nCPID\t1\n").await.unwrap();
                while lines.next_line().await.unwrap().unwrap() != "DONE" {}
                for id in (c..logins).step_by(CONNECTIONS) {
                    let req = format!(
                        "AUTH\t{}\tPLAIN\tservice=smtp\trip=127.0.0.1\tsecured\tresp={token}\n",
                        id + 1
                    );
                    w.write_all(req.as_bytes()).await.unwrap();
                    let reply = lines.next_line().await.unwrap().unwrap();
                    assert!(reply.starts_with("OK\t"), "{reply}");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        logins as f64 / start.elapsed().as_secs_f64()
    });

    println!("{name}, {logins} logins:");
    println!("  baseline  bare argon2id verifications: {baseline:10.1} /s");
    println!("  measured  logins through the socket:    {measured:10.1} /s");
    println!(
        "  ratio     measured / baseline:          {:10.3}",
        measured / baseline
    );
    (baseline, measured)
}
