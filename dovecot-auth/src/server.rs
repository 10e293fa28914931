//! One client connection: handshake, then requests processed concurrently.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinError, JoinSet};
use tokio::time::{sleep_until, timeout, timeout_at, Instant};
use tracing::{debug, warn};

use crate::error::sanitize;
use crate::escape::tab_escape;
use crate::line::LineReader;
use crate::mech::{self, Refused, Stage, Step};
use crate::parse::{command_name, parse_line, AuthLine, ClientLine};
use crate::{Attempt, ConnectionIds, Mechanism, ProtocolError, ServerConfig, Verdict, Verifier};

/// Serves one client connection until the client closes it, a protocol error occurs, or the
/// verifier reports a fault.
///
/// Sends the server handshake at once, waits (at most
/// [`handshake_timeout`](ServerConfig::handshake_timeout)) for the client's `VERSION` and `CPID`,
/// then answers `AUTH`/`CONT`/`CANCEL` requests. Requests run concurrently: each verification
/// is a tokio task of its own, and answers are written as they finish, one whole line at a time.
/// Must be called within a tokio runtime with the time driver enabled.
///
/// Returns `Ok(())` when the client closed the connection (after the answers to requests already
/// being verified have been written) or when the idle timeout ended it. Any `Err` has already been
/// logged here, as one `warn` line; the caller may log it again at a lower level. All tasks of the
/// connection are cancelled when this returns.
///
/// One connection never affects another: the caller accepts connections and spawns one task per
/// connection, e.g.
///
/// ```no_run
/// use std::sync::Arc;
/// use dovecot_auth::{serve_connection, Attempt, ConnectionIds, ServerConfig, Verdict, Verifier};
///
/// struct Nobody;
/// impl Verifier for Nobody {
///     async fn verify(&self, _attempt: &Attempt) -> Verdict {
///         Verdict::Fail { reason: None }
///     }
/// }
///
/// # async fn run() -> std::io::Result<()> {
/// let listener = tokio::net::UnixListener::bind("/var/spool/postfix/private/auth")?;
/// let config = Arc::new(ServerConfig::default());
/// let verifier = Arc::new(Nobody);
/// let mut cuid: u32 = 0;
/// loop {
///     let (stream, _) = listener.accept().await?;
///     cuid = cuid.wrapping_add(1);
///     let (config, verifier) = (Arc::clone(&config), Arc::clone(&verifier));
///     tokio::spawn(async move {
///         let _ = serve_connection(stream, verifier, &config, ConnectionIds::for_this_process(cuid)).await;
///     });
/// }
/// # }
/// ```
pub async fn serve_connection<S, V>(
    stream: S,
    verifier: Arc<V>,
    config: &ServerConfig,
    conn: ConnectionIds,
) -> Result<(), ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    V: Verifier,
{
    serve(stream, verifier, config, conn, None, None)
        .await
        .map(|_| ())
}

/// How a connection served by [`serve_until_handoff`] or [`resume_connection`] ended.
#[derive(Debug)]
pub enum Ended<S> {
    /// The client closed it, or the idle timeout did.
    Closed,
    /// Given back after the hand-off signal, between requests: no request open, no request
    /// half read, every answer written. Another process may go on serving `stream` with
    /// [`resume_connection`] (the client sees nothing); dropping it closes the connection.
    HandedOff {
        stream: S,
        /// The client's `CPID`.
        client_pid: u32,
    },
}

/// [`serve_connection`], but when `handoff` turns `true` the connection is given back
/// ([`Ended::HandedOff`]) as soon as it is between requests, instead of being served on.
/// Requests already open (a LOGIN exchange waiting for its `CONT`, a verification) are
/// finished first; the caller bounds how long it waits.
///
/// This is how a server restarts without its clients noticing: Postfix keeps one auth
/// connection per smtpd process and answers `454` to the next login when it finds that
/// connection closed, so the connections are passed to the next server process instead.
pub async fn serve_until_handoff<S, V>(
    stream: S,
    verifier: Arc<V>,
    config: &ServerConfig,
    conn: ConnectionIds,
    handoff: watch::Receiver<bool>,
) -> Result<Ended<S>, ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    V: Verifier,
{
    serve(stream, verifier, config, conn, None, Some(handoff)).await
}

/// Goes on serving a connection another server process handed off ([`Ended::HandedOff`]):
/// the handshake is over (it is not sent again), the client's `CPID` was `client_pid`, and the
/// next byte on `stream` starts a request line.
pub async fn resume_connection<S, V>(
    stream: S,
    verifier: Arc<V>,
    config: &ServerConfig,
    conn: ConnectionIds,
    client_pid: u32,
    handoff: watch::Receiver<bool>,
) -> Result<Ended<S>, ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    V: Verifier,
{
    serve(
        stream,
        verifier,
        config,
        conn,
        Some(client_pid),
        Some(handoff),
    )
    .await
}

async fn serve<S, V>(
    stream: S,
    verifier: Arc<V>,
    config: &ServerConfig,
    conn: ConnectionIds,
    resumed: Option<u32>,
    handoff: Option<watch::Receiver<bool>>,
) -> Result<Ended<S>, ProtocolError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    V: Verifier,
{
    let (reader, writer) = tokio::io::split(stream);
    let mut connection = Connection {
        reader: LineReader::new(reader, config.max_line_length),
        writer,
        verifier,
        config,
        ids: conn,
        client_pid: resumed.unwrap_or(0),
        pending: HashMap::new(),
        tasks: JoinSet::new(),
        dropped: VecDeque::new(),
        next_seq: 0,
        input_closed: false,
        last_activity: Instant::now(),
        handoff,
        handoff_asked: false,
    };
    let result = connection.run(resumed.is_some()).await;
    let client_pid = connection.client_pid;
    match &result {
        Ok(Flow::HandOff) => debug!(
            cuid = conn.connection_uid,
            client_pid, "dovecot-auth connection handed off"
        ),
        Ok(_) => debug!(
            cuid = conn.connection_uid,
            client_pid, "dovecot-auth connection closed"
        ),
        Err(e) => warn!(
            cuid = conn.connection_uid,
            client_pid, "closing dovecot-auth connection: {e}"
        ),
    }
    match result? {
        Flow::HandOff => {
            let Connection { reader, writer, .. } = connection;
            Ok(Ended::HandedOff {
                stream: reader.into_inner().unsplit(writer),
                client_pid,
            })
        }
        _ => Ok(Ended::Closed),
    }
}

/// The request information of an `AUTH` line, kept while the request waits for `CONT`.
struct RequestInfo {
    mechanism: Mechanism,
    service: String,
    local_ip: Option<IpAddr>,
    remote_ip: Option<IpAddr>,
    local_port: Option<u16>,
    remote_port: Option<u16>,
    secured: bool,
}

impl RequestInfo {
    fn from_auth(auth: AuthLine<'_>) -> Self {
        Self {
            mechanism: auth.mechanism,
            service: auth.service,
            local_ip: auth.local_ip,
            remote_ip: auth.remote_ip,
            local_port: auth.local_port,
            remote_port: auth.remote_port,
            secured: auth.secured,
        }
    }

    fn attempt(
        self,
        id: u32,
        client_pid: u32,
        login: String,
        authzid: Option<String>,
        password: String,
    ) -> Attempt {
        Attempt {
            id,
            mechanism: self.mechanism,
            service: self.service,
            local_ip: self.local_ip,
            remote_ip: self.remote_ip,
            local_port: self.local_port,
            remote_port: self.remote_port,
            secured: self.secured,
            login,
            authzid,
            password,
            client_pid,
        }
    }
}

struct Pending {
    /// Unique within the connection, so that a late result of a cancelled request is never taken
    /// for the answer to a new request that reuses its id.
    seq: u64,
    state: PendingState,
}

enum PendingState {
    Waiting {
        deadline: Instant,
        stage: Stage,
        info: RequestInfo,
    },
    Verifying {
        abort: AbortHandle,
    },
}

/// What a verification task hands back.
struct Finished {
    seq: u64,
    id: u32,
    login: String,
    outcome: Outcome,
}

enum Outcome {
    Verdict(Verdict),
    TimedOut,
}

struct Connection<'c, S, V> {
    reader: LineReader<ReadHalf<S>>,
    writer: WriteHalf<S>,
    verifier: Arc<V>,
    config: &'c ServerConfig,
    ids: ConnectionIds,
    client_pid: u32,
    pending: HashMap<u32, Pending>,
    tasks: JoinSet<Finished>,
    /// Ids of requests dropped by the timeout or the cap, most recent last (bounded): a late `CONT`
    /// for one of them gets `FAIL` instead of closing the connection.
    dropped: VecDeque<u32>,
    next_seq: u64,
    /// The client has closed its side: nothing more will be read.
    input_closed: bool,
    last_activity: Instant,
    /// Turns `true` when the connection is to be handed off.
    handoff: Option<watch::Receiver<bool>>,
    handoff_asked: bool,
}

/// What the main loop does after one event.
enum Flow {
    Continue,
    Stop,
    /// Between requests after the hand-off signal: give the stream back.
    HandOff,
}

impl<S, V> Connection<'_, S, V>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    V: Verifier,
{
    fn max_pending(&self) -> usize {
        self.config.max_pending_requests.max(1)
    }

    /// Serves until the connection ends: `Flow::Stop` when it closed, `Flow::HandOff` when
    /// it is to be handed off.
    async fn run(&mut self, resumed: bool) -> Result<Flow, ProtocolError> {
        if !resumed {
            self.send_handshake().await?;
            let deadline = after(Instant::now(), self.config.handshake_timeout);
            match timeout_at(deadline, self.receive_handshake()).await {
                Err(_) => return Err(ProtocolError::HandshakeTimeout),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(false)) => return Ok(Flow::Stop),
                Ok(Ok(true)) => {}
            }
        }
        self.last_activity = Instant::now();

        loop {
            if self.input_closed && self.tasks.is_empty() {
                return Ok(Flow::Stop);
            }
            if !self.handoff_asked {
                self.handoff_asked = self.handoff.as_ref().is_some_and(|h| *h.borrow());
            }
            if self.handoff_asked
                && !self.input_closed
                && self.pending.is_empty()
                && self.tasks.is_empty()
                && !self.reader.has_buffered()
            {
                return Ok(Flow::HandOff);
            }
            let watch_handoff = !self.handoff_asked && self.handoff.is_some();
            let expiry = self.next_expiry();
            let idle = match self.config.idle_timeout {
                Some(limit) if self.pending.is_empty() => Some(after(self.last_activity, limit)),
                _ => None,
            };
            let can_read = !self.input_closed && self.verifying_count() < self.max_pending();
            let now = Instant::now();

            let flow = tokio::select! {
                biased;
                joined = self.tasks.join_next(), if !self.tasks.is_empty() => match joined {
                    Some(joined) => self.finish(joined).await,
                    None => Ok(Flow::Continue),
                },
                line = self.reader.next_line(), if can_read => match line {
                    Ok(Some(line)) => {
                        self.last_activity = Instant::now();
                        self.handle_line(&line).await.map(|()| Flow::Continue)
                    }
                    Ok(None) => {
                        self.close_input();
                        Ok(Flow::Continue)
                    }
                    Err(e) => Err(e),
                },
                () = sleep_until(expiry.unwrap_or(now)), if expiry.is_some() => {
                    self.expire(Instant::now());
                    Ok(Flow::Continue)
                }
                () = sleep_until(idle.unwrap_or(now)), if idle.is_some() => {
                    debug!(cuid = self.ids.connection_uid, "closing idle dovecot-auth connection");
                    Ok(Flow::Stop)
                }
                changed = wait_true(self.handoff.as_mut()), if watch_handoff => {
                    // A dropped sender counts as no hand-off: keep serving.
                    if changed.is_err() {
                        self.handoff = None;
                    }
                    Ok(Flow::Continue)
                }
            };
            match flow {
                Ok(Flow::Continue) => {}
                Ok(end) => return Ok(end),
                Err(ProtocolError::Io(e)) if self.input_closed => {
                    // The client is gone; it cannot read the remaining answers.
                    debug!(cuid = self.ids.connection_uid, "client gone: {e}");
                    return Ok(Flow::Stop);
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn send_handshake(&mut self) -> Result<(), ProtocolError> {
        let mut handshake = String::from("VERSION\t1\t2\n");
        for mechanism in &self.config.mechanisms {
            handshake.push_str(&format!("MECH\t{}\tplaintext\n", mechanism.name()));
        }
        handshake.push_str(&format!(
            "SPID\t{}\nCUID\t{}\nCOOKIE\t{}\nDONE",
            self.ids.server_pid,
            self.ids.connection_uid,
            self.ids.cookie_hex()
        ));
        self.send(handshake).await
    }

    /// `Ok(false)` when the client closed the connection during the handshake.
    async fn receive_handshake(&mut self) -> Result<bool, ProtocolError> {
        let Some(line) = self.reader.next_line().await? else {
            return Ok(false);
        };
        let name = command_name(&line);
        if name != b"VERSION" {
            return Err(ProtocolError::ExpectedVersion {
                got: sanitize(name),
            });
        }
        parse_line(&line)?;

        let Some(line) = self.reader.next_line().await? else {
            return Ok(false);
        };
        let name = command_name(&line);
        if name != b"CPID" {
            return Err(ProtocolError::ExpectedCpid {
                got: sanitize(name),
            });
        }
        match parse_line(&line)? {
            ClientLine::Cpid(pid) => {
                self.client_pid = pid;
                Ok(true)
            }
            _ => Err(ProtocolError::BadCpid),
        }
    }

    async fn handle_line(&mut self, line: &[u8]) -> Result<(), ProtocolError> {
        match parse_line(line)? {
            ClientLine::Version | ClientLine::Cpid(_) => Err(ProtocolError::UnexpectedCommand {
                command: sanitize(command_name(line)),
            }),
            ClientLine::Auth(auth) => self.handle_auth(auth).await,
            ClientLine::Cont { id, data } => self.handle_cont(id, data).await,
            ClientLine::Cancel { id } => {
                self.cancel(id);
                Ok(())
            }
        }
    }

    async fn handle_auth(&mut self, auth: AuthLine<'_>) -> Result<(), ProtocolError> {
        let id = auth.id;
        if !self.config.mechanisms.contains(&auth.mechanism) {
            return Err(ProtocolError::UnknownMechanism {
                mechanism: auth.mechanism.name().to_owned(),
            });
        }
        if self.pending.contains_key(&id) {
            return Err(ProtocolError::DuplicateId { id });
        }
        self.dropped.retain(|&d| d != id);
        // An empty initial response (or "=", SMTP's notation for one) counts as none, as in
        // Dovecot: the mechanism then asks with its first CONT.
        let resp = auth.resp.filter(|r| !r.is_empty() && *r != b"=");
        let (stage, challenge) = mech::initial(auth.mechanism);
        let info = RequestInfo::from_auth(auth);
        let seq = self.next_seq;
        self.next_seq += 1;
        let step = match resp {
            None => Step::Continue { stage, challenge },
            Some(data) => mech::step(stage, data, self.config.max_response_size),
        };
        if !matches!(step, Step::Refuse(_)) && !self.make_room() {
            // Cannot happen (reading stops while every slot is being verified); refuse rather
            // than exceed the bound.
            debug!(id, "no room for a new request");
            return self.send(format!("FAIL\t{id}")).await;
        }
        self.apply(id, seq, info, step).await
    }

    async fn handle_cont(&mut self, id: u32, data: &[u8]) -> Result<(), ProtocolError> {
        match self.pending.get(&id).map(|p| &p.state) {
            Some(PendingState::Waiting { .. }) => {}
            Some(PendingState::Verifying { .. }) => {
                return Err(ProtocolError::UnexpectedContinuation { id })
            }
            None => {
                if let Some(pos) = self.dropped.iter().position(|&d| d == id) {
                    // A request this server dropped (timeout or cap): like Dovecot, answer FAIL
                    // and keep the connection (a slow human typing a LOGIN password).
                    self.dropped.remove(pos);
                    return self.send(format!("FAIL\t{id}")).await;
                }
                return Err(ProtocolError::UnknownId { id });
            }
        }
        let Some(Pending {
            seq,
            state: PendingState::Waiting { stage, info, .. },
        }) = self.pending.remove(&id)
        else {
            return Err(ProtocolError::UnknownId { id });
        };
        let step = mech::step(stage, data, self.config.max_response_size);
        self.apply(id, seq, info, step).await
    }

    /// Carries out one mechanism step for request `id`, which is not in `pending` right now
    /// (and for which there is room).
    async fn apply(
        &mut self,
        id: u32,
        seq: u64,
        info: RequestInfo,
        step: Step,
    ) -> Result<(), ProtocolError> {
        match step {
            Step::Continue { stage, challenge } => {
                let deadline = after(Instant::now(), self.config.request_timeout);
                self.pending.insert(
                    id,
                    Pending {
                        seq,
                        state: PendingState::Waiting {
                            deadline,
                            stage,
                            info,
                        },
                    },
                );
                self.send(format!("CONT\t{id}\t{challenge}")).await
            }
            Step::Verify {
                login,
                authzid,
                password,
            } => {
                let attempt = info.attempt(id, self.client_pid, login, authzid, password);
                let verifier = Arc::clone(&self.verifier);
                let limit = self.config.verify_timeout;
                let abort = self.tasks.spawn(async move {
                    let outcome = match timeout(limit, verifier.verify(&attempt)).await {
                        Ok(verdict) => Outcome::Verdict(verdict),
                        Err(_) => Outcome::TimedOut,
                    };
                    Finished {
                        seq,
                        id,
                        login: attempt.login,
                        outcome,
                    }
                });
                self.pending.insert(
                    id,
                    Pending {
                        seq,
                        state: PendingState::Verifying { abort },
                    },
                );
                Ok(())
            }
            Step::Refuse(Refused {
                why,
                reply_user,
                login,
                authzid,
            }) => {
                let attempt = info.attempt(id, self.client_pid, login, authzid, String::new());
                debug!(cuid = self.ids.connection_uid, id, "refused: {why}");
                self.verifier.refused(&attempt, why);
                self.send(fail_line(id, reply_user.as_deref(), None)).await
            }
        }
    }

    /// Handles a finished verification task.
    async fn finish(&mut self, joined: Result<Finished, JoinError>) -> Result<Flow, ProtocolError> {
        let finished = match joined {
            Ok(finished) => finished,
            Err(e) if e.is_cancelled() => return Ok(Flow::Continue),
            Err(_) => return Err(ProtocolError::VerifierPanicked),
        };
        let id = finished.id;
        match self.pending.get(&id) {
            Some(Pending {
                seq,
                state: PendingState::Verifying { .. },
            }) if *seq == finished.seq => {
                self.pending.remove(&id);
            }
            // Cancelled by the client while the verifier was already done.
            _ => return Ok(Flow::Continue),
        }
        if self.pending.is_empty() {
            self.last_activity = Instant::now();
        }
        let line = match finished.outcome {
            Outcome::TimedOut => return Err(ProtocolError::VerifyTimeout { id }),
            Outcome::Verdict(Verdict::Fault(message)) => {
                return Err(ProtocolError::VerifierFault { id, message })
            }
            Outcome::Verdict(Verdict::Ok { user }) if user.is_empty() => {
                return Err(ProtocolError::VerifierFault {
                    id,
                    message: "verifier accepted with an empty user name".to_owned(),
                })
            }
            Outcome::Verdict(Verdict::Ok { user }) => {
                format!("OK\t{id}\tuser={}", tab_escape(&user))
            }
            Outcome::Verdict(Verdict::Fail { reason }) => {
                let user = (!finished.login.is_empty()).then_some(finished.login.as_str());
                fail_line(id, user, reason.as_deref())
            }
        };
        self.send(line).await.map(|()| Flow::Continue)
    }

    fn cancel(&mut self, id: u32) {
        // Unknown ids are ignored, as in Dovecot.
        if let Some(pending) = self.pending.remove(&id) {
            if let PendingState::Verifying { abort } = pending.state {
                abort.abort();
            }
            debug!(
                cuid = self.ids.connection_uid,
                id, "request cancelled by the client"
            );
        }
    }

    fn verifying_count(&self) -> usize {
        self.pending
            .values()
            .filter(|p| matches!(p.state, PendingState::Verifying { .. }))
            .count()
    }

    /// The earliest deadline of a request waiting for `CONT`.
    fn next_expiry(&self) -> Option<Instant> {
        self.pending
            .values()
            .filter_map(|p| match p.state {
                PendingState::Waiting { deadline, .. } => Some(deadline),
                PendingState::Verifying { .. } => None,
            })
            .min()
    }

    /// Makes room for one more pending request by dropping the request that has waited longest
    /// for a `CONT`. `false` if there is nothing to drop.
    fn make_room(&mut self) -> bool {
        while self.pending.len() >= self.max_pending() {
            let oldest = self
                .pending
                .iter()
                .filter_map(|(&id, p)| match p.state {
                    PendingState::Waiting { deadline, .. } => Some((deadline, p.seq, id)),
                    PendingState::Verifying { .. } => None,
                })
                .min();
            let Some((_, _, id)) = oldest else {
                return false;
            };
            self.pending.remove(&id);
            self.remember_dropped(id);
            debug!(
                cuid = self.ids.connection_uid,
                id, "too many pending requests: dropped the oldest one waiting for CONT"
            );
        }
        true
    }

    /// Drops every request whose wait for `CONT` has expired.
    fn expire(&mut self, now: Instant) {
        let expired: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                matches!(p.state, PendingState::Waiting { deadline, .. } if deadline <= now)
            })
            .map(|(&id, _)| id)
            .collect();
        for id in expired {
            self.pending.remove(&id);
            self.remember_dropped(id);
            debug!(
                cuid = self.ids.connection_uid,
                id, "request timed out waiting for CONT"
            );
        }
    }

    fn remember_dropped(&mut self, id: u32) {
        let cap = self.max_pending().saturating_mul(2);
        while self.dropped.len() >= cap {
            self.dropped.pop_front();
        }
        self.dropped.push_back(id);
    }

    /// The client closed its side: requests waiting for `CONT` can never continue; requests being
    /// verified are still answered (the client may only have shut down its writing side).
    fn close_input(&mut self) {
        self.input_closed = true;
        self.pending
            .retain(|_, p| matches!(p.state, PendingState::Verifying { .. }));
    }

    /// Writes one line (adding the LF) in one piece.
    async fn send(&mut self, mut line: String) -> Result<(), ProtocolError> {
        line.push('\n');
        let write = async {
            self.writer.write_all(line.as_bytes()).await?;
            self.writer.flush().await
        };
        match timeout(self.config.write_timeout, write).await {
            Ok(result) => result.map_err(ProtocolError::Io),
            Err(_) => Err(ProtocolError::WriteTimeout),
        }
    }
}

/// Resolves when the hand-off flag is `true` (`Err` when its sender is gone).
async fn wait_true(
    handoff: Option<&mut watch::Receiver<bool>>,
) -> Result<(), watch::error::RecvError> {
    match handoff {
        Some(h) => h.wait_for(|&v| v).await.map(|_| ()),
        None => std::future::pending().await,
    }
}

/// `start + duration`, or a point decades away when that overflows (a caller may use
/// `Duration::MAX` to mean "never").
fn after(start: Instant, duration: std::time::Duration) -> Instant {
    start
        .checked_add(duration)
        .unwrap_or_else(|| start + std::time::Duration::from_secs(30 * 365 * 24 * 3600))
}

/// `FAIL`, with `user=` when a login name is known and `reason=` when the verifier gave a
/// non-empty one; values tab-escaped.
fn fail_line(id: u32, user: Option<&str>, reason: Option<&str>) -> String {
    let mut line = format!("FAIL\t{id}");
    if let Some(user) = user.filter(|u| !u.is_empty()) {
        line.push_str("\tuser=");
        line.push_str(&tab_escape(user));
    }
    if let Some(reason) = reason.filter(|r| !r.is_empty()) {
        line.push_str("\treason=");
        line.push_str(&tab_escape(reason));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::fail_line;

    #[test]
    fn fail_lines() {
        assert_eq!(fail_line(4, None, None), "FAIL\t4");
        assert_eq!(fail_line(4, Some(""), Some("")), "FAIL\t4");
        assert_eq!(
            fail_line(4, Some("a\tb"), Some("no\nway")),
            "FAIL\t4\tuser=a\u{1}tb\treason=no\u{1}nway"
        );
    }
}
