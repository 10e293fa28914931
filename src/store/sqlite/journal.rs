use rusqlite::params;

use super::{sql_enum, SqliteStore};
use crate::model::{Event, EventFilter, EventKind};
use crate::store::{Journal, Result};

impl Journal for SqliteStore {
    fn record_events(&mut self, events: &[Event]) -> Result<()> {
        self.write(|tx| events.iter().try_for_each(|ev| tx.insert_event(ev)))
    }

    fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let limit = filter.limit.map(i64::from).unwrap_or(-1);
        self.db().list(
            "SELECT * FROM (
                   SELECT id, time, kind, outcome, login, org, client_ip, sender, header_from, rcpt_count, queue_id, reason
                   FROM event
                   WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR login = ?2)
                     AND (?6 IS NULL OR org = ?6 COLLATE NOCASE)
                     AND (?3 IS NULL OR sender = ?3 OR header_from LIKE '%' || ?3 || '%')
                     AND (?4 IS NULL OR time >= ?4)
                   ORDER BY id DESC LIMIT ?5
                 ) ORDER BY id",
            params![
                filter.kind.map(EventKind::as_str),
                filter.login,
                filter.sender,
                filter.since,
                limit,
                filter.org
            ],
            |r| {
                Ok(Event {
                    id: r.get(0)?,
                    time: r.get(1)?,
                    kind: sql_enum(EventKind::parse, r.get(2)?)?,
                    outcome: r.get(3)?,
                    login: r.get(4)?,
                    org: r.get(5)?,
                    client_ip: r.get(6)?,
                    sender: r.get(7)?,
                    header_from: r.get(8)?,
                    rcpt_count: r.get(9)?,
                    queue_id: r.get(10)?,
                    reason: r.get(11)?,
                })
            },
        )
    }

    fn prune_events(&mut self, before: i64) -> Result<usize> {
        self.db()
            .execute("DELETE FROM event WHERE time < ?1", [before])
    }
}
