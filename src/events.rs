//! Appends events to the store from the daemon, off the async threads, in the order they
//! were handed over: one writer thread takes them from a channel (in batches under load).
//! An event that cannot be written (store locked past its timeout, missing) is kept in a
//! bounded backlog and written with the next event that can be, so the log keeps the
//! temporary failures the store itself caused.
//!
//! The inbound milter's DMARC results for aggregate reports ([`DmarcRow`]) take the same
//! path: handed over in order with the events, written in the same transaction, kept in
//! the same backlog.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tracing::warn;

use crate::model::{DmarcRow, Event};
use crate::store::Pool;

/// Events kept while the store cannot take them; the oldest go first past this.
const MAX_BACKLOG: usize = 10_000;
/// Events written in one batch at most.
const MAX_BATCH: usize = 1_000;

/// One thing to write: an event, or a message's DMARC result.
#[derive(Debug)]
enum Entry {
    Event(Event),
    Dmarc(DmarcRow),
}

/// What the writer thread is asked to do.
enum Job {
    Write(Box<Entry>, Option<tokio::sync::oneshot::Sender<()>>),
    Flush(mpsc::Sender<()>),
}

pub struct EventSink {
    store: Arc<Pool>,
    backlog: Mutex<VecDeque<Entry>>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl EventSink {
    /// A sink with its writer thread (which ends when the sink is dropped).
    pub fn new(store: Arc<Pool>) -> Arc<EventSink> {
        let (tx, rx) = mpsc::channel::<Job>();
        let sink = Arc::new(EventSink {
            store,
            backlog: Mutex::new(VecDeque::new()),
            jobs: Mutex::new(tx),
        });
        let weak = Arc::downgrade(&sink);
        std::thread::Builder::new()
            .name("postwarden-events".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let Some(me) = weak.upgrade() else { break };
                    let mut events = Vec::new();
                    let mut acks = Vec::new();
                    let mut flushes = Vec::new();
                    for job in std::iter::once(first).chain(rx.try_iter().take(MAX_BATCH)) {
                        match job {
                            Job::Write(entry, ack) => {
                                events.push(*entry);
                                acks.extend(ack);
                            }
                            Job::Flush(done) => flushes.push(done),
                        }
                    }
                    me.write_pending(events);
                    for a in acks {
                        let _ = a.send(());
                    }
                    for f in flushes {
                        let _ = f.send(());
                    }
                }
            })
            .expect("event writer thread");
        sink
    }

    fn send(&self, job: Job) -> bool {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.send(job).is_ok()
    }

    /// Writes `event` (and any backlog) now, on the calling thread: blocking.
    pub fn write_blocking(&self, event: Event) {
        self.write_pending(vec![Entry::Event(event)]);
    }

    /// Hands `event` to the writer and waits until it is written (or kept for later).
    pub async fn write(&self, event: Event) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.send(Job::Write(Box::new(Entry::Event(event)), Some(tx))) {
            let _ = rx.await;
        }
    }

    /// Hands `event` to the writer without waiting; the order of events is kept.
    pub fn spawn_write(&self, event: Event) {
        self.send(Job::Write(Box::new(Entry::Event(event)), None));
    }

    /// Hands a message's DMARC result to the writer without waiting; it is written in
    /// order with the events, in the same transaction as those of its batch.
    pub fn spawn_dmarc(&self, row: DmarcRow) {
        self.send(Job::Write(Box::new(Entry::Dmarc(row)), None));
    }

    /// Waits until everything handed over so far is written, then retries the backlog
    /// once (at shutdown). Blocking.
    pub fn flush_blocking(&self) {
        let (tx, rx) = mpsc::channel();
        if self.send(Job::Flush(tx)) {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
        if self.backlog_len() > 0 {
            self.write_pending(Vec::new());
        }
    }

    fn write_pending(&self, entries: Vec<Entry>) {
        let mut pending: Vec<Entry> = {
            let mut b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
            b.drain(..).collect()
        };
        pending.extend(entries);
        if pending.is_empty() {
            return;
        }
        let (mut events, mut rows) = (Vec::new(), Vec::new());
        for entry in &pending {
            match entry {
                Entry::Event(ev) => events.push(ev.clone()),
                Entry::Dmarc(row) => rows.push(row.clone()),
            }
        }
        let result = self.store.with(|s| s.record_batch(&events, &rows));
        if let Err(e) = result {
            let mut b = self.backlog.lock().unwrap_or_else(|p| p.into_inner());
            // Keep order: what failed now goes before anything queued meanwhile.
            for entry in pending.into_iter().rev() {
                b.push_front(entry);
            }
            while b.len() > MAX_BACKLOG {
                b.pop_front();
            }
            warn!(error = %e, kept = b.len(), "events not recorded yet; kept for the next write");
        }
    }

    pub fn backlog_len(&self) -> usize {
        self.backlog.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::{EventFilter, EventKind};
    use crate::store::prelude::*;
    use crate::store::sqlite::SqliteStore as Store;
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
        let sink = EventSink::new(Pool::new(&cfg));
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

    #[test]
    fn dmarc_results_share_the_backlog_and_the_transaction() {
        use crate::model::{DmarcRow, PublishedTags};
        let dir = tempfile::tempdir().unwrap();
        let cfg = Arc::new(
            Config::parse(
                &format!("data_dir = {:?}\n", dir.path().display().to_string()),
                "t",
            )
            .unwrap(),
        );
        drop(Store::open(&cfg.store_path(), Duration::from_secs(1), "t").unwrap());
        let sink = EventSink::new(Pool::new(&cfg));
        let row = DmarcRow {
            time: 5,
            policy_domain: "a.example".into(),
            published: PublishedTags {
                p: "none".into(),
                sp: "none".into(),
                pct: 100,
                adkim: "r".into(),
                aspf: "r".into(),
                fo: "0".into(),
            },
            header_from: "a.example".into(),
            envelope_from: "a.example".into(),
            source_ip: "192.0.2.1".into(),
            disposition: "none".into(),
            dkim_aligned: "pass".into(),
            spf_aligned: "fail".into(),
            reasons: vec![],
            dkim: vec![],
            spf: vec![],
            rua: vec![],
        };
        let aside = dir.path().join("aside.db");
        std::fs::rename(cfg.store_path(), &aside).unwrap();
        sink.write_pending(vec![Entry::Dmarc(row.clone())]);
        sink.write_blocking(Event::new(EventKind::Mail, "first"));
        assert_eq!(sink.backlog_len(), 2, "the result waits with the event");
        std::fs::rename(&aside, cfg.store_path()).unwrap();
        sink.write_blocking(Event::new(EventKind::Mail, "second"));
        assert_eq!(sink.backlog_len(), 0);
        let store = Store::open_existing(&cfg.store_path(), Duration::from_secs(1)).unwrap();
        assert_eq!(store.dmarc_rows(0, 10).unwrap(), [row]);
        assert_eq!(store.events(&EventFilter::default()).unwrap().len(), 2);
    }

    #[tokio::test]
    async fn events_handed_over_keep_their_order() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Arc::new(
            Config::parse(
                &format!("data_dir = {:?}\n", dir.path().display().to_string()),
                "t",
            )
            .unwrap(),
        );
        drop(Store::open(&cfg.store_path(), Duration::from_secs(1), "t").unwrap());
        let sink = EventSink::new(Pool::new(&cfg));
        for i in 0..200 {
            sink.spawn_write(Event::new(EventKind::Auth, &i.to_string()));
        }
        sink.write(Event::new(EventKind::Auth, "last")).await;
        let store = Store::open_existing(&cfg.store_path(), Duration::from_secs(1)).unwrap();
        let outcomes: Vec<String> = store
            .events(&EventFilter::default())
            .unwrap()
            .into_iter()
            .map(|e| e.outcome)
            .collect();
        let mut expected: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        expected.push("last".into());
        assert_eq!(outcomes, expected);
    }
}
