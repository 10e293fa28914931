//! The two pieces of the systemd service protocol postwarden uses, written against the
//! documented environment interface (sd_listen_fds(3), sd_notify(3)) rather than linking
//! libsystemd:
//!
//! - socket activation: the service manager (running as root) creates the listening
//!   sockets, e.g. in Postfix's `private/` directory with Postfix's owner and mode, and
//!   keeps them open across restarts of the daemon, so Postfix never finds the socket
//!   missing;
//! - readiness: `READY=1` once every listener serves, so `Before=postfix.service` means
//!   "ready before Postfix".

use std::collections::HashMap;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};

/// The first file descriptor passed by the service manager.
const SD_LISTEN_FDS_START: RawFd = 3;

/// A listening socket handed over by the service manager.
#[derive(Debug)]
pub enum Activated {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

/// Takes the sockets passed with `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES`, keyed by
/// name (`FileDescriptorName=` in the socket unit), and removes those variables so no
/// child inherits them. Empty when the process was not socket-activated.
pub fn take_listeners() -> HashMap<String, Activated> {
    let mut out = HashMap::new();
    let pid_matches = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    // Called once by main before the runtime's threads exist.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    if !pid_matches {
        return out;
    }
    for i in 0..count.clamp(0, 64) {
        let fd = SD_LISTEN_FDS_START + i;
        let name = names
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| format!("fd{fd}"));
        // SAFETY: the service manager passes these descriptors to this process (LISTEN_PID
        // matched) as open listening sockets; each is wrapped exactly once and owned from here on.
        let tcp = unsafe { std::net::TcpListener::from_raw_fd(fd) };
        let activated = match tcp.local_addr() {
            Ok(_) => Activated::Tcp(tcp),
            Err(_) => {
                let fd = tcp.into_raw_fd();
                // SAFETY: the same descriptor, re-wrapped as the Unix socket it is.
                Activated::Unix(unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) })
            }
        };
        out.insert(name, activated);
    }
    out
}

/// Tells the service manager the daemon is ready (`READY=1`), if it asked (`NOTIFY_SOCKET`).
pub fn notify_ready() -> std::io::Result<()> {
    notify("READY=1\n")
}

/// Tells the service manager the daemon is stopping.
pub fn notify_stopping() -> std::io::Result<()> {
    notify("STOPPING=1\n")
}

fn notify(state: &str) -> std::io::Result<()> {
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let path = path.to_string_lossy().into_owned();
    let addr = if let Some(abstract_name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        SocketAddr::from_abstract_name(abstract_name.as_bytes())?
    } else {
        SocketAddr::from_pathname(&path)?
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}
