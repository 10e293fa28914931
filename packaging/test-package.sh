#!/usr/bin/env bash
# Installs the built .deb on this machine and proves the README's three install steps
# against Debian's own Postfix (chrooted smtpd, as Debian ships it):
#   apt install ./postwarden_*.deb; postwarden postfix-setup --apply; create a credential;
# then swaks on 587: 235 + delivered to a sink, wrong password 535; a package upgrade under
# load that no session notices; then apt remove/purge.
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
    # The service manager stops the daemon when its command pipe closes.
    { exec 7>&-; } 2>/dev/null
    if [ -f /var/spool/postfix/pid/master.pid ]; then
        mpid=$(tr -d ' ' < /var/spool/postfix/pid/master.pid)
        kill -TERM "$mpid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
    fi
    if [ -n "${manager_pid:-}" ]; then
        for _ in $(seq 400); do kill -0 "$manager_pid" 2>/dev/null || break; sleep 0.1; done
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

# --- start postwarden the way the units do: the service manager creates the sockets (as
# postfix, mode 0660), passes them, keeps the descriptor store (FileDescriptorStoreMax=) and
# restarts the service on request; the daemon runs as user postwarden with the unit's
# ExecStart. (PID 1 here is not systemd: tests/support/service-manager.py speaks systemd's
# socket, notify and store protocol.)
exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/postwarden.service)
fdstore_max=$(sed -n 's/^FileDescriptorStoreMax=//p' /lib/systemd/system/postwarden.service)
[ -n "$fdstore_max" ] || fail "no FileDescriptorStoreMax= in postwarden.service"
socket_args=()
for name in auth submission inbound; do
    unit=/lib/systemd/system/postwarden-$name.socket
    path=$(sed -n 's/^ListenStream=//p' "$unit")
    [ "$(sed -n 's/^FileDescriptorName=//p' "$unit")" = "$name" ] || fail "$unit: FileDescriptorName"
    socket_args+=(--socket "$name=$path")
done
mkfifo "$work/manager.in"
python3 tests/support/service-manager.py "${socket_args[@]}" --owner postfix \
    --fdstore-max "$fdstore_max" \
    -- /usr/bin/setpriv --reuid=postwarden --regid=postwarden --init-groups $exec_start \
    < "$work/manager.in" > "$work/manager.out" 2> "$work/postwarden.log" &
manager_pid=$!
pids+=($manager_pid)
exec 7> "$work/manager.in"
manager_line() {  # waits for the manager's next line starting with $1
    for _ in $(seq 600); do
        if grep -q "^error:" "$work/manager.out"; then cat "$work/manager.out"; fail "service manager"; fi
        if [ "$(grep -c "^$1" "$work/manager.out")" -ge "$2" ]; then return 0; fi
        sleep 0.1
    done
    fail "service manager: no '$1' line"
}
manager_line ready 1
for name in auth submission inbound; do
    path=/var/spool/postfix/private/postwarden-$name
    [ -S "$path" ] || fail "socket $path not created"
    [ "$(stat -c '%U:%G %a' "$path")" = "postfix:postfix 660" ] || fail "socket $path owner or mode"
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

# --- a package upgrade under load: dpkg replaces the files while submissions keep coming
# (two clients), then the service restarts as the postinst asks systemd to; no session may
# fail and every queued message must arrive ---
load() {
    local i=0
    while [ ! -e "$work/stop-load" ]; do
        i=$((i + 1))
        if swaks --server 127.0.0.1:587 --tls --auth PLAIN --auth-user "$user" \
            --auth-password "$pass" --from alice@acme.example --to rcpt@dest.example \
            --header "Subject: upgrade-$1-$i" > "$work/load-$1-$i.txt" 2>&1 \
            && grep -q "250 2.0.0 Ok: queued" "$work/load-$1-$i.txt"; then
            echo "upgrade-$1-$i" >> "$work/load-ok"
        else
            echo "upgrade-$1-$i" >> "$work/load-failed"
        fi
    done
}
touch "$work/load-ok" "$work/load-failed"
load 1 & lp1=$!
load 2 & lp2=$!
sleep 3
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "./$deb" >/dev/null
grep -q "restart postwarden.service" /var/lib/dpkg/info/postwarden.postinst || fail "postinst restarts no service"
echo restart >&7
manager_line restarted 1
sleep 3
touch "$work/stop-load"
wait "$lp1" "$lp2"
sessions=$(( $(wc -l < "$work/load-ok") + $(wc -l < "$work/load-failed") ))
failed=$(wc -l < "$work/load-failed")
log "upgrade under load: $sessions sessions, $failed failed; $(grep '^restarted' "$work/manager.out")"
if [ "$failed" -ne 0 ]; then
    for f in $(cat "$work/load-failed"); do grep -E '^ *<[~*-]+ *[45][0-9][0-9]' "$work/load-${f#upgrade-}.txt" || true; done
    fail "sessions failed during the upgrade"
fi
[ "$sessions" -ge 4 ] || fail "too little load during the upgrade ($sessions sessions)"
for s in $(cat "$work/load-ok"); do
    for _ in $(seq 100); do grep -rqsE "^Subject: $s"$'\r'"?\$" "$work/sink" && break; sleep 0.2; done
    grep -rqsE "^Subject: $s"$'\r'"?\$" "$work/sink" || fail "$s queued but never delivered"
done
grep -q "auth connections taken over from the previous process" "$work/postwarden.log" \
    || fail "the new process took over no auth connection"
log "upgrade under load: no failed session, every message delivered"

# --- stop what we started (by PID) ---
mpid=$(tr -d ' ' < /var/spool/postfix/pid/master.pid)
kill -TERM "$mpid"; for _ in $(seq 50); do kill -0 "$mpid" 2>/dev/null || break; sleep 0.1; done
echo stop >&7
exec 7>&-
wait "$manager_pid" 2>/dev/null || true
manager_pid=
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
log "install, postfix-setup, send, upgrade under load, remove, purge: ok"
