//! Appends events to the store from the daemon, off the async threads. An event that
//! cannot be written (store locked past its timeout, missing) is kept in a bounded
//! backlog and written with the next event that can be, so the log keeps the temporary
//! failures the store itself caused.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tracing::warn;

use crate::config::Config;
use crate::store::{Event, Store};

/// Events kept while the store cannot take them; the oldest go first past this.
const MAX_BACKLOG: usize = 10_000;

pub struct EventSink {
    cfg: Arc<Config>,
    backlog: Mutex<VecDeque<Event>>,
}

impl EventSink {
    pub fn new(cfg: Arc<Config>) -> Arc<EventSink> {
        Arc::new(EventSink {
            cfg,
            backlog: Mutex::new(VecDeque::new()),
        })
    }

    /// Writes `event` (and any backlog) now, on the calling thread: blocking.
    pub fn write_blocking(&self, event: Event) {
        self.write_pending(Some(event));
    }

    /// Writes the backlog, if any (at shutdown).
    pub fn flush_blocking(&self) {
        if self.backlog_len() > 0 {
            self.write_pending(None);
        }
    }

    fn write_pending(&self, event: Option<Event>) {
        let mut pending: Vec<Event> = {
            let mut b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
            b.drain(..).collect()
        };
        pending.extend(event);
        let result = Store::open_existing(&self.cfg.store_path(), self.cfg.store.busy_timeout.0)
            .and_then(|mut s| {
                for ev in &pending {
                    s.record_event(ev)?;
                }
                Ok(())
            });
        if let Err(e) = result {
            let mut b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
            // Keep order: what failed now goes before anything queued meanwhile.
            for ev in pending.into_iter().rev() {
                b.push_front(ev);
            }
            while b.len() > MAX_BACKLOG {
                b.pop_front();
            }
            warn!(error = %e, kept = b.len(), "events not recorded yet; kept for the next write");
        }
    }

    /// Writes `event` on the blocking pool and waits for it.
    pub async fn write(self: &Arc<Self>, event: Event) {
        let me = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || me.write_blocking(event)).await;
    }

    /// Writes `event` on the blocking pool without waiting.
    pub fn spawn_write(self: &Arc<Self>, event: Event) {
        let me = Arc::clone(self);
        drop(tokio::task::spawn_blocking(move || {
            me.write_blocking(event)
        }));
    }

    pub fn backlog_len(&self) -> usize {
        self.backlog.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventFilter, EventKind};
    use std::time::Duration;

    #[test]
    fn events_survive_a_missing_store_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Arc::new(
            Config::parse(
                &format!("data_dir = {:?}\n", dir.path().display().to_string()),
                "t",
            )
            .unwrap(),
        );
        drop(Store::open(&cfg.store_path(), Duration::from_secs(1), "t").unwrap());
        let sink = EventSink::new(Arc::clone(&cfg));
        let aside = dir.path().join("aside.db");
        std::fs::rename(cfg.store_path(), &aside).unwrap();
        for outcome in ["first", "second"] {
            sink.write_blocking(Event::new(EventKind::Mail, outcome));
        }
        assert_eq!(sink.backlog_len(), 2);
        assert!(
            !cfg.store_path().exists(),
            "the sink must never create a store"
        );
        std::fs::rename(&aside, cfg.store_path()).unwrap();
        sink.write_blocking(Event::new(EventKind::Mail, "third"));
        assert_eq!(sink.backlog_len(), 0);
        let store = Store::open_existing(&cfg.store_path(), Duration::from_secs(1)).unwrap();
        let outcomes: Vec<String> = store
            .events(&EventFilter::default())
            .unwrap()
            .into_iter()
            .map(|e| e.outcome)
            .collect();
        assert_eq!(outcomes, ["first", "second", "third"]);
    }
}
