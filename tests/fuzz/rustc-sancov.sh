#!/bin/sh
# RUSTC_WRAPPER for coverage-guided fuzzing on stable Rust (README.md, "Fuzzing"): compiles the
# crates whose parsing the fuzz targets exercise with LLVM SanitizerCoverage inline 8-bit
# counters (`-C passes=sancov-module` is a stable rustc option); the engine in src/fuzz/engine.rs
# reads the counters. Every other crate (and every build script and proc macro) is compiled as
# usual, which keeps the counter map small and the build working.
rustc="$1"
shift
case " $* " in
*" --crate-name postwarden "* | *" --crate-name dovecot_auth "* | *" --crate-name mail_parser "* | \
    *" --crate-name mail_auth "* | *" --crate-name idna "* | *" --crate-name indymilter "*)
    exec "$rustc" "$@" -C passes=sancov-module \
        -C llvm-args=-sanitizer-coverage-level=3 \
        -C llvm-args=-sanitizer-coverage-inline-8bit-counters
    ;;
esac
exec "$rustc" "$@"
