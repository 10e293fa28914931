//! Fuzz targets and the engine that drives them on stable Rust (feature `fuzz`; always built
//! for unit tests, which run every target briefly). The harness binary is
//! `tests/fuzz/harness.rs`; README.md ("Fuzzing") has the commands.
//!
//! Each target is a `fn(&[u8])` that must never panic, hang or use unbounded memory, and
//! asserts cheap properties of what it parses.

pub mod engine;
mod mail;
mod milter;

use std::path::PathBuf;

pub use engine::{instrumented_edges, Options, Report, Target};
pub use milter::cleanup;

/// Every target, by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "dovecot-protocol",
        about: "the Dovecot auth line parser, tab-escaping round trip and the PLAIN/LOGIN decoders",
        run: dovecot_auth::fuzz::protocol,
        dict: || DOVECOT_DICT,
        max_len: 4096,
    },
    Target {
        name: "dovecot-server",
        about: "a whole Dovecot auth connection: client bytes into serve_connection (in memory)",
        run: dovecot_auth::fuzz::server,
        dict: || DOVECOT_DICT,
        max_len: 4096,
    },
    Target {
        name: "mail-parsing",
        about:
            "MAIL FROM and address normalisation, From header values, List-Id, ARC header handling",
        run: mail::target,
        dict: || mail::DICT,
        max_len: 2048,
    },
    Target {
        name: "milter-submission",
        about: "a whole milter session (framed commands) against the submission milter",
        run: milter::submission,
        dict: milter::dict,
        max_len: 4096,
    },
    Target {
        name: "milter-inbound",
        about: "a whole milter session (framed commands) against the inbound milter",
        run: milter::inbound,
        dict: milter::dict,
        max_len: 4096,
    },
];

const DOVECOT_DICT: &[&[u8]] = &[
    b"\t",
    b"\n",
    b"\x01",
    b"VERSION\t1\t0\n",
    b"CPID\t22324\n",
    b"AUTH\t",
    b"CONT\t",
    b"CANCEL\t",
    b"PLAIN",
    b"LOGIN",
    b"plain",
    b"service=smtp",
    b"nologin",
    b"lip=127.0.0.1",
    b"rip=::ffff:192.0.2.1",
    b"lport=587",
    b"rport=",
    b"secured",
    b"resp=",
    b"4294967295",
    b"4294967296",
    b"AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=",
    b"YWxpY2VAZXhhbXBsZS50ZXN0",
    b"ZmF1bHRAZXhhbXBsZS50ZXN0",
    b"dGFiQGV4YW1wbGUudGVzdA==",
    b"c2VjcmV0",
    b"AA==",
    b"====",
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The checked-in seed corpus of a target: `tests/fuzz/corpus/<name>/`.
pub fn seed_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target, briefly, from its seeds: they stay compiling and clean.
    #[test]
    fn every_target_runs_clean_from_its_seeds() {
        for t in TARGETS {
            let execs = match t.name {
                // A whole session costs a store transaction or a DKIM/SPF evaluation.
                "milter-submission" | "milter-inbound" => 2_000,
                _ => 20_000,
            };
            let dir =
                std::env::temp_dir().join(format!("postwarden-fuzz-test-{}", std::process::id()));
            let opts = Options {
                corpus: vec![seed_dir(t.name)],
                artifacts: dir,
                report_every: 0,
                ..Options::new(execs)
            };
            let report = engine::run(t, &opts);
            assert_eq!(report.execs, execs);
            assert!(
                report.crashes.is_empty(),
                "{}: {:?}",
                t.name,
                report.crashes
            );
        }
        cleanup();
    }
}
