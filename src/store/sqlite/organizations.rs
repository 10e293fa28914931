use rusqlite::params;

use super::{sql_enum, SqliteStore};
use crate::model::{now, Organization, SenderCheck};
use crate::store::{refused, validate_org_name, Organizations, Result};

impl Organizations for SqliteStore {
    fn org_add(&mut self, name: &str, sender_check: SenderCheck) -> Result<()> {
        validate_org_name(name)?;
        self.write(|tx| {
            if tx.value(
                "SELECT EXISTS(SELECT 1 FROM organization WHERE name = ?1)",
                [name],
            )? {
                return refused(format!("organization {name:?} already exists"));
            }
            tx.execute(
                "INSERT INTO organization (name, sender_check, created) VALUES (?1, ?2, ?3)",
                params![name, sender_check.as_str(), now()],
            )?;
            tx.admin(
                Some(name),
                format!("org add {name} sender_check={sender_check}"),
            )
        })
    }

    fn org_set_sender_check(&mut self, name: &str, sender_check: SenderCheck) -> Result<()> {
        self.write(|tx| {
            let (id, name) = tx.org_id(name)?;
            tx.execute(
                "UPDATE organization SET sender_check = ?1 WHERE id = ?2",
                params![sender_check.as_str(), id],
            )?;
            tx.admin(
                Some(&name),
                format!("org set {name} sender_check={sender_check}"),
            )
        })
    }

    fn org_list(&self) -> Result<Vec<Organization>> {
        self.db().list(
            "SELECT o.name, o.sender_check, o.created,
                        (SELECT COUNT(*) FROM domain d WHERE d.organization_id = o.id),
                        (SELECT COUNT(*) FROM account a JOIN domain d ON a.domain_id = d.id WHERE d.organization_id = o.id),
                        (SELECT COUNT(*) FROM credential c WHERE c.organization_id = o.id AND c.revoked IS NULL)
                 FROM organization o ORDER BY o.name",
            [],
            |r| {
                Ok(Organization {
                    name: r.get(0)?,
                    sender_check: sql_enum(SenderCheck::parse, r.get(1)?)?,
                    created: r.get(2)?,
                    domains: r.get(3)?,
                    accounts: r.get(4)?,
                    credentials: r.get(5)?,
                })
            },
        )
    }

    fn org_remove(&mut self, name: &str, force: bool) -> Result<()> {
        self.write(|tx| {
            let (id, name) = tx.org_id(name)?;
            let (domains, creds): (i64, i64) = tx
                .row(
                    "SELECT (SELECT COUNT(*) FROM domain WHERE organization_id = ?1),
                            (SELECT COUNT(*) FROM credential WHERE organization_id = ?1 AND revoked IS NULL)",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?
                .unwrap_or_default();
            if !force && (domains > 0 || creds > 0) {
                return refused(format!(
                    "organization {name:?} still has {domains} domain(s) and {creds} credential(s); remove them first or use --force"
                ));
            }
            tx.execute("DELETE FROM organization WHERE id = ?1", [id])?;
            let detail = if force {
                format!("org remove {name} --force ({domains} domain(s), {creds} credential(s) removed)")
            } else {
                format!("org remove {name}")
            };
            tx.admin(Some(&name), detail)
        })
    }
}
