#!/usr/bin/env bash
# Builds the Debian package: target/debian/postwarden_<version>_<arch>.deb
# The Debian config is the documented default (config/postwarden.toml) with Debian paths.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-deb >/dev/null 2>&1; then
    cargo install cargo-deb --version 3.8.0 --locked
fi

mkdir -p target/debian-config
sed -e 's|^data_dir = "postwarden-data"|data_dir = "/var/lib/postwarden"|' \
    -e 's|^group = ""|group = "postfix"|' \
    -e 's|^listen = "unix:auth"|listen = "unix:/var/spool/postfix/private/postwarden-auth"|' \
    -e 's|^listen = "unix:submission-milter"|listen = "unix:/var/spool/postfix/private/postwarden-submission"|' \
    -e 's|^listen = "unix:inbound-milter"|listen = "unix:/var/spool/postfix/private/postwarden-inbound"|' \
    config/postwarden.toml > target/debian-config/postwarden.toml
{
    echo "# Debian: the systemd socket units create the sockets named below (as Postfix's"
    echo "# owner, in its private/ directory) and pass them to the daemon; the listen"
    echo "# addresses apply when postwarden runs without them."
    cat target/debian-config/postwarden.toml
} > target/debian-config/postwarden.toml.new
mv target/debian-config/postwarden.toml.new target/debian-config/postwarden.toml

cargo deb --locked "$@"

# The generated config must be valid and carry the Debian paths.
bin=target/release/postwarden
effective=$("$bin" check-config --config target/debian-config/postwarden.toml)
for want in 'data_dir = "/var/lib/postwarden"' 'group = "postfix"' \
    'listen = "unix:/var/spool/postfix/private/postwarden-auth"' \
    'listen = "unix:/var/spool/postfix/private/postwarden-submission"' \
    'listen = "unix:/var/spool/postfix/private/postwarden-inbound"'; do
    grep -qF "$want" <<<"$effective" || { echo "build-deb: Debian config lacks: $want" >&2; exit 1; }
done
ls target/debian/*.deb
