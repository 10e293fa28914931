//! The inbound milter (port 25): SPF for HELO and MAIL FROM, DKIM for every signature,
//! DMARC with alignment, one Authentication-Results header, and the sending domain's DMARC
//! policy as configured. The verdicts and what follows from them are [`crate::authn`]'s;
//! this is session state and callbacks only.

use std::ffi::CString;
use std::net::IpAddr;
use std::sync::Arc;

use indymilter::{
    Callbacks, Context, ContextActions, EomContext, MacroStage, NegotiateContext, ProtoOpts,
    SocketInfo, Status,
};
use tracing::{info, warn};

use crate::authn::{self, Action, Authenticator};
use crate::config::Config;
use crate::events::EventSink;
use crate::model::{Event, EventKind};

use super::{macro_value, reply, MessageBuffer};

const AR: &str = "Authentication-Results";

#[derive(Debug, Default)]
pub struct Session {
    client_ip: Option<IpAddr>,
    helo: String,
    message: Message,
}

#[derive(Debug, Default)]
struct Message {
    mail_from: String,
    rcpts: i64,
    queue_id: Option<String>,
    /// 1-based positions, among the Authentication-Results fields, of those claiming our id.
    forged_ar: Vec<i32>,
    ar_seen: i32,
    buffer: MessageBuffer,
}

pub struct InboundMilter {
    cfg: Arc<Config>,
    authenticator: Authenticator,
    authserv_id: String,
    events: Arc<EventSink>,
    max_message: usize,
    /// Seals delivered mail with postwarden's ARC set, when configured.
    sealer: Option<authn::ArcSealer>,
}

impl InboundMilter {
    /// The milter with the configured DNS resolver.
    pub fn new(cfg: Arc<Config>, events: Arc<EventSink>) -> anyhow::Result<Arc<Self>> {
        let authenticator = Authenticator::from_config(&cfg)?.with_hostname(authn::hostname());
        authn::ArcSealer::from_config(&cfg).map_err(anyhow::Error::msg)?;
        Ok(Self::with_authenticator(cfg, events, authenticator))
    }

    /// The milter with a given evaluator, e.g. one answering from a
    /// [`StaticZone`](crate::authn::StaticZone) in tests.
    pub fn with_authenticator(
        cfg: Arc<Config>,
        events: Arc<EventSink>,
        authenticator: Authenticator,
    ) -> Arc<Self> {
        let sealer = authn::ArcSealer::from_config(&cfg).unwrap_or_else(|e| {
            warn!(error = %e, "ARC sealing is off");
            None
        });
        Arc::new(InboundMilter {
            sealer,
            authserv_id: authn::authserv_id(&cfg),
            max_message: cfg.max_message_bytes(),
            cfg,
            authenticator,
            events,
        })
    }

    async fn on_eom(&self, cx: &mut EomContext<Session>) -> Status {
        if let Some(q) = macro_value(&cx.macros, "i") {
            cx.data
                .get_or_insert_with(Session::default)
                .message
                .queue_id = Some(q);
        }
        let session = cx.data.get_or_insert_with(Session::default);
        session.message.buffer.end_headers();
        let m = &session.message;
        let raw = m.buffer.raw();
        let client_ip = session.client_ip.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let input = authn::Input {
            client_ip,
            helo: &session.helo,
            mail_from: &m.mail_from,
            message: &raw,
        };
        let v = self.authenticator.evaluate(&input).await;
        let ar = authn::authentication_results(&self.authserv_id, &v);
        let act = authn::action(&self.cfg, &v);
        let summary = format!(
            "spf={} dkim={} dmarc={}{}",
            v.spf_mail_from.result.as_str(),
            if v.dkim.is_empty() {
                "none".to_string()
            } else {
                v.dkim
                    .iter()
                    .map(|d| d.result.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            },
            v.dmarc.result.as_str(),
            if m.buffer.truncated {
                " (message over max_message_mib: body not fully read)"
            } else {
                ""
            }
        );
        let mut ev = Event::new(EventKind::Mail, "");
        ev.client_ip = session.client_ip.map(|i| i.to_string());
        ev.sender = Some(if m.mail_from.is_empty() {
            "<>".into()
        } else {
            m.mail_from.clone()
        });
        ev.header_from = (!v.from_domains.is_empty()).then(|| v.from_domains.join(", "));
        ev.rcpt_count = Some(m.rcpts);
        ev.queue_id = m.queue_id.clone();
        let (outcome, status) = match &act {
            Action::Reject(text) => ("reject", reply(&mut cx.reply, "550", "5.7.1", text)),
            Action::Tempfail => (
                "tempfail",
                reply(
                    &mut cx.reply,
                    "451",
                    "4.7.1",
                    "Temporary DNS failure checking SPF/DKIM/DMARC; try again later",
                ),
            ),
            Action::Hold(_) => ("quarantine", Status::Continue),
            Action::MarkQuarantine(_) => ("quarantine", Status::Continue),
            Action::Deliver | Action::DeliverNoted(_) => ("accept", Status::Continue),
        };
        ev.outcome = outcome.to_string();
        ev.reason = Some(match &act {
            Action::Hold(why) | Action::MarkQuarantine(why) | Action::DeliverNoted(why) => {
                format!("inbound: {summary}; {why}")
            }
            _ => format!("inbound: {summary}"),
        });
        info!(queue_id = m.queue_id.as_deref().unwrap_or(""), outcome, %summary, "inbound verdicts");
        let mut arc_set = Vec::new();
        if let (Some(sealer), Status::Continue) = (&self.sealer, status) {
            let sealed = if m.buffer.truncated {
                Err("not ARC-sealed: message over max_message_mib".to_string())
            } else {
                sealer
                    .seal(&raw, &v.arc, &ar, crate::model::now() as u64)
                    .map_err(|e| e.to_string())
            };
            match sealed {
                Ok(set) => arc_set = set,
                Err(why) => {
                    info!(queue_id = m.queue_id.as_deref().unwrap_or(""), %why, "ARC");
                    if let Some(r) = ev.reason.as_mut() {
                        r.push_str("; ");
                        r.push_str(&why);
                    }
                }
            }
        }
        let dmarc_row = if self.cfg.dmarc_reports.enabled {
            crate::reports::row(&self.cfg, &v, &act, ev.time)
        } else {
            None
        };
        if status == Status::Continue {
            if let Err(e) = self.modify(cx, &ar, &act, &arc_set).await {
                warn!(error = %e, "could not modify the message: temporary failure");
                ev.outcome = "tempfail".into();
                self.events.write(ev).await;
                // Not taken: it comes again, and is counted then.
                return reply(
                    &mut cx.reply,
                    "451",
                    "4.3.0",
                    "Temporary failure; try again later",
                );
            }
        }
        if let Some(row) = dmarc_row {
            // Before the event, so it is written with it (or before it).
            self.events.spawn_dmarc(row);
        }
        self.events.write(ev).await;
        status
    }

    /// Removes forged Authentication-Results, adds ours, and quarantines as decided.
    async fn modify(
        &self,
        cx: &mut EomContext<Session>,
        ar: &str,
        act: &Action,
        arc_set: &[(String, String)],
    ) -> Result<(), indymilter::ActionError> {
        let session = cx.data.get_or_insert_with(Session::default);
        let lead = if session.message.buffer.leading_space {
            " "
        } else {
            ""
        };
        // Highest position first, so the earlier positions stay valid.
        let mut forged = session.message.forged_ar.clone();
        forged.sort_unstable_by(|a, b| b.cmp(a));
        for idx in forged {
            cx.actions.change_header(AR, idx, None::<CString>).await?;
        }
        let value = format!("{lead}{}", ar.replace("\r\n", "\n"));
        cx.actions.insert_header(0, AR, value).await?;
        match act {
            Action::Hold(why) => cx.actions.quarantine(why.as_str()).await?,
            Action::MarkQuarantine(why) => {
                cx.actions
                    .insert_header(1, "X-Postwarden-Quarantine", format!("{lead}{why}"))
                    .await?
            }
            _ => {}
        }
        // The ARC set on top of everything: ARC-Seal first (inserted last).
        for (name, value) in arc_set.iter().rev() {
            cx.actions
                .insert_header(0, name.as_str(), format!("{lead}{value}"))
                .await?;
        }
        Ok(())
    }
}

/// The indymilter callbacks of the inbound milter.
pub fn callbacks(milter: Arc<InboundMilter>) -> Callbacks<Session> {
    let authserv = milter.authserv_id.clone();
    let max = milter.max_message;
    let m = Arc::clone(&milter);
    Callbacks::new()
        .on_negotiate(|cx: &mut NegotiateContext<Session>, _actions, opts| {
            Box::pin(async move {
                cx.requested_actions |= indymilter::Actions::ADD_HEADER
                    | indymilter::Actions::CHANGE_HEADER
                    | indymilter::Actions::QUARANTINE;
                cx.requested_macros
                    .insert(MacroStage::Eom, CString::new("i").unwrap());
                // Header values exactly as received (DKIM "simple" canonicalization needs them).
                let leading = opts.contains(ProtoOpts::LEADING_SPACE);
                if leading {
                    cx.requested_opts |= ProtoOpts::LEADING_SPACE;
                }
                let mut session = Session::default();
                session.message.buffer.leading_space = leading;
                cx.data = Some(session);
                Status::Continue
            })
        })
        .on_connect(|cx: &mut Context<Session>, _host, socket: SocketInfo| {
            Box::pin(async move {
                let s = cx.data.get_or_insert_with(Session::default);
                s.client_ip = match socket {
                    SocketInfo::Inet(sa) => Some(sa.ip()),
                    _ => None,
                };
                Status::Continue
            })
        })
        .on_helo(|cx: &mut Context<Session>, helo: CString| {
            Box::pin(async move {
                cx.data.get_or_insert_with(Session::default).helo =
                    helo.to_string_lossy().into_owned();
                Status::Continue
            })
        })
        .on_mail(|cx: &mut Context<Session>, args: Vec<CString>| {
            Box::pin(async move {
                let s = cx.data.get_or_insert_with(Session::default);
                let leading_space = s.message.buffer.leading_space;
                let from = args
                    .first()
                    .map(|a| a.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let from = crate::sender::envelope_address(&from)
                    .unwrap_or("")
                    .to_string();
                s.message = Message {
                    mail_from: from,
                    ..Message::default()
                };
                s.message.buffer.leading_space = leading_space;
                Status::Continue
            })
        })
        .on_rcpt(|cx: &mut Context<Session>, _args| {
            Box::pin(async move {
                cx.data.get_or_insert_with(Session::default).message.rcpts += 1;
                Status::Continue
            })
        })
        .on_header(
            move |cx: &mut Context<Session>, name: CString, value: CString| {
                let authserv = authserv.clone();
                Box::pin(async move {
                    let m = &mut cx.data.get_or_insert_with(Session::default).message;
                    let name = name.to_string_lossy().into_owned();
                    if name.eq_ignore_ascii_case(AR) {
                        m.ar_seen += 1;
                        if authn::claims_authserv_id(&value.to_string_lossy(), &authserv) {
                            m.forged_ar.push(m.ar_seen);
                        }
                    }
                    m.buffer.header(&name, value.into_bytes(), max);
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
                    .body_chunk(&chunk, max);
                Status::Continue
            })
        })
        .on_eom(move |cx| {
            let m = Arc::clone(&m);
            Box::pin(async move { m.on_eom(cx).await })
        })
        .on_abort(|cx: &mut Context<Session>| {
            Box::pin(async move {
                if let Some(s) = cx.data.as_mut() {
                    let leading_space = s.message.buffer.leading_space;
                    s.message = Message::default();
                    s.message.buffer.leading_space = leading_space;
                }
                Status::Continue
            })
        })
}
