use rusqlite::params;

use super::SqliteStore;
use crate::model::{now, Domain};
use crate::store::{refused, Domains, Result};

impl Domains for SqliteStore {
    fn domain_add(&mut self, domain: &str, org: &str, active: bool) -> Result<()> {
        self.write(|tx| {
            let (org_id, org) = tx.org_id(org)?;
            match tx.domain(domain)? {
                Some((_, owner, _)) if owner == org => {
                    return refused(format!(
                        "domain {domain} is already registered to organization {org:?}"
                    ))
                }
                Some(_) => {
                    return refused(format!(
                        "domain {domain} is registered to another organization; remove it there first"
                    ))
                }
                None => {}
            }
            tx.execute(
                "INSERT INTO domain (name, organization_id, active, created) VALUES (?1, ?2, ?3, ?4)",
                params![domain, org_id, active, now()],
            )?;
            let state = if active { "active" } else { "inactive" };
            tx.admin(Some(&org), format!("domain add {domain} org={org} {state}"))
        })
    }

    fn domain_set_active(&mut self, domain: &str, active: bool) -> Result<()> {
        self.write(|tx| {
            let (id, org, was) = tx.domain_row(domain)?;
            let verb = if active { "activate" } else { "deactivate" };
            if was == active {
                let state = if active { "active" } else { "inactive" };
                return refused(format!("domain {domain} is already {state}"));
            }
            tx.execute(
                "UPDATE domain SET active = ?1 WHERE id = ?2",
                params![active, id],
            )?;
            tx.admin(Some(&org), format!("domain {verb} {domain}"))
        })
    }

    fn domain_list(&self, org: Option<&str>) -> Result<Vec<Domain>> {
        let db = self.db();
        if let Some(org) = org {
            db.org_id(org)?;
        }
        db.list(
            "SELECT d.name, o.name, d.active, d.created,
                        (SELECT COUNT(*) FROM account a WHERE a.domain_id = d.id)
                 FROM domain d JOIN organization o ON d.organization_id = o.id
                 WHERE ?1 IS NULL OR o.name = ?1 ORDER BY o.name, d.name",
            [org],
            |r| {
                Ok(Domain {
                    name: r.get(0)?,
                    organization: r.get(1)?,
                    active: r.get(2)?,
                    created: r.get(3)?,
                    accounts: r.get(4)?,
                })
            },
        )
    }

    fn domain_remove(&mut self, domain: &str, force: bool) -> Result<()> {
        self.write(|tx| {
            let (id, org, _) = tx.domain_row(domain)?;
            let (accounts, keys): (i64, i64) = tx
                .row(
                    "SELECT (SELECT COUNT(*) FROM account WHERE domain_id = ?1),
                            (SELECT COUNT(*) FROM dkim_key WHERE domain_id = ?1)",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .unwrap_or_default();
            if (accounts > 0 || keys > 0) && !force {
                return refused(format!(
                    "domain {domain} still has {accounts} account(s) and {keys} DKIM key(s); \
                     remove the accounts first, or use --force (the DKIM private keys are deleted with it)"
                ));
            }
            tx.execute("DELETE FROM domain WHERE id = ?1", [id])?;
            let detail = if accounts > 0 || keys > 0 {
                format!("domain remove {domain} --force ({accounts} account(s), {keys} DKIM key(s) removed)")
            } else {
                format!("domain remove {domain}")
            };
            tx.admin(Some(&org), detail)
        })
    }
}
