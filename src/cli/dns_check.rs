//! `postwarden dns-check`: a domain's published SPF, DKIM and DMARC records against the
//! store and the configuration.

use crate::config::Config;

use super::context::{domain_arg, open_store};
use super::output::{emit, table, CliError, CliResult};

pub(super) fn run(cfg: &Config, json: bool, domain: &str) -> CliResult {
    let d = domain_arg(domain)?;
    let store = open_store(cfg, false)?;
    if !store.domain_list(None)?.iter().any(|x| x.name == d) {
        return Err(CliError::Refused(format!(
            "domain {d} is not registered: add it with `postwarden domain add {d} --org NAME` first"
        )));
    }
    let keys = store.dkim_list(Some(&d))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Refused(format!("cannot start the runtime: {e}")))?;
    let report = runtime
        .block_on(crate::dnscheck::check(cfg, &d, &keys))
        .map_err(CliError::Refused)?;
    emit(json, serde_json::to_value(&report).expect("json"), || {
        table(
            &["CHECK", "STATUS", "DETAIL"],
            report
                .checks
                .iter()
                .map(|c| vec![c.check.clone(), c.status.as_str().into(), c.detail.clone()])
                .collect(),
        )
    });
    if report.failed() {
        Err(CliError::Reported(format!(
            "{d}: some DNS checks fail (see the table)"
        )))
    } else {
        Ok(())
    }
}
