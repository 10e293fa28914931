//! The admin CLI driven as a process on a temporary data directory.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

/// The name of the user running the tests, as /etc/passwd has it for this process's uid
/// (what postwarden records as the actor of admin changes; USER is set to something else).
fn me() -> String {
    use std::os::unix::fs::MetadataExt;
    let uid = std::fs::metadata("/proc/self").unwrap().uid();
    std::fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[2].parse() == Ok(uid)).then(|| f[0].to_string())
        })
        .unwrap_or(format!("uid:{uid}"))
}

struct Pw {
    dir: tempfile::TempDir,
}

impl Pw {
    fn new() -> Pw {
        Pw {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_postwarden"));
        c.env("POSTWARDEN_CONFIG", "/dev/null")
            .env("POSTWARDEN_DATA_DIR", self.data())
            .env("USER", "someone-else")
            .env_remove("SUDO_USER")
            .current_dir(self.dir.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs and expects exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.push("--json");
        let s = self.ok(&a);
        serde_json::from_str(&s)
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON document ({e}): {s}"))
    }

    /// Runs and expects `code`; returns stderr, which must be one line.
    fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed on stdout");
        if code == 1 {
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "{args:?}: not one line: {err}"
            );
        }
        err
    }

    fn acme(&self) {
        self.ok(&["org", "add", "acme"]);
        self.ok(&["domain", "add", "acme.example", "--org", "acme"]);
        self.ok(&["account", "add", "alice@acme.example", "--kind", "end_user"]);
    }
}

#[test]
fn walkthrough_from_the_issue() {
    let pw = Pw::new();
    pw.acme();
    let out = pw.ok(&["credential", "new", "--org", "acme", "--label", "laptop"]);
    let user = out
        .lines()
        .find_map(|l| l.strip_prefix("username: "))
        .unwrap()
        .to_string();
    let pass = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .unwrap()
        .to_string();
    assert!(user.starts_with("acme-laptop-"), "{user}");
    assert_eq!(pass.len(), 29);

    let list = pw.json(&["credential", "list"]);
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["label"], "laptop");
    assert_eq!(rows[0]["username"], user.as_str());
    let text = list.to_string();
    assert!(
        !text.contains(&pass) && !text.contains("argon2"),
        "secret in list: {text}"
    );
    assert!(rows[0].get("hash").is_none() && rows[0].get("password").is_none());

    // The database holds an argon2id PHC string and not the password.
    let db = std::fs::read(pw.data().join("postwarden.db")).unwrap();
    let wal = std::fs::read(pw.data().join("postwarden.db-wal")).unwrap_or_default();
    let all = [db, wal].concat();
    let hay = String::from_utf8_lossy(&all);
    assert!(hay.contains("$argon2id$v=19$m=19456,t=2,p=1$"));
    assert!(!hay.contains(&pass));

    let err = pw.fails(
        1,
        &["account", "add", "bob@other.example", "--kind", "end_user"],
    );
    assert!(
        err.contains("domain other.example is not registered"),
        "{err}"
    );

    let log = pw.ok(&["log", "--kind", "admin"]);
    for needle in [
        "org add acme",
        "domain add acme.example org=acme active",
        "account add alice@acme.example kind=end_user",
        &format!("credential new {user} label=laptop"),
    ] {
        assert!(log.contains(needle), "{needle} missing from log:\n{log}");
    }
    assert_eq!(
        log.lines().count(),
        4,
        "a refused change is not logged:\n{log}"
    );
    assert!(
        log.lines()
            .all(|l| l.contains(&format!(" admin ok login={} org=acme ", me()))),
        "{log}"
    );
}

#[test]
fn json_shapes() {
    let pw = Pw::new();
    let v = pw.json(&["org", "add", "acme", "--sender-check", "domain"]);
    assert_eq!(
        v,
        serde_json::json!({"name": "acme", "sender_check": "domain"})
    );
    let v = pw.json(&["org", "set", "acme", "--sender-check", "account"]);
    assert_eq!(v["sender_check"], "account");
    let v = pw.json(&[
        "domain",
        "add",
        "Bücher.Example",
        "--org",
        "acme",
        "--inactive",
    ]);
    assert_eq!(v["name"], "xn--bcher-kva.example");
    assert_eq!(v["display"], "bücher.example");
    assert_eq!(v["active"], false);
    let v = pw.json(&["domain", "activate", "bücher.example"]);
    assert_eq!(
        v,
        serde_json::json!({"name": "xn--bcher-kva.example", "active": true})
    );
    let v = pw.json(&[
        "account",
        "add",
        "Info@BÜCHER.example",
        "--kind",
        "functional",
    ]);
    assert_eq!(
        v,
        serde_json::json!({"address": "info@xn--bcher-kva.example", "kind": "functional"})
    );
    let v = pw.json(&["org", "list"]);
    assert_eq!(v[0]["name"], "acme");
    assert_eq!(v[0]["domains"], 1);
    assert_eq!(v[0]["accounts"], 1);
    assert_eq!(v[0]["credentials"], 0);
    let v = pw.json(&["domain", "list", "--org", "acme"]);
    assert_eq!(v[0]["display"], "bücher.example");
    assert_eq!(v[0]["accounts"], 1);
    let v = pw.json(&["account", "list"]);
    assert_eq!(v[0]["address"], "info@xn--bcher-kva.example");
    assert_eq!(v[0]["kind"], "functional");
    assert_eq!(v[0]["organization"], "acme");
    let v = pw.json(&["credential", "new", "--org", "acme", "--label", "phone"]);
    assert_eq!(v["organization"], "acme");
    assert!(v["password"].as_str().unwrap().len() == 29);
    let user = v["username"].as_str().unwrap().to_string();
    let v = pw.json(&["credential", "revoke", &user]);
    assert_eq!(v["revoked"], user.as_str());
    let v = pw.json(&["credential", "list", "--org", "acme"]);
    assert!(v[0]["revoked"].is_i64());
    let v = pw.json(&["log", "--kind", "admin", "--limit", "2"]);
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    assert_eq!(arr[1]["reason"], format!("credential revoke {user}"));
    assert_eq!(arr[1]["kind"], "admin");
    let v = pw.json(&["account", "remove", "info@bücher.example"]);
    assert_eq!(v["removed"], "info@xn--bcher-kva.example");
    let v = pw.json(&["domain", "remove", "xn--bcher-kva.example"]);
    assert_eq!(v["removed"], "xn--bcher-kva.example");
    let v = pw.json(&["org", "remove", "acme"]);
    assert_eq!(v["removed"], "acme");
    let v = pw.json(&["check-config"]);
    assert_eq!(v["store"]["busy_timeout"], "5s");
    assert_eq!(v["data_dir"], pw.data().to_str().unwrap());
}

#[test]
fn rules_are_refused_with_exit_1() {
    let pw = Pw::new();
    pw.acme();
    pw.ok(&["org", "add", "other"]);
    let cases: &[(&[&str], &str)] = &[
        (&["org", "add", "acme"], "already exists"),
        (&["org", "add", "bad name"], "invalid organization name"),
        (
            &["domain", "add", "acme.example", "--org", "acme"],
            "already registered",
        ),
        (
            &["domain", "add", "ACME.example", "--org", "other"],
            "registered to another organization",
        ),
        (
            &["domain", "add", "no_such", "--org", "acme"],
            "invalid domain name",
        ),
        (
            &["domain", "add", "x.example", "--org", "ghost"],
            "no organization named \"ghost\"",
        ),
        (&["domain", "activate", "acme.example"], "already active"),
        (&["domain", "deactivate", "ghost.example"], "not registered"),
        (
            &["account", "add", "Alice@ACME.example", "--kind", "end_user"],
            "already exists",
        ),
        (
            &["account", "add", "not-an-address", "--kind", "end_user"],
            "invalid address",
        ),
        (&["account", "remove", "nobody@acme.example"], "no account"),
        (
            &["credential", "new", "--org", "ghost", "--label", "x"],
            "no organization",
        ),
        (&["credential", "revoke", "ghost"], "no credential"),
        (&["org", "remove", "acme"], "still has 1 domain(s)"),
        (
            &["domain", "remove", "acme.example"],
            "still has 1 account(s)",
        ),
    ];
    for (args, needle) in cases {
        let err = pw.fails(1, args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    pw.ok(&["credential", "new", "--org", "acme", "--label", "laptop"]);
    let err = pw.fails(
        1,
        &["credential", "new", "--org", "acme", "--label", "laptop"],
    );
    assert!(err.contains("already has a credential labelled"), "{err}");
    // --force removes what depends on it.
    pw.ok(&["org", "remove", "acme", "--force"]);
    assert_eq!(pw.json(&["domain", "list"]).as_array().unwrap().len(), 0);
    assert_eq!(
        pw.json(&["credential", "list"]).as_array().unwrap().len(),
        0
    );
}

#[test]
fn usage_errors_exit_2() {
    let pw = Pw::new();
    for args in [
        &["frobnicate"][..],
        &["org"],
        &["org", "add"],
        &["account", "add", "a@b.example", "--kind", "admin"],
        &["org", "add", "x", "--sender-check", "maybe"],
        &["log", "--since", "yesterday"],
        &["log", "--kind", "smtp"],
        &["log", "--limit", "-1"],
    ] {
        pw.fails(2, args);
    }
    assert!(
        !pw.data().exists(),
        "a usage error must not create the store"
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[test]
fn check_config_prints_effective_config_and_names_errors() {
    let pw = Pw::new();
    let out = pw.ok(&["check-config"]);
    assert!(out.contains("busy_timeout = \"5s\""), "{out}");
    // The default list file is the package's; without it, the built-in copy.
    assert!(
        out.contains("# public suffix list in use: built-in copy (20")
            || out.contains(
                "# public suffix list in use: /usr/share/postwarden/public_suffix_list.dat"
            ),
        "{out}"
    );
    assert!(out.contains("memory_kib = 19456"), "{out}");
    let cfg = pw.dir.path().join("pw.toml");
    write(&cfg, "[store]\nbusy_timeout = \"250ms\"\n");
    let out = pw.ok(&["check-config", "--config", cfg.to_str().unwrap()]);
    assert!(out.contains("busy_timeout = \"250ms\""), "{out}");

    let cases = [
        (
            "log_level = \"info\"\nbogus = 1\n",
            "line 2",
            "unknown field `bogus`",
        ),
        (
            "[password_hash]\nmemory_kib = \"big\"\n",
            "line 2",
            "key `password_hash.memory_kib`: invalid type",
        ),
        (
            "[auth]\nlisten = \"tcp:1.2.3.4\"\n",
            "line 2",
            "key `auth.listen`: invalid address",
        ),
        (
            "\n\n[store]\nbusy_timeout = \"fast\"\n",
            "line 4",
            "key `store.busy_timeout`: invalid duration \"fast\"",
        ),
        (
            "[password_hash]\nparallelism = 0\n",
            "line 2",
            "key `password_hash.parallelism`",
        ),
    ];
    for (text, line, needle) in cases {
        write(&cfg, text);
        let err = pw.fails(2, &["check-config", "--config", cfg.to_str().unwrap()]);
        assert!(err.contains(cfg.to_str().unwrap()), "file not named: {err}");
        assert!(err.contains(line), "{line} not in: {err}");
        assert!(err.contains(needle), "{needle} not in: {err}");
    }
    // What only this machine can tell: the same for check-config and run (exit 2).
    for (text, needle) in [
        ("[submission]\nlisten = \"unix:auth\"\n", "key `submission.listen`: unix:"),
        ("[inbound]\nlisten = \"inet:127.0.0.1:7000\"\n[submission]\nlisten = \"inet:127.0.0.1:7000\"\n", "is also `submission.listen`"),
        ("[sockets]\ngroup = \"nosuchgroup\"\n", "key `sockets.group`: no group named \"nosuchgroup\""),
        (&format!("[auth]\nlisten = \"unix:/tmp/{}/auth\"\n", "d".repeat(120)), "Unix sockets allow 107"),
        ("[inbound]\npublic_suffix_list = \"/etc/hostname\"\n", "key `inbound.public_suffix_list`: the public suffix list /etc/hostname holds no rules"),
        ("[inbound]\narc_seal_domain = \"gw.example\"\n", "sealing also needs inbound.arc_seal_selector and inbound.arc_seal_key"),
        ("[inbound]\narc_seal_domain = \"gw.example\"\narc_seal_selector = \"s1\"\narc_seal_key = \"/nonexistent/arc.pem\"\n", "key `inbound.arc_seal_key`: cannot read /nonexistent/arc.pem"),
        ("[inbound]\narc_seal_domain = \"gw.example\"\narc_seal_selector = \"s1\"\narc_seal_key = \"/etc/hostname\"\n", "not an RSA private key"),
    ] {
        write(&cfg, text);
        for cmd in ["check-config", "run"] {
            let err = pw.fails(2, &[cmd, "--config", cfg.to_str().unwrap()]);
            assert!(err.contains(needle), "{cmd} {text:?}: {err}");
        }
    }
    // An ARC sealing key made with openssl (RSA, PKCS#8 and PKCS#1 PEM): the record to
    // publish is printed. An Ed25519 key is refused (ARC is rsa-sha256 only).
    let key = pw.dir.path().join("arc.pem");
    let key_arg = key.to_str().unwrap();
    for (args, k) in [
        (
            &[
                "genpkey",
                "-algorithm",
                "rsa",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                key_arg,
            ][..],
            Some("k=rsa"),
        ),
        (
            &["genrsa", "-traditional", "-out", key_arg, "2048"][..],
            Some("k=rsa"),
        ),
        (
            &["genpkey", "-algorithm", "ed25519", "-out", key_arg][..],
            None,
        ),
    ] {
        let st = std::process::Command::new("openssl")
            .args(args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (package openssl)");
        assert!(st.success());
        write(
            &cfg,
            &format!(
                "[inbound]\narc_seal_domain = \"gw.example\"\narc_seal_selector = \"s1\"\narc_seal_key = {:?}\n",
                key.display().to_string()
            ),
        );
        match k {
            Some(k) => {
                let out = pw.ok(&["check-config", "--config", cfg.to_str().unwrap()]);
                assert!(
                    out.contains(&format!(
                        "# ARC sealing as gw.example; publish: s1._domainkey.gw.example. IN TXT ( \"v=DKIM1; {k}; p="
                    )),
                    "{out}"
                );
            }
            None => {
                let err = pw.fails(2, &["check-config", "--config", cfg.to_str().unwrap()]);
                assert!(
                    err.contains("ARC (RFC 8617) signs with rsa-sha256 only"),
                    "{err}"
                );
            }
        }
    }
    let err = pw.fails(2, &["check-config", "--config", "/nonexistent/pw.toml"]);
    assert!(
        err.contains("/nonexistent/pw.toml: cannot read configuration"),
        "{err}"
    );
    // Other commands refuse a bad config the same way.
    write(&cfg, "[password_hash]\nparallelism = 0\n");
    let err = pw.fails(2, &["org", "list", "--config", cfg.to_str().unwrap()]);
    assert!(err.contains("password_hash.parallelism"), "{err}");
}

#[test]
fn data_dir_option_env_and_default() {
    let pw = Pw::new();
    // --data-dir beats POSTWARDEN_DATA_DIR.
    let other = pw.dir.path().join("other");
    pw.ok(&["org", "add", "a", "--data-dir", other.to_str().unwrap()]);
    assert!(other.join("postwarden.db").exists());
    assert!(!pw.data().exists());
    // Without either: ./postwarden-data in the working directory.
    let out = Command::new(env!("CARGO_BIN_EXE_postwarden"))
        .args(["org", "add", "b"])
        .env_remove("POSTWARDEN_DATA_DIR")
        .env("POSTWARDEN_CONFIG", "/dev/null")
        .current_dir(pw.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pw.dir.path().join("postwarden-data/postwarden.db").exists());
}

#[test]
fn log_filters() {
    let pw = Pw::new();
    pw.acme();
    pw.ok(&["org", "add", "other"]);
    let all = pw.json(&["log"]);
    assert_eq!(all.as_array().unwrap().len(), 4);
    let by_sender = pw.json(&["log", "--sender", "nobody@acme.example"]);
    assert_eq!(by_sender.as_array().unwrap().len(), 0);
    assert_eq!(
        pw.json(&["log", "--kind", "auth"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        pw.json(&["log", "--login", &me()])
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        pw.json(&["log", "--login", "someone"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        pw.json(&["log", "--since", "1h"]).as_array().unwrap().len(),
        4
    );
    assert_eq!(
        pw.json(&["log", "--since", "2999-01-01T00:00:00Z"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let last = pw.json(&["log", "--limit", "1"]);
    assert_eq!(last[0]["reason"], "org add other sender_check=account");
}

/// Holds an IMMEDIATE (write) transaction on the database from this process for `hold`.
fn hold_write_lock(db: &Path, hold: Duration) -> std::thread::JoinHandle<()> {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::spawn(move || {
        std::thread::sleep(hold);
        conn.execute_batch("COMMIT").unwrap();
    })
}

#[test]
fn cli_write_while_another_process_holds_the_database() {
    let pw = Pw::new();
    pw.ok(&["org", "add", "acme"]);
    let db = pw.data().join("postwarden.db");
    // A reader holding the database open does not block a write at all.
    let reader = rusqlite::Connection::open(&db).unwrap();
    reader
        .execute_batch("BEGIN; SELECT COUNT(*) FROM organization;")
        .unwrap();
    pw.ok(&["domain", "add", "acme.example", "--org", "acme"]);
    reader.execute_batch("COMMIT").unwrap();
    // A writer holding the lock briefly: the CLI waits (busy timeout 5 s) and succeeds.
    let t = hold_write_lock(&db, Duration::from_millis(800));
    let start = Instant::now();
    pw.ok(&["account", "add", "alice@acme.example", "--kind", "end_user"]);
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "did not wait for the lock"
    );
    t.join().unwrap();
    // A writer holding it past the busy timeout: a clear error, exit 1, nothing half-written.
    let cfg = pw.dir.path().join("short.toml");
    write(&cfg, "[store]\nbusy_timeout = \"200ms\"\n");
    let t = hold_write_lock(&db, Duration::from_millis(1500));
    let err = pw.fails(
        1,
        &[
            "account",
            "add",
            "bob@acme.example",
            "--kind",
            "end_user",
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("database is locked by another process"),
        "{err}"
    );
    t.join().unwrap();
    let accounts = pw.json(&["account", "list"]);
    assert_eq!(accounts.as_array().unwrap().len(), 1);
    // And the daemon holding the database open does not get in the way either.
    let mut daemon = pw.cmd().arg("run").stderr(Stdio::null()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    pw.ok(&["account", "add", "bob@acme.example", "--kind", "end_user"]);
    stop(&mut daemon);
}

fn stop(child: &mut std::process::Child) -> (Duration, std::process::ExitStatus) {
    let start = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (start.elapsed(), status);
        }
        if start.elapsed() > Duration::from_secs(5) {
            child.kill().unwrap();
            panic!("daemon did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Starts `postwarden run` with `args`/`env` and waits until its auth socket exists (it is
/// bound just before the daemon reports ready); stderr is collected by a thread.
fn start_daemon(
    pw: &Pw,
    args: &[&str],
    rust_log: Option<&str>,
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    let mut cmd = pw.cmd();
    cmd.arg("run").args(args).stderr(Stdio::piped());
    match rust_log {
        Some(l) => cmd.env("RUST_LOG", l),
        None => cmd.env_remove("RUST_LOG"),
    };
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        use std::io::Read;
        let _ = std::io::BufReader::new(stderr).read_to_string(&mut all);
        all
    });
    let start = Instant::now();
    while !pw.data().join("auth").exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "daemon never bound its socket"
        );
        assert!(child.try_wait().unwrap().is_none(), "daemon exited");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    (child, reader)
}

#[test]
fn run_starts_on_the_embedded_default_and_stops_on_signals() {
    let pw = Pw::new();
    for signal in ["-TERM", "-INT"] {
        let (mut child, reader) = start_daemon(&pw, &[], None);
        assert!(pw.data().join("postwarden.db").exists());
        let t = Instant::now();
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "took {:?} to stop",
            t.elapsed()
        );
        assert!(status.success(), "{signal}: {status:?}");
        let log = reader.join().unwrap();
        assert!(log.contains("postwarden ready"), "{log}");
        assert!(log.contains("postwarden stopped"), "{log}");
        // The socket is gone with the daemon; the next start binds it again.
        assert!(!pw.data().join("auth").exists());
    }
}

#[test]
fn run_log_level_from_config_and_rust_log() {
    let pw = Pw::new();
    let cfg = pw.dir.path().join("quiet.toml");
    write(&cfg, "log_level = \"warn\"\n");
    let (mut child, reader) = start_daemon(&pw, &["--config", cfg.to_str().unwrap()], None);
    stop(&mut child);
    let err = reader.join().unwrap();
    assert!(
        !err.contains("postwarden ready"),
        "info shown at warn level: {err}"
    );
    // RUST_LOG overrides the config.
    let (mut child, reader) = start_daemon(&pw, &["--config", cfg.to_str().unwrap()], Some("info"));
    stop(&mut child);
    let err = reader.join().unwrap();
    assert!(err.contains("postwarden ready"), "{err}");
}

#[test]
fn sighup_reloads_the_configuration_and_keeps_serving() {
    let pw = Pw::new();
    let (mut child, reader) = start_daemon(&pw, &[], Some("info"));
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    // The reload builds the auth service again (a dummy argon2id hash): give it time.
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "SIGHUP stopped the daemon"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(std::os::unix::net::UnixStream::connect(pw.data().join("auth")).is_ok());
    stop(&mut child);
    let log = reader.join().unwrap();
    assert!(
        log.contains("SIGHUP received: reloading the configuration"),
        "{log}"
    );
    assert!(
        log.contains("configuration reloaded: new logins and new milter sessions use it"),
        "{log}"
    );
}

#[test]
fn a_live_socket_is_never_taken_over() {
    let pw = Pw::new();
    let (mut first, _r) = start_daemon(&pw, &[], None);
    let out = pw.cmd().arg("run").env_remove("RUST_LOG").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is in use by another running process"),
        "{err}"
    );
    stop(&mut first);
    // Something that is not a socket is never replaced.
    std::fs::write(pw.data().join("auth"), "keep me").unwrap();
    let out = pw.cmd().arg("run").env_remove("RUST_LOG").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a socket"));
    assert_eq!(
        std::fs::read_to_string(pw.data().join("auth")).unwrap(),
        "keep me"
    );
}

#[test]
fn init_creates_and_migrates_the_store() {
    let pw = Pw::new();
    let v = pw.json(&["init"]);
    assert_eq!(
        v["schema_version"],
        postwarden::store::sqlite::MIGRATIONS.len()
    );
    assert!(pw.data().join("postwarden.db").exists());
    // Idempotent.
    assert_eq!(pw.json(&["init"])["schema_version"], v["schema_version"]);
}

#[test]
fn newer_schema_is_refused_clearly() {
    let pw = Pw::new();
    pw.ok(&["org", "add", "acme"]);
    let conn = rusqlite::Connection::open(pw.data().join("postwarden.db")).unwrap();
    conn.pragma_update(None, "user_version", 1000).unwrap();
    drop(conn);
    let err = pw.fails(1, &["org", "list"]);
    assert!(
        err.contains("schema version 1000 is newer than this postwarden knows"),
        "{err}"
    );
}

#[test]
fn auth_socket_over_tcp_speaks_the_dovecot_protocol() {
    use base64::Engine;
    use std::io::{BufRead, BufReader, Write};
    let pw = Pw::new();
    pw.ok(&["org", "add", "acme"]);
    let v = pw.json(&["credential", "new", "--org", "acme", "--label", "tcp"]);
    let (user, pass) = (
        v["username"].as_str().unwrap(),
        v["password"].as_str().unwrap(),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = pw.dir.path().join("tcp.toml");
    write(
        &cfg,
        &format!("[auth]\nlisten = \"inet:127.0.0.1:{port}\"\n"),
    );
    let mut child = pw
        .cmd()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let stream = loop {
        if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no TCP listener");
        std::thread::sleep(Duration::from_millis(20));
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    w.write_all(b"VERSION\t1\t0\nCPID\t4242\n").unwrap();
    let mut handshake = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end().to_string();
        let done = line == "DONE";
        handshake.push(line);
        if done {
            break;
        }
    }
    assert_eq!(handshake[0], "VERSION\t1\t2");
    assert_eq!(handshake[1], "MECH\tPLAIN\tplaintext");
    assert_eq!(handshake[2], "MECH\tLOGIN\tplaintext");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut ask = |line: String| {
        w.write_all(line.as_bytes()).unwrap();
        let mut reply = String::new();
        r.read_line(&mut reply).unwrap();
        reply.trim_end().to_string()
    };
    let ok = ask(format!(
        "AUTH\t1\tPLAIN\tservice=smtp\tnologin\tlip=127.0.0.1\trip=192.0.2.5\tsecured\tresp={}\n",
        b64(&format!("\0{user}\0{pass}"))
    ));
    assert_eq!(ok, format!("OK\t1\tuser={user}"));
    let bad = ask(format!(
        "AUTH\t2\tPLAIN\tservice=smtp\trip=192.0.2.5\tsecured\tresp={}\n",
        b64(&format!("\0{user}\0wrong"))
    ));
    assert_eq!(bad, format!("FAIL\t2\tuser={user}"));
    // Without `secured` (no TLS): refused by default.
    let plain = ask(format!(
        "AUTH\t3\tPLAIN\tservice=smtp\trip=192.0.2.5\tresp={}\n",
        b64(&format!("\0{user}\0{pass}"))
    ));
    assert_eq!(plain, format!("FAIL\t3\tuser={user}"));
    // Impersonation: authzid differs from the login.
    let imp = ask(format!(
        "AUTH\t4\tPLAIN\tservice=smtp\trip=192.0.2.5\tsecured\tresp={}\n",
        b64(&format!("someone\0{user}\0{pass}"))
    ));
    assert!(imp.starts_with("FAIL\t4"), "{imp}");
    // LOGIN in two rounds.
    assert_eq!(
        ask("AUTH\t5\tLOGIN\tservice=smtp\trip=192.0.2.5\tsecured\n".into()),
        "CONT\t5\tVXNlcm5hbWU6"
    );
    assert_eq!(
        ask(format!("CONT\t5\t{}\n", b64(user))),
        "CONT\t5\tUGFzc3dvcmQ6"
    );
    assert_eq!(
        ask(format!("CONT\t5\t{}\n", b64(pass))),
        format!("OK\t5\tuser={user}")
    );
    // Malformed input closes this connection only.
    w.write_all(b"GARBAGE\x01\tline\n").unwrap();
    let mut rest = String::new();
    let n = r.read_line(&mut rest).unwrap_or(0);
    assert_eq!(n, 0, "connection stayed open: {rest:?}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    stop(&mut child);
    let reasons: Vec<String> = pw
        .json(&["log", "--kind", "auth"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        reasons,
        ["ok", "bad_password", "no_tls", "authzid_mismatch", "ok"]
    );
    let cred = &pw.json(&["credential", "list"])[0];
    assert_eq!(cred["last_ip"], "192.0.2.5");
}

#[test]
fn explain_gives_the_decision_the_reply_and_the_fix() {
    let pw = Pw::new();
    pw.acme();
    pw.ok(&["org", "add", "other"]);
    pw.ok(&["domain", "add", "other.example", "--org", "other"]);
    let v = pw.json(&["credential", "new", "--org", "acme", "--label", "l"]);
    let user = v["username"].as_str().unwrap();

    let ok = pw.json(&[
        "explain",
        "--login",
        user,
        "--sender",
        "alice@acme.example",
        "--header-from",
        "Alice@ACME.example",
    ]);
    assert_eq!(ok["decision"], "accept");
    assert_eq!(ok["rules"][0]["rule"], "registered_account");

    pw.ok(&["domain", "deactivate", "acme.example"]);
    let out = pw.run(&["explain", "--login", user, "--sender", "alice@acme.example"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("decision: refuse"), "{text}");
    assert!(text.contains("reply:    553 5.7.1 Sender address <alice@acme.example> rejected: sending domain acme.example is inactive"), "{text}");
    assert!(
        text.contains("run `postwarden domain activate acme.example`"),
        "{text}"
    );
    pw.ok(&["domain", "activate", "acme.example"]);

    let out = pw.run(&[
        "explain",
        "--login",
        user,
        "--sender",
        "<>",
        "--header-from",
        "bob@other.example",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rules"][0]["rule"], "domain_not_owned");
    let why = v["rules"][0]["explanation"].as_str().unwrap();
    assert!(
        why.ends_with("(it is registered to organization other)"),
        "{why}"
    );
    // ... while the reply for the client does not say so.
    assert!(!v["reply"].as_str().unwrap().contains("other\""));
    assert!(!v["reply"].as_str().unwrap().contains("organization other"));

    let v = pw.json(&["explain", "--login", user, "--sender", "alice@acme.example"]);
    assert_eq!(v["decision"], "accept");

    let out = pw.run(&[
        "explain",
        "--login",
        "nobody",
        "--sender",
        "alice@acme.example",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("535 5.7.8 Error: authentication failed"));
    // A group without addresses is what the milter sees too: no address at all.
    let out = pw.run(&[
        "explain",
        "--login",
        user,
        "--sender",
        "alice@acme.example",
        "--header-from",
        "undisclosed:;",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("550 5.6.0 Message From header field holds no valid address"));
    // A revoked credential: AUTH fails; the explanation says what to do.
    let spare = pw.json(&["credential", "new", "--org", "acme", "--label", "spare"]);
    let spare = spare["username"].as_str().unwrap();
    pw.ok(&["credential", "revoke", spare]);
    let out = pw.run(&[
        "explain",
        "--login",
        spare,
        "--sender",
        "alice@acme.example",
        "--json",
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rules"][0]["rule"], "revoked_credential");
    assert_eq!(v["organization"], "acme");
    assert!(v["reply"].as_str().unwrap().starts_with("535 5.7.8"));

    // Discovery mode: accepted; the discovered list comes from real traffic (see the milter tests).
    pw.ok(&["org", "set", "acme", "--sender-check", "domain"]);
    let v = pw.json(&[
        "explain",
        "--login",
        user,
        "--sender",
        "dave@acme.example",
        "--header-from",
        "dave@acme.example",
    ]);
    assert_eq!(v["decision"], "accept_discovered");
    assert_eq!(v["discovered"][0], "dave@acme.example");
    assert_eq!(
        pw.json(&["log", "--discovered"]).as_array().unwrap().len(),
        0
    );
    pw.fails(2, &["log", "--discovered", "--kind", "auth"]);
}

#[test]
fn notifies_the_service_manager_when_ready() {
    let pw = Pw::new();
    let notify = pw.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = pw
        .cmd()
        .arg("run")
        .env("NOTIFY_SOCKET", &notify)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("no READY=1 from the daemon");
    assert_eq!(&buf[..n], b"READY=1\n");
    // Ready means serving: the auth socket answers now.
    assert!(std::os::unix::net::UnixStream::connect(pw.data().join("auth")).is_ok());
    stop(&mut child);
    let n = sock.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1\n");
}

#[test]
fn uses_sockets_passed_by_the_service_manager() {
    use std::io::{Read, Write};
    let tool = "/usr/bin/systemd-socket-activate";
    if !Path::new(tool).exists() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{tool} missing (package systemd) under CI=true");
        }
        eprintln!("SKIPPED: {tool} missing");
        return;
    }
    let pw = Pw::new();
    let auth = pw.dir.path().join("passed-auth");
    let sub = pw.dir.path().join("passed-submission");
    let log = pw.dir.path().join("daemon.log");
    let mut child = Command::new(tool)
        .arg("-l")
        .arg(&auth)
        .arg("-l")
        .arg(&sub)
        .arg("--fdname=auth:submission")
        .args(["-E", "POSTWARDEN_CONFIG=/dev/null", "-E", "RUST_LOG=info"])
        .arg("-E")
        .arg(format!("POSTWARDEN_DATA_DIR={}", pw.data().display()))
        .arg(env!("CARGO_BIN_EXE_postwarden"))
        .arg("run")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !auth.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no socket from the manager"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first connection starts the daemon on the passed socket.
    let mut s = std::os::unix::net::UnixStream::connect(&auth).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(b"VERSION\t1\t0\nCPID\t7\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&got).contains("DONE\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the handshake");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).starts_with("VERSION\t1\t2\nMECH\tPLAIN"));
    stop(&mut child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text.matches("using the socket passed by the service manager")
            .count(),
        2,
        "{text}"
    );
    // Neither its own socket files nor the manager's were touched: the daemon bound none.
    assert!(!pw.data().join("auth").exists());
    assert!(
        auth.exists() && sub.exists(),
        "the manager's sockets must outlive the daemon"
    );
}

#[test]
fn dkim_keygen_list_activate_retire() {
    let pw = Pw::new();
    pw.acme();
    let v = pw.json(&[
        "dkim",
        "keygen",
        "acme.example",
        "--algorithm",
        "rsa",
        "--selector",
        "s1",
    ]);
    assert_eq!(v["state"], "pending");
    assert_eq!(v["dns_name"], "s1._domainkey.acme.example");
    let strings: Vec<&str> = v["dns_strings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        strings.len() >= 2 && strings.iter().all(|s| s.len() <= 255),
        "{strings:?}"
    );
    assert_eq!(strings.concat(), v["dns_value"].as_str().unwrap());
    assert!(v["dns_value"]
        .as_str()
        .unwrap()
        .starts_with("v=DKIM1; k=rsa; p=MII"));
    // The text form tells what to do next.
    let text = pw.ok(&[
        "dkim",
        "keygen",
        "acme.example",
        "--algorithm",
        "ed25519",
        "--selector",
        "e1",
    ]);
    assert!(text.contains("e1._domainkey.acme.example."), "{text}");
    assert!(text.contains("postwarden dns-check acme.example"), "{text}");
    assert!(
        text.contains("postwarden dkim activate acme.example e1"),
        "{text}"
    );
    // A default selector is made up when none is given.
    let v = pw.json(&["dkim", "keygen", "acme.example", "--algorithm", "ed25519"]);
    assert!(
        v["selector"].as_str().unwrap().starts_with("pw")
            && v["selector"].as_str().unwrap().ends_with('e'),
        "{v}"
    );
    let err = pw.fails(
        1,
        &[
            "dkim",
            "keygen",
            "acme.example",
            "--selector",
            "s1",
            "--algorithm",
            "ed25519",
        ],
    );
    assert!(err.contains("already has a key with selector s1"), "{err}");
    let err = pw.fails(1, &["dkim", "keygen", "ghost.example"]);
    assert!(err.contains("not registered"), "{err}");
    // Rotation.
    // Nothing publishes acme.example's keys here: activation is refused unless forced.
    let cfg = pw.dir.path().join("nodns.toml");
    write(
        &cfg,
        "[dns]\nnameservers = [\"127.0.0.1:9\"]\ntimeout = \"100ms\"\n",
    );
    let err = pw.fails(
        1,
        &[
            "dkim",
            "activate",
            "acme.example",
            "e1",
            "--config",
            cfg.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("not activated") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        pw.json(&["dkim", "activate", "acme.example", "e1", "--force"])["retired"],
        Value::Null
    );
    let v = pw.json(&[
        "dkim",
        "keygen",
        "acme.example",
        "--algorithm",
        "ed25519",
        "--selector",
        "e2",
    ]);
    assert_eq!(v["state"], "pending");
    assert_eq!(
        pw.json(&["dkim", "activate", "acme.example", "e2", "--force"])["retired"],
        "e1"
    );
    pw.ok(&["dkim", "retire", "acme.example", "e2"]);
    let list = pw.json(&["dkim", "list", "--domain", "acme.example"]);
    let states: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["selector"].as_str().unwrap().to_string(),
                k["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(states.contains(&("s1".into(), "pending".into())));
    assert!(states.contains(&("e1".into(), "retired".into())));
    assert!(states.contains(&("e2".into(), "retired".into())));
    assert!(!list.to_string().contains("private"), "{list}");
    let log = pw.ok(&["log", "--kind", "admin"]);
    assert!(
        log.contains("dkim activate acme.example selector=e2 (retired e1)"),
        "{log}"
    );
}

#[test]
fn reads_never_create_a_store() {
    let pw = Pw::new();
    for args in [
        &["org", "list"][..],
        &["domain", "list"],
        &["account", "list"],
        &["credential", "list"],
        &["log"],
        &["log", "--discovered"],
        &["dkim", "list"],
        &["explain", "--login", "x", "--sender", "a@b.example"],
        &["org", "remove", "acme"],
        &["credential", "revoke", "someone"],
    ] {
        let err = pw.fails(1, args);
        assert!(
            err.contains("no store at") && err.contains("postwarden init"),
            "{args:?}: {err}"
        );
    }
    assert!(!pw.data().exists(), "a read created the data directory");
    // Adding creates it, and says where.
    let out = pw.run(&["org", "add", "acme"]);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("created a new store at"),
        "{out:?}"
    );
    let out = pw.run(&["org", "add", "second"]);
    assert!(String::from_utf8_lossy(&out.stderr).is_empty(), "{out:?}");
}

#[test]
fn a_store_root_creates_in_the_daemons_directory_belongs_to_the_daemon() {
    use std::os::unix::fs::MetadataExt;
    let pw = Pw::new();
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        != 0
    {
        eprintln!("SKIPPED: needs root");
        return;
    }
    std::fs::create_dir_all(pw.data()).unwrap();
    // 65534 = nobody on Debian.
    std::os::unix::fs::chown(pw.data(), Some(65534), Some(65534)).unwrap();
    pw.ok(&["org", "add", "acme"]);
    for f in ["postwarden.db", "postwarden.db-wal", "postwarden.db-shm"] {
        let p = pw.data().join(f);
        if p.exists() {
            assert_eq!(
                std::fs::metadata(&p).unwrap().uid(),
                65534,
                "{f} not handed to the directory owner"
            );
        }
    }
}

#[test]
fn json_errors_are_one_document_on_stdout_too() {
    let pw = Pw::new();
    pw.ok(&["org", "add", "acme"]);
    let out = pw.run(&["org", "add", "acme", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("a JSON document on stdout");
    assert_eq!(v["exit_code"], 1);
    assert!(v["error"].as_str().unwrap().contains("already exists"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    // A refusal that explain reports itself is not printed twice.
    let out = pw.run(&[
        "explain",
        "--login",
        "nobody",
        "--sender",
        "a@acme.example",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).expect("exactly one JSON document");
    assert_eq!(v["decision"], "refuse");
}

#[test]
fn log_by_org_unknown_dkim_domain_and_permission_errors() {
    let pw = Pw::new();
    pw.acme();
    pw.ok(&["org", "add", "other"]);
    assert_eq!(
        pw.json(&["log", "--org", "acme"]).as_array().unwrap().len(),
        3
    );
    assert_eq!(
        pw.json(&["log", "--org", "OTHER"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let err = pw.fails(1, &["dkim", "list", "--domain", "nosuch.example"]);
    assert!(
        err.contains("domain nosuch.example is not registered"),
        "{err}"
    );
    // Another user cannot read the store: the message says why.
    if std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(1)
        == 0
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(pw.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(pw.data(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_postwarden"))
            .args(["org", "list"])
            .env("POSTWARDEN_CONFIG", "/dev/null")
            .env("POSTWARDEN_DATA_DIR", pw.data())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("permission denied: run as root or as the store's owner"),
            "{err}"
        );
    }
}

/// Starts `postwarden run` with its auth socket on a free TCP port, with `config` added;
/// returns the daemon and the port.
fn start_tcp_daemon(pw: &Pw, name: &str, config: &str) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = pw.dir.path().join(name);
    write(
        &cfg,
        &format!("[auth]\nlisten = \"inet:127.0.0.1:{port}\"\n{config}"),
    );
    let child = pw
        .cmd()
        .args(["run", "--config", cfg.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "no TCP listener");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

#[test]
fn throttle_list_and_clear_and_the_block_outlives_a_restart() {
    let pw = Pw::new();
    pw.ok(&["org", "add", "acme"]);
    let v = pw.json(&["credential", "new", "--org", "acme", "--label", "tcp"]);
    let (user, pass) = (
        v["username"].as_str().unwrap(),
        v["password"].as_str().unwrap(),
    );
    let config = "[auth.throttle]\nblock_after = 2\n";
    let (mut child, port) = start_tcp_daemon(&pw, "throttle.toml", config);
    let fail = format!("FAIL\t1\tuser={user}");
    assert_eq!(
        common::dovecot_login(port, user, "guess-1", "192.0.2.5"),
        fail
    );
    assert_eq!(
        common::dovecot_login(port, user, "guess-2", "192.0.2.5"),
        fail
    );
    // Past block_after: even the right password fails, unchecked.
    assert_eq!(common::dovecot_login(port, user, pass, "192.0.2.5"), fail);
    stop(&mut child);

    let list = pw.json(&[
        "--config",
        pw.dir.path().join("throttle.toml").to_str().unwrap(),
        "throttle",
        "list",
    ]);
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!(rows[0]["kind"], "address");
    assert_eq!(rows[0]["key"], "192.0.2.5");
    assert_eq!(rows[0]["failures"], 3);
    assert_eq!(rows[0]["blocked"], true);
    assert!(rows[0]["window_end"].as_i64().unwrap() > 0);
    // The blocked attempt was not counted against the username: it cost no check.
    assert_eq!(rows[1]["kind"], "username");
    assert_eq!(rows[1]["key"], user);
    assert_eq!(rows[1]["failures"], 2);
    assert_eq!(rows[1]["blocked"], false);
    let table = pw.ok(&[
        "--config",
        pw.dir.path().join("throttle.toml").to_str().unwrap(),
        "throttle",
        "list",
    ]);
    assert!(table.starts_with("KIND"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("address") && l.contains("192.0.2.5") && l.ends_with("yes")),
        "{table}"
    );

    // The block is in the store: a restarted daemon keeps it.
    let (mut child, port) = start_tcp_daemon(&pw, "throttle.toml", config);
    assert_eq!(common::dovecot_login(port, user, pass, "192.0.2.5"), fail);

    // Cleared by the administrator: the next login is checked again.
    let out = pw.ok(&["throttle", "clear", "192.0.2.5"]);
    assert!(out.contains("next login is checked again"), "{out}");
    let err = pw.fails(1, &["throttle", "clear", "192.0.2.5"]);
    assert!(err.contains("postwarden throttle list"), "{err}");
    assert_eq!(
        common::dovecot_login(port, user, pass, "192.0.2.5"),
        format!("OK\t1\tuser={user}")
    );
    // The successful login made the address known for the username.
    let known = pw.json(&["throttle", "list", "--known"]);
    let rows = known.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{known}");
    assert_eq!(rows[0]["username"], user);
    assert_eq!(rows[0]["address"], "192.0.2.5");
    assert!(rows[0]["expires"].as_i64().unwrap() > 0);
    let table = pw.ok(&["throttle", "list", "--known"]);
    assert!(table.starts_with("USERNAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(user) && l.contains("192.0.2.5")),
        "{table}"
    );
    // An IPv6 address clears its /64.
    assert_eq!(
        common::dovecot_login(port, user, "guess", "2001:db8:1:2::7"),
        fail
    );
    let v = pw.json(&["throttle", "clear", "2001:db8:1:2::99"]);
    assert_eq!(v["cleared"], "2001:db8:1:2::/64");
    stop(&mut child);

    let admin: Vec<String> = pw
        .json(&["log", "--kind", "admin"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert!(
        admin.contains(&"throttle clear 192.0.2.5".to_string()),
        "{admin:?}"
    );
    assert!(admin.contains(&"throttle clear 2001:db8:1:2::/64".to_string()));
    let reasons: Vec<String> = pw
        .json(&["log", "--kind", "auth"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        reasons,
        [
            "bad_password",
            "bad_password",
            "throttled",
            "throttled",
            "ok",
            "bad_password"
        ]
    );
}
