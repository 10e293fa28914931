//! End-to-end harness: a private Postfix instance on loopback (own config and queue
//! directory under a temp dir), smtp-sink as its relay host, the postwarden daemon, and
//! swaks as the SMTP client. Everything started here is stopped by PID on drop.
//!
//! The Postfix instance applies the shipped `postfix/main.cf` and `postfix/master.cf`
//! snippets; the only changes are the ones a private instance needs (loopback ports
//! instead of service names, no chroot).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_postwarden");
pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Whether the end-to-end tests can run here. Without root or a component they are
/// skipped with a message, except under `CI=true` (POSTWARDEN_E2E_REQUIRED), where that
/// is a failure.
pub fn e2e_available() -> bool {
    let required = std::env::var("POSTWARDEN_E2E_REQUIRED").is_ok_and(|v| v == "true")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    let mut missing = Vec::new();
    for tool in [
        "/usr/sbin/postfix",
        "/usr/lib/postfix/sbin/master",
        "/usr/sbin/smtp-sink",
        "/usr/bin/swaks",
        "/usr/bin/openssl",
    ] {
        if !Path::new(tool).exists() {
            missing.push(tool.to_string());
        }
    }
    if !is_root() {
        missing.push("root privileges (Postfix's master runs as root)".into());
    }
    if missing.is_empty() {
        return true;
    }
    let msg = format!("end-to-end test needs: {}", missing.join(", "));
    if required {
        panic!("{msg} (CI=true: a missing component fails the run)");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// Whether xmllint (Debian package libxml2-utils) is here to validate XML against a
/// schema. Without it the test is skipped with a message, except under `CI=true` or
/// `POSTWARDEN_E2E_REQUIRED=true`, where that is a failure.
pub fn xmllint_available() -> bool {
    if Path::new("/usr/bin/xmllint").exists() {
        return true;
    }
    let required = std::env::var("POSTWARDEN_E2E_REQUIRED").is_ok_and(|v| v == "true")
        || std::env::var("CI").is_ok_and(|v| v == "true");
    let msg = "XML validation needs /usr/bin/xmllint (Debian package libxml2-utils)";
    if required {
        panic!("{msg} (CI=true: a missing component fails the run)");
    }
    eprintln!("SKIPPED: {msg}");
    false
}

/// Validates `xml` against RFC 7489's aggregate report schema
/// (`tests/data/dmarc-rfc7489.xsd`) with xmllint; panics with xmllint's words if it
/// does not validate.
pub fn assert_valid_dmarc_report(xml: &str, dir: &Path) {
    let file = dir.join(format!("report-{}.xml", std::process::id()));
    std::fs::write(&file, xml).unwrap();
    let schema = Path::new(REPO).join("tests/data/dmarc-rfc7489.xsd");
    let out = Command::new("/usr/bin/xmllint")
        .args(["--noout", "--schema"])
        .arg(&schema)
        .arg(&file)
        .output()
        .expect("xmllint");
    assert!(
        out.status.success(),
        "the report does not validate against RFC 7489's schema: {}\n{xml}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A free TCP port on 127.0.0.1 (bound and released; the caller binds it again soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `cond` holds or `timeout` passes.
pub fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Stops a child by its PID: SIGTERM, then SIGKILL after 5 s.
pub fn stop_child(child: &mut Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// smtp-sink on loopback: accepts everything, writes each message to a file.
pub struct Sink {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Sink {
    pub fn start(root: &Path) -> Sink {
        let dir = root.join("sink");
        std::fs::create_dir_all(&dir).unwrap();
        // smtp-sink refuses to run as root: it drops to nobody, who must write the dumps.
        run_ok(Command::new("chown").args(["nobody", dir.to_str().unwrap()]));
        let port = free_port();
        let child = Command::new("/usr/sbin/smtp-sink")
            .args(["-u", "nobody", "-d"])
            .arg(format!("{}/%H%M%S.", dir.display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("50")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink");
        let sink = Sink { child, port, dir };
        wait_for(Duration::from_secs(10), "smtp-sink", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        sink
    }

    /// The messages received so far (smtp-sink dump files: envelope then message).
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(&self.dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        files
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Waits for a message containing `needle`.
    pub fn wait_message(&self, needle: &str) -> String {
        let mut found = None;
        wait_for(
            Duration::from_secs(20),
            &format!("a delivered message with {needle:?}"),
            || {
                found = self.messages().into_iter().find(|m| m.contains(needle));
                found.is_some()
            },
        );
        found.unwrap()
    }

    pub fn has_message(&self, needle: &str) -> bool {
        self.messages().iter().any(|m| m.contains(needle))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// The postwarden daemon with a config written for the test.
pub struct Daemon {
    child: Option<Child>,
    pub config: PathBuf,
    pub data: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Writes `config_toml` (data_dir is set by the harness) and starts the daemon; returns
    /// when it reports ready.
    pub fn start(root: &Path, config_toml: &str) -> Daemon {
        let mut d = Daemon::configure(root, config_toml);
        d.restart();
        d
    }

    /// Writes the config as `start` does, without starting the daemon (for the admin
    /// commands, or for a service manager to start it).
    pub fn configure(root: &Path, config_toml: &str) -> Daemon {
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = root.join("postwarden.toml");
        std::fs::write(
            &config,
            format!("data_dir = {:?}\n{config_toml}", data.display().to_string()),
        )
        .unwrap();
        Daemon {
            child: None,
            config,
            data,
            log: root.join("postwarden.log"),
        }
    }

    /// Starts (again) after `stop`.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let before = std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("postwarden ready")
            .count();
        let child = Command::new(BIN)
            .args(["run", "--config", self.config.to_str().unwrap()])
            .env("RUST_LOG", "postwarden=debug,dovecot_auth=debug,info")
            .env_remove("POSTWARDEN_DATA_DIR")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let log_path = self.log.clone();
        let child = self.child.as_mut().unwrap();
        wait_for(Duration::from_secs(20), "postwarden ready", || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "postwarden exited ({status}): {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .matches("postwarden ready")
                .count()
                > before
        });
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c);
        }
    }

    /// Kills the daemon with SIGKILL, by its PID: a crash, nothing flushed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (e.g. "HUP") to the running daemon, by its PID.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("daemon running");
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    /// Whether the daemon process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Runs an admin command against the daemon's store and config.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .args(["--config", self.config.to_str().unwrap()])
            .env_remove("POSTWARDEN_DATA_DIR")
            .env("USER", "e2e")
            .output()
            .unwrap()
    }

    /// Runs an admin command that must succeed; returns stdout.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Creates a credential; returns (username, password).
    pub fn credential(&self, org: &str, label: &str) -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(&self.cli_ok(&[
            "credential",
            "new",
            "--org",
            org,
            "--label",
            label,
            "--json",
        ]))
        .unwrap();
        (
            v["username"].as_str().unwrap().to_string(),
            v["password"].as_str().unwrap().to_string(),
        )
    }

    /// The events of the daemon's store as JSON.
    pub fn events(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut a = vec!["log", "--json", "--limit", "0"];
        a.extend_from_slice(args);
        serde_json::from_str::<serde_json::Value>(&self.cli_ok(&a))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// tests/support/service-manager.py running the daemon: the sockets, readiness and the
/// file-descriptor store of systemd, for a machine whose PID 1 is something else.
pub struct ServiceManager {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    stdout: BufReader<std::process::ChildStdout>,
    /// The daemon's PID, from the manager's last line.
    pub service_pid: u32,
}

/// `pid=N` from a manager line.
fn pid_field(line: &str) -> u32 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

impl ServiceManager {
    /// Binds `sockets` (name, path; owned by postfix), starts the daemon of `daemon`'s config
    /// with them and returns once it is ready.
    pub fn start(daemon: &Daemon, sockets: &[(&str, PathBuf)], fdstore_max: usize) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&daemon.log)
            .unwrap();
        let mut cmd = Command::new("python3");
        cmd.arg(Path::new(REPO).join("tests/support/service-manager.py"))
            .args([
                "--fdstore-max",
                &fdstore_max.to_string(),
                "--owner",
                "postfix",
            ]);
        for (name, path) in sockets {
            cmd.args(["--socket", &format!("{name}={}", path.display())]);
        }
        let mut child = cmd
            .args([
                "--",
                BIN,
                "run",
                "--config",
                daemon.config.to_str().unwrap(),
            ])
            .env("RUST_LOG", "postwarden=debug,dovecot_auth=debug,info")
            .env_remove("POSTWARDEN_DATA_DIR")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("python3 tests/support/service-manager.py");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut m = ServiceManager {
            child,
            stdin,
            stdout,
            service_pid: 0,
        };
        let first = m.line();
        assert!(
            first.starts_with("ready "),
            "service manager: {first}\n{}",
            daemon.log_text()
        );
        m.service_pid = pid_field(&first);
        m
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim_end().to_string()
    }

    /// `systemctl restart`: returns the manager's line ("restarted pid=.. stored=N down_ms=T").
    pub fn restart(&mut self) -> String {
        use std::io::Write;
        let stdin = self.stdin.as_mut().expect("manager running");
        writeln!(stdin, "restart").unwrap();
        let line = self.line();
        assert!(line.starts_with("restarted "), "service manager: {line}");
        self.service_pid = pid_field(&line);
        line
    }
}

impl Drop for ServiceManager {
    fn drop(&mut self) {
        // Closing its stdin stops the daemon and the manager; by PID if that takes too long.
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + Duration::from_secs(45);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        stop_child(&mut self.child);
        if self.service_pid > 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.service_pid.to_string()])
                .status();
        }
    }
}

/// A private Postfix instance: `master` runs in the foreground as our child.
pub struct Postfix {
    master: Option<Child>,
    pub root: PathBuf,
    pub config_dir: PathBuf,
    pub queue_dir: PathBuf,
    pub smtp_port: u16,
    pub submission_port: u16,
    pub maillog: PathBuf,
}

/// Reads one of the shipped snippets.
pub fn snippet(name: &str) -> String {
    std::fs::read_to_string(Path::new(REPO).join("postfix").join(name)).unwrap()
}

/// Rewrites a master.cf entry for a private instance: the service name becomes a loopback
/// address and the chroot column `n`.
fn localize_master_entry(text: &str, service: &str, listen: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with(char::is_whitespace) && fields.len() >= 8 && fields[0] == service {
            out.push_str(&format!(
                "{listen} {} {} {} n {} {} {}\n",
                fields[1],
                fields[2],
                fields[3],
                fields[5],
                fields[6],
                fields[7..].join(" ")
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// What a test changes in its Postfix instance.
#[derive(Debug, Default, Clone)]
pub struct PostfixOpts {
    /// Appended to main.cf.
    pub extra_main: String,
    /// Appended to the submission entry as `-o` lines.
    pub submission_extra: Vec<String>,
    /// The submission entry's maxproc column.
    pub submission_maxproc: Option<u32>,
}

impl Postfix {
    /// Writes an instance's configuration under `root` (relaying to `sink_port`) and creates
    /// its queue directories; `start` runs it. In between the test starts postwarden, which
    /// must be up before Postfix.
    pub fn prepare(root: &Path, sink_port: u16, opts: &PostfixOpts) -> Postfix {
        let extra_main = &opts.extra_main;
        let config_dir = root.join("postfix-etc");
        let queue_dir = root.join("postfix-spool");
        let data_dir = root.join("postfix-data");
        for d in [&config_dir, &queue_dir, &data_dir] {
            std::fs::create_dir_all(d).unwrap();
        }
        run_ok(Command::new("chown").args(["postfix", data_dir.to_str().unwrap()]));
        let maillog = root.join("maillog");
        let key = config_dir.join("key.pem");
        let cert = config_dir.join("cert.pem");
        run_ok(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=mx.postwarden.test",
                    "-keyout",
                    key.to_str().unwrap(),
                    "-out",
                    cert.to_str().unwrap(),
                ])
                .stderr(Stdio::null()),
        );
        let smtp_port = free_port();
        let submission_port = free_port();
        let main = format!(
            "# private test instance\n\
             compatibility_level = 3.6\n\
             config_directory = {cfg}\n\
             queue_directory = {queue}\n\
             data_directory = {data}\n\
             mail_owner = postfix\n\
             setgid_group = postdrop\n\
             myhostname = mx.postwarden.test\n\
             mydomain = postwarden.test\n\
             myorigin = $myhostname\n\
             mydestination =\n\
             mynetworks =\n\
             inet_interfaces = 127.0.0.1\n\
             inet_protocols = ipv4\n\
             relayhost = [127.0.0.1]:{sink}\n\
             smtp_tls_security_level = none\n\
             alias_maps =\n\
             alias_database =\n\
             local_recipient_maps =\n\
             biff = no\n\
             smtpd_tls_cert_file = {cert}\n\
             smtpd_tls_key_file = {key}\n\
             smtpd_tls_security_level = may\n\
             maillog_file = {log}\n\
             maillog_file_prefixes = {root}\n\
             smtpd_authorized_xclient_hosts = 127.0.0.1\n\
             smtpd_error_sleep_time = 0\n\
             smtpd_soft_error_limit = 100\n\
             smtpd_hard_error_limit = 200\n\
             default_destination_rate_delay = 0\n\
             # --- the shipped snippet postfix/main.cf ---\n\
             {snippet}\n\
             # --- test additions ---\n\
             {extra_main}\n",
            cfg = config_dir.display(),
            queue = queue_dir.display(),
            data = data_dir.display(),
            sink = sink_port,
            cert = cert.display(),
            key = key.display(),
            log = maillog.display(),
            root = root.display(),
            snippet = snippet("main.cf"),
        );
        std::fs::write(config_dir.join("main.cf"), main).unwrap();
        // Debian's master.cf minus the pipe services, unchrooted, smtp on a loopback port,
        // plus the shipped submission entry.
        let dist = std::fs::read_to_string("/usr/share/postfix/master.cf.dist").unwrap();
        let mut master = String::new();
        let mut keep = true;
        for line in dist.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if !line.starts_with(char::is_whitespace) {
                let f: Vec<&str> = line.split_whitespace().collect();
                keep = !f.contains(&"pipe");
                if keep && f.len() >= 8 {
                    let service = if f[0] == "smtp" && f[1] == "inet" {
                        format!("127.0.0.1:{smtp_port}")
                    } else {
                        f[0].to_string()
                    };
                    master.push_str(&format!(
                        "{service} {} {} {} n {} {} {}\n",
                        f[1],
                        f[2],
                        f[3],
                        f[5],
                        f[6],
                        f[7..].join(" ")
                    ));
                    continue;
                }
            }
            if keep {
                master.push_str(line);
                master.push('\n');
            }
        }
        let mut sub = localize_master_entry(
            &snippet("master.cf"),
            "submission",
            &format!("127.0.0.1:{submission_port}"),
        );
        if let Some(n) = opts.submission_maxproc {
            let mut lines: Vec<String> = sub.lines().map(str::to_string).collect();
            if let Some(first) = lines.iter_mut().find(|l| l.starts_with("127.0.0.1:")) {
                let mut f: Vec<String> = first.split_whitespace().map(str::to_string).collect();
                f[6] = n.to_string();
                *first = f.join(" ");
            }
            sub = lines.join("\n") + "\n";
        }
        for o in &opts.submission_extra {
            sub.push_str(&format!("  -o {o}\n"));
        }
        master.push_str(&sub);
        std::fs::write(config_dir.join("master.cf"), master).unwrap();
        let pf = Postfix {
            master: None,
            root: root.to_path_buf(),
            config_dir,
            queue_dir,
            smtp_port,
            submission_port,
            maillog,
        };
        // Creates the queue directories with their owners, and checks the configuration.
        run_ok(Command::new("/usr/sbin/postfix").args([
            "-c",
            pf.config_dir.to_str().unwrap(),
            "check",
        ]));
        pf
    }

    /// Starts the master process (in the foreground, as our child) and waits for its ports.
    pub fn start(&mut self) {
        let child = Command::new("/usr/lib/postfix/sbin/master")
            .args(["-c", self.config_dir.to_str().unwrap(), "-d"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.master = Some(child);
        let (s, sub) = (self.smtp_port, self.submission_port);
        let master = self.master.as_mut().unwrap();
        wait_for(Duration::from_secs(20), "postfix listening", || {
            if let Some(status) = master.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(e) = master.stderr.take() {
                    for l in BufReader::new(e).lines().map_while(Result::ok) {
                        err.push_str(&l);
                        err.push('\n');
                    }
                }
                panic!("postfix master exited ({status}): {err}");
            }
            std::net::TcpStream::connect(("127.0.0.1", s)).is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", sub)).is_ok()
        });
    }

    /// The private directory inside the queue directory, where the auth socket lives.
    pub fn private_dir(&self) -> PathBuf {
        self.queue_dir.join("private")
    }

    pub fn maillog_text(&self) -> String {
        std::fs::read_to_string(&self.maillog).unwrap_or_default()
    }

    /// Messages waiting in the queue (postqueue -p).
    pub fn queue_listing(&self) -> String {
        let out = Command::new("/usr/sbin/postqueue")
            .args(["-c", self.config_dir.to_str().unwrap(), "-p"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub fn queue_is_empty(&self) -> bool {
        self.queue_listing().contains("Mail queue is empty")
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if let Some(mut m) = self.master.take() {
            stop_child(&mut m);
        }
    }
}

/// One swaks run: its exit status and its transcript.
#[derive(Debug)]
pub struct Swaks {
    pub code: Option<i32>,
    pub out: String,
}

impl Swaks {
    /// The server reply lines (swaks marks them `<~` / `<**` / `<-`).
    pub fn replies(&self) -> Vec<String> {
        self.out
            .lines()
            .filter_map(|l| {
                let t = l.trim_start();
                ["<~* ", "<** ", "<~  ", "<-  ", "<~ ", "<- "]
                    .iter()
                    .find_map(|p| t.strip_prefix(p))
                    .map(|s| s.trim().to_string())
            })
            .collect()
    }

    /// Whether some server reply starts with `prefix`.
    pub fn has_reply(&self, prefix: &str) -> bool {
        self.replies().iter().any(|r| r.starts_with(prefix))
    }

    pub fn reply_starting(&self, prefix: &str) -> Option<String> {
        self.replies().into_iter().find(|r| r.starts_with(prefix))
    }
}

/// Runs swaks with `args`, adding a timeout.
pub fn swaks(args: &[&str]) -> Swaks {
    let out = Command::new("/usr/bin/swaks")
        .args(["--timeout", "30", "--hide-informational"])
        .args(args)
        .output()
        .unwrap();
    Swaks {
        code: out.status.code(),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// The whole gateway for one test: smtp-sink, postwarden, and a private Postfix whose
/// submission service asks postwarden over `private/postwarden-auth`.
pub struct Gateway {
    // Dropped in this order: Postfix first, then postwarden, then the sink.
    pub postfix: Postfix,
    /// When the daemon runs under the test service manager (`start_managed`).
    pub manager: Option<ServiceManager>,
    pub daemon: Daemon,
    pub sink: Sink,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// `daemon_toml` is appended to the daemon's config after the harness's lines (so it
    /// must not repeat the `[auth]` table; use dotted keys such as `auth.throttle.delay`).
    pub fn start(daemon_toml: &str, opts: &PostfixOpts) -> Gateway {
        Gateway::launch(daemon_toml, opts, None)
    }

    /// As `start`, but the daemon runs under the test service manager, which holds the three
    /// sockets (as the package's socket units do) and keeps up to `fdstore_max` descriptors
    /// across restarts (`FileDescriptorStoreMax=`).
    pub fn start_managed(daemon_toml: &str, opts: &PostfixOpts, fdstore_max: usize) -> Gateway {
        Gateway::launch(daemon_toml, opts, Some(fdstore_max))
    }

    fn launch(daemon_toml: &str, opts: &PostfixOpts, managed: Option<usize>) -> Gateway {
        let dir = tempfile::Builder::new()
            .prefix("postwarden-e2e")
            .tempdir()
            .unwrap();
        // Postfix daemons (user postfix) must be able to traverse to the instance's files.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let sink = Sink::start(dir.path());
        let postfix = Postfix::prepare(dir.path(), sink.port, opts);
        let private = postfix.private_dir();
        let daemon = Daemon::configure(
            dir.path(),
            &format!(
                "auth.listen = \"unix:{}\"\nsubmission.listen = \"unix:{}\"\ninbound.listen = \"unix:{}\"\nsockets.group = \"postfix\"\nstore.busy_timeout = \"1s\"\n{daemon_toml}",
                private.join("postwarden-auth").display(),
                private.join("postwarden-submission").display(),
                private.join("postwarden-inbound").display(),
            ),
        );
        let manager = managed.map(|fdstore_max| {
            ServiceManager::start(
                &daemon,
                &[
                    ("auth", private.join("postwarden-auth")),
                    ("submission", private.join("postwarden-submission")),
                    ("inbound", private.join("postwarden-inbound")),
                ],
                fdstore_max,
            )
        });
        let mut daemon = daemon;
        if manager.is_none() {
            daemon.restart();
        }
        let mut gw = Gateway {
            postfix,
            manager,
            daemon,
            sink,
            dir,
        };
        gw.postfix.start();
        gw
    }

    /// Registers organization `acme` with domain acme.example and account alice@acme.example;
    /// returns a fresh credential (username, password).
    pub fn acme(&self) -> (String, String) {
        self.daemon.cli_ok(&["org", "add", "acme"]);
        self.daemon
            .cli_ok(&["domain", "add", "acme.example", "--org", "acme"]);
        self.daemon
            .cli_ok(&["account", "add", "alice@acme.example", "--kind", "end_user"]);
        self.daemon.credential("acme", "laptop")
    }

    /// Sends `data` (a whole message) on port 25, without AUTH, as `mail_from` from the
    /// HELO name client.sender.example, to rcpt@dest.example (which the tests' Postfix
    /// relays to the sink when it is started with `relay_domains = dest.example`).
    pub fn send25(&self, mail_from: &str, data: &[u8]) -> Swaks {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let file = self.dir.path().join(format!("msg-{nanos:x}.eml"));
        std::fs::write(&file, data).unwrap();
        let server = format!("127.0.0.1:{}", self.postfix.smtp_port);
        let data_arg = format!("@{}", file.display());
        swaks(&[
            "--server",
            &server,
            "--ehlo",
            "client.sender.example",
            "--from",
            mail_from,
            "--to",
            "rcpt@dest.example",
            "--data",
            &data_arg,
        ])
    }

    /// A message from alice@acme.example to rcpt@dest.example with `subject`, submitted with
    /// STARTTLS and AUTH PLAIN as `user`.
    pub fn submit_subject(&self, user: &str, pass: &str, subject: &str) -> Swaks {
        self.submit(
            "PLAIN",
            user,
            pass,
            &[
                "--from",
                "alice@acme.example",
                "--to",
                "rcpt@dest.example",
                "--header",
                &format!("Subject: {subject}"),
            ],
        )
    }

    /// A message with `subject` on port 25 from someone@outside.example to
    /// rcpt@dest.example (the inbound milter runs).
    pub fn inbound(&self, subject: &str) -> Swaks {
        swaks(&[
            "--server",
            &format!("127.0.0.1:{}", self.postfix.smtp_port),
            "--from",
            "someone@outside.example",
            "--to",
            "rcpt@dest.example",
            "--header",
            &format!("Subject: {subject}"),
        ])
    }

    /// swaks against the submission port with STARTTLS and AUTH.
    pub fn submit(&self, mech: &str, user: &str, pass: &str, extra: &[&str]) -> Swaks {
        let port = self.postfix.submission_port.to_string();
        let server = format!("127.0.0.1:{port}");
        let mut args = vec![
            "--server",
            &server,
            "--tls",
            "--auth",
            mech,
            "--auth-user",
            user,
            "--auth-password",
            pass,
            "--ehlo",
            "client.postwarden.test",
        ];
        args.extend_from_slice(extra);
        swaks(&args)
    }
}

/// A plain (no TLS) SMTP conversation: sends each line and returns every reply, in order.
pub fn smtp_plain(port: u16, lines: &[&str]) -> Vec<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut replies = Vec::new();
    let mut buf = Vec::new();
    let mut read_reply = |s: &mut std::net::TcpStream| -> String {
        // A reply ends with a line whose 4th character is a space.
        loop {
            if let Some(text) = std::str::from_utf8(&buf).ok().and_then(|t| {
                let lines: Vec<&str> = t.split("\r\n").collect();
                lines
                    .iter()
                    .position(|l| l.len() >= 4 && l.as_bytes()[3] == b' ')
                    .map(|i| {
                        (
                            lines[..=i].join("\n"),
                            lines[..=i].iter().map(|l| l.len() + 2).sum::<usize>(),
                        )
                    })
            }) {
                let (reply, used) = text;
                buf.drain(..used);
                return reply;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).unwrap_or(0);
            if n == 0 {
                return "<connection closed>".into();
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    replies.push(read_reply(&mut s));
    for line in lines {
        s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
        replies.push(read_reply(&mut s));
    }
    replies
}

/// An interactive SMTP session over STARTTLS (openssl s_client), for steps swaks cannot
/// pause between, such as changing the store after AUTH and before MAIL.
pub struct SmtpTls {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl SmtpTls {
    pub fn connect(port: u16) -> SmtpTls {
        let mut child = Command::new("openssl")
            .args([
                "s_client",
                "-starttls",
                "smtp",
                "-crlf",
                "-quiet",
                "-connect",
            ])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line.trim_end().to_string()).is_err() {
                    break;
                }
            }
        });
        SmtpTls {
            child,
            stdin,
            lines,
        }
    }

    /// Sends one line without waiting for a reply (message content after DATA).
    pub fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        use std::io::Write;
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()
    }

    /// Sends one command line and returns the reply's last line.
    pub fn cmd(&mut self, line: &str) -> String {
        use std::io::Write;
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        loop {
            let l = self
                .lines
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no reply to {line:?}"));
            if l.len() >= 4 && l.as_bytes()[3] == b' ' {
                return l;
            }
        }
    }
}

impl Drop for SmtpTls {
    fn drop(&mut self) {
        stop_child(&mut self.child);
    }
}

/// One PLAIN login over a fresh Dovecot-protocol connection to `127.0.0.1:port`, as
/// Postfix sends it for client address `rip`; returns the reply line ("" when the daemon
/// closed the connection, as it does on a fault).
pub fn dovecot_login(port: u16, user: &str, pass: &str, rip: &str) -> String {
    use std::io::Write;
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    w.write_all(b"VERSION\t1\t0\nCPID\t4242\n").unwrap();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.trim_end() == "DONE" {
            break;
        }
    }
    let resp = plain_token(user, pass);
    w.write_all(
        format!("AUTH\t1\tPLAIN\tservice=smtp\trip={rip}\tsecured\tresp={resp}\n").as_bytes(),
    )
    .unwrap();
    let mut reply = String::new();
    let _ = r.read_line(&mut reply);
    reply.trim_end().to_string()
}

/// base64 of a SASL PLAIN response for `user` / `pass`.
pub fn plain_token(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
}
