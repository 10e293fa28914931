use rusqlite::params;

use super::SqliteStore;
use crate::model::{format_time, now, Credential, LoginRecord};
use crate::store::{refused, validate_label, Credentials, Result};

impl Credentials for SqliteStore {
    fn credential_add(&mut self, org: &str, label: &str, username: &str, hash: &str) -> Result<()> {
        validate_label(label)?;
        self.write(|tx| {
            let (org_id, org) = tx.org_id(org)?;
            if tx.value(
                "SELECT EXISTS(SELECT 1 FROM credential WHERE organization_id = ?1 AND label = ?2 AND revoked IS NULL)",
                params![org_id, label],
            )? {
                return refused(format!(
                    "organization {org:?} already has a credential labelled {label:?}; choose another label or revoke that one"
                ));
            }
            if tx.value("SELECT EXISTS(SELECT 1 FROM credential WHERE username = ?1)", [username])? {
                return refused(format!("username {username} is taken"));
            }
            tx.execute(
                "INSERT INTO credential (organization_id, label, username, hash, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![org_id, label, username, hash, now()],
            )?;
            tx.admin(Some(&org), format!("credential new {username} label={label}"))
        })
    }

    fn username_exists(&self, username: &str) -> Result<bool> {
        self.db().value(
            "SELECT EXISTS(SELECT 1 FROM credential WHERE username = ?1)",
            [username],
        )
    }

    fn credential_list(&self, org: Option<&str>) -> Result<Vec<Credential>> {
        let db = self.db();
        if let Some(org) = org {
            db.org_id(org)?;
        }
        db.list(
            "SELECT o.name, c.label, c.username, c.created, c.last_used, c.last_ip, c.revoked
                 FROM credential c JOIN organization o ON c.organization_id = o.id
                 WHERE ?1 IS NULL OR o.name = ?1 ORDER BY o.name, c.label, c.created",
            [org],
            |r| {
                Ok(Credential {
                    organization: r.get(0)?,
                    label: r.get(1)?,
                    username: r.get(2)?,
                    created: r.get(3)?,
                    last_used: r.get(4)?,
                    last_ip: r.get(5)?,
                    revoked: r.get(6)?,
                })
            },
        )
    }

    fn credential_revoke(&mut self, username: &str) -> Result<()> {
        self.write(|tx| {
            let row: Option<(i64, String, Option<i64>)> = tx.row(
                "SELECT c.id, o.name, c.revoked FROM credential c JOIN organization o ON c.organization_id = o.id WHERE c.username = ?1",
                [username],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let Some((id, org, revoked)) = row else {
                return refused(format!("no credential with username {username}"));
            };
            if let Some(t) = revoked {
                return refused(format!(
                    "credential {username} was already revoked at {}",
                    format_time(t)
                ));
            }
            tx.execute(
                "UPDATE credential SET revoked = ?1 WHERE id = ?2",
                params![now(), id],
            )?;
            tx.admin(Some(&org), format!("credential revoke {username}"))
        })
    }

    fn login_record(&self, username: &str) -> Result<Option<LoginRecord>> {
        self.db().row(
            "SELECT c.id, o.name, c.hash, c.revoked IS NOT NULL
                 FROM credential c JOIN organization o ON c.organization_id = o.id
                 WHERE c.username = ?1 COLLATE BINARY",
            [username],
            |r| {
                Ok(LoginRecord {
                    credential_id: r.get(0)?,
                    organization: r.get(1)?,
                    hash: r.get(2)?,
                    revoked: r.get(3)?,
                })
            },
        )
    }

    fn credential_used(&mut self, credential_id: i64, client_ip: Option<&str>) -> Result<()> {
        self.db()
            .execute(
                "UPDATE credential SET last_used = ?1, last_ip = ?2 WHERE id = ?3",
                params![now(), client_ip, credential_id],
            )
            .map(drop)
    }
}
