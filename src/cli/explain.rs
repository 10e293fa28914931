//! `postwarden explain`: how the submission milter would judge a message, and why.

use serde_json::{json, Value};

use crate::config::Config;
use crate::model::{Decision, Rule};
use crate::sender::{self, Subject, Verdict};

use super::context::open_store;
use super::output::{emit, CliError, CliResult};

#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The credential username (what Postfix passes as {auth_authen}).
    #[arg(long)]
    pub login: String,
    /// The envelope sender (MAIL FROM); "<>" or "" for the null sender.
    #[arg(long)]
    pub sender: String,
    /// The message's From header field content, e.g. "Alice <alice@acme.example>" (repeat
    /// for several addresses).
    /// Without it only the envelope sender is judged, as at MAIL.
    #[arg(long = "header-from", value_name = "ADDR")]
    pub header_from: Vec<String>,
}

/// `postwarden explain`: the submission milter's decision on the live store, and why.
pub(super) fn run(cfg: &Config, json: bool, args: &ExplainArgs) -> CliResult {
    let store = open_store(cfg, false)?;
    let envelope = sender::envelope_address(&args.sender).map(str::to_string);
    // Each --header-from is read exactly as the milter reads the From field's content (a bare
    // address, "Name <addr>", a group, ...): a value without an address adds none.
    let from_field: Vec<String> = args
        .header_from
        .iter()
        .flat_map(|v| crate::address::header_addresses(v.as_bytes()))
        .collect();
    let from_fields = [from_field];
    // The milter's own decision: the envelope alone, or the whole message.
    let subject = if args.header_from.is_empty() {
        Subject::Envelope(envelope.as_deref())
    } else {
        Subject::Message {
            envelope: envelope.as_deref(),
            from_fields: &from_fields,
        }
    };
    // A login that cannot authenticate never reaches the milter: Postfix answers AUTH with
    // 535 (a session that authenticated before a revocation gets 530 at MAIL).
    let refuse_login = |rule: &str, explanation: String, org: Option<&str>| -> CliResult {
        let reply = "535 5.7.8 Error: authentication failed: (reason unavailable)";
        emit(
            json,
            json!({"decision": "refuse", "reply": reply, "organization": org,
                   "rules": [{"rule": rule, "explanation": explanation}]}),
            || format!("decision: refuse\nreply:    {reply}\nrule:     {rule}: {explanation}"),
        );
        Err(CliError::Reported(format!(
            "{explanation}: Postfix would answer {reply}"
        )))
    };
    let (facts, decision) = match sender::decide(&*store, &args.login, subject)? {
        Verdict::UnknownLogin => {
            return refuse_login(
                "unknown_login",
                format!(
                    "no credential with username {} (usernames compare exactly)",
                    args.login
                ),
                None,
            )
        }
        Verdict::RevokedLogin { organization } => {
            return refuse_login(
                "revoked_credential",
                format!(
                    "credential {} is revoked: create a new one with `postwarden credential new --org {organization} --label LABEL`",
                    args.login
                ),
                Some(&organization),
            )
        }
        Verdict::Decided { facts, decision } => (facts, decision),
    };
    let (word, reply) = match &decision {
        Decision::Accept { .. } => ("accept", "250 (Postfix accepts the message)".to_string()),
        Decision::AcceptDiscovered { .. } => (
            "accept_discovered",
            "250 (Postfix accepts the message)".to_string(),
        ),
        Decision::Reject(r) => ("refuse", r.to_string()),
    };
    // The administrator may see what the SMTP client must not: who owns a foreign domain.
    let domains = store.domain_list(None)?;
    let explain_rule = |r: &Rule| {
        let mut text = r.explanation(&facts.organization);
        if let Rule::DomainNotOwned { domain, .. } = r {
            match domains.iter().find(|d| &d.name == domain) {
                Some(d) => text.push_str(&format!(
                    " (it is registered to organization {})",
                    d.organization
                )),
                None => text.push_str(" (no organization has registered it)"),
            }
        }
        text
    };
    let rules: Vec<Value> = decision
        .rules()
        .iter()
        .map(|r| json!({"rule": r.name(), "explanation": explain_rule(r)}))
        .collect();
    let discovered = match &decision {
        Decision::AcceptDiscovered { discovered, .. } => discovered.clone(),
        _ => vec![],
    };
    emit(
        json,
        json!({"decision": word, "reply": reply, "organization": facts.organization,
               "rules": rules, "discovered": discovered}),
        || {
            let mut out = format!(
                "organization: {}\ndecision: {word}\nreply:    {reply}\n",
                facts.organization
            );
            for r in decision.rules() {
                out.push_str(&format!("rule:     {}: {}\n", r.name(), explain_rule(r)));
            }
            if args.header_from.is_empty() {
                out.push_str("(only the envelope sender was judged; add --header-from to judge the whole message)\n");
            }
            out
        },
    );
    if decision.is_accept() {
        Ok(())
    } else {
        Err(CliError::Reported(format!("Postfix would answer {reply}")))
    }
}
