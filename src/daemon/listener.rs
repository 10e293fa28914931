//! The listening sockets: bound from the config, or taken from the service manager.

use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use indymilter::{EitherListener, EitherStream};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tracing::{debug, info, warn};

use super::limits::{Counted, Gauge, Throttled};
use super::systemd::Activated;
use crate::config::{Config, ListenAddr, SocketMode};

/// A bound listening socket, Unix or TCP. A Unix socket's file is removed when the
/// listener is dropped. With [`counting`](Listener::counting), its connections are
/// counted while open, and reaching the cap is logged.
pub struct Listener {
    inner: EitherListener<TcpListener, UnixListener>,
    path: Option<PathBuf>,
    count: Option<Count>,
    /// While `true`, nothing is accepted: connections wait in the listen queue (for the
    /// next process, when the service manager holds the socket).
    paused: Option<Arc<AtomicBool>>,
}

struct Count {
    name: &'static str,
    gauge: Arc<Gauge>,
    cap: usize,
    warn: Throttled,
}

impl indymilter::Listener for Listener {
    type Io = Counted<EitherStream<TcpStream, UnixStream>>;

    fn poll_accept(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<Self::Io>> {
        if self
            .paused
            .as_ref()
            .is_some_and(|p| p.load(Ordering::Relaxed))
        {
            // Never woken again: a paused listener is only dropped.
            return std::task::Poll::Pending;
        }
        self.inner.poll_accept(cx).map_ok(|stream| {
            let (stream, open) =
                Counted::new(stream, self.count.as_ref().map(|c| Arc::clone(&c.gauge)));
            if let Some(c) = &self.count {
                if open >= c.cap {
                    c.warn.hit(|times| {
                        warn!(
                            listener = c.name,
                            open,
                            times,
                            "connection cap reached: further connections wait until one closes \
                             (raise max_connections, or find what holds them)"
                        )
                    });
                }
            }
            stream
        })
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
                count: None,
                paused: None,
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
                    count: None,
                    paused: None,
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
        Ok(Listener {
            inner,
            path: None,
            count: None,
            paused: None,
        })
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

    /// Counts this listener's open connections in `gauge`; an accept that brings them to
    /// `cap` logs a warning (at most once a minute).
    pub fn counting(mut self, name: &'static str, gauge: Arc<Gauge>, cap: usize) -> Self {
        self.count = Some(Count {
            name,
            gauge,
            cap,
            warn: Throttled::new(Duration::from_secs(60)),
        });
        self
    }

    /// Another listener on the same socket (a duplicate descriptor), counting nothing and
    /// never removing the socket file: for a second accept loop beside this one.
    pub fn share(&self) -> std::io::Result<Listener> {
        use std::os::fd::AsFd;
        Listener::from_activated(match &self.inner {
            EitherListener::Tcp(l) => Activated::Tcp(l.as_fd().try_clone_to_owned()?.into()),
            EitherListener::Unix(l) => Activated::Unix(l.as_fd().try_clone_to_owned()?.into()),
        })
    }

    /// Stops accepting while `paused` is `true` (a pause is for good: see `poll_accept`).
    pub fn pausable(mut self, paused: Arc<AtomicBool>) -> Self {
        self.paused = Some(paused);
        self
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
