//! The event journal: an append-only file beside the store that keeps the events (and
//! DMARC results) the store could not take, so that a crash during a store outage loses
//! none of them. The daemon writes them into the store when it can again, in order and
//! once.
//!
//! Format: JSON lines. The first line names the journal (`{"journal":"<random id>"}`);
//! each further line is one entry with its sequence number (`{"seq":1,"event":{...}}` or
//! `{"seq":2,"dmarc":{...}}`). Every append is fsync'd before it counts as kept; a line
//! torn by a crash is cut off when the journal is next opened. Replay writes entries in
//! chunks, each in one store transaction that also records "journal <id> written up to
//! <seq>" ([`crate::store::DmarcResults::record_replayed`]); entries at or below that
//! mark are skipped, so a crash between a commit and the journal's removal writes
//! nothing twice. The file is removed once everything is in the store; the next outage
//! starts a new journal with a new id.
//!
//! The journal is bounded (`store.journal_max_mib`): past the bound, new entries are
//! refused (the caller counts and logs them); what is already kept stays.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use super::Entry;
use crate::model::{DmarcRow, Event};
use crate::store::{Pool, StoreError};

/// Entries written into the store per transaction during a replay.
const REPLAY_CHUNK: usize = 1_000;

#[derive(Serialize, Deserialize)]
struct Header {
    journal: String,
}

#[derive(Serialize, Deserialize)]
struct Record {
    seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    event: Option<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dmarc: Option<DmarcRow>,
}

/// An open journal file.
struct Open {
    file: File,
    id: String,
    next_seq: u64,
    len: u64,
}

enum State {
    /// Not looked at yet in this process.
    Unknown,
    /// No journal file.
    Absent,
    Open(Open),
}

/// What an append did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Appended {
    /// Entries kept in the journal.
    pub kept: usize,
    /// Entries refused because the journal is at its size bound.
    pub refused: usize,
}

pub struct EventJournal {
    path: PathBuf,
    max_bytes: u64,
    state: State,
}

/// Syncs the directory holding `path`, so that the creation or removal of the file
/// survives a crash.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

impl EventJournal {
    pub fn new(path: PathBuf, max_bytes: u64) -> EventJournal {
        EventJournal {
            path,
            max_bytes,
            state: State::Unknown,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the journal holds entries not yet in the store (as far as this process
    /// knows: an existing file counts).
    pub fn has_entries(&mut self) -> std::io::Result<bool> {
        self.load()?;
        Ok(matches!(self.state, State::Open(_)))
    }

    /// Looks at the file once: opens it for appending after cutting off a torn last line.
    fn load(&mut self) -> std::io::Result<()> {
        if !matches!(self.state, State::Unknown) {
            return Ok(());
        }
        let mut file = match OpenOptions::new().read(true).write(true).open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.state = State::Absent;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut text = Vec::new();
        file.read_to_end(&mut text)?;
        // Everything up to the last newline is whole; anything after it was torn.
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let mut lines = text[..whole].split(|&b| b == b'\n');
        let header = lines
            .next()
            .and_then(|l| serde_json::from_slice::<Header>(l).ok());
        let Some(header) = header else {
            // Not even the header survived: nothing was kept in it.
            drop(file);
            std::fs::remove_file(&self.path)?;
            sync_dir(&self.path)?;
            self.state = State::Absent;
            return Ok(());
        };
        let last_seq = lines
            .filter_map(|l| serde_json::from_slice::<Record>(l).ok())
            .map(|r| r.seq)
            .max()
            .unwrap_or(0);
        if whole < text.len() {
            warn!(
                journal = %self.path.display(),
                bytes = text.len() - whole,
                "event journal: cutting off a line torn by a crash"
            );
            file.set_len(whole as u64)?;
            file.sync_data()?;
        }
        file.seek(SeekFrom::End(0))?;
        self.state = State::Open(Open {
            file,
            id: header.journal,
            next_seq: last_seq + 1,
            len: whole as u64,
        });
        Ok(())
    }

    /// Appends `entries` (fsync'd) as far as the size bound allows; the rest is refused.
    /// On an error nothing of this call is kept.
    pub fn append(&mut self, entries: &[Entry]) -> std::io::Result<Appended> {
        if entries.is_empty() {
            return Ok(Appended::default());
        }
        self.load()?;
        if matches!(self.state, State::Absent) {
            self.create()?;
        }
        let State::Open(open) = &mut self.state else {
            unreachable!("a journal just opened or created")
        };
        let mut out = Vec::new();
        let mut appended = Appended::default();
        let mut seq = open.next_seq;
        for entry in entries {
            let record = match entry {
                Entry::Event(ev) => Record {
                    seq,
                    event: Some(ev.clone()),
                    dmarc: None,
                },
                Entry::Dmarc(row) => Record {
                    seq,
                    event: None,
                    dmarc: Some(row.clone()),
                },
            };
            let mut line = serde_json::to_vec(&record).expect("plain data serializes");
            line.push(b'\n');
            if open.len + (out.len() + line.len()) as u64 > self.max_bytes {
                appended.refused += 1;
                continue;
            }
            out.extend_from_slice(&line);
            appended.kept += 1;
            seq += 1;
        }
        if out.is_empty() {
            return Ok(appended);
        }
        let written = open
            .file
            .write_all(&out)
            .and_then(|()| open.file.sync_data());
        if let Err(e) = written {
            // Keep the file line-aligned: take back what may have been written.
            if open.file.set_len(open.len).is_err() {
                self.state = State::Unknown;
            }
            return Err(e);
        }
        open.len += out.len() as u64;
        open.next_seq = seq;
        Ok(appended)
    }

    /// Creates the journal file (0600) with a new id.
    fn create(&mut self) -> std::io::Result<()> {
        let id = format!(
            "{:016x}{:016x}",
            rand::random::<u64>(),
            rand::random::<u64>()
        );
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.path)?;
        let mut header = serde_json::to_vec(&Header {
            journal: id.clone(),
        })
        .expect("plain data serializes");
        header.push(b'\n');
        let created = file
            .write_all(&header)
            .and_then(|()| file.sync_data())
            .and_then(|()| sync_dir(&self.path));
        if let Err(e) = created {
            let _ = std::fs::remove_file(&self.path);
            return Err(e);
        }
        self.state = State::Open(Open {
            file,
            id,
            next_seq: 1,
            len: header.len() as u64,
        });
        Ok(())
    }

    /// Writes every entry into the store, in order, in chunks; then removes the file.
    /// Returns how many entries were written (entries already written by an earlier,
    /// interrupted replay are skipped). On a store fault the journal stays as it is.
    pub fn replay(&mut self, pool: &std::sync::Arc<Pool>) -> Result<usize, ReplayError> {
        let out = self.replay_inner(pool);
        if out.is_err() {
            // Look at the file afresh next time.
            self.state = State::Unknown;
        }
        out
    }

    fn replay_inner(&mut self, pool: &std::sync::Arc<Pool>) -> Result<usize, ReplayError> {
        self.load()?;
        let State::Open(open) = &self.state else {
            return Ok(0);
        };
        let id = open.id.clone();
        let mut done = pool.with(|s| s.replayed_upto(&id))?;
        let mut reader = BufReader::new(File::open(&self.path)?);
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let (mut events, mut rows) = (Vec::new(), Vec::new());
        let (mut last, mut written, mut unreadable) = (done, 0usize, 0usize);
        let mut flush = |events: &mut Vec<Event>,
                         rows: &mut Vec<DmarcRow>,
                         done: &mut u64,
                         last: u64|
         -> Result<(), ReplayError> {
            if events.is_empty() && rows.is_empty() {
                return Ok(());
            }
            if !pool.with(|s| s.record_replayed(events, rows, &id, *done, last))? {
                return Err(ReplayError::Raced);
            }
            written += events.len() + rows.len();
            *done = last;
            events.clear();
            rows.clear();
            Ok(())
        };
        for line in reader.split(b'\n') {
            let line = line?;
            let Ok(record) = serde_json::from_slice::<Record>(&line) else {
                unreadable += 1;
                continue;
            };
            if record.seq <= last {
                continue;
            }
            events.extend(record.event);
            rows.extend(record.dmarc);
            last = record.seq;
            if events.len() + rows.len() >= REPLAY_CHUNK {
                flush(&mut events, &mut rows, &mut done, last)?;
            }
        }
        flush(&mut events, &mut rows, &mut done, last)?;
        if unreadable > 0 {
            warn!(journal = %self.path.display(), unreadable, "event journal: unreadable lines skipped");
        }
        // Until the removal is known to have happened, the next use looks at the file
        // again (and finds everything in it written already).
        self.state = State::Unknown;
        std::fs::remove_file(&self.path)?;
        self.state = State::Absent;
        sync_dir(&self.path)?;
        Ok(written)
    }
}

/// Why a replay stopped.
#[derive(Debug)]
pub enum ReplayError {
    Store(StoreError),
    Io(std::io::Error),
    /// Another writer replayed (part of) the journal meanwhile.
    Raced,
}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> Self {
        ReplayError::Store(e)
    }
}

impl From<std::io::Error> for ReplayError {
    fn from(e: std::io::Error) -> Self {
        ReplayError::Io(e)
    }
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Store(e) => write!(f, "store: {e}"),
            ReplayError::Io(e) => write!(f, "journal: {e}"),
            ReplayError::Raced => f.write_str("journal replayed by another writer meanwhile"),
        }
    }
}
