//! The fuzz harness: runs one of postwarden's fuzz targets (or all) for a number of
//! executions, from the checked-in seed corpus, and prints the rate and any crash.
//!
//! ```text
//! cargo run --release --features fuzz --bin fuzz -- <target|all|list> [executions] [options]
//!   --seed N            random seed (default 1)
//!   --corpus DIR        more seed inputs (repeatable); tests/fuzz/corpus/<target>/ always
//!   --artifacts DIR     where crash/timeout/oom inputs go (default target/fuzz-artifacts)
//!   --save-corpus DIR   write inputs that found new coverage here
//!   --timeout SECS      an execution longer than this is a hang (default 10)
//!   --rss-limit MIB     resident memory limit (default 2048)
//!   --replay FILE       run the target once on FILE (a saved crash) and exit
//! ```
//!
//! Exit status: 0 clean, 1 a crash was found, 2 usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use postwarden::fuzz::{self, Options, TARGETS};

fn usage() -> ExitCode {
    eprintln!(
        "usage: fuzz <target|all|list> [executions] [--seed N] [--corpus DIR] [--artifacts DIR] \
         [--save-corpus DIR] [--timeout SECS] [--rss-limit MIB] [--replay FILE]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(which) = args.first().cloned() else {
        return usage();
    };
    if which == "list" {
        for t in TARGETS {
            println!("{:<18} {}", t.name, t.about);
        }
        return ExitCode::SUCCESS;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut opts = Options {
        artifacts: root.join("target/fuzz-artifacts"),
        ..Options::new(1_000_000)
    };
    let mut extra_corpus = Vec::new();
    let mut replay = None;
    let mut rest = args[1..].iter();
    while let Some(a) = rest.next() {
        let mut value = || rest.next().cloned();
        let ok = match a.as_str() {
            "--seed" => value().and_then(|v| v.parse().ok()).map(|v| opts.seed = v),
            "--corpus" => value().map(|v| extra_corpus.push(PathBuf::from(v))),
            "--artifacts" => value().map(|v| opts.artifacts = v.into()),
            "--save-corpus" => value().map(|v| opts.save_corpus = Some(v.into())),
            "--timeout" => value()
                .and_then(|v| v.parse().ok())
                .map(|v| opts.timeout = Duration::from_secs(v)),
            "--rss-limit" => value()
                .and_then(|v| v.parse().ok())
                .map(|v| opts.rss_limit_mib = v),
            "--replay" => value().map(|v| replay = Some(PathBuf::from(v))),
            n => n.replace('_', "").parse().ok().map(|v| opts.execs = v),
        };
        if ok.is_none() {
            return usage();
        }
    }
    let targets: Vec<&fuzz::Target> = if which == "all" {
        TARGETS.iter().collect()
    } else {
        match fuzz::target(&which) {
            Some(t) => vec![t],
            None => {
                eprintln!("unknown target {which:?}; `fuzz list` shows them");
                return ExitCode::from(2);
            }
        }
    };
    if let Some(file) = replay {
        let data = match std::fs::read(&file) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{}: {e}", file.display());
                return ExitCode::from(2);
            }
        };
        for t in &targets {
            eprintln!(
                "replaying {} ({} bytes) on {}",
                file.display(),
                data.len(),
                t.name
            );
            (t.run)(&data);
        }
        fuzz::cleanup();
        eprintln!("no crash");
        return ExitCode::SUCCESS;
    }
    let edges = fuzz::instrumented_edges();
    if edges > 0 {
        eprintln!("coverage-guided: {edges} instrumented edges");
    } else {
        eprintln!("not instrumented: mutating the seeds without coverage feedback");
    }
    let mut crashed = false;
    for t in targets {
        let mut o = opts.clone();
        o.corpus = vec![fuzz::seed_dir(t.name)];
        o.corpus.extend(extra_corpus.iter().cloned());
        let r = fuzz::engine::run(t, &o);
        println!(
            "{}: {} executions in {:.1} s ({:.0}/s), corpus {}, edges {}, crashes {}",
            r.target,
            r.execs,
            r.elapsed.as_secs_f64(),
            r.rate(),
            r.corpus,
            r.edges,
            r.crashes.len()
        );
        for (path, message) in &r.crashes {
            println!("  crash: {message}\n    input: {}", path.display());
        }
        crashed |= !r.crashes.is_empty();
    }
    fuzz::cleanup();
    if crashed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
