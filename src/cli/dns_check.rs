//! `postwarden dns-check`: a domain's published SPF, DKIM and DMARC records against the
//! store and the configuration.

use crate::config::Config;

use super::context::{block_on, domain_arg, domain_registered, open_store};
use super::output::{emit_table, CliError, CliResult};

pub(super) fn run(cfg: &Config, json: bool, domain: &str) -> CliResult {
    let d = domain_arg(domain)?;
    let store = open_store(cfg, false)?;
    if !domain_registered(&*store, &d)? {
        return Err(CliError::Refused(format!(
            "domain {d} is not registered: add it with `postwarden domain add {d} --org NAME` first"
        )));
    }
    let keys = store.dkim_list(Some(&d))?;
    let report =
        block_on(crate::authn::dnscheck::check(cfg, &d, &keys))?.map_err(CliError::Refused)?;
    emit_table(
        json,
        serde_json::to_value(&report).expect("json"),
        &["CHECK", "STATUS", "DETAIL"],
        &report.checks,
        |c| vec![c.check.clone(), c.status.as_str().into(), c.detail.clone()],
    );
    if report.failed() {
        Err(CliError::Reported(format!(
            "{d}: some DNS checks fail (see the table)"
        )))
    } else {
        Ok(())
    }
}
