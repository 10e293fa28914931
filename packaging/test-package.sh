#!/usr/bin/env bash
# Installs the built .deb on this machine and proves the README's three install steps
# against Debian's own Postfix (chrooted smtpd, as Debian ships it):
#   apt install ./postwarden_*.deb; postwarden postfix-setup --apply; create a credential;
# then swaks on 587: 235 + delivered to a sink, wrong password 535; then apt remove/purge.
# It changes the system (package, /etc/postfix, a system Postfix on loopback), so it runs
# as root only under CI=true or POSTWARDEN_PACKAGE_TEST=1, and restores /etc/postfix.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" != true ] && [ "${POSTWARDEN_PACKAGE_TEST:-}" != 1 ]; then
    echo "test-package: SKIPPED (set POSTWARDEN_PACKAGE_TEST=1: it installs the package and configures the system Postfix)"
    exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "test-package: must run as root" >&2; exit 1; }

deb=$(ls -t target/debian/postwarden_*.deb | head -n1)
work=$(mktemp -d /tmp/postwarden-pkgtest.XXXXXX)
chmod 755 "$work"
pids=()
fail() {
    echo "test-package: FAIL: $*" >&2
    echo "--- postwarden log ---" >&2; cat "$work/postwarden.log" >&2 2>/dev/null || true
    exit 1
}
log() { echo "test-package: $*"; }

# --- Debian's Postfix, configured for the test; /etc/postfix restored at the end ---
tar -C /etc -cf "$work/etc-postfix.tar" postfix
cleanup() {
    set +e
    if [ -f /var/spool/postfix/pid/master.pid ]; then
        mpid=$(tr -d ' ' < /var/spool/postfix/pid/master.pid)
        kill -TERM "$mpid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
    fi
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    if dpkg -s postwarden >/dev/null 2>&1; then apt-get purge -y -qq postwarden >/dev/null 2>&1; fi
    rm -rf /etc/postfix && tar -C /etc -xf "$work/etc-postfix.tar"
    rm -f /var/log/postfix-pkgtest.log
    rm -rf "$work"
}
trap cleanup EXIT

[ -f /etc/postfix/main.cf ] || cp /usr/share/postfix/main.cf.debian /etc/postfix/main.cf
# A free loopback port for the sink: nothing answers on it.
sink_port=
for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then sink_port=$p; break; fi
done
[ -n "$sink_port" ] || fail "no free port"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mx.pkgtest.example \
    -keyout /etc/postfix/pkgtest-key.pem -out /etc/postfix/pkgtest-cert.pem 2>/dev/null
postconf -e "myhostname = mx.pkgtest.example" "mydestination =" "mynetworks =" \
    "inet_interfaces = loopback-only" "inet_protocols = ipv4" \
    "relayhost = [127.0.0.1]:$sink_port" "smtp_tls_security_level = none" \
    "smtpd_tls_cert_file = /etc/postfix/pkgtest-cert.pem" \
    "smtpd_tls_key_file = /etc/postfix/pkgtest-key.pem" "smtpd_tls_security_level = may" \
    "maillog_file = /var/log/postfix-pkgtest.log" "alias_maps =" "alias_database ="

# --- 1. install the package ---
log "installing $deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$deb" >/dev/null
getent passwd postwarden >/dev/null || fail "no postwarden user"
[ "$(stat -c %U /var/lib/postwarden/postwarden.db)" = postwarden ] || fail "store not owned by postwarden"
[ "$(stat -c '%a %G' /etc/postwarden/postwarden.toml)" = "640 postwarden" ] || fail "config permissions"
postwarden --config /etc/postwarden/postwarden.toml check-config >/dev/null

# --- the systemd units are valid (systemd-analyze works without systemd running) ---
units=(/lib/systemd/system/postwarden.service /lib/systemd/system/postwarden-*.socket
    /lib/systemd/system/postwarden-dmarc-report.service /lib/systemd/system/postwarden-dmarc-report.timer)
verify=$(systemd-analyze verify --man=no "${units[@]}" 2>&1 | grep -v '^[[:space:]]' || true)
[ -z "$verify" ] || { echo "$verify"; fail "systemd-analyze verify complains"; }

# --- the daily DMARC report timer is enabled; its command runs as the daemon's user
#     (reports are disabled by default: it says so and succeeds) ---
[ -L /etc/systemd/system/timers.target.wants/postwarden-dmarc-report.timer ] \
    || fail "postwarden-dmarc-report.timer not enabled"
runuser -u postwarden -- /usr/bin/postwarden dmarc report --config /etc/postwarden/postwarden.toml \
    | grep -q "reports are disabled" || fail "dmarc report as postwarden"

# --- lintian ---
if command -v lintian >/dev/null; then
    lintian --fail-on error "$deb" | tee "$work/lintian.txt" || fail "lintian errors"
else
    [ "${CI:-}" = true ] && fail "lintian missing"
fi

# --- 2. postfix-setup --apply ---
postwarden postfix-setup --apply >/dev/null || fail "postfix-setup --apply"
[ "$(postconf -h smtpd_sasl_type)" = dovecot ] || fail "smtpd_sasl_type not set"
postfix check || fail "postfix check"

# --- start postwarden the way the units do: systemd creates the sockets (as postfix,
# mode 0660) and passes them; the daemon runs as user postwarden with the unit's ExecStart.
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/postwarden.service)
socket_args=()
names=()
for name in auth submission inbound; do
    path=$(sed -n 's/^ListenStream=//p' "/lib/systemd/system/postwarden-$name.socket")
    socket_args+=(-l "$path")
    names+=("$name")
done
(IFS=:; echo "${names[*]}") > "$work/fdnames"
systemd-socket-activate "${socket_args[@]}" --fdname="$(cat "$work/fdnames")" \
    -- setpriv --reuid=postwarden --regid=postwarden --init-groups $exec_start \
    > "$work/postwarden.log" 2>&1 &
pids+=($!)
for name in auth submission inbound; do
    path=/var/spool/postfix/private/postwarden-$name
    for _ in $(seq 100); do [ -S "$path" ] && break; sleep 0.1; done
    [ -S "$path" ] || fail "socket $path not created"
    chown postfix:postfix "$path" && chmod 0660 "$path"   # SocketUser/SocketGroup/SocketMode
done

# --- smtp-sink as the relay host; Debian's Postfix started as its service does ---
mkdir -p "$work/sink" && chown nobody "$work/sink"
smtp-sink -u nobody -d "$work/sink/%H%M%S." "127.0.0.1:$sink_port" 50 &
pids+=($!)
/usr/lib/postfix/configure-instance.sh - >/dev/null
postfix start >/dev/null 2>&1 || fail "postfix start"
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/587) 2>/dev/null && break; sleep 0.1; done

# --- 3. a credential with the installed CLI ---
postwarden org add acme >/dev/null
postwarden domain add acme.example --org acme >/dev/null
postwarden account add alice@acme.example --kind end_user >/dev/null
cred=$(postwarden credential new --org acme --label pkgtest)
user=$(sed -n 's/^username: //p' <<<"$cred")
pass=$(sed -n 's/^password: //p' <<<"$cred")
[ -n "$user" ] && [ -n "$pass" ] || fail "credential new printed no username/password"

# --- swaks on 587 ---
out=$(swaks --server 127.0.0.1:587 --tls --auth PLAIN --auth-user "$user" --auth-password "$pass" \
    --from alice@acme.example --to rcpt@dest.example --header "Subject: pkgtest-ok" 2>&1) || true
grep -q "235 2.7.0 Authentication successful" <<<"$out" || { echo "$out"; fail "no 235"; }
grep -q "250 2.0.0 Ok: queued" <<<"$out" || { echo "$out"; fail "not queued"; }
for _ in $(seq 100); do grep -rqs "Subject: pkgtest-ok" "$work/sink" && break; sleep 0.2; done
grep -rqs "Subject: pkgtest-ok" "$work/sink" || fail "message not delivered to the sink"
out=$(swaks --server 127.0.0.1:587 --tls --auth PLAIN --auth-user "$user" --auth-password wrong \
    --from alice@acme.example --to rcpt@dest.example 2>&1) || true
grep -q "535 5.7.8 Error: authentication failed" <<<"$out" || { echo "$out"; fail "no 535"; }
postwarden log --kind auth | grep -q "reason=bad_password" || fail "auth event missing"
log "235 + delivered, 535 for a wrong password: ok"

# --- stop what we started (by PID) ---
mpid=$(tr -d ' ' < /var/spool/postfix/pid/master.pid)
kill -TERM "$mpid"; for _ in $(seq 50); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
pids=()

# --- 4. remove keeps config and data; purge removes them ---
apt-get remove -y -qq postwarden >/dev/null
[ ! -e /usr/bin/postwarden ] || fail "binary left after remove"
[ -f /etc/postwarden/postwarden.toml ] || fail "config removed by remove"
[ -f /var/lib/postwarden/postwarden.db ] || fail "data removed by remove"
apt-get purge -y -qq postwarden >/dev/null
[ ! -e /etc/postwarden ] || fail "config left after purge"
[ ! -e /var/lib/postwarden ] || fail "data left after purge"
log "install, postfix-setup, send, remove, purge: ok"
