use rusqlite::params;

use super::{sql_enum, SqliteStore};
use crate::model::{
    KnownAddress, ThrottleAttempt, ThrottleCount, ThrottleEntry, ThrottleKind, ThrottleRelease,
};
use crate::store::{refused, Result, Throttle};

/// One more attempt on a counter: a counter whose window has ended starts again.
const COUNT_ADDRESS: &str = "
    INSERT INTO throttle (kind, key, failures, expires) VALUES ('address', ?1, 1, ?2 + ?3)
    ON CONFLICT (kind, key) DO UPDATE SET
        failures = CASE WHEN expires <= ?2 THEN 1 ELSE failures + 1 END,
        expires = ?2 + ?3
    RETURNING failures";

/// The same for a username, unless the address is known for it (then no row comes back).
const COUNT_USERNAME: &str = "
    INSERT INTO throttle (kind, key, failures, expires)
    SELECT 'username', ?1, 1, ?2 + ?3
    WHERE NOT EXISTS (SELECT 1 FROM throttle_known WHERE username = ?1 AND address = ?4 AND expires > ?2)
    ON CONFLICT (kind, key) DO UPDATE SET
        failures = CASE WHEN expires <= ?2 THEN 1 ELSE failures + 1 END,
        expires = ?2 + ?3
    RETURNING failures";

impl Throttle for SqliteStore {
    fn throttle_attempt(&mut self, a: &ThrottleAttempt) -> Result<ThrottleCount> {
        self.write(|tx| {
            let address: u32 = tx.value(COUNT_ADDRESS, params![a.address, a.now, a.window])?;
            let within = a.address_limit == 0 || address <= a.address_limit;
            let (username, known) = match a.username {
                Some(user) if within => {
                    let n: Option<u32> = tx.row(
                        COUNT_USERNAME,
                        params![user, a.now, a.window, a.address],
                        |r| r.get(0),
                    )?;
                    (n, n.is_none())
                }
                _ => (None, false),
            };
            Ok(ThrottleCount {
                address,
                username,
                known,
            })
        })
    }

    fn throttle_release(&mut self, r: &ThrottleRelease) -> Result<()> {
        self.write(|tx| release_in(tx, r))
    }

    fn login_succeeded(
        &mut self,
        credential_id: i64,
        client_ip: Option<&str>,
        r: &ThrottleRelease,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE credential SET last_used = ?1, last_ip = ?2 WHERE id = ?3",
                params![crate::model::now(), client_ip, credential_id],
            )?;
            release_in(tx, r)
        })
    }

    fn throttle_list(&self, now: i64) -> Result<Vec<ThrottleEntry>> {
        self.db().list(
            "SELECT kind, key, failures, expires FROM throttle WHERE failures > 0 AND expires > ?1
             ORDER BY failures DESC, kind, key",
            [now],
            |r| {
                Ok(ThrottleEntry {
                    kind: sql_enum(ThrottleKind::parse, r.get(0)?)?,
                    key: r.get(1)?,
                    failures: r.get(2)?,
                    window_end: r.get(3)?,
                })
            },
        )
    }

    fn throttle_known(&self, now: i64) -> Result<Vec<KnownAddress>> {
        self.db().list(
            "SELECT username, address, expires FROM throttle_known WHERE expires > ?1
             ORDER BY username, address",
            [now],
            |r| {
                Ok(KnownAddress {
                    username: r.get(0)?,
                    address: r.get(1)?,
                    expires: r.get(2)?,
                })
            },
        )
    }

    fn throttle_clear(&mut self, key: &str) -> Result<usize> {
        self.write(|tx| {
            let n = tx.execute(
                "DELETE FROM throttle WHERE kind IN ('address', 'username') AND key = ?1",
                [key],
            )?;
            if n == 0 {
                return refused(format!(
                    "nothing is throttled under {key:?}: `postwarden throttle list` shows what is \
                     (IPv6 clients are counted per /64, e.g. 2001:db8:1:2::/64)"
                ));
            }
            tx.admin(None, format!("throttle clear {key}"))?;
            Ok(n)
        })
    }

    fn throttle_prune(&mut self, now: i64) -> Result<usize> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM throttle WHERE expires <= ?1", [now])?;
            Ok(n + tx.execute("DELETE FROM throttle_known WHERE expires <= ?1", [now])?)
        })
    }
}

/// The statements of [`Throttle::throttle_release`], within `tx`.
fn release_in(tx: &super::Tx<'_>, r: &ThrottleRelease) -> Result<()> {
    tx.execute(
        "UPDATE throttle SET failures = MAX(failures - 1, 0)
         WHERE (kind = 'address' AND key = ?1) OR (kind = 'username' AND key = ?2)",
        params![r.address, r.username],
    )?;
    if let Some((user, until)) = r.known {
        tx.execute(
            "INSERT INTO throttle_known (username, address, expires) VALUES (?1, ?2, ?3)
             ON CONFLICT (username, address) DO UPDATE SET expires = excluded.expires",
            params![user, r.address, until],
        )?;
    }
    Ok(())
}
