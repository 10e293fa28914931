//! Connection limits: how many connections each listener keeps open, the open-file limit
//! behind them, and warnings that say when a limit is reached without flooding the log.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tracing::warn;

/// File descriptors kept free for the store, DNS and the service manager's sockets.
pub const RESERVED_FDS: u64 = 256;

/// Raises the soft open-file limit to the hard limit; returns the soft limit in force.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Err(io::Error::last_os_error());
            }
            lim.rlim_cur = lim.rlim_max;
        }
    }
    Ok(lim.rlim_cur)
}

/// A warning logged at most once per `every`, with how many times it happened since.
pub struct Throttled {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttled {
    pub const fn new(every: Duration) -> Self {
        Throttled {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// Calls `log(n)` (n: occurrences since the last log line, this one included) unless
    /// a line was logged less than `every` ago.
    pub fn hit(&self, log: impl FnOnce(u64)) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 += 1;
        if s.0.is_none_or(|t| t.elapsed() >= self.every) {
            let n = s.1;
            *s = (Some(Instant::now()), 0);
            drop(s);
            log(n);
        }
    }
}

/// How many connections of one listener are open.
#[derive(Debug, Default)]
pub struct Gauge(AtomicUsize);

impl Gauge {
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// A connection counted in its listener's [`Gauge`] while it is open.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    gauge: Option<Arc<Gauge>>,
}

impl<S> Counted<S> {
    /// Counts `inner` in `gauge` (if any) until it is dropped; returns the count with it.
    pub fn new(inner: S, gauge: Option<Arc<Gauge>>) -> (Self, usize) {
        let n = gauge
            .as_ref()
            .map_or(0, |g| g.0.fetch_add(1, Ordering::Relaxed) + 1);
        (Counted { inner, gauge }, n)
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S> Drop for Counted<S> {
    fn drop(&mut self) {
        if let Some(g) = &self.gauge {
            g.0.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Warns when the configured caps, plus a reserve, exceed the open-file limit.
pub fn check_caps(soft_limit: u64, caps: &[(&str, u32)]) {
    let total: u64 = caps.iter().map(|(_, c)| *c as u64).sum::<u64>() + RESERVED_FDS;
    if total > soft_limit {
        warn!(
            open_file_limit = soft_limit,
            needed = total,
            caps = %caps.iter().map(|(k, c)| format!("{k}={c}")).collect::<Vec<_>>().join(" "),
            "the connection caps exceed the open-file limit: lower them or raise LimitNOFILE"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauge_counts_open_connections() {
        let g = Arc::new(Gauge::default());
        let (a, n) = Counted::new((), Some(Arc::clone(&g)));
        assert_eq!(n, 1);
        let (b, n) = Counted::new((), Some(Arc::clone(&g)));
        assert_eq!(n, 2);
        drop(a);
        assert_eq!(g.open(), 1);
        drop(b);
        assert_eq!(g.open(), 0);
    }

    #[test]
    fn throttled_warning_counts_what_it_did_not_log() {
        let t = Throttled::new(Duration::from_secs(3600));
        let mut logged = Vec::new();
        for _ in 0..5 {
            t.hit(|n| logged.push(n));
        }
        assert_eq!(logged, [1], "once within the period");
        let t = Throttled::new(Duration::ZERO);
        let mut logged = Vec::new();
        for _ in 0..3 {
            t.hit(|n| logged.push(n));
        }
        assert_eq!(logged, [1, 1, 1]);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let soft = raise_nofile_limit().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: reads the limits into the struct.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(soft, lim.rlim_cur);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
