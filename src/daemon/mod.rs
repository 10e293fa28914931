//! The daemon: `run(config, shutdown)` opens the store, binds the listeners, spawns the
//! services and returns when `shutdown` resolves.

pub mod limits;
mod listener;
pub mod memory;
pub mod systemd;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, error, info, warn};

pub use listener::Listener;

use crate::config::Config;
use crate::events::EventSink;
use crate::login::AuthService;
use crate::milter;
use crate::model::now;
use crate::store::{self, Pool};
use systemd::Activated;

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

/// Serves the Dovecot auth protocol on `listener` with `service` deciding logins: at
/// most `cap` connections at once (a connection past it is closed at once, and the log
/// says so), each closed after `idle` without a request.
pub async fn serve_auth(listener: Listener, service: Arc<AuthService>, cap: usize, idle: Duration) {
    use indymilter::Listener as _;
    let gauge = Arc::new(limits::Gauge::default());
    let mut listener = listener.counting("auth", Arc::clone(&gauge), usize::MAX);
    let config = Arc::new(dovecot_auth::ServerConfig {
        idle_timeout: Some(idle),
        ..Default::default()
    });
    let counter = AtomicU32::new(0);
    let over_cap = limits::Throttled::new(Duration::from_secs(60));
    let accept_failed = limits::Throttled::new(Duration::from_secs(10));
    loop {
        match listener.accept().await {
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
            Ok(stream) => {
                let cuid = counter.fetch_add(1, Ordering::Relaxed) + 1;
                let ids = dovecot_auth::ConnectionIds::for_this_process(cuid);
                let (service, config) = (Arc::clone(&service), Arc::clone(&config));
                tokio::spawn(async move {
                    finish_auth_connection(
                        cuid,
                        dovecot_auth::serve_connection(stream, service, &config, ids).await,
                    )
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: log (not every time), pause
                // briefly, keep serving.
                accept_failed.hit(|times| warn!(error = %e, times, "auth accept failed"));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The crate has already logged an error as one warning; this only traces the close.
fn finish_auth_connection(cuid: u32, result: Result<(), dovecot_auth::ProtocolError>) {
    match result {
        Ok(()) => debug!(cuid, "auth connection closed"),
        Err(e) => debug!(cuid, error = %e, "auth connection closed after an error"),
    }
}

/// Runs a milter on `listener` until `stop` turns true; in-flight sessions are told to end.
/// At most `cap` connections are served at once (further ones wait in the listen queue;
/// reaching the cap is logged); a connection silent for `idle` is closed.
pub async fn serve_milter<T: Send + 'static>(
    name: &'static str,
    listener: Listener,
    callbacks: indymilter::Callbacks<T>,
    cap: usize,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let listener = listener.counting(name, Arc::new(limits::Gauge::default()), cap);
    let config = indymilter::Config {
        max_connections: cap,
        connection_timeout: idle,
        ..Default::default()
    };
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = indymilter::run(listener, callbacks, config, shutdown).await {
        error!(error = %e, "milter stopped");
    }
}

/// Runs the daemon until `shutdown` resolves.
///
/// `activated` holds the sockets a service manager passed (see `systemd`); a listener
/// without one binds its configured address.
pub async fn run(
    cfg: Config,
    mut activated: HashMap<String, Activated>,
    shutdown: impl Future<Output = ()>,
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
    let auth_service = Arc::new(AuthService::new(
        Arc::clone(&cfg),
        Arc::clone(&pool),
        Arc::clone(&events),
    )?);
    let auth_listener = Listener::open("auth", &mut activated, &cfg, &cfg.auth.listen).await?;
    info!(listen = %auth_listener.local_addr(), "auth socket listening");
    let auth_task = tokio::spawn(serve_auth(
        auth_listener,
        auth_service,
        cfg.auth.max_connections as usize,
        cfg.auth.idle_timeout.0,
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
    let submission_task = tokio::spawn(serve_milter(
        "submission",
        submission_listener,
        milter::submission::callbacks(milter::submission::SubmissionMilter::new(
            Arc::clone(&cfg),
            Arc::clone(&pool),
            Arc::clone(&events),
        )),
        cfg.submission.max_connections as usize,
        cfg.submission.idle_timeout.0,
        milters_stopped.clone(),
    ));

    let inbound_task = tokio::spawn(serve_milter(
        "inbound",
        inbound_listener,
        milter::inbound::callbacks(milter::inbound::InboundMilter::new(
            Arc::clone(&cfg),
            Arc::clone(&events),
        )?),
        cfg.inbound.max_connections as usize,
        cfg.inbound.idle_timeout.0,
        milters_stopped.clone(),
    ));

    let (prune_cfg, prune_pool) = (Arc::clone(&cfg), Arc::clone(&pool));
    let pruner = tokio::spawn(async move {
        let mut tick = tokio::time::interval(PRUNE_EVERY);
        loop {
            tick.tick().await;
            let (c, p) = (Arc::clone(&prune_cfg), Arc::clone(&prune_pool));
            let _ = tokio::task::spawn_blocking(move || prune(&c, &p)).await;
        }
    });
    let trimmer = tokio::spawn(async {
        let mut tick = tokio::time::interval(memory::TRIM_EVERY);
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(memory::trim).await;
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
    shutdown.await;
    let _ = systemd::notify_stopping();
    pruner.abort();
    trimmer.abort();
    auth_task.abort();
    let _ = auth_task.await;
    let _ = stop_milters.send(true);
    let _ = submission_task.await;
    let _ = inbound_task.await;
    let _ = tokio::task::spawn_blocking(move || events.flush_blocking()).await;
    info!("postwarden stopped");
    Ok(())
}
