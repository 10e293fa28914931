#!/usr/bin/env bash
# Runs every postwarden test on a Debian 12 machine. As root it first installs what the
# tests need (Postfix, swaks, a DNS server, ...); under CI=true a missing component fails
# the run instead of skipping a test.
set -euo pipefail
cd "$(dirname "$0")/.."

# postfix, swaks, openssl: end-to-end tests; dnsmasq-base: loopback DNS; python3-dkim
# (+ dnspython, nacl for Ed25519): an independent DKIM verifier; systemd
# (systemd-socket-activate), lintian: the package test; libxml2-utils (xmllint): DMARC
# aggregate reports validated against RFC 7489's schema.
PACKAGES=(postfix swaks openssl sqlite3 dnsmasq-base python3-dkim python3-dnspython python3-nacl systemd lintian libxml2-utils)

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "run-all: missing packages ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Postfix is installed without a system configuration: the tests start private instances.
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export POSTWARDEN_E2E_REQUIRED="${CI:-}"
cargo build --workspace --all-targets --locked
cargo test --workspace --locked --no-fail-fast -- --test-threads=2
# The openspf RFC 7208 suite's score (the test above fails unless every case passes).
cargo test --locked --test spf_rfc7208 -- --nocapture 2>/dev/null | grep '^SPF RFC 7208 suite:'
# The DKIM comparison with python3-dkim: how many cases follow RFC 6376 and agree.
cargo test --locked --test dkim_verify -- --nocapture 2>/dev/null | grep 'cases: postwarden as RFC 6376'

# The Debian package: built and installed against Debian's own Postfix (under CI=true or
# POSTWARDEN_PACKAGE_TEST=1; it changes the system and restores /etc/postfix after).
if [ "${CI:-}" = true ] || [ "${POSTWARDEN_PACKAGE_TEST:-}" = 1 ]; then
    ./packaging/build-deb.sh
    ./packaging/test-package.sh
else
    echo "run-all: package test SKIPPED (set POSTWARDEN_PACKAGE_TEST=1 or CI=true)"
fi
