//! Restarts under load that no client notices: the daemon runs under a service manager that
//! holds its sockets and keeps a file-descriptor store (as the package's units configure
//! systemd), mail flows through a real Postfix on both ports without pause, and the daemon is
//! restarted three times. Every session must end in 250, every accepted message must arrive.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// What the load saw.
#[derive(Debug, Default)]
struct Tally {
    sessions: usize,
    /// Sessions that did not end with the message queued: (reply or transcript tail).
    failures: Vec<String>,
    /// Subjects of the messages Postfix queued.
    queued: Vec<String>,
}

fn record(tally: &Mutex<Tally>, subject: String, r: Swaks) {
    let mut t = tally.lock().unwrap();
    t.sessions += 1;
    if r.code == Some(0) && r.has_reply("250 2.0.0 Ok: queued") {
        t.queued.push(subject);
        return;
    }
    let why = r
        .replies()
        .into_iter()
        .find(|l| l.starts_with('4') || l.starts_with('5'))
        .unwrap_or_else(|| {
            let tail: Vec<&str> = r.out.lines().rev().take(3).collect();
            format!("no SMTP error reply (exit {:?}): {tail:?}", r.code)
        });
    t.failures.push(format!("{subject}: {why}"));
}

/// Submission sessions (STARTTLS, AUTH PLAIN, signed) on `threads` threads and port-25
/// sessions (inbound milter) on one more, until `stop`.
fn start_load(
    gw: &Arc<Gateway>,
    user: &str,
    pass: &str,
    threads: usize,
    tag: &str,
    stop: &Arc<AtomicBool>,
    tally: &Arc<Mutex<Tally>>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut handles = Vec::new();
    for t in 0..threads {
        let (gw, stop, tally) = (Arc::clone(gw), Arc::clone(stop), Arc::clone(tally));
        let (user, pass, tag) = (user.to_string(), pass.to_string(), tag.to_string());
        handles.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let subject = format!("{tag}-sub-{t}-{n}");
                let r = gw.submit_subject(&user, &pass, &subject);
                record(&tally, subject, r);
            }
        }));
    }
    let (gw, stop, tally) = (Arc::clone(gw), Arc::clone(stop), Arc::clone(tally));
    let tag = tag.to_string();
    handles.push(std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            let subject = format!("{tag}-in-{n}");
            let r = gw.inbound(&subject);
            record(&tally, subject, r);
        }
    }));
    handles
}

/// Runs the load, restarts the daemon `restarts` times in it, and returns what the load saw
/// and the manager's restart lines.
fn restart_under_load(
    mut gw: Gateway,
    restarts: usize,
    tag: &str,
) -> (Tally, Vec<String>, Gateway) {
    let (user, pass) = gw.acme();
    // The manager stays with this thread; the load threads share the rest.
    let mut manager = gw.manager.take().expect("a managed gateway");
    let gw = Arc::new(gw);
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let handles = start_load(&gw, &user, &pass, 4, tag, &stop, &tally);
    // Let Postfix's smtpd processes open their auth connections first.
    std::thread::sleep(Duration::from_secs(3));
    let mut lines = Vec::new();
    for _ in 0..restarts {
        lines.push(manager.restart());
        std::thread::sleep(Duration::from_secs(3));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let mut gw = Arc::into_inner(gw).expect("load threads done");
    gw.manager = Some(manager);
    let tally = Arc::into_inner(tally).unwrap().into_inner().unwrap();
    (tally, lines, gw)
}

/// The daemon's DNS is unreachable and inbound mail is accepted with temperror verdicts;
/// Postfix relays dest.example to the sink.
const INBOUND_ACCEPT: &str = "dns.nameservers = [\"127.0.0.1:9\"]\ndns.timeout = \"100ms\"\ninbound.dns_failure = \"accept\"\n";

fn relaying() -> PostfixOpts {
    PostfixOpts {
        extra_main: "relay_domains = dest.example".into(),
        ..Default::default()
    }
}

fn gateway(fdstore_max: usize) -> Gateway {
    Gateway::start_managed(INBOUND_ACCEPT, &relaying(), fdstore_max)
}

/// Every queued message reaches the sink.
fn assert_all_delivered(gw: &Gateway, tally: &Tally) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let messages = gw.sink.messages().join("\n");
        let missing: Vec<&String> = tally
            .queued
            .iter()
            .filter(|s| {
                !messages.contains(&format!("Subject: {s}\n"))
                    && !messages.contains(&format!("Subject: {s}\r\n"))
            })
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} queued messages never arrived, e.g. {:?}; queue: {}",
            missing.len(),
            tally.queued.len(),
            &missing[..missing.len().min(5)],
            gw.postfix.queue_listing()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn restarts_under_load_cost_no_session_and_no_message() {
    if !e2e_available() {
        return;
    }
    let (tally, lines, gw) = restart_under_load(gateway(8192), 3, "fdstore");
    println!(
        "restart under load, with the descriptor store: {} sessions, {} failed, {} queued; restarts: {lines:?}",
        tally.sessions,
        tally.failures.len(),
        tally.queued.len()
    );
    assert!(
        tally.sessions >= 20,
        "too little load to say anything: {tally:?}"
    );
    assert!(
        tally.failures.is_empty(),
        "sessions failed across restarts: {:?}\n{}",
        tally.failures,
        gw.postfix.maillog_text()
    );
    // Postfix's smtpd processes kept their auth connections through the restarts: the
    // connections went through the store, and the next process served them.
    let stored: usize = lines
        .iter()
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("stored=")))
        .map(|n| n.parse::<usize>().unwrap())
        .sum();
    assert!(stored > 0, "no auth connection was handed over: {lines:?}");
    let log = gw.daemon.log_text();
    assert!(
        log.contains("auth connections taken over from the previous process"),
        "{log}"
    );
    assert_all_delivered(&gw, &tally);
    assert!(!gw.postfix.maillog_text().contains("status=bounced"));
}

/// The same restarts with a manager that keeps no descriptors (`FileDescriptorStoreMax=0`):
/// the milters still drain, but Postfix finds its auth connections closed. Printed for
/// comparison; the only assertion is that no accepted message is lost.
#[test]
fn restarts_without_the_descriptor_store_lose_no_message() {
    if !e2e_available() {
        return;
    }
    let (tally, lines, gw) = restart_under_load(gateway(0), 3, "nostore");
    println!(
        "restart under load, without the descriptor store: {} sessions, {} failed, {} queued; failures: {:?}; restarts: {lines:?}",
        tally.sessions,
        tally.failures.len(),
        tally.queued.len(),
        tally.failures
    );
    assert!(
        tally.sessions >= 20,
        "too little load to say anything: {tally:?}"
    );
    assert_all_delivered(&gw, &tally);
}

/// One SMTP command on a plain connection: the whole (possibly multi-line) reply.
fn smtp_cmd(stream: &mut std::io::BufReader<std::net::TcpStream>, line: Option<&str>) -> String {
    use std::io::{BufRead, Write};
    if let Some(line) = line {
        stream
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }
    let mut reply = String::new();
    loop {
        let mut l = String::new();
        stream.read_line(&mut l).unwrap();
        reply.push_str(&l);
        if l.len() < 4 || l.as_bytes()[3] == b' ' {
            return reply;
        }
    }
}

fn authserv_of(gw: &Gateway, subject: &str) -> String {
    let m = gw.sink.wait_message(&format!("Subject: {subject}"));
    m.lines()
        .find_map(|l| l.strip_prefix("Authentication-Results: "))
        .map(|v| v.split(';').next().unwrap().trim().to_string())
        .unwrap_or_else(|| panic!("no Authentication-Results in {m}"))
}

#[test]
fn reload_applies_the_new_config_without_dropping_sessions_or_logins() {
    if !e2e_available() {
        return;
    }
    let gw = Gateway::start(
        &format!("{INBOUND_ACCEPT}inbound.authserv_id = \"mx-one.example\"\n"),
        &relaying(),
    );
    let (user, pass) = gw.acme();
    let submit = |subject: &str| gw.submit_subject(&user, &pass, subject);
    // A login first, so that an smtpd process holds an auth connection across the reload.
    let r = submit("before-reload");
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);

    // A port-25 session open across the reload: its milter session started on the old config.
    let tcp = std::net::TcpStream::connect(("127.0.0.1", gw.postfix.smtp_port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut held = std::io::BufReader::new(tcp);
    assert!(smtp_cmd(&mut held, None).starts_with("220"));
    assert!(smtp_cmd(&mut held, Some("EHLO client.sender.example")).starts_with("250"));
    assert!(smtp_cmd(&mut held, Some("MAIL FROM:<someone@outside.example>")).starts_with("250"));
    assert!(smtp_cmd(&mut held, Some("RCPT TO:<rcpt@dest.example>")).starts_with("250"));

    let cfg = std::fs::read_to_string(&gw.daemon.config).unwrap();
    std::fs::write(
        &gw.daemon.config,
        cfg.replace("mx-one.example", "mx-two.example"),
    )
    .unwrap();
    gw.daemon.signal("HUP");
    wait_for(Duration::from_secs(10), "the reload", || {
        gw.daemon.log_text().contains("configuration reloaded")
    });

    // The held session finishes, on the config it started with.
    assert!(smtp_cmd(&mut held, Some("DATA")).starts_with("354"));
    let reply = smtp_cmd(
        &mut held,
        Some("From: <someone@outside.example>\r\nSubject: held-across-reload\r\n\r\nbody\r\n."),
    );
    assert!(reply.starts_with("250 2.0.0 Ok: queued"), "{reply}");
    let _ = smtp_cmd(&mut held, Some("QUIT"));
    assert_eq!(authserv_of(&gw, "held-across-reload"), "mx-one.example");

    // New sessions use the new config; logins still work on the kept auth connections.
    let r = gw.inbound("after-reload");
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    assert_eq!(authserv_of(&gw, "after-reload"), "mx-two.example");
    for i in 0..3 {
        let r = submit(&format!("login-after-reload-{i}"));
        assert!(
            r.has_reply("235 2.7.0 Authentication successful"),
            "{}",
            r.out
        );
        assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    }

    // A config that does not load is refused as a whole; the running one stays.
    let cfg = std::fs::read_to_string(&gw.daemon.config).unwrap();
    std::fs::write(&gw.daemon.config, cfg.replace("mx-two.example", "mx three")).unwrap();
    gw.daemon.signal("HUP");
    wait_for(Duration::from_secs(10), "the refused reload", || {
        gw.daemon.log_text().contains("reload refused")
    });
    let r = gw.inbound("after-bad-reload");
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
    assert_eq!(authserv_of(&gw, "after-bad-reload"), "mx-two.example");

    // A setting a running process cannot change is named, for the next restart.
    std::fs::write(
        &gw.daemon.config,
        cfg.replace("store.busy_timeout = \"1s\"", "store.busy_timeout = \"2s\""),
    )
    .unwrap();
    gw.daemon.signal("HUP");
    wait_for(Duration::from_secs(10), "the restart-only warning", || {
        gw.daemon
            .log_text()
            .contains("these settings changed and take effect at the next restart")
    });
    let log = gw.daemon.log_text();
    assert!(log.contains("keys=store"), "{log}");
    let r = submit("after-third-reload");
    assert!(r.has_reply("250 2.0.0 Ok: queued"), "{}", r.out);
}
