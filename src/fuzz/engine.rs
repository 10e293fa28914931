//! A small mutation-based fuzzing engine on stable Rust: a seed corpus, stacked byte-level
//! mutations with a per-target dictionary, splicing, and a watchdog for hangs and memory.
//!
//! With coverage instrumentation (LLVM's SanitizerCoverage inline 8-bit counters, which stable
//! rustc emits with `-C passes=sancov-module`; see `tests/fuzz/rustc-sancov.sh`) it is
//! coverage-guided: an input that reaches a new edge, or an edge a new number of times
//! (AFL-style buckets), joins the corpus. Without it, it mutates the seeds blindly.

use std::cell::Cell;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Coverage: SanitizerCoverage calls this once per instrumented module at start-up with the
// bounds of the (linker-merged) counter section.

static COUNTERS_START: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static COUNTERS_LEN: AtomicUsize = AtomicUsize::new(0);

/// Called by code compiled with `-sanitizer-coverage-inline-8bit-counters`; never called
/// otherwise.
///
/// # Safety
/// `start..stop` must be the counter section, valid for the life of the process.
#[no_mangle]
pub unsafe extern "C" fn __sanitizer_cov_8bit_counters_init(start: *mut u8, stop: *mut u8) {
    let len = (stop as usize).saturating_sub(start as usize);
    if len > COUNTERS_LEN.load(Ordering::SeqCst) {
        COUNTERS_START.store(start, Ordering::SeqCst);
        COUNTERS_LEN.store(len, Ordering::SeqCst);
    }
}

fn counters() -> Option<&'static mut [u8]> {
    let len = COUNTERS_LEN.load(Ordering::SeqCst);
    let start = COUNTERS_START.load(Ordering::SeqCst);
    // SAFETY: set once at start-up by the instrumentation to its own static section. The
    // instrumented code increments it concurrently (from other threads too); a lost update
    // only costs a coverage signal.
    (len > 0 && !start.is_null()).then(|| unsafe { std::slice::from_raw_parts_mut(start, len) })
}

/// How many edges the build is instrumented with (0: not instrumented).
pub fn instrumented_edges() -> usize {
    COUNTERS_LEN.load(Ordering::SeqCst)
}

/// AFL's hit-count buckets as one bit each.
fn bucket(count: u8) -> u8 {
    match count {
        0 => 0,
        1 => 1,
        2 => 2,
        3 => 4,
        4..=7 => 8,
        8..=15 => 16,
        16..=31 => 32,
        32..=127 => 64,
        _ => 128,
    }
}

// ---------------------------------------------------------------------------------------------
// Randomness: xorshift64*, seeded by the caller so that a run can be repeated.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations.

const INTERESTING: &[u8] = &[
    0, 1, 0x7f, 0x80, 0xff, b'\t', b'\n', b'\r', b' ', b'=', b'<', b'>', b'@', b'"', b'(', b')',
    b':', b';', b',', b'.', b'\\', 0x01,
];

/// Applies 1 to 16 stacked mutations to `data`, keeping it at most `max_len` bytes.
pub fn mutate(
    rng: &mut Rng,
    data: &mut Vec<u8>,
    dict: &[&[u8]],
    corpus: &[Vec<u8>],
    max_len: usize,
) {
    let rounds = 1 << rng.below(5);
    for _ in 0..rounds {
        let len = data.len();
        match rng.below(12) {
            // Flip a bit.
            0 if len > 0 => {
                let i = rng.below(len);
                data[i] ^= 1 << rng.below(8);
            }
            // Set a byte to a random or an interesting value.
            1 if len > 0 => {
                let i = rng.below(len);
                data[i] = if rng.chance(2) {
                    rng.next_u64() as u8
                } else {
                    INTERESTING[rng.below(INTERESTING.len())]
                };
            }
            // Small arithmetic on a byte.
            2 if len > 0 => {
                let i = rng.below(len);
                let d = rng.below(35) as u8 + 1;
                data[i] = if rng.chance(2) {
                    data[i].wrapping_add(d)
                } else {
                    data[i].wrapping_sub(d)
                };
            }
            // Delete a range.
            3 | 4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(32));
                data.drain(at..at + n);
            }
            // Insert random or repeated bytes.
            5 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let fill: Vec<u8> = if rng.chance(2) {
                    let b = INTERESTING[rng.below(INTERESTING.len())];
                    vec![b; n]
                } else {
                    (0..n).map(|_| rng.next_u64() as u8).collect()
                };
                data.splice(at..at, fill);
            }
            // Duplicate or move a range within the input.
            6 if len > 1 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(64));
                let chunk = data[from..from + n].to_vec();
                let at = rng.below(len + 1);
                if rng.chance(2) {
                    data.splice(at..at, chunk);
                } else {
                    let end = (at + n).min(len);
                    data.splice(at..end, chunk);
                }
            }
            // Insert or overwrite with a dictionary token.
            7..=9 if !dict.is_empty() => {
                let token = dict[rng.below(dict.len())];
                let at = rng.below(len + 1);
                if rng.chance(3) && at + token.len() <= len {
                    data[at..at + token.len()].copy_from_slice(token);
                } else {
                    data.splice(at..at, token.iter().copied());
                }
            }
            // Splice in a piece of another corpus entry.
            10 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let n = 1 + rng.below(other.len() - from);
                    let at = rng.below(len + 1);
                    let end = if rng.chance(2) { at } else { (at + n).min(len) };
                    data.splice(at..end, other[from..from + n].iter().copied());
                }
            }
            // Cut the tail or duplicate a line (the targets are line- or record-oriented).
            _ if len > 0 => {
                if rng.chance(2) {
                    data.truncate(rng.below(len));
                } else {
                    let lines: Vec<&[u8]> = data.split_inclusive(|&b| b == b'\n').collect();
                    let line = lines[rng.below(lines.len())].to_vec();
                    let at = rng.below(len + 1);
                    data.splice(at..at, line);
                }
            }
            _ => data.push(rng.next_u64() as u8),
        }
        if data.len() > max_len {
            data.truncate(max_len);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Panics anywhere in the code under test (the runtime's tasks included) are noticed by a
// panic hook; the fuzzing thread and threads named `fuzz-*` belong to the run.

static PANICKED: AtomicBool = AtomicBool::new(false);
static PANIC_MESSAGE: Mutex<String> = Mutex::new(String::new());
thread_local! {
    static FUZZING: Cell<bool> = const { Cell::new(false) };
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let ours = FUZZING.with(Cell::get)
                || std::thread::current()
                    .name()
                    .is_some_and(|n| n.starts_with("fuzz-"));
            if !ours {
                return previous(info);
            }
            let backtrace = if std::env::var_os("FUZZ_BACKTRACE").is_some() {
                format!("\n{}", std::backtrace::Backtrace::force_capture())
            } else {
                String::new()
            };
            let mut m = PANIC_MESSAGE.lock().unwrap_or_else(|p| p.into_inner());
            if !PANICKED.swap(true, Ordering::SeqCst) {
                // One line (message and location), then the backtrace if asked for.
                *m = format!("{}{backtrace}", info.to_string().replace('\n', " "));
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------------
// The run.

/// One fuzz target.
pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&[u8]),
    /// Tokens the mutator inserts (protocol keywords, separators).
    pub dict: fn() -> &'static [&'static [u8]],
    /// Longest input generated.
    pub max_len: usize,
}

/// How to run a target.
#[derive(Debug, Clone)]
pub struct Options {
    /// Executions to run (the seeds included).
    pub execs: u64,
    /// Seed of the random generator (a run with the same seed and corpus repeats itself
    /// without coverage guidance).
    pub seed: u64,
    /// Seed inputs: every file in these directories.
    pub corpus: Vec<PathBuf>,
    /// Where crashing, hanging and memory-hungry inputs are written.
    pub artifacts: PathBuf,
    /// Where inputs that found new coverage are written (optional).
    pub save_corpus: Option<PathBuf>,
    /// An execution longer than this is a hang: the input is saved and the process aborts.
    pub timeout: Duration,
    /// Resident memory above this is a leak or an unbounded buffer: the input is saved and
    /// the process aborts.
    pub rss_limit_mib: u64,
    /// Progress lines on stderr every this many seconds (0: none).
    pub report_every: u64,
}

impl Options {
    pub fn new(execs: u64) -> Self {
        Options {
            execs,
            seed: 1,
            corpus: Vec::new(),
            artifacts: std::env::temp_dir(),
            save_corpus: None,
            timeout: Duration::from_secs(10),
            rss_limit_mib: 2048,
            report_every: 10,
        }
    }
}

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub target: &'static str,
    pub execs: u64,
    pub elapsed: Duration,
    pub corpus: usize,
    /// Edges seen (with coverage instrumentation), of `instrumented_edges()`.
    pub edges: usize,
    /// Crashing inputs written (one per distinct panic message).
    pub crashes: Vec<(PathBuf, String)>,
}

impl Report {
    pub fn rate(&self) -> f64 {
        self.execs as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The watchdog's view of the execution in progress.
struct Current {
    input: Mutex<Vec<u8>>,
    /// Milliseconds since `epoch` when the execution started; 0: none running.
    started: AtomicU64,
    done: AtomicBool,
}

fn write_artifact(dir: &Path, target: &str, kind: &str, data: &[u8]) -> PathBuf {
    let mut h = DefaultHasher::new();
    data.hash(&mut h);
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join(format!("{target}-{kind}-{:016x}.bin", h.finish()));
    if let Err(e) = std::fs::write(&path, data) {
        eprintln!("cannot write {}: {e}", path.display());
    }
    path
}

fn rss_mib() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096 / (1024 * 1024))
}

fn spawn_watchdog(target: &'static str, opts: &Options, current: Arc<Current>, epoch: Instant) {
    let (timeout, limit, dir) = (opts.timeout, opts.rss_limit_mib, opts.artifacts.clone());
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            while !current.done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                let started = current.started.load(Ordering::SeqCst);
                let now = epoch.elapsed().as_millis() as u64;
                let hang = started > 0 && now.saturating_sub(started) > timeout.as_millis() as u64;
                let rss = rss_mib().unwrap_or(0);
                if hang || rss > limit {
                    let input = current
                        .input
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    let (kind, what) = if hang {
                        ("timeout", format!("an execution took over {timeout:?}"))
                    } else {
                        ("oom", format!("resident memory {rss} MiB over {limit} MiB"))
                    };
                    let path = write_artifact(&dir, target, kind, &input);
                    eprintln!("fuzz {target}: {what}; input saved to {}", path.display());
                    std::process::abort();
                }
            }
        })
        .expect("watchdog thread");
}

fn load_corpus(dirs: &[PathBuf], max_len: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if let Ok(mut data) = std::fs::read(&p) {
                data.truncate(max_len);
                out.push(data);
            }
        }
    }
    if out.is_empty() {
        out.push(Vec::new());
    }
    out
}

/// Runs `target` for `opts.execs` executions.
pub fn run(target: &Target, opts: &Options) -> Report {
    // One run at a time per process: the panic flag is global.
    static RUNNING: Mutex<()> = Mutex::new(());
    let _one = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    install_panic_hook();
    FUZZING.with(|f| f.set(true));
    let epoch = Instant::now();
    let current = Arc::new(Current {
        input: Mutex::new(Vec::new()),
        started: AtomicU64::new(0),
        done: AtomicBool::new(false),
    });
    spawn_watchdog(target.name, opts, Arc::clone(&current), epoch);

    let mut corpus = load_corpus(&opts.corpus, target.max_len);
    let seeds = corpus.len();
    let mut rng = Rng::new(opts.seed);
    let mut seen: Vec<u8> = vec![0; instrumented_edges()];
    let mut edges = 0usize;
    let mut crashes: Vec<(PathBuf, String)> = Vec::new();
    let mut messages: Vec<String> = Vec::new();
    let mut last_report = Instant::now();
    let mut execs = 0u64;
    let mut input = Vec::new();
    while execs < opts.execs {
        input.clear();
        if (execs as usize) < seeds {
            input.extend_from_slice(&corpus[execs as usize]);
        } else {
            input.extend_from_slice(&corpus[rng.below(corpus.len())]);
            mutate(
                &mut rng,
                &mut input,
                (target.dict)(),
                &corpus,
                target.max_len,
            );
        }
        {
            let mut c = current.input.lock().unwrap_or_else(|p| p.into_inner());
            c.clear();
            c.extend_from_slice(&input);
        }
        if let Some(c) = counters() {
            c.fill(0);
        }
        current.started.store(
            (epoch.elapsed().as_millis() as u64).max(1),
            Ordering::SeqCst,
        );
        let result = std::panic::catch_unwind(|| (target.run)(&input));
        current.started.store(0, Ordering::SeqCst);
        execs += 1;

        let panicked = PANICKED.swap(false, Ordering::SeqCst) || result.is_err();
        if panicked {
            let message =
                std::mem::take(&mut *PANIC_MESSAGE.lock().unwrap_or_else(|p| p.into_inner()));
            // One artifact per distinct panic (its first line: message and location).
            let key = message.lines().next().unwrap_or_default().to_string();
            if !messages.contains(&key) {
                let path = write_artifact(&opts.artifacts, target.name, "crash", &input);
                eprintln!(
                    "fuzz {}: CRASH after {execs} executions: {message}\n  input saved to {}",
                    target.name,
                    path.display()
                );
                messages.push(key.clone());
                crashes.push((path, key));
            }
            continue;
        }

        if let Some(c) = counters() {
            let mut new = false;
            // Eight counters at a time: most are zero.
            for (chunk_no, chunk) in c.chunks(8).enumerate() {
                if chunk.len() == 8 && u64::from_ne_bytes(chunk.try_into().unwrap()) == 0 {
                    continue;
                }
                for (j, &count) in chunk.iter().enumerate() {
                    let i = chunk_no * 8 + j;
                    let b = bucket(count);
                    if b != 0 && seen[i] & b == 0 {
                        if seen[i] == 0 {
                            edges += 1;
                        }
                        seen[i] |= b;
                        new = true;
                    }
                }
            }
            if new && (execs as usize) > seeds {
                if let Some(dir) = &opts.save_corpus {
                    write_artifact(dir, target.name, "cov", &input);
                }
                corpus.push(input.clone());
            }
        }

        if opts.report_every > 0 && last_report.elapsed().as_secs() >= opts.report_every {
            last_report = Instant::now();
            let secs = epoch.elapsed().as_secs_f64();
            eprintln!(
                "fuzz {}: {execs} execs, {:.0}/s, corpus {}, edges {edges}/{}, crashes {}",
                target.name,
                execs as f64 / secs,
                corpus.len(),
                seen.len(),
                crashes.len()
            );
        }
    }
    current.done.store(true, Ordering::SeqCst);
    FUZZING.with(|f| f.set(false));
    Report {
        target: target.name,
        execs,
        elapsed: epoch.elapsed(),
        corpus: corpus.len(),
        edges,
        crashes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_respect_the_length_limit_and_are_repeatable() {
        let corpus = vec![b"AUTH\t1\tPLAIN\n".to_vec(), b"CONT\t1\tYQ==\n".to_vec()];
        let run = |seed| {
            let mut rng = Rng::new(seed);
            let mut out = Vec::new();
            for i in 0..2000 {
                let mut d = corpus[i % 2].clone();
                mutate(&mut rng, &mut d, &[b"service=smtp"], &corpus, 40);
                assert!(d.len() <= 40);
                out.push(d);
            }
            out
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn a_panicking_target_is_reported_once_per_message() {
        fn target(data: &[u8]) {
            if data.first() == Some(&b'!') {
                panic!("bang");
            }
        }
        let t = Target {
            name: "selftest",
            about: "",
            run: target,
            dict: || &[b"!"],
            max_len: 8,
        };
        let dir =
            std::env::temp_dir().join(format!("postwarden-fuzz-selftest-{}", std::process::id()));
        let opts = Options {
            artifacts: dir.clone(),
            report_every: 0,
            ..Options::new(5000)
        };
        let report = run(&t, &opts);
        assert_eq!(report.execs, 5000);
        assert_eq!(report.crashes.len(), 1, "{:?}", report.crashes);
        assert!(report.crashes[0].1.contains("bang"));
        let saved = std::fs::read(&report.crashes[0].0).unwrap();
        assert_eq!(saved.first(), Some(&b'!'));
        let _ = std::fs::remove_dir_all(dir);
    }
}
