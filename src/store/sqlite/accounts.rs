use rusqlite::params;

use super::{sql_enum, SqliteStore};
use crate::model::{now, Account, AccountKind};
use crate::store::{refused, Accounts, Result};

impl Accounts for SqliteStore {
    fn account_add(&mut self, address: &str, domain: &str, kind: AccountKind) -> Result<()> {
        self.write(|tx| {
            let Some((domain_id, org, _)) = tx.domain(domain)? else {
                return refused(format!(
                    "domain {domain} is not registered; add it first with `postwarden domain add {domain} --org NAME`"
                ));
            };
            if tx.value("SELECT EXISTS(SELECT 1 FROM account WHERE address = ?1)", [address])? {
                return refused(format!("account {address} already exists"));
            }
            tx.execute(
                "INSERT INTO account (address, domain_id, kind, created) VALUES (?1, ?2, ?3, ?4)",
                params![address, domain_id, kind.as_str(), now()],
            )?;
            tx.admin(Some(&org), format!("account add {address} kind={kind}"))
        })
    }

    fn account_list(&self, org: Option<&str>) -> Result<Vec<Account>> {
        let db = self.db();
        if let Some(org) = org {
            db.org_id(org)?;
        }
        db.list(
            "SELECT a.address, a.kind, d.name, o.name, d.active, a.created
                 FROM account a JOIN domain d ON a.domain_id = d.id JOIN organization o ON d.organization_id = o.id
                 WHERE ?1 IS NULL OR o.name = ?1 ORDER BY o.name, a.address",
            [org],
            |r| {
                Ok(Account {
                    address: r.get(0)?,
                    kind: sql_enum(AccountKind::parse, r.get(1)?)?,
                    domain: r.get(2)?,
                    organization: r.get(3)?,
                    domain_active: r.get(4)?,
                    created: r.get(5)?,
                })
            },
        )
    }

    fn account_remove(&mut self, address: &str) -> Result<()> {
        self.write(|tx| {
            let Some(org) = tx.row::<String>(
                "SELECT o.name FROM account a JOIN domain d ON a.domain_id = d.id JOIN organization o ON d.organization_id = o.id WHERE a.address = ?1",
                [address],
                |r| r.get(0),
            )?
            else {
                return refused(format!("no account {address}"));
            };
            tx.execute("DELETE FROM account WHERE address = ?1", [address])?;
            tx.admin(Some(&org), format!("account remove {address}"))
        })
    }
}
