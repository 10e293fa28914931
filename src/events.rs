//! Appends events to the store from the daemon, off the async threads, in the order they
//! were handed over: one writer thread takes them from a channel (in batches under load).
//!
//! An event that cannot be written (store locked past its timeout, missing) goes to the
//! event journal ([`journal`]), an fsync'd append-only file beside the store, so that a
//! crash during a store outage loses nothing. While the journal holds entries, new ones
//! are appended after them; the writer tries the store again at most every
//! [`RETRY_EVERY`] (and at start), then writes the journal into the store in order, once,
//! and removes it. The journal is bounded (`store.journal_max_mib`): past the bound new
//! entries are refused, counted and logged as errors. Only when the journal itself cannot
//! be written (a disk fault) are entries kept in memory instead, in a bounded backlog
//! ([`MAX_BACKLOG`], the oldest dropped past it), tried again with the next write. A sink
//! without a journal ([`EventSink::new`], for in-process tests) keeps that backlog only.
//!
//! The inbound milter's DMARC results for aggregate reports ([`DmarcRow`]) take the same
//! path: handed over in order with the events, written in the same transaction, kept in
//! the same journal and backlog.

mod journal;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use journal::EventJournal;

use crate::model::{DmarcRow, Event};
use crate::store::Pool;

/// Events kept in memory while neither the store nor the journal can take them; the
/// oldest go first past this.
pub const MAX_BACKLOG: usize = 10_000;
/// Events written in one batch at most.
const MAX_BATCH: usize = 1_000;
/// While the journal holds entries, how often the writer tries the store again (each try
/// may wait `store.busy_timeout`).
pub const RETRY_EVERY: Duration = Duration::from_secs(5);

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

struct State {
    /// Entries neither the store nor the journal took, oldest first.
    backlog: VecDeque<Entry>,
    journal: Option<EventJournal>,
    /// When the store last refused a write while the journal held entries.
    failed_at: Option<Instant>,
    /// Entries lost since the start (journal full, backlog full).
    dropped: u64,
}

pub struct EventSink {
    store: Arc<Pool>,
    state: Mutex<State>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl EventSink {
    /// A sink with its writer thread (which ends when the sink is dropped), keeping what
    /// the store cannot take in memory only.
    pub fn new(store: Arc<Pool>) -> Arc<EventSink> {
        Self::start(store, None)
    }

    /// A sink whose entries the store cannot take go to the journal at `path` (at most
    /// `max_bytes`); what it holds from before is written into the store first.
    pub fn with_journal(store: Arc<Pool>, path: PathBuf, max_bytes: u64) -> Arc<EventSink> {
        Self::start(store, Some(EventJournal::new(path, max_bytes)))
    }

    fn start(store: Arc<Pool>, journal: Option<EventJournal>) -> Arc<EventSink> {
        let (tx, rx) = mpsc::channel::<Job>();
        let sink = Arc::new(EventSink {
            store,
            state: Mutex::new(State {
                backlog: VecDeque::new(),
                journal,
                failed_at: None,
                dropped: 0,
            }),
            jobs: Mutex::new(tx),
        });
        let weak = Arc::downgrade(&sink);
        std::thread::Builder::new()
            .name("postwarden-events".into())
            .spawn(move || {
                // What an earlier run left in the journal, before anything new.
                if let Some(me) = weak.upgrade() {
                    me.retry(true);
                }
                loop {
                    let wait = match weak.upgrade() {
                        Some(me) if me.waiting() => RETRY_EVERY,
                        Some(_) => Duration::from_secs(3600),
                        None => break,
                    };
                    let first = match rx.recv_timeout(wait) {
                        Ok(job) => job,
                        Err(mpsc::RecvTimeoutError::Timeout) => {
                            if let Some(me) = weak.upgrade() {
                                me.retry(false);
                            }
                            continue;
                        }
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    };
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

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `event` (and anything kept) now, on the calling thread: blocking.
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

    /// Waits until everything handed over so far is written or kept, then tries once more
    /// to write what is kept (at shutdown). Blocking.
    pub fn flush_blocking(&self) {
        let (tx, rx) = mpsc::channel();
        if self.send(Job::Flush(tx)) {
            let _ = rx.recv_timeout(Duration::from_secs(30));
        }
        self.retry(true);
    }

    /// Whether entries wait in the journal or the backlog for the store.
    fn waiting(&self) -> bool {
        let mut st = self.lock();
        !st.backlog.is_empty()
            || st
                .journal
                .as_mut()
                .is_some_and(|j| j.has_entries().unwrap_or(true))
    }

    /// Tries to write what is kept: now if `force`, else not sooner than [`RETRY_EVERY`]
    /// after the last failure.
    fn retry(&self, force: bool) {
        let mut st = self.lock();
        if !force && st.failed_at.is_some_and(|t| t.elapsed() < RETRY_EVERY) {
            return;
        }
        self.write_locked(&mut st, Vec::new(), force);
    }

    fn write_pending(&self, entries: Vec<Entry>) {
        let mut st = self.lock();
        self.write_locked(&mut st, entries, false);
    }

    /// Writes `entries` after whatever is kept; a journal is replayed first unless the
    /// store failed less than [`RETRY_EVERY`] ago (and not `force`).
    fn write_locked(&self, st: &mut State, entries: Vec<Entry>, force: bool) {
        let mut pending: Vec<Entry> = st.backlog.drain(..).collect();
        pending.extend(entries);
        let journaled = match st.journal.as_mut().map(EventJournal::has_entries) {
            Some(Ok(has)) => has,
            Some(Err(e)) => {
                warn!(error = %e, "event journal unreadable");
                false
            }
            None => false,
        };
        if journaled {
            // Older entries wait in the journal: these go after them.
            self.keep(st, pending);
            if force || st.failed_at.is_none_or(|t| t.elapsed() >= RETRY_EVERY) {
                self.replay(st);
            }
            return;
        }
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
        if let Err(e) = self.store.with(|s| s.record_batch(&events, &rows)) {
            st.failed_at = Some(Instant::now());
            warn!(error = %e, entries = pending.len(), "events not recorded in the store yet; kept for later");
            self.keep(st, pending);
        }
    }

    /// Writes the journal into the store.
    fn replay(&self, st: &mut State) {
        let Some(journal) = st.journal.as_mut() else {
            return;
        };
        match journal.replay(&self.store) {
            Ok(0) => st.failed_at = None,
            Ok(n) => {
                st.failed_at = None;
                info!(entries = n, journal = %journal.path().display(), "event journal written into the store");
            }
            Err(e) => {
                st.failed_at = Some(Instant::now());
                warn!(error = %e, journal = %journal.path().display(), "event journal not written into the store yet");
            }
        }
    }

    /// Keeps entries the store did not take: in the journal, else in memory.
    fn keep(&self, st: &mut State, pending: Vec<Entry>) {
        if pending.is_empty() {
            return;
        }
        if let Some(journal) = st.journal.as_mut() {
            match journal.append(&pending) {
                Ok(a) => {
                    if a.refused > 0 {
                        st.dropped += a.refused as u64;
                        error!(
                            refused = a.refused,
                            dropped_since_start = st.dropped,
                            journal = %journal.path().display(),
                            "event journal full (store.journal_max_mib): events lost"
                        );
                    }
                    return;
                }
                Err(e) => {
                    error!(error = %e, journal = %journal.path().display(), "event journal not writable: events kept in memory only");
                }
            }
        }
        st.backlog.extend(pending);
        let over = st.backlog.len().saturating_sub(MAX_BACKLOG);
        if over > 0 {
            st.backlog.drain(..over);
            st.dropped += over as u64;
            error!(
                dropped = over,
                dropped_since_start = st.dropped,
                "event backlog full: the oldest events lost"
            );
        }
    }

    /// Entries kept in memory.
    pub fn backlog_len(&self) -> usize {
        self.lock().backlog.len()
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
        let (dir, cfg) = setup();
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
        assert_eq!(outcomes(&cfg), ["first", "second", "third"]);
    }

    fn dmarc_row() -> DmarcRow {
        use crate::model::PublishedTags;
        DmarcRow {
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
        }
    }

    #[test]
    fn dmarc_results_share_the_backlog_and_the_transaction() {
        let (dir, cfg) = setup();
        let sink = EventSink::new(Pool::new(&cfg));
        let row = dmarc_row();
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

    /// A config and store in a temporary directory.
    fn setup() -> (tempfile::TempDir, Arc<Config>) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Arc::new(
            Config::parse(
                &format!("data_dir = {:?}\n", dir.path().display().to_string()),
                "t",
            )
            .unwrap(),
        );
        drop(Store::open(&cfg.store_path(), Duration::from_secs(1), "t").unwrap());
        (dir, cfg)
    }

    fn journaled(cfg: &Arc<Config>, max_bytes: u64) -> Arc<EventSink> {
        EventSink::with_journal(Pool::new(cfg), cfg.event_journal_path(), max_bytes)
    }

    fn outcomes(cfg: &Config) -> Vec<String> {
        let store = Store::open_existing(&cfg.store_path(), Duration::from_secs(1)).unwrap();
        store
            .events(&EventFilter::default())
            .unwrap()
            .into_iter()
            .map(|e| e.outcome)
            .collect()
    }

    #[test]
    fn an_outage_goes_to_the_journal_which_is_replayed_once_in_order() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, cfg) = setup();
        let sink = journaled(&cfg, 1 << 20);
        let aside = dir.path().join("aside.db");
        std::fs::rename(cfg.store_path(), &aside).unwrap();
        for outcome in ["first", "second"] {
            sink.write_blocking(Event::new(EventKind::Mail, outcome));
        }
        let journal = cfg.event_journal_path();
        assert_eq!(sink.backlog_len(), 0, "kept on disk, not in memory");
        let mode = std::fs::metadata(&journal).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&journal).unwrap().lines().count(),
            3
        );
        std::fs::rename(&aside, cfg.store_path()).unwrap();
        // The next write comes after the journal (whether or not a retry ran meanwhile).
        sink.write_blocking(Event::new(EventKind::Mail, "third"));
        sink.retry(true);
        assert!(!journal.exists());
        assert_eq!(outcomes(&cfg), ["first", "second", "third"]);
        sink.write_blocking(Event::new(EventKind::Mail, "fourth"));
        assert_eq!(outcomes(&cfg), ["first", "second", "third", "fourth"]);
    }

    #[test]
    fn a_replay_cut_short_after_a_commit_writes_nothing_twice() {
        let (dir, cfg) = setup();
        let aside = dir.path().join("aside.db");
        std::fs::rename(cfg.store_path(), &aside).unwrap();
        let sink = journaled(&cfg, 1 << 20);
        for i in 1..=5 {
            sink.write_blocking(Event::new(EventKind::Auth, &i.to_string()));
        }
        drop(sink);
        std::fs::rename(&aside, cfg.store_path()).unwrap();
        // A crash right after the transaction that wrote entries 1 to 3 (and its mark),
        // before the journal was removed.
        let text = std::fs::read_to_string(cfg.event_journal_path()).unwrap();
        let id = serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).unwrap()
            ["journal"]
            .as_str()
            .unwrap()
            .to_string();
        let first3: Vec<Event> = ["1", "2", "3"]
            .iter()
            .map(|o| Event::new(EventKind::Auth, o))
            .collect();
        let mut store = Store::open_existing(&cfg.store_path(), Duration::from_secs(1)).unwrap();
        assert!(store.record_replayed(&first3, &[], &id, 0, 3).unwrap());
        assert!(
            !store.record_replayed(&first3, &[], &id, 0, 3).unwrap(),
            "a second writer writes nothing"
        );
        drop(store);
        // And a torn last line from a crash during an append.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(cfg.event_journal_path())
            .unwrap();
        std::io::Write::write_all(&mut f, b"{\"seq\":6,\"event\":{\"id\":0,\"ti").unwrap();
        drop(f);
        // The restart: the journal is replayed at once, the rest only.
        let sink = journaled(&cfg, 1 << 20);
        sink.flush_blocking();
        assert!(!cfg.event_journal_path().exists());
        assert_eq!(outcomes(&cfg), ["1", "2", "3", "4", "5"]);
    }

    #[test]
    fn a_full_journal_refuses_new_events_and_keeps_the_old() {
        let (dir, cfg) = setup();
        let aside = dir.path().join("aside.db");
        std::fs::rename(cfg.store_path(), &aside).unwrap();
        // Room for the header and about three events.
        let sink = journaled(&cfg, 1000);
        for i in 1..=10 {
            sink.write_blocking(Event::new(EventKind::Auth, &i.to_string()));
        }
        assert!(std::fs::metadata(cfg.event_journal_path()).unwrap().len() <= 1000);
        let kept = 10 - sink.lock().dropped as usize;
        assert!((1..10).contains(&kept), "{kept}");
        std::fs::rename(&aside, cfg.store_path()).unwrap();
        sink.flush_blocking();
        let expected: Vec<String> = (1..=kept).map(|i| i.to_string()).collect();
        assert_eq!(outcomes(&cfg), expected);
    }

    #[test]
    fn dmarc_results_go_through_the_journal_too() {
        let (dir, cfg) = setup();
        let aside = dir.path().join("aside.db");
        std::fs::rename(cfg.store_path(), &aside).unwrap();
        let sink = journaled(&cfg, 1 << 20);
        let row = dmarc_row();
        sink.write_pending(vec![Entry::Dmarc(row.clone())]);
        sink.write_blocking(Event::new(EventKind::Mail, "first"));
        drop(sink);
        std::fs::rename(&aside, cfg.store_path()).unwrap();
        journaled(&cfg, 1 << 20).flush_blocking();
        let store = Store::open_existing(&cfg.store_path(), Duration::from_secs(1)).unwrap();
        assert_eq!(store.dmarc_rows(0, 10).unwrap(), [row]);
        assert_eq!(outcomes(&cfg), ["first"]);
    }

    #[tokio::test]
    async fn events_handed_over_keep_their_order() {
        let (_dir, cfg) = setup();
        let sink = EventSink::new(Pool::new(&cfg));
        for i in 0..200 {
            sink.spawn_write(Event::new(EventKind::Auth, &i.to_string()));
        }
        sink.write(Event::new(EventKind::Auth, "last")).await;
        let mut expected: Vec<String> = (0..200).map(|i| i.to_string()).collect();
        expected.push("last".into());
        assert_eq!(outcomes(&cfg), expected);
    }
}
