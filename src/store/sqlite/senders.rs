use rusqlite::params;

use super::{sql_enum, SqliteStore};
use crate::model::{
    now, AccountFact, AccountKind, Discovered, DomainFact, Facts, LoginFacts, SenderCheck,
};
use crate::store::{Result, Senders};

impl Senders for SqliteStore {
    fn sender_facts(&self, login: &str, addresses: &[String]) -> Result<LoginFacts> {
        let db = self.db();
        let row: Option<(i64, String, SenderCheck, bool)> = db.row(
            "SELECT o.id, o.name, o.sender_check, c.revoked IS NOT NULL
                 FROM credential c JOIN organization o ON c.organization_id = o.id
                 WHERE c.username = ?1 COLLATE BINARY",
            [login],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    sql_enum(SenderCheck::parse, r.get(2)?)?,
                    r.get(3)?,
                ))
            },
        )?;
        let Some((org_id, organization, sender_check, revoked)) = row else {
            return Ok(LoginFacts::Unknown);
        };
        if revoked {
            return Ok(LoginFacts::Revoked { organization });
        }
        let domains = db.list(
            "SELECT name, active FROM domain WHERE organization_id = ?1 ORDER BY name",
            [org_id],
            |r| {
                Ok(DomainFact {
                    name: r.get(0)?,
                    active: r.get(1)?,
                })
            },
        )?;
        let mut accounts = Vec::new();
        for address in addresses {
            let found = db.row(
                "SELECT a.address, a.kind FROM account a JOIN domain d ON a.domain_id = d.id
                 WHERE d.organization_id = ?1 AND a.address = ?2",
                params![org_id, address],
                |r| {
                    Ok(AccountFact {
                        address: r.get(0)?,
                        kind: sql_enum(AccountKind::parse, r.get(1)?)?,
                    })
                },
            )?;
            accounts.extend(found);
        }
        Ok(LoginFacts::Live(Facts {
            organization,
            sender_check,
            domains,
            accounts,
        }))
    }

    fn record_discovered(&mut self, org: &str, addresses: &[String]) -> Result<()> {
        self.write(|tx| {
            let (org_id, _) = tx.org_id(org)?;
            for a in addresses {
                tx.execute(
                    "INSERT INTO discovered_sender (organization_id, address, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?3)
                     ON CONFLICT (organization_id, address)
                     DO UPDATE SET last_seen = excluded.last_seen, messages = messages + 1",
                    params![org_id, a, now()],
                )?;
            }
            Ok(())
        })
    }

    fn discovered(&self, org: Option<&str>) -> Result<Vec<Discovered>> {
        let db = self.db();
        if let Some(org) = org {
            db.org_id(org)?;
        }
        db.list(
            "SELECT o.name, s.address, s.first_seen, s.last_seen, s.messages
                 FROM discovered_sender s JOIN organization o ON s.organization_id = o.id
                 WHERE (?1 IS NULL OR o.name = ?1)
                   AND NOT EXISTS (SELECT 1 FROM account a WHERE a.address = s.address)
                 ORDER BY s.last_seen DESC, s.address",
            [org],
            |r| {
                Ok(Discovered {
                    organization: r.get(0)?,
                    address: r.get(1)?,
                    first_seen: r.get(2)?,
                    last_seen: r.get(3)?,
                    messages: r.get(4)?,
                })
            },
        )
    }
}
