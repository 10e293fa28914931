//! `postwarden dkim`: DKIM keys: generate, list, activate (rotate), retire.

use clap::{Subcommand, ValueEnum};
use serde_json::{json, Value};

use crate::config::Config;
use crate::dkim;
use crate::model::format_time;
use crate::store::{self, prelude::*};

use super::context::{block_on, domain_arg, open_store, require_domain};
use super::output::{domain_text, emit, emit_table, CliError, CliResult};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlgorithmArg {
    Rsa,
    Ed25519,
}

#[derive(Debug, Clone, Subcommand)]
pub enum DkimCmd {
    /// Generate a key (pending: it signs once activated) and print the DNS record to publish.
    Keygen {
        domain: String,
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: AlgorithmArg,
        /// Selector; default: pw + year and month + r (rsa) or e (ed25519), e.g. pw202611r.
        #[arg(long)]
        selector: Option<String>,
    },
    /// List keys and their DNS records (never a private key).
    List {
        #[arg(long)]
        domain: Option<String>,
    },
    /// Start signing with a key; an active key of the same algorithm is retired. Refused
    /// while the key's DNS record is not published (checked through [dns]), unless --force.
    Activate {
        domain: String,
        selector: String,
        /// Activate even if the record cannot be found or checked.
        #[arg(long)]
        force: bool,
    },
    /// Stop signing with a key (keep its DNS record published until mail signed with it
    /// has been delivered).
    Retire { domain: String, selector: String },
}

impl From<AlgorithmArg> for dkim::Algorithm {
    fn from(a: AlgorithmArg) -> Self {
        match a {
            AlgorithmArg::Rsa => dkim::Algorithm::Rsa,
            AlgorithmArg::Ed25519 => dkim::Algorithm::Ed25519,
        }
    }
}

pub(super) fn run(cfg: &Config, json: bool, cmd: &DkimCmd) -> CliResult {
    let mut store = open_store(cfg, matches!(cmd, DkimCmd::Keygen { .. }))?;
    match cmd {
        DkimCmd::Keygen {
            domain,
            algorithm,
            selector,
        } => keygen(
            &mut *store,
            json,
            domain,
            (*algorithm).into(),
            selector.as_deref(),
        ),
        DkimCmd::List { domain } => list(&*store, json, domain.as_deref()),
        DkimCmd::Activate {
            domain,
            selector,
            force,
        } => activate(cfg, &mut *store, json, domain, selector, *force),
        DkimCmd::Retire { domain, selector } => retire(&mut *store, json, domain, selector),
    }
}

/// The selector when none is given: pw + year and month + r (rsa) or e (ed25519).
fn default_selector(alg: dkim::Algorithm) -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let suffix = if alg == dkim::Algorithm::Rsa {
        "r"
    } else {
        "e"
    };
    format!("pw{}{}{suffix}", &now[0..4], &now[5..7])
}

/// `dkim keygen`: a new pending key, and the DNS record to publish for it.
fn keygen(
    store: &mut dyn Store,
    json: bool,
    domain: &str,
    alg: dkim::Algorithm,
    selector: Option<&str>,
) -> CliResult {
    let d = domain_arg(domain)?;
    let selector = selector
        .map(str::to_string)
        .unwrap_or_else(|| default_selector(alg));
    // Refuse early (unknown domain, bad or taken selector) before generating.
    store::validate_selector(&selector)?;
    require_domain(store, &d)?;
    let pair = dkim::generate(alg).map_err(|e| CliError::Refused(e.to_string()))?;
    store.dkim_add(
        &d,
        &selector,
        alg,
        &pair.private_pkcs8_der,
        &pair.public_key_b64,
    )?;
    let rec = pair.dns_record(&d, &selector);
    emit(
        json,
        json!({"domain": d, "selector": selector, "algorithm": alg.as_str(), "state": "pending",
               "dns_name": rec.name, "dns_value": rec.value, "dns_strings": rec.strings}),
        || {
            format!(
                "DKIM key {selector} ({}) generated for {d}; it does not sign yet.\n\
                 1. Publish this TXT record:\n\n{}\n\n\
                 2. Check it: postwarden dns-check {d}\n\
                 3. Start signing: postwarden dkim activate {d} {selector}",
                alg.as_str(),
                rec.zone_line()
            )
        },
    );
    Ok(())
}

/// `dkim list`: the keys (of one domain) with their DNS records, never a private key.
fn list(store: &dyn Store, json: bool, domain: Option<&str>) -> CliResult {
    let d = domain.map(domain_arg).transpose()?;
    if let Some(d) = &d {
        require_domain(store, d)?;
    }
    let keys = store.dkim_list(d.as_deref())?;
    let value: Vec<Value> = keys
        .iter()
        .map(|k| {
            let rec = dkim::dns_record(&k.domain, &k.selector, k.algorithm, &k.public_key);
            json!({"domain": k.domain, "selector": k.selector, "algorithm": k.algorithm, "state": k.state,
                   "created": k.created, "activated": k.activated, "retired": k.retired,
                   "dns_name": rec.name, "dns_value": rec.value})
        })
        .collect();
    emit_table(
        json,
        Value::Array(value),
        &[
            "DOMAIN",
            "SELECTOR",
            "ALGORITHM",
            "STATE",
            "CREATED",
            "DNS_NAME",
        ],
        &keys,
        |k| {
            vec![
                domain_text(&k.domain),
                k.selector.clone(),
                k.algorithm.to_string(),
                k.state.to_string(),
                format_time(k.created),
                format!("{}._domainkey.{}", k.selector, k.domain),
            ]
        },
    );
    Ok(())
}

/// `dkim activate`: start signing with a key once its DNS record is found (or --force);
/// the active key of the same algorithm is retired.
fn activate(
    cfg: &Config,
    store: &mut dyn Store,
    json: bool,
    domain: &str,
    selector: &str,
    force: bool,
) -> CliResult {
    let d = domain_arg(domain)?;
    // Signing with a key receivers cannot find makes DKIM fail for every message:
    // check the record first.
    if !force {
        let key = store
            .dkim_list(Some(&d))?
            .into_iter()
            .find(|k| k.selector == selector)
            .ok_or_else(|| {
                CliError::Refused(format!(
                    "domain {d} has no DKIM key with selector {selector}"
                ))
            })?;
        let check = block_on(crate::authn::dnscheck::check_one_key(cfg, &d, &key))?
            .map_err(CliError::Refused)?;
        if check.status != crate::authn::dnscheck::Status::Pass {
            return Err(CliError::Refused(format!(
                "not activated: {}; publish the record (postwarden dkim list shows it), or use --force",
                check.detail
            )));
        }
    }
    let retired = store.dkim_activate(&d, selector)?;
    emit(
        json,
        json!({"domain": d, "selector": selector, "state": "active", "retired": retired}),
        || {
            match &retired {
            Some(old) => format!(
                "{d}: now signing with {selector}; {old} retired (keep its DNS record for a few days, then remove it)"
            ),
            None => format!("{d}: now signing with {selector}"),
        }
        },
    );
    Ok(())
}

/// `dkim retire`: stop signing with a key.
fn retire(store: &mut dyn Store, json: bool, domain: &str, selector: &str) -> CliResult {
    let d = domain_arg(domain)?;
    store.dkim_retire(&d, selector)?;
    emit(
        json,
        json!({"domain": d, "selector": selector, "state": "retired"}),
        || {
            format!("{d}: {selector} no longer signs; keep its DNS record until mail signed with it has been delivered")
        },
    );
    Ok(())
}
