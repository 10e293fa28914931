//! The two pieces of the systemd service protocol postwarden uses, written against the
//! documented environment interface (sd_listen_fds(3), sd_notify(3)) rather than linking
//! libsystemd:
//!
//! - socket activation: the service manager (running as root) creates the listening
//!   sockets, e.g. in Postfix's `private/` directory with Postfix's owner and mode, and
//!   keeps them open across restarts of the daemon, so Postfix never finds the socket
//!   missing;
//! - readiness: `READY=1` once every listener serves, so `Before=postfix.service` means
//!   "ready before Postfix";
//! - the file-descriptor store (`FDSTORE=1`, `FileDescriptorStoreMax=` in the unit): on
//!   stop, open auth connections are handed to the service manager, which passes them to
//!   the next process with the listening sockets (all named `auth-conn`: the name list
//!   travels in one environment variable, which execve caps at 128 KiB, so names stay
//!   short and the client's `CPID` is not kept); that process takes them back out of the
//!   store (`FDSTOREREMOVE=1`) so that closing one later really closes it.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::os::unix::net::UnixDatagram;

/// The first file descriptor passed by the service manager.
const SD_LISTEN_FDS_START: RawFd = 3;

/// A listening socket handed over by the service manager.
#[derive(Debug)]
pub enum Activated {
    Unix(std::os::unix::net::UnixListener),
    Tcp(std::net::TcpListener),
}

/// An open auth connection a previous process handed over through the store.
#[derive(Debug)]
pub enum PassedConnection {
    Unix {
        stream: std::os::unix::net::UnixStream,
        client_pid: u32,
    },
    Tcp {
        stream: std::net::TcpStream,
        client_pid: u32,
    },
}

/// What the service manager passed at start.
#[derive(Debug, Default)]
pub struct Passed {
    /// Listening sockets, by name (`FileDescriptorName=` in the socket unit).
    pub listeners: HashMap<String, Activated>,
    /// Auth connections from the store.
    pub auth_connections: Vec<PassedConnection>,
}

/// The name auth connections are stored under.
pub const AUTH_CONNECTION: &str = "auth-conn";

/// Most descriptors taken from `LISTEN_FDS` (the unit's `FileDescriptorStoreMax=` plus the
/// three sockets fits well below it).
const MAX_PASSED: i32 = 1 << 20;

/// Takes the descriptors passed with `LISTEN_PID`/`LISTEN_FDS`/`LISTEN_FDNAMES` and removes
/// those variables so no child inherits them. Empty when the process was not
/// socket-activated. Auth connections from the store are also removed from the store (see
/// the module documentation).
pub fn take_listeners() -> Passed {
    let mut out = Passed::default();
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
    let mut stored = false;
    for i in 0..count.clamp(0, MAX_PASSED) {
        let fd = SD_LISTEN_FDS_START + i;
        let name = names
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| format!("fd{fd}"));
        if name == AUTH_CONNECTION {
            // Not kept across the store (see the module documentation); unused beyond logs.
            let client_pid = 0;
            // SAFETY: as below; a connected stream socket this daemon stored itself.
            let tcp = unsafe { std::net::TcpStream::from_raw_fd(fd) };
            out.auth_connections.push(match tcp.local_addr() {
                Ok(_) => PassedConnection::Tcp {
                    stream: tcp,
                    client_pid,
                },
                Err(_) => PassedConnection::Unix {
                    // SAFETY: the same descriptor, re-wrapped as the Unix socket it is.
                    stream: unsafe {
                        std::os::unix::net::UnixStream::from_raw_fd(tcp.into_raw_fd())
                    },
                    client_pid,
                },
            });
            stored = true;
            continue;
        }
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
        out.listeners.insert(name, activated);
    }
    if stored {
        // This process holds them now: the manager's copies would keep a connection open
        // after this process closes it.
        let _ = notify(&format!("FDSTOREREMOVE=1\nFDNAME={AUTH_CONNECTION}\n"));
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

pub fn notify(state: &str) -> std::io::Result<()> {
    match Notifier::connect() {
        Ok(n) => n.send(state, None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Whether a service manager listens for notifications (and so may keep descriptors).
pub fn manager_present() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// A socket connected to the service manager's `NOTIFY_SOCKET`.
pub struct Notifier(UnixDatagram);

impl Notifier {
    /// `NotFound` when the process was not started by a service manager that asked for
    /// notifications.
    pub fn connect() -> std::io::Result<Notifier> {
        use std::os::unix::net::SocketAddr;
        let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "NOTIFY_SOCKET is not set",
            ));
        };
        let path = path.to_string_lossy().into_owned();
        let addr = if let Some(abstract_name) = path.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name.as_bytes())?
        } else {
            SocketAddr::from_pathname(&path)?
        };
        let sock = UnixDatagram::unbound()?;
        sock.connect_addr(&addr)?;
        Ok(Notifier(sock))
    }

    /// Sends `state`, with the descriptor `fd` attached when given.
    pub fn send(&self, state: &str, fd: Option<RawFd>) -> std::io::Result<()> {
        let Some(fd) = fd else {
            self.0.send(state.as_bytes())?;
            return Ok(());
        };
        let mut iov = libc::iovec {
            iov_base: state.as_ptr() as *mut libc::c_void,
            iov_len: state.len(),
        };
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        let mut control = vec![0u8; space];
        // SAFETY: msghdr is plain data; every pointer set below outlives the sendmsg call,
        // and the control buffer has room for one header carrying one descriptor.
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = space as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as _;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, fd);
            if libc::sendmsg(self.0.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// Hands the auth connection `fd` to the store.
    pub fn store_auth_connection(&self, fd: RawFd) -> std::io::Result<()> {
        self.send(&format!("FDSTORE=1\nFDNAME={AUTH_CONNECTION}\n"), Some(fd))
    }
}
