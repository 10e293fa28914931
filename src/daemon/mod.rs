//! The daemon: `run(config, shutdown)` opens the store, binds the listeners, spawns the
//! services and returns when `shutdown` resolves.

pub mod limits;
mod listener;
pub mod memory;
pub mod reload;
pub mod systemd;

use std::future::Future;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indymilter::EitherStream;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

pub use listener::Listener;

use crate::config::Config;
use crate::events::EventSink;
use crate::login::AuthService;
use crate::milter;
use crate::model::now;
use crate::store::{self, Pool};
use systemd::Passed;

/// How often old events are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Removes events older than the configured retention ("0s" keeps them), and throttle
/// counters and known addresses whose time has ended.
fn prune(cfg: &Config, pool: &Arc<Pool>) {
    match pool.with(|s| s.throttle_prune(now())) {
        Ok(0) => {}
        Ok(n) => debug!(removed = n, "expired throttle entries removed"),
        Err(e) => warn!(error = %e, "throttle pruning failed"),
    }
    let retention = cfg.store.event_retention.0;
    if retention.is_zero() {
        return;
    }
    let before = now() - retention.as_secs() as i64;
    match pool.with(|s| s.prune_events(before)) {
        Ok(0) => {}
        Ok(n) => info!(removed = n, "old events removed"),
        Err(e) => warn!(error = %e, "event pruning failed"),
    }
}

/// An auth connection as the daemon serves it.
pub type AuthStream = limits::Counted<EitherStream<TcpStream, UnixStream>>;

/// An auth connection handed off at stop, between requests.
pub struct HandedOff {
    pub stream: AuthStream,
}

impl HandedOff {
    pub fn raw_fd(&self) -> RawFd {
        match self.stream.get_ref() {
            EitherStream::Tcp(s) => s.as_raw_fd(),
            EitherStream::Unix(s) => s.as_raw_fd(),
        }
    }
}

/// How long connections in the middle of a request get to finish it at stop before they
/// are closed (a LOGIN exchange waiting for the client's next line, a verification).
const HANDOFF_WAIT: Duration = Duration::from_secs(5);

/// Serves the Dovecot auth protocol on `listener` with `service` deciding logins: at
/// most `cap` connections at once (a connection past it is closed at once, and the log
/// says so), each closed after `idle` without a request. `resumed` are connections a
/// previous process handed off; they are served on without a handshake.
///
/// When `stop` turns `true`, accepting stops and every connection is given back as soon
/// as it is between requests (waiting at most 5 s for open requests); the connections are
/// returned, for the service manager to keep. A `stop` whose sender is gone never stops.
pub async fn serve_auth<V: dovecot_auth::Verifier>(
    listener: Listener,
    service: Arc<V>,
    cap: usize,
    idle: Duration,
    stop: watch::Receiver<bool>,
    resumed: Vec<systemd::PassedConnection>,
) -> Vec<HandedOff> {
    use indymilter::Listener as _;
    let gauge = Arc::new(limits::Gauge::default());
    let mut listener = listener.counting("auth", Arc::clone(&gauge), usize::MAX);
    let config = Arc::new(dovecot_auth::ServerConfig {
        idle_timeout: Some(idle),
        ..Default::default()
    });
    let mut counter: u32 = 0;
    let mut conns: JoinSet<Option<HandedOff>> = JoinSet::new();
    let mut spawn = |conns: &mut JoinSet<_>, stream: AuthStream, resumed: Option<u32>| {
        counter = counter.wrapping_add(1);
        let cuid = counter;
        let ids = dovecot_auth::ConnectionIds::for_this_process(cuid);
        let (service, config, stop) = (Arc::clone(&service), Arc::clone(&config), stop.clone());
        conns.spawn(async move {
            let ended = match resumed {
                None => {
                    dovecot_auth::serve_until_handoff(stream, service, &config, ids, stop).await
                }
                Some(pid) => {
                    dovecot_auth::resume_connection(stream, service, &config, ids, pid, stop).await
                }
            };
            match ended {
                Ok(dovecot_auth::Ended::HandedOff { stream, .. }) => Some(HandedOff { stream }),
                Ok(dovecot_auth::Ended::Closed) => {
                    debug!(cuid, "auth connection closed");
                    None
                }
                // The crate has already logged the error as one warning.
                Err(e) => {
                    debug!(cuid, error = %e, "auth connection closed after an error");
                    None
                }
            }
        });
    };
    let taken = resumed.len();
    for passed in resumed {
        match passed_stream(passed) {
            Ok((stream, pid)) => {
                let (stream, _) = limits::Counted::new(stream, Some(Arc::clone(&gauge)));
                spawn(&mut conns, stream, Some(pid));
            }
            Err(e) => warn!(error = %e, "an auth connection from the previous process is unusable"),
        }
    }
    if taken > 0 {
        info!(
            connections = taken,
            "auth connections taken over from the previous process"
        );
    }

    let over_cap = limits::Throttled::new(Duration::from_secs(60));
    let accept_failed = limits::Throttled::new(Duration::from_secs(10));
    let (mut stopping, mut watching) = (stop.clone(), true);
    loop {
        tokio::select! {
            r = async { stopping.wait_for(|s| *s).await.is_ok() }, if watching => {
                if r {
                    break;
                }
                // The sender is gone: serve for good.
                watching = false;
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok(stream) if gauge.open() > cap => {
                    drop(stream);
                    over_cap.hit(|times| {
                        warn!(
                            cap,
                            times,
                            "auth connection closed: auth.max_connections reached (Postfix answers \
                             454 to that login; raise the cap, or find what holds the connections)"
                        )
                    });
                }
                Ok(stream) => spawn(&mut conns, stream, None),
                Err(e) => {
                    // Out of file descriptors and the like: log (not every time), pause
                    // briefly, keep serving.
                    accept_failed.hit(|times| warn!(error = %e, times, "auth accept failed"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + HANDOFF_WAIT;
    let mut handed = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, conns.join_next()).await {
            Ok(Some(Ok(Some(h)))) => handed.push(h),
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                warn!(
                    connections = conns.len(),
                    "auth connections still in a request 5s after stop: closed (Postfix \
                     answers 454 to those logins)"
                );
                conns.abort_all();
                break;
            }
        }
    }
    handed
}

/// A connection from the store as the stream type the daemon serves.
fn passed_stream(
    passed: systemd::PassedConnection,
) -> std::io::Result<(EitherStream<TcpStream, UnixStream>, u32)> {
    Ok(match passed {
        systemd::PassedConnection::Unix { stream, client_pid } => {
            stream.set_nonblocking(true)?;
            (
                EitherStream::Unix(UnixStream::from_std(stream)?),
                client_pid,
            )
        }
        systemd::PassedConnection::Tcp { stream, client_pid } => {
            stream.set_nonblocking(true)?;
            (EitherStream::Tcp(TcpStream::from_std(stream)?), client_pid)
        }
    })
}

/// Runs a milter on `listener` until `stop` turns true (or its sender is gone). At most
/// `cap` connections are served at once (further ones wait in the listen queue; reaching
/// the cap is logged); a connection silent for `idle` is closed.
///
/// At stop, accepting stops (new connections wait in the listen queue, for the next
/// process when the service manager holds the socket) and the open sessions may finish
/// for up to `drain`; those still open then are told to end.
pub async fn serve_milter<T: Send + 'static>(
    name: &'static str,
    listener: Listener,
    callbacks: indymilter::Callbacks<T>,
    cap: usize,
    idle: Duration,
    drain: Duration,
    stop: watch::Receiver<bool>,
) {
    let gauge = Arc::new(limits::Gauge::default());
    let (run, _) = milter_run(name, listener, callbacks, gauge, (cap, idle), drain, stop);
    run.await
}

/// One accept loop of a milter: its sessions counted in `gauge`, draining at `stop` as
/// [`serve_milter`] says. Returns the loop and the flag that pauses its accepting.
fn milter_run<T: Send + 'static>(
    name: &'static str,
    listener: Listener,
    callbacks: indymilter::Callbacks<T>,
    gauge: Arc<limits::Gauge>,
    (cap, idle): (usize, Duration),
    drain: Duration,
    stop: watch::Receiver<bool>,
) -> (impl Future<Output = ()> + Send, Arc<AtomicBool>) {
    let paused = Arc::new(AtomicBool::new(false));
    let listener = listener
        .counting(name, Arc::clone(&gauge), cap)
        .pausable(Arc::clone(&paused));
    let config = indymilter::Config {
        max_connections: cap,
        connection_timeout: idle,
        ..Default::default()
    };
    let shutdown = drain_sessions(name, stop, Arc::clone(&paused), gauge, drain);
    let run = async move {
        if let Err(e) = indymilter::run(listener, callbacks, config, shutdown).await {
            error!(error = %e, "milter stopped");
        }
    };
    (run, paused)
}

/// Resolves, for indymilter to end the sessions still open, once `stop` has turned `true`
/// (or its sender is gone), accepting is paused and the sessions counted in `gauge` have
/// ended or `drain` has passed.
async fn drain_sessions(
    name: &'static str,
    mut stop: watch::Receiver<bool>,
    paused: Arc<AtomicBool>,
    gauge: Arc<limits::Gauge>,
    drain: Duration,
) {
    let _ = stop.wait_for(|s| *s).await;
    paused.store(true, Ordering::Relaxed);
    let open = gauge.open();
    if open == 0 {
        return;
    }
    info!(
        listener = name,
        open, "stopping: waiting for open milter sessions to end"
    );
    let deadline = tokio::time::Instant::now() + drain;
    while gauge.open() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open = gauge.open();
    if open > 0 {
        warn!(
            listener = name,
            open,
            "milter sessions still open after drain_timeout: ended (Postfix applies \
             milter_default_action, 451 4.7.1 by default, to those messages)"
        );
    }
}

/// A milter that follows reloads: each config from `configs` gets a generation of its
/// own (callbacks from `make`, cap and idle timeout from `limits`) accepting on `listener`;
/// the previous generation stops accepting and its sessions finish on the config they
/// started with. At stop every generation drains as [`serve_milter`] does.
async fn serve_milter_generations<T, F>(
    name: &'static str,
    listener: Listener,
    make: F,
    limits: fn(&Config) -> (usize, Duration),
    mut configs: watch::Receiver<Arc<Config>>,
    stop: watch::Receiver<bool>,
) where
    T: Send + 'static,
    F: Fn(&Arc<Config>) -> anyhow::Result<indymilter::Callbacks<T>>,
{
    let gauge = Arc::new(limits::Gauge::default());
    let mut generations = JoinSet::new();
    let mut current: Option<Arc<AtomicBool>> = None;
    let mut cfg = Arc::clone(&configs.borrow_and_update());
    let mut callbacks = match make(&cfg) {
        Ok(c) => Some(c),
        Err(e) => {
            error!(listener = name, error = %e, "milter not started");
            None
        }
    };
    let mut stopping = stop.clone();
    loop {
        if let Some(callbacks) = callbacks.take() {
            // Every generation accepts on a duplicate; `listener` keeps the socket (and its
            // file) until the end.
            match listener.share() {
                Ok(l) => {
                    let (run, paused) = milter_run(
                        name,
                        l,
                        callbacks,
                        Arc::clone(&gauge),
                        limits(&cfg),
                        cfg.drain_timeout.0,
                        stop.clone(),
                    );
                    generations.spawn(run);
                    if let Some(old) = current.replace(paused) {
                        old.store(true, Ordering::Relaxed);
                    }
                }
                Err(e) => error!(listener = name, error = %e, "reload not applied to this milter"),
            }
        }
        let changed = tokio::select! {
            _ = async { let _ = stopping.wait_for(|s| *s).await; } => break,
            changed = configs.changed() => changed.is_ok(),
        };
        if !changed {
            // No more reloads: serve until stop.
            let _ = stopping.wait_for(|s| *s).await;
            break;
        }
        let new = Arc::clone(&configs.borrow_and_update());
        match make(&new) {
            Ok(c) => {
                cfg = new;
                callbacks = Some(c);
            }
            Err(e) => error!(listener = name, error = %e, "reload not applied to this milter"),
        }
    }
    while generations.join_next().await.is_some() {}
    // Dropped last: a socket file this process bound is removed with it.
    drop(listener);
}

/// Hands the auth connections to the service manager's store (they are closed when there is
/// none), and says how many went where.
fn store_handed_off(handed: Vec<HandedOff>) {
    if handed.is_empty() {
        return;
    }
    let notifier = match systemd::Notifier::connect() {
        Ok(n) => n,
        Err(e) => {
            debug!(error = %e, "no service manager to keep auth connections");
            info!(
                connections = handed.len(),
                "auth connections closed at stop (no service manager to hand them to)"
            );
            return;
        }
    };
    let (mut stored, mut failed) = (0usize, 0usize);
    for h in &handed {
        match notifier.store_auth_connection(h.raw_fd()) {
            Ok(()) => stored += 1,
            Err(e) => {
                failed += 1;
                if failed == 1 {
                    warn!(error = %e, "an auth connection could not be handed to the service manager");
                }
            }
        }
    }
    info!(
        stored,
        failed, "auth connections handed to the service manager for the next process"
    );
}

/// Applies each reload request of `r` (see [`reload`]): loads the config, builds the new
/// services, and only when all of them build swaps them in.
async fn follow_reloads(
    mut r: reload::Reload,
    mut current: Arc<Config>,
    pool: Arc<Pool>,
    events: Arc<EventSink>,
    auth: Arc<reload::Live<AuthService>>,
    publish: watch::Sender<Arc<Config>>,
) {
    while r.requests.recv().await.is_some() {
        let _ = systemd::notify("RELOADING=1\n");
        let new = match (r.load)() {
            Ok(c) => Arc::new(c),
            Err(e) => {
                error!(error = %e, "reload refused: the configuration does not load; the running one stays");
                let _ = systemd::notify("READY=1\n");
                continue;
            }
        };
        let built = AuthService::new(Arc::clone(&new), Arc::clone(&pool), Arc::clone(&events))
            .and_then(|a| {
                milter::inbound::InboundMilter::new(Arc::clone(&new), Arc::clone(&events))?;
                Ok(a)
            });
        match built {
            Ok(service) => {
                let later = reload::restart_only_changes(&current, &new);
                if !later.is_empty() {
                    warn!(
                        keys = later.join(", "),
                        "reload: these settings changed and take effect at the next restart"
                    );
                }
                auth.set(Arc::new(service));
                let _ = publish.send(Arc::clone(&new));
                (r.applied)(&new);
                current = new;
                info!("configuration reloaded: new logins and new milter sessions use it");
            }
            Err(e) => {
                error!(error = %format!("{e:#}"), "reload refused: the running configuration stays")
            }
        }
        let _ = systemd::notify("READY=1\n");
    }
}

/// Runs the daemon until `shutdown` resolves.
///
/// `passed` holds the sockets (and auth connections) a service manager passed (see
/// `systemd`); a listener without one binds its configured address.
///
/// Stopping loses nothing: the milters stop accepting and let open sessions finish (up to
/// `drain_timeout`) while auth goes on serving; then auth stops accepting and hands its
/// connections, between requests, to the service manager for the next process.
pub async fn run(
    cfg: Config,
    passed: Passed,
    shutdown: impl Future<Output = ()>,
    reload: Option<reload::Reload>,
) -> anyhow::Result<()> {
    memory::tune_allocator();
    // Create and migrate the store once; the pool opens it without creating it.
    store::prepare(&cfg)?;
    match limits::raise_nofile_limit() {
        Ok(soft) => {
            info!(open_file_limit = soft, "open-file limit");
            limits::check_caps(
                soft,
                &[
                    ("auth.max_connections", cfg.auth.max_connections),
                    ("submission.max_connections", cfg.submission.max_connections),
                    ("inbound.max_connections", cfg.inbound.max_connections),
                ],
            );
        }
        Err(e) => warn!(error = %e, "could not raise the open-file limit"),
    }
    let cfg = Arc::new(cfg);
    let pool = Pool::new(&cfg);

    let events = EventSink::with_journal(
        Arc::clone(&pool),
        cfg.event_journal_path(),
        cfg.journal_max_bytes(),
    );
    let auth_service = Arc::new(reload::Live::new(Arc::new(AuthService::new(
        Arc::clone(&cfg),
        Arc::clone(&pool),
        Arc::clone(&events),
    )?)));
    // Fails here, before anything listens, on a bad DNS setting or ARC key.
    milter::inbound::InboundMilter::new(Arc::clone(&cfg), Arc::clone(&events))?;
    let Passed {
        listeners: mut activated,
        auth_connections,
    } = passed;
    let auth_listener = Listener::open("auth", &mut activated, &cfg, &cfg.auth.listen).await?;
    info!(listen = %auth_listener.local_addr(), "auth socket listening");
    let (stop_auth, auth_stopped) = watch::channel(false);
    let auth_task = tokio::spawn(serve_auth(
        auth_listener,
        Arc::clone(&auth_service),
        cfg.auth.max_connections as usize,
        cfg.auth.idle_timeout.0,
        auth_stopped,
        auth_connections,
    ));

    let submission_listener =
        Listener::open("submission", &mut activated, &cfg, &cfg.submission.listen).await?;
    info!(listen = %submission_listener.local_addr(), "submission milter listening");
    let inbound_listener =
        Listener::open("inbound", &mut activated, &cfg, &cfg.inbound.listen).await?;
    info!(listen = %inbound_listener.local_addr(), "inbound milter listening");
    for name in activated.keys() {
        warn!(name, "the service manager passed a socket no listener uses");
    }
    let (stop_milters, milters_stopped) = tokio::sync::watch::channel(false);
    let (publish, configs) = watch::channel(Arc::clone(&cfg));
    let (sub_pool, sub_events) = (Arc::clone(&pool), Arc::clone(&events));
    let submission_task = tokio::spawn(serve_milter_generations(
        "submission",
        submission_listener,
        move |cfg: &Arc<Config>| {
            Ok(milter::submission::callbacks(
                milter::submission::SubmissionMilter::new(
                    Arc::clone(cfg),
                    Arc::clone(&sub_pool),
                    Arc::clone(&sub_events),
                ),
            ))
        },
        |c| {
            (
                c.submission.max_connections as usize,
                c.submission.idle_timeout.0,
            )
        },
        configs.clone(),
        milters_stopped.clone(),
    ));
    let in_events = Arc::clone(&events);
    let inbound_task = tokio::spawn(serve_milter_generations(
        "inbound",
        inbound_listener,
        move |cfg: &Arc<Config>| {
            Ok(milter::inbound::callbacks(
                milter::inbound::InboundMilter::new(Arc::clone(cfg), Arc::clone(&in_events))?,
            ))
        },
        |c| (c.inbound.max_connections as usize, c.inbound.idle_timeout.0),
        configs.clone(),
        milters_stopped.clone(),
    ));

    let (prune_cfgs, prune_pool) = (configs.clone(), Arc::clone(&pool));
    let pruner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            let c = Arc::clone(&prune_cfgs.borrow());
            let p = Arc::clone(&prune_pool);
            let _ = tokio::task::spawn_blocking(move || prune(&c, &p)).await;
        }
    });
    let trim_pool = Arc::clone(&pool);
    let trimmer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(memory::TRIM_EVERY);
        loop {
            tick.tick().await;
            let p = Arc::clone(&trim_pool);
            let _ = tokio::task::spawn_blocking(move || {
                p.release_memory();
                memory::trim();
            })
            .await;
        }
    });
    info!(
        data_dir = %cfg.data_dir.display(),
        store = %cfg.store_path().display(),
        "postwarden ready"
    );
    if let Err(e) = systemd::notify_ready() {
        warn!(error = %e, "could not notify the service manager");
    }
    let reloader = reload.map(|r| {
        let (cfg, pool, events, live) = (
            Arc::clone(&cfg),
            Arc::clone(&pool),
            Arc::clone(&events),
            Arc::clone(&auth_service),
        );
        tokio::spawn(follow_reloads(r, cfg, pool, events, live, publish))
    });
    shutdown.await;
    let _ = systemd::notify_stopping();
    if let Some(r) = reloader {
        r.abort();
    }
    pruner.abort();
    trimmer.abort();
    // Milter sessions first: their SMTP sessions may still log in (auth keeps serving).
    let _ = stop_milters.send(true);
    let _ = submission_task.await;
    let _ = inbound_task.await;
    let _ = stop_auth.send(true);
    match auth_task.await {
        Ok(handed) => store_handed_off(handed),
        Err(e) => error!(error = %e, "the auth service failed"),
    }
    let _ = tokio::task::spawn_blocking(move || events.flush_blocking()).await;
    info!("postwarden stopped");
    Ok(())
}
