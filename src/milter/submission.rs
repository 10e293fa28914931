//! The submission milter: the login (`{auth_authen}`) must own the envelope sender (judged
//! at MAIL) and every header From address (judged at end of headers). Session state and
//! indymilter callbacks only: the decision is `sender::decide`, the event is the
//! `sender::Transaction`'s, the signature is `dkim::sign`'s.

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
use crate::model::{Decision, Rejection};
use crate::sender::{self, Subject, Transaction, Verdict};
use crate::store::{Pool, StoreError};

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
    /// What the event records: login, organization, envelope, From fields, ...
    tx: Transaction,
    /// The accepting decision reached at end of headers, recorded at end of message.
    accepted: Option<Decision>,
    /// Header fields and body, for DKIM signing.
    buffer: MessageBuffer,
}

pub struct SubmissionMilter {
    cfg: Arc<Config>,
    store: Arc<Pool>,
    events: Arc<EventSink>,
}

impl SubmissionMilter {
    pub fn new(cfg: Arc<Config>, store: Arc<Pool>, events: Arc<EventSink>) -> Arc<Self> {
        Arc::new(SubmissionMilter { cfg, store, events })
    }

    /// Runs the sender decision for `login` on the message as it stands: its envelope
    /// sender alone at MAIL (`whole` false), everything at end of headers.
    async fn judge(&self, m: &Message, whole: bool) -> Result<Verdict, StoreError> {
        let login = m.tx.login.clone().unwrap_or_default();
        let envelope = m.tx.envelope.clone();
        let fields = m.tx.from_fields.clone();
        self.store
            .run(move |store| {
                let subject = if whole {
                    Subject::Message {
                        envelope: envelope.as_deref(),
                        from_fields: &fields,
                    }
                } else {
                    Subject::Envelope(envelope.as_deref())
                };
                sender::decide(store, &login, subject)
            })
            .await
    }

    /// Appends the `mail` event (and the discovered senders).
    async fn record(
        &self,
        session: &Session,
        outcome: &str,
        reason: String,
        discovered: Vec<String>,
    ) {
        let tx = &session.message.tx;
        self.events.write(tx.event(outcome, reason)).await;
        if let (Some(org), false) = (tx.organization.clone(), discovered.is_empty()) {
            let result = self
                .store
                .run(move |s| s.record_discovered(&org, &discovered))
                .await;
            if result.is_err() {
                warn!("discovered senders not recorded");
            }
        }
    }

    async fn refuse(&self, cx: &mut Context<Session>, r: &Rejection) -> Status {
        let session = cx.data.get_or_insert_with(Session::default);
        info!(
            login = session.message.tx.login.as_deref().unwrap_or(""),
            queue_id = session.message.tx.queue_id.as_deref().unwrap_or(""),
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
        warn!(error = %e, login = session.message.tx.login.as_deref().unwrap_or(""), "store fault: temporary failure");
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
            .and_then(|a| sender::envelope_address(&a).map(str::to_string));
        session.message = Message {
            tx: Transaction {
                login,
                client_ip: session.client_ip.clone(),
                envelope,
                queue_id,
                ..Transaction::default()
            },
            ..Message::default()
        };
        if session.message.tx.login.is_none() {
            return self.login_refused(cx, "no_auth").await;
        }
        let verdict = self.judge(&session.message, false).await;
        self.on_verdict(cx, verdict, false).await
    }

    async fn on_eoh(&self, cx: &mut Context<Session>) -> Status {
        let queue_id = macro_value(&cx.macros, "i");
        let session = cx.data.get_or_insert_with(Session::default);
        if queue_id.is_some() {
            session.message.tx.queue_id = queue_id;
        }
        if session.message.tx.login.is_none() {
            return self.login_refused(cx, "no_auth").await;
        }
        let verdict = self.judge(&session.message, true).await;
        self.on_verdict(cx, verdict, true).await
    }

    /// Answers a verdict: a refusal is replied and recorded; an accepted message (at end
    /// of headers, `whole`) waits for the end of message to be signed and recorded.
    async fn on_verdict(
        &self,
        cx: &mut Context<Session>,
        verdict: Result<Verdict, StoreError>,
        whole: bool,
    ) -> Status {
        let verdict = match verdict {
            Ok(v) => v,
            Err(e) => return self.tempfail(cx, &e).await,
        };
        let message = &mut cx.data.get_or_insert_with(Session::default).message;
        let (facts, decision) = match verdict {
            Verdict::UnknownLogin => return self.login_refused(cx, "unknown_login").await,
            Verdict::RevokedLogin { .. } => return self.login_refused(cx, "revoked_login").await,
            Verdict::Decided { facts, decision } => (facts, decision),
        };
        message.tx.organization = Some(facts.organization);
        match decision {
            Decision::Reject(r) => self.refuse(cx, &r).await,
            accepted => {
                if whole {
                    message.accepted = Some(accepted);
                }
                Status::Continue
            }
        }
    }

    /// Signs with the active keys of the (first) header From domain; returns the note for
    /// the event. No active key: unsigned, and the note says so.
    async fn sign(&self, cx: &mut EomContext<Session>) -> Result<String, String> {
        let session = cx.data.get_or_insert_with(Session::default);
        let m = &mut session.message;
        let Some(domain) =
            m.tx.from_fields
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
        let d = domain.clone();
        let keys = self
            .store
            .run(move |s| s.dkim_signing_keys(&d))
            .await
            .map_err(|e| e.to_string())?;
        if keys.is_empty() {
            return Ok(format!("dkim: unsigned (no active key for {domain})"));
        }
        let selectors: Vec<String> = keys.iter().map(|k| k.selector.clone()).collect();
        // The message moves to the signing thread (the transaction needs it no more).
        let raw = m.buffer.take_raw();
        let headers = tokio::task::spawn_blocking(move || dkim::sign(&raw, &keys))
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
        Ok(format!("dkim: signed d={domain} s={}", selectors.join(",")))
    }

    async fn on_eom(&self, cx: &mut EomContext<Session>) -> Status {
        if let Some(qid) = macro_value(&cx.macros, "i") {
            cx.data
                .get_or_insert_with(Session::default)
                .message
                .tx
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
            login = session.message.tx.login.as_deref().unwrap_or(""),
            queue_id = session.message.tx.queue_id.as_deref().unwrap_or(""),
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
                cx.data
                    .get_or_insert_with(Session::default)
                    .message
                    .tx
                    .rcpts += 1;
                Status::Continue
            })
        })
        .on_header(
            move |cx: &mut Context<Session>, name: CString, value: CString| {
                Box::pin(async move {
                    let message = &mut cx.data.get_or_insert_with(Session::default).message;
                    let name_text = name.to_string_lossy().into_owned();
                    if name.as_bytes().eq_ignore_ascii_case(b"From") {
                        let fields = &mut message.tx.from_fields;
                        if fields.len() < MAX_FROM_FIELDS {
                            fields.push(header_addresses(value.as_bytes()));
                        } else {
                            // Keep counting: the policy refuses more than one field anyway.
                            fields.push(Vec::new());
                            fields.truncate(MAX_FROM_FIELDS + 1);
                        }
                    }
                    message
                        .buffer
                        .header(&name_text, value.into_bytes(), max_body);
                    Status::Continue
                })
            },
        )
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
