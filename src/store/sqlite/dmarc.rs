use rusqlite::params;

use super::{SqliteStore, Tx};
use crate::model::{DmarcRow, Event, PublishedTags, SentReport};
use crate::store::{DmarcResults, Result};

/// A JSON column back to its value; anything else is a corrupt row.
fn json_col<T: serde::de::DeserializeOwned>(s: String) -> rusqlite::Result<T> {
    serde_json::from_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serializes")
}

/// Inserts events, then DMARC results, in the open transaction `tx`.
fn insert_batch(tx: &Tx<'_>, events: &[Event], rows: &[DmarcRow]) -> Result<()> {
    events.iter().try_for_each(|ev| tx.insert_event(ev))?;
    rows.iter().try_for_each(|r| {
                tx.execute(
                    "INSERT INTO dmarc_result (time, policy_domain, p, sp, pct, adkim, aspf, fo, header_from,
                         envelope_from, source_ip, disposition, dkim_aligned, spf_aligned, reasons, dkim, spf, rua)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                    params![
                        r.time,
                        r.policy_domain,
                        r.published.p,
                        r.published.sp,
                        r.published.pct,
                        r.published.adkim,
                        r.published.aspf,
                        r.published.fo,
                        r.header_from,
                        r.envelope_from,
                        r.source_ip,
                        r.disposition,
                        r.dkim_aligned,
                        r.spf_aligned,
                        json(&r.reasons),
                        json(&r.dkim),
                        json(&r.spf),
                        json(&r.rua),
                    ],
                )
                .map(drop)
            })
}

impl DmarcResults for SqliteStore {
    fn record_batch(&mut self, events: &[Event], rows: &[DmarcRow]) -> Result<()> {
        self.write(|tx| insert_batch(tx, events, rows))
    }

    fn record_replayed(
        &mut self,
        events: &[Event],
        rows: &[DmarcRow],
        journal: &str,
        after: u64,
        upto: u64,
    ) -> Result<bool> {
        // The journal is removed once this returns: the commit must survive a power
        // failure too, which synchronous = NORMAL (WAL) does not promise.
        self.set_synchronous("FULL")?;
        let out = self.write(|tx| {
            let mark: i64 = tx
                .row(
                    "SELECT upto FROM journal_replay WHERE journal = ?1",
                    [journal],
                    |r| r.get(0),
                )?
                .unwrap_or(0);
            if mark != after as i64 {
                return Ok(false);
            }
            insert_batch(tx, events, rows)?;
            tx.execute("DELETE FROM journal_replay WHERE journal <> ?1", [journal])?;
            tx.execute(
                "INSERT INTO journal_replay (journal, upto) VALUES (?1, ?2)
                 ON CONFLICT (journal) DO UPDATE SET upto = excluded.upto",
                params![journal, upto as i64],
            )?;
            Ok(true)
        });
        let reset = self.set_synchronous("NORMAL");
        out.and_then(|written| reset.map(|()| written))
    }

    fn replayed_upto(&self, journal: &str) -> Result<u64> {
        Ok(self
            .db()
            .row(
                "SELECT upto FROM journal_replay WHERE journal = ?1",
                [journal],
                |r| r.get::<_, i64>(0),
            )?
            .map_or(0, |n| n.max(0) as u64))
    }
    fn dmarc_rows(&self, begin: i64, end: i64) -> Result<Vec<DmarcRow>> {
        self.db().list(
            "SELECT time, policy_domain, p, sp, pct, adkim, aspf, fo, header_from, envelope_from,
                    source_ip, disposition, dkim_aligned, spf_aligned, reasons, dkim, spf, rua
             FROM dmarc_result WHERE time >= ?1 AND time <= ?2 ORDER BY id",
            [begin, end],
            |r| {
                Ok(DmarcRow {
                    time: r.get(0)?,
                    policy_domain: r.get(1)?,
                    published: PublishedTags {
                        p: r.get(2)?,
                        sp: r.get(3)?,
                        pct: r.get(4)?,
                        adkim: r.get(5)?,
                        aspf: r.get(6)?,
                        fo: r.get(7)?,
                    },
                    header_from: r.get(8)?,
                    envelope_from: r.get(9)?,
                    source_ip: r.get(10)?,
                    disposition: r.get(11)?,
                    dkim_aligned: r.get(12)?,
                    spf_aligned: r.get(13)?,
                    reasons: json_col(r.get(14)?)?,
                    dkim: json_col(r.get(15)?)?,
                    spf: json_col(r.get(16)?)?,
                    rua: json_col(r.get(17)?)?,
                })
            },
        )
    }

    fn prune_dmarc(&mut self, before: i64) -> Result<usize> {
        self.write(|tx| {
            let n = tx.execute("DELETE FROM dmarc_result WHERE time < ?1", [before])?;
            tx.execute("DELETE FROM dmarc_report_sent WHERE end < ?1", [before])?;
            Ok(n)
        })
    }

    fn dmarc_report_sent(
        &self,
        policy_domain: &str,
        begin: i64,
        end: i64,
    ) -> Result<Option<SentReport>> {
        self.db().row(
            "SELECT policy_domain, begin, end, report_id, recipients, sent FROM dmarc_report_sent
             WHERE policy_domain = ?1 AND begin = ?2 AND end = ?3",
            params![policy_domain, begin, end],
            |r| {
                Ok(SentReport {
                    policy_domain: r.get(0)?,
                    begin: r.get(1)?,
                    end: r.get(2)?,
                    report_id: r.get(3)?,
                    recipients: json_col(r.get(4)?)?,
                    sent: r.get(5)?,
                })
            },
        )
    }

    fn record_dmarc_report(&mut self, report: &SentReport) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO dmarc_report_sent (policy_domain, begin, end, report_id, recipients, sent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    report.policy_domain,
                    report.begin,
                    report.end,
                    report.report_id,
                    json(&report.recipients),
                    report.sent
                ],
            )
            .map(drop)
        })
    }
}
