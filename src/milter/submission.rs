//! The submission milter: the login (`{auth_authen}`) must own the envelope sender (judged
//! at MAIL) and every header From address (judged at end of headers). Session state and
//! indymilter callbacks only; the decision is `policy`, the facts come from the store.

use std::ffi::CString;
use std::sync::Arc;

use indymilter::{
    Callbacks, Context, ContextActions, EomContext, MacroStage, NegotiateContext, SocketInfo,
    Status,
};
use tracing::{info, warn};

use crate::address::{header_addresses, normalize_address};
use crate::config::Config;
use crate::dkim;
use crate::events::EventSink;
use crate::policy::{self, Decision, Facts, Rejection};
use crate::store::{Event, EventKind, Store, StoreError};

use super::{macro_value, reply, MessageBuffer};

/// Per-connection state (one SMTP session; several messages).
#[derive(Debug, Default)]
pub struct Session {
    client_ip: Option<String>,
    message: Message,
}

/// Per-message state, reset at MAIL and on abort.
#[derive(Debug, Default)]
struct Message {
    login: Option<String>,
    organization: Option<String>,
    /// The MAIL FROM address; `None` for the null sender.
    envelope: Option<String>,
    queue_id: Option<String>,
    rcpts: i64,
    /// The addresses of each From header field, in order.
    from_fields: Vec<Vec<String>>,
    /// The accepting decision reached at end of headers, recorded at end of message.
    accepted: Option<Decision>,
    /// Header fields and body, for DKIM signing.
    buffer: MessageBuffer,
}

pub struct SubmissionMilter {
    cfg: Arc<Config>,
    events: Arc<EventSink>,
}

/// What the store said for one decision.
enum Outcome {
    Decided(Box<Facts>, Decision),
    UnknownLogin,
    RevokedLogin,
}

impl SubmissionMilter {
    pub fn new(cfg: Arc<Config>, events: Arc<EventSink>) -> Arc<Self> {
        Arc::new(SubmissionMilter { cfg, events })
    }

    /// Loads the facts for `login` and the addresses, and runs `decide` on them (blocking pool).
    async fn judge(
        &self,
        login: String,
        addresses: Vec<String>,
        decide: impl FnOnce(&Facts) -> Decision + Send + 'static,
    ) -> Result<Outcome, StoreError> {
        let cfg = Arc::clone(&self.cfg);
        tokio::task::spawn_blocking(move || {
            let store = Store::open_configured(&cfg)?;
            // Facts are looked up by normalised address; invalid ones are refused by the policy.
            let normalized: Vec<String> = addresses
                .iter()
                .filter_map(|a| normalize_address(a).ok().map(|a| a.to_string()))
                .collect();
            Ok(match store.sender_facts(&login, &normalized)? {
                None => Outcome::UnknownLogin,
                Some((_, true)) => Outcome::RevokedLogin,
                Some((facts, false)) => {
                    let d = decide(&facts);
                    Outcome::Decided(Box::new(facts), d)
                }
            })
        })
        .await
        .map_err(|e| StoreError::Fault(format!("decision task failed: {e}")))?
    }

    /// Appends the `mail` event (and the discovered senders) on the blocking pool.
    async fn record(
        &self,
        session: &Session,
        outcome: &str,
        reason: String,
        discovered: Vec<String>,
    ) {
        let m = &session.message;
        let mut ev = Event::new(EventKind::Mail, outcome);
        ev.login = m.login.clone();
        ev.org = m.organization.clone();
        ev.client_ip = session.client_ip.clone();
        ev.sender = Some(m.envelope.clone().unwrap_or_else(|| "<>".into()));
        let from: Vec<String> = m.from_fields.iter().flatten().cloned().collect();
        ev.header_from = (!from.is_empty()).then(|| from.join(", "));
        ev.rcpt_count = Some(m.rcpts);
        ev.queue_id = m.queue_id.clone();
        ev.reason = Some(reason);
        self.events.write(ev).await;
        if let (Some(org), false) = (m.organization.clone(), discovered.is_empty()) {
            let cfg = Arc::clone(&self.cfg);
            let result = tokio::task::spawn_blocking(move || {
                Store::open_configured(&cfg)
                    .and_then(|mut s| s.record_discovered(&org, &discovered))
            })
            .await;
            if !matches!(result, Ok(Ok(()))) {
                warn!("discovered senders not recorded");
            }
        }
    }

    async fn refuse(&self, cx: &mut Context<Session>, r: &Rejection) -> Status {
        let session = cx.data.get_or_insert_with(Session::default);
        info!(
            login = session.message.login.as_deref().unwrap_or(""),
            queue_id = session.message.queue_id.as_deref().unwrap_or(""),
            reply = %r,
            "message refused"
        );
        self.record(
            session,
            "reject",
            format!("{}: {}", r.rule.name(), r.text),
            vec![],
        )
        .await;
        reply(&mut cx.reply, r.code, r.xcode, &r.text)
    }

    async fn tempfail(&self, cx: &mut Context<Session>, e: &StoreError) -> Status {
        let session = cx.data.get_or_insert_with(Session::default);
        warn!(error = %e, login = session.message.login.as_deref().unwrap_or(""), "store fault: temporary failure");
        self.record(session, "tempfail", "fault".into(), vec![])
            .await;
        reply(
            &mut cx.reply,
            "451",
            "4.3.0",
            "Temporary failure checking the sender; try again later",
        )
    }

    async fn login_refused(&self, cx: &mut Context<Session>, why: &str) -> Status {
        let session = cx.data.get_or_insert_with(Session::default);
        self.record(session, "reject", why.into(), vec![]).await;
        reply(&mut cx.reply, "530", "5.7.0", "Authentication required")
    }

    async fn on_mail(&self, cx: &mut Context<Session>, args: Vec<CString>) -> Status {
        let login = macro_value(&cx.macros, "{auth_authen}");
        let queue_id = macro_value(&cx.macros, "i");
        let session = cx.data.get_or_insert_with(Session::default);
        let envelope = args
            .first()
            .map(|a| a.to_string_lossy().into_owned())
            .and_then(|a| policy::envelope_address(&a).map(str::to_string));
        session.message = Message {
            login: login.clone(),
            envelope: envelope.clone(),
            queue_id,
            ..Message::default()
        };
        let Some(login) = login else {
            return self.login_refused(cx, "no_auth").await;
        };
        let addresses = envelope.iter().cloned().collect();
        let env = envelope.clone();
        match self
            .judge(login, addresses, move |f| {
                policy::judge_envelope(f, env.as_deref())
            })
            .await
        {
            Err(e) => self.tempfail(cx, &e).await,
            Ok(Outcome::UnknownLogin) => self.login_refused(cx, "unknown_login").await,
            Ok(Outcome::RevokedLogin) => self.login_refused(cx, "revoked_login").await,
            Ok(Outcome::Decided(facts, decision)) => {
                cx.data
                    .get_or_insert_with(Session::default)
                    .message
                    .organization = Some(facts.organization.clone());
                match decision {
                    Decision::Reject(r) => self.refuse(cx, &r).await,
                    _ => Status::Continue,
                }
            }
        }
    }

    async fn on_eoh(&self, cx: &mut Context<Session>) -> Status {
        let queue_id = macro_value(&cx.macros, "i");
        let session = cx.data.get_or_insert_with(Session::default);
        if queue_id.is_some() {
            session.message.queue_id = queue_id;
        }
        let m = &session.message;
        let Some(login) = m.login.clone() else {
            return self.login_refused(cx, "no_auth").await;
        };
        let envelope = m.envelope.clone();
        let fields = m.from_fields.clone();
        let addresses = envelope
            .iter()
            .chain(fields.iter().flatten())
            .cloned()
            .collect();
        match self
            .judge(login, addresses, move |f| {
                policy::judge_message(f, envelope.as_deref(), &fields)
            })
            .await
        {
            Err(e) => self.tempfail(cx, &e).await,
            Ok(Outcome::UnknownLogin) => self.login_refused(cx, "unknown_login").await,
            Ok(Outcome::RevokedLogin) => self.login_refused(cx, "revoked_login").await,
            Ok(Outcome::Decided(_, Decision::Reject(r))) => self.refuse(cx, &r).await,
            Ok(Outcome::Decided(_, accepted)) => {
                cx.data
                    .get_or_insert_with(Session::default)
                    .message
                    .accepted = Some(accepted);
                Status::Continue
            }
        }
    }

    /// Signs with the active keys of the (first) header From domain; returns the note for
    /// the event. No active key: unsigned, and the note says so.
    async fn sign(&self, cx: &mut EomContext<Session>) -> Result<String, String> {
        let session = cx.data.get_or_insert_with(Session::default);
        let m = &session.message;
        let Some(domain) = m
            .from_fields
            .iter()
            .flatten()
            .find_map(|a| normalize_address(a).ok())
            .map(|a| a.domain)
        else {
            return Ok("dkim: unsigned (no From domain)".into());
        };
        if m.buffer.truncated {
            return Err(format!(
                "message larger than max_message_mib; not signed for {domain}"
            ));
        }
        let cfg = Arc::clone(&self.cfg);
        let d = domain.clone();
        let keys = tokio::task::spawn_blocking(move || {
            Store::open_configured(&cfg).and_then(|s| s.dkim_signing_keys(&d))
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        if keys.is_empty() {
            return Ok(format!("dkim: unsigned (no active key for {domain})"));
        }
        let signing: Vec<dkim::SigningKey> = keys
            .iter()
            .map(|k| {
                Ok(dkim::SigningKey {
                    domain: k.domain.clone(),
                    selector: k.selector.clone(),
                    algorithm: k
                        .algorithm
                        .parse()
                        .map_err(|e: dkim::DkimError| e.to_string())?,
                    private_pkcs8_der: k.private_key.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        let raw = m.buffer.raw();
        let headers = tokio::task::spawn_blocking(move || dkim::sign(&raw, &signing))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        // Inserted at the top, last first, so they appear in key order.
        for h in headers.iter().rev() {
            if let Some((name, value)) = dkim::milter_header(h) {
                cx.actions
                    .insert_header(0, name, value)
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let selectors: Vec<&str> = keys.iter().map(|k| k.selector.as_str()).collect();
        Ok(format!("dkim: signed d={domain} s={}", selectors.join(",")))
    }

    async fn on_eom(&self, cx: &mut EomContext<Session>) -> Status {
        if let Some(qid) = macro_value(&cx.macros, "i") {
            cx.data
                .get_or_insert_with(Session::default)
                .message
                .queue_id = Some(qid);
        }
        let session = cx.data.get_or_insert_with(Session::default);
        let (outcome, discovered, reason) = match session.message.accepted.take() {
            Some(Decision::AcceptDiscovered { discovered, .. }) => {
                let reason = format!("discovered: {}", discovered.join(", "));
                ("discovered", discovered, reason)
            }
            Some(d @ Decision::Accept { .. }) => {
                let rules: Vec<&str> = d.rules().iter().map(|r| r.name()).collect();
                ("accept", vec![], rules.join(", "))
            }
            // Never judged (no end-of-headers stage reached us): refuse rather than pass unchecked.
            _ => {
                warn!("end of message without a header decision: temporary failure");
                return reply(
                    &mut cx.reply,
                    "451",
                    "4.3.0",
                    "Temporary failure checking the sender; try again later",
                );
            }
        };
        let signed = match self.sign(cx).await {
            Ok(note) => note,
            Err(e) => {
                warn!(error = %e, "DKIM signing failed: temporary failure");
                let session = cx.data.get_or_insert_with(Session::default);
                self.record(session, "tempfail", format!("dkim: {e}"), vec![])
                    .await;
                return reply(
                    &mut cx.reply,
                    "451",
                    "4.3.0",
                    "Temporary failure signing the message; try again later",
                );
            }
        };
        let reason = format!("{reason}; {signed}");
        let session = cx.data.get_or_insert_with(Session::default);
        info!(
            login = session.message.login.as_deref().unwrap_or(""),
            queue_id = session.message.queue_id.as_deref().unwrap_or(""),
            outcome,
            "message accepted"
        );
        self.record(session, outcome, reason, discovered).await;
        Status::Continue
    }
}

/// Most From header fields kept per message (more are counted, not stored).
const MAX_FROM_FIELDS: usize = 16;

/// The indymilter callbacks of the submission milter.
pub fn callbacks(milter: Arc<SubmissionMilter>) -> Callbacks<Session> {
    let max_body = milter.cfg.max_message_bytes();
    let (m1, m2, m3) = (
        Arc::clone(&milter),
        Arc::clone(&milter),
        Arc::clone(&milter),
    );
    Callbacks::new()
        .on_negotiate(|cx: &mut NegotiateContext<Session>, _actions, _opts| {
            Box::pin(async move {
                cx.requested_macros
                    .insert(MacroStage::Mail, CString::new("{auth_authen} i").unwrap());
                // The queue id exists from the first accepted RCPT on, not at MAIL.
                cx.requested_macros
                    .insert(MacroStage::Eoh, CString::new("i").unwrap());
                cx.requested_macros
                    .insert(MacroStage::Eom, CString::new("i").unwrap());
                // DKIM-Signature headers are inserted at end of message.
                cx.requested_actions |= indymilter::Actions::ADD_HEADER;
                Status::Continue
            })
        })
        .on_connect(|cx: &mut Context<Session>, _host, socket: SocketInfo| {
            Box::pin(async move {
                let ip = match socket {
                    SocketInfo::Inet(sa) => Some(sa.ip().to_string()),
                    _ => None,
                };
                cx.data = Some(Session {
                    client_ip: ip,
                    ..Session::default()
                });
                Status::Continue
            })
        })
        .on_mail(move |cx, args| {
            let m = Arc::clone(&m1);
            Box::pin(async move { m.on_mail(cx, args).await })
        })
        .on_rcpt(|cx: &mut Context<Session>, _args| {
            Box::pin(async move {
                cx.data.get_or_insert_with(Session::default).message.rcpts += 1;
                Status::Continue
            })
        })
        .on_header(|cx: &mut Context<Session>, name: CString, value: CString| {
            Box::pin(async move {
                let message = &mut cx.data.get_or_insert_with(Session::default).message;
                let name_text = name.to_string_lossy().into_owned();
                if name.as_bytes().eq_ignore_ascii_case(b"From") {
                    let fields = &mut message.from_fields;
                    if fields.len() < MAX_FROM_FIELDS {
                        fields.push(header_addresses(value.as_bytes()));
                    } else {
                        // Keep counting: the policy refuses more than one field anyway.
                        fields.push(Vec::new());
                        fields.truncate(MAX_FROM_FIELDS + 1);
                    }
                }
                message.buffer.header(&name_text, value.into_bytes());
                Status::Continue
            })
        })
        .on_body(move |cx: &mut Context<Session>, chunk| {
            Box::pin(async move {
                cx.data
                    .get_or_insert_with(Session::default)
                    .message
                    .buffer
                    .body_chunk(&chunk, max_body);
                Status::Continue
            })
        })
        .on_eoh(move |cx| {
            let m = Arc::clone(&m2);
            Box::pin(async move { m.on_eoh(cx).await })
        })
        .on_eom(move |cx| {
            let m = Arc::clone(&m3);
            Box::pin(async move { m.on_eom(cx).await })
        })
        .on_abort(|cx: &mut Context<Session>| {
            Box::pin(async move {
                if let Some(s) = cx.data.as_mut() {
                    s.message = Message::default();
                }
                Status::Continue
            })
        })
}
