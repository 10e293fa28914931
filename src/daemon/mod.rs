//! The daemon: `run(config, shutdown)` opens the store, binds the listeners, spawns the
//! services and returns when `shutdown` resolves.

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indymilter::{EitherListener, EitherStream};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tracing::{debug, info, warn};

pub mod systemd;

use crate::config::{Config, ListenAddr, SocketMode};
use crate::events::EventSink;
use crate::login::AuthService;
use crate::milter;
use crate::model::now;
use crate::store::{self, Pool};
use systemd::Activated;

/// How often old events are removed.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Removes events older than the configured retention ("0s" keeps them).
fn prune(cfg: &Config, pool: &Arc<Pool>) {
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

/// A bound listening socket, Unix or TCP. A Unix socket's file is removed when the
/// listener is dropped.
pub struct Listener {
    inner: EitherListener<TcpListener, UnixListener>,
    path: Option<PathBuf>,
}

impl indymilter::Listener for Listener {
    type Io = EitherStream<TcpStream, UnixStream>;

    fn poll_accept(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<Self::Io>> {
        self.inner.poll_accept(cx)
    }
}

/// Binds a Unix socket at `path`, replacing a stale socket file but never a live one or
/// anything that is not a socket.
fn bind_unix(path: &Path, mode: SocketMode, group: &str) -> anyhow::Result<UnixListener> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            );
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("{} is in use by another running process", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("removing stale socket {}", path.display()))?;
        debug!(path = %path.display(), "stale socket replaced");
    }
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            bail!(
                "directory {} for socket {} does not exist",
                parent.display(),
                path.display()
            );
        }
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    if !group.is_empty() {
        let gid =
            crate::config::group_id(group).with_context(|| format!("no group named {group:?}"))?;
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("setting group {group} on {}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode.0))
        .with_context(|| format!("setting mode {:04o} on {}", mode.0, path.display()))?;
    Ok(listener)
}

impl Listener {
    pub async fn bind(
        addr: &ListenAddr,
        mode: SocketMode,
        group: &str,
    ) -> anyhow::Result<Listener> {
        match addr {
            ListenAddr::Unix(path) => Ok(Listener {
                inner: EitherListener::Unix(bind_unix(path, mode, group)?),
                path: Some(path.clone()),
            }),
            ListenAddr::Inet(sa) => {
                let l = TcpListener::bind(sa)
                    .await
                    .with_context(|| format!("binding {sa}"))?;
                if !sa.ip().is_loopback() {
                    warn!(address = %sa, "listening on a non-loopback address: restrict access to it");
                }
                Ok(Listener {
                    inner: EitherListener::Tcp(l),
                    path: None,
                })
            }
        }
    }

    /// A socket handed over by the service manager; its file (if any) is the manager's.
    pub fn from_activated(a: Activated) -> std::io::Result<Listener> {
        let inner = match a {
            Activated::Tcp(l) => {
                l.set_nonblocking(true)?;
                EitherListener::Tcp(TcpListener::from_std(l)?)
            }
            Activated::Unix(l) => {
                l.set_nonblocking(true)?;
                EitherListener::Unix(UnixListener::from_std(l)?)
            }
        };
        Ok(Listener { inner, path: None })
    }

    /// The listener named `name`: the service manager's socket when it passed one under
    /// that name, otherwise the configured address, bound here.
    pub async fn open(
        name: &str,
        activated: &mut HashMap<String, Activated>,
        cfg: &Config,
        addr: &ListenAddr,
    ) -> anyhow::Result<Listener> {
        if let Some(a) = activated.remove(name) {
            let l = Listener::from_activated(a)
                .with_context(|| format!("{name} socket from the service manager"))?;
            info!(
                listener = name,
                "using the socket passed by the service manager"
            );
            return Ok(l);
        }
        Listener::bind(&cfg.resolve(addr), cfg.sockets.mode, &cfg.sockets.group)
            .await
            .with_context(|| format!("{name} listener"))
    }

    /// The bound address, as a ListenAddr (with the real port for `inet:...:0`).
    pub fn local_addr(&self) -> ListenAddr {
        match (&self.inner, &self.path) {
            (EitherListener::Tcp(l), _) => ListenAddr::Inet(l.local_addr().expect("bound socket")),
            (_, Some(p)) => ListenAddr::Unix(p.clone()),
            (EitherListener::Unix(l), None) => ListenAddr::Unix(
                l.local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                    .unwrap_or_default(),
            ),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Serves the Dovecot auth protocol on `listener` with `service` deciding logins.
pub async fn serve_auth(mut listener: Listener, service: Arc<AuthService>) {
    use indymilter::Listener as _;
    let config = Arc::new(dovecot_auth::ServerConfig::default());
    let counter = AtomicU32::new(0);
    loop {
        match listener.accept().await {
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
                // Out of file descriptors and the like: log, pause briefly, keep serving.
                warn!(error = %e, "accept failed");
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

/// Runs the daemon until `shutdown` resolves.
///
/// `activated` holds the sockets a service manager passed (see `systemd`); a listener
/// without one binds its configured address.
pub async fn run(
    cfg: Config,
    mut activated: HashMap<String, Activated>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Create and migrate the store once; the pool opens it without creating it.
    store::prepare(&cfg)?;
    let cfg = Arc::new(cfg);
    let pool = Pool::new(&cfg);

    let events = EventSink::new(Arc::clone(&pool));
    let auth_service = Arc::new(AuthService::new(
        Arc::clone(&cfg),
        Arc::clone(&pool),
        Arc::clone(&events),
    )?);
    let auth_listener = Listener::open("auth", &mut activated, &cfg, &cfg.auth.listen).await?;
    info!(listen = %auth_listener.local_addr(), "auth socket listening");
    let auth_task = tokio::spawn(serve_auth(auth_listener, auth_service));

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
    let submission_task = tokio::spawn(milter::serve(
        submission_listener,
        milter::submission::callbacks(milter::submission::SubmissionMilter::new(
            Arc::clone(&cfg),
            Arc::clone(&pool),
            Arc::clone(&events),
        )),
        milters_stopped.clone(),
    ));

    let inbound_task = tokio::spawn(milter::serve(
        inbound_listener,
        milter::inbound::callbacks(milter::inbound::InboundMilter::new(
            Arc::clone(&cfg),
            Arc::clone(&events),
        )?),
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
    auth_task.abort();
    let _ = auth_task.await;
    let _ = stop_milters.send(true);
    let _ = submission_task.await;
    let _ = inbound_task.await;
    let _ = tokio::task::spawn_blocking(move || events.flush_blocking()).await;
    info!("postwarden stopped");
    Ok(())
}
