use rusqlite::params;

use super::{sql_enum, SqliteStore, Tx};
use crate::model::{now, DkimAlgorithm, DkimKeyInfo, DkimKeyState, SigningKey};
use crate::store::{refused, validate_selector, Keys, Result};

/// A key's id, algorithm and state; refused when the domain has no such selector.
fn key_row(
    tx: &Tx<'_>,
    domain_id: i64,
    domain: &str,
    selector: &str,
) -> Result<(i64, DkimAlgorithm, DkimKeyState)> {
    tx.row(
        "SELECT id, algorithm, state FROM dkim_key WHERE domain_id = ?1 AND selector = ?2",
        params![domain_id, selector],
        |r| {
            Ok((
                r.get(0)?,
                sql_enum(DkimAlgorithm::parse, r.get(1)?)?,
                sql_enum(DkimKeyState::parse, r.get(2)?)?,
            ))
        },
    )?
    .map_or_else(
        || {
            refused(format!(
                "domain {domain} has no DKIM key with selector {selector}"
            ))
        },
        Ok,
    )
}

impl Keys for SqliteStore {
    fn dkim_add(
        &mut self,
        domain: &str,
        selector: &str,
        algorithm: DkimAlgorithm,
        private_key: &[u8],
        public_key: &str,
    ) -> Result<()> {
        validate_selector(selector)?;
        self.write(|tx| {
            let (domain_id, org, _) = tx.domain_row(domain)?;
            if tx.value(
                "SELECT EXISTS(SELECT 1 FROM dkim_key WHERE domain_id = ?1 AND selector = ?2)",
                params![domain_id, selector],
            )? {
                return refused(format!("domain {domain} already has a key with selector {selector}; choose another --selector"));
            }
            tx.execute(
                "INSERT INTO dkim_key (domain_id, selector, algorithm, private_key, public_key, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![domain_id, selector, algorithm.as_str(), private_key, public_key, now()],
            )?;
            tx.admin(
                Some(&org),
                format!("dkim keygen {domain} selector={selector} algorithm={algorithm}"),
            )
        })
    }

    fn dkim_list(&self, domain: Option<&str>) -> Result<Vec<DkimKeyInfo>> {
        self.db().list(
            "SELECT d.name, k.selector, k.algorithm, k.public_key, k.state, k.created, k.activated, k.retired
                 FROM dkim_key k JOIN domain d ON k.domain_id = d.id
                 WHERE ?1 IS NULL OR d.name = ?1 ORDER BY d.name, k.created, k.selector",
            [domain],
            |r| {
                Ok(DkimKeyInfo {
                    domain: r.get(0)?,
                    selector: r.get(1)?,
                    algorithm: sql_enum(DkimAlgorithm::parse, r.get(2)?)?,
                    public_key: r.get(3)?,
                    state: sql_enum(DkimKeyState::parse, r.get(4)?)?,
                    created: r.get(5)?,
                    activated: r.get(6)?,
                    retired: r.get(7)?,
                })
            },
        )
    }

    fn dkim_activate(&mut self, domain: &str, selector: &str) -> Result<Option<String>> {
        self.write(|tx| {
            let (domain_id, org, _) = tx.domain_row(domain)?;
            let (id, algorithm, state) = key_row(tx, domain_id, domain, selector)?;
            if state == DkimKeyState::Active {
                return refused(format!("key {selector} of {domain} is already active"));
            }
            let previous: Option<(i64, String)> = tx.row(
                "SELECT id, selector FROM dkim_key WHERE domain_id = ?1 AND algorithm = ?2 AND state = 'active'",
                params![domain_id, algorithm.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if let Some((old, _)) = &previous {
                tx.execute(
                    "UPDATE dkim_key SET state = 'retired', retired = ?1 WHERE id = ?2",
                    params![now(), old],
                )?;
            }
            tx.execute(
                "UPDATE dkim_key SET state = 'active', activated = ?1, retired = NULL WHERE id = ?2",
                params![now(), id],
            )?;
            let detail = match &previous {
                Some((_, old)) => {
                    format!("dkim activate {domain} selector={selector} (retired {old})")
                }
                None => format!("dkim activate {domain} selector={selector}"),
            };
            tx.admin(Some(&org), detail)?;
            Ok(previous.map(|(_, s)| s))
        })
    }

    fn dkim_retire(&mut self, domain: &str, selector: &str) -> Result<()> {
        self.write(|tx| {
            let (domain_id, org, _) = tx.domain_row(domain)?;
            let (id, _, state) = key_row(tx, domain_id, domain, selector)?;
            if state == DkimKeyState::Retired {
                return refused(format!("key {selector} of {domain} is already retired"));
            }
            tx.execute(
                "UPDATE dkim_key SET state = 'retired', retired = ?1 WHERE id = ?2",
                params![now(), id],
            )?;
            tx.admin(
                Some(&org),
                format!("dkim retire {domain} selector={selector}"),
            )
        })
    }

    fn dkim_signing_keys(&self, domain: &str) -> Result<Vec<SigningKey>> {
        self.db().list(
            "SELECT d.name, k.selector, k.algorithm, k.private_key
                 FROM dkim_key k JOIN domain d ON k.domain_id = d.id
                 WHERE d.name = ?1 AND k.state = 'active' AND d.active = 1
                 ORDER BY k.algorithm DESC, k.selector",
            [domain],
            |r| {
                Ok(SigningKey {
                    domain: r.get(0)?,
                    selector: r.get(1)?,
                    algorithm: sql_enum(DkimAlgorithm::parse, r.get(2)?)?,
                    private_pkcs8_der: r.get(3)?,
                })
            },
        )
    }
}
