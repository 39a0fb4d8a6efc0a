#!/usr/bin/env bash
# The Debian package under a real systemd: boots a Debian bookworm container with systemd as
# PID 1 (debootstrap + systemd-nspawn), installs the package built from this checkout in it,
# and checks what an operator relies on:
#   - install enables and starts the service; it is `active` only once the daemon sent READY
#     (after migrations, with the API listening) and /ok answers at once; the man pages,
#     completions, docs and conffiles are where they belong;
#   - the documented check-config line passes on the edited config; a command graph
#     (python3) runs in the unit's sandbox; a per-second cron on it fires;
#   - the watchdog is armed (WatchdogUSec); pin_workers pins each runtime worker to its own
#     CPU with no warning;
#   - `systemctl stop` while a 10 s command run is going ends cleanly (Result=success,
#     exit 0) within TimeoutStopSec; the run is handed back and finishes after a start;
#   - `systemctl kill -s SIGKILL` is followed by a restart (Restart=on-failure);
#   - a hung daemon (SIGSTOP, WatchdogSec=5s in a drop-in) is killed and restarted by the
#     watchdog;
#   - an upgrade to a newer package restarts the daemon and keeps the edited conffile;
#   - through all of that, the per-second cron (misfire_policy fire_all) has exactly one
#     history entry per instant, each fired and its run ended `success`: nothing lost, nothing
#     doubled;
#   - the journal shows no permission or system-call errors;
#   - remove stops the service and keeps the config; purge deletes config and state.
#
# The rootfs is built once into /var/cache/cronhook-test/rootfs (CRONHOOK_TEST_CACHE) and
# rebuilt when missing or when its package list changes; each run boots it with a throw-away
# overlay (--volatile=overlay), so every run starts from the same clean system. The
# container shares the host's network namespace: the daemon listens on a free loopback port
# that the test picks, and the test talks to it over loopback only. Needs root; installs
# debootstrap, systemd-container, curl, jq and python3 with apt when missing. The Debian
# mirror is the one the host's apt uses.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CACHE="${CRONHOOK_TEST_CACHE:-/var/cache/cronhook-test}"
ROOTFS="$CACHE/rootfs"
SUITE=bookworm
# What the rootfs holds beyond minbase; a change here rebuilds the cached rootfs. The
# package's dependencies are among them: the install runs offline. dbus: `systemd-run
# --wait`, in the documented check-config line, talks to systemd over D-Bus.
ROOTFS_PACKAGES="systemd,systemd-sysv,dbus,python3,ca-certificates"
ROOTFS_STAMP="$SUITE minbase $ROOTFS_PACKAGES"
STARTED=$SECONDS
CHECKS=0

log() { printf 'systemd-boot-test: %s\n' "$*" >&2; }
ok() {
  CHECKS=$((CHECKS + 1))
  log "ok: $*"
}
fail() {
  log "FAIL: $*"
  exit 1
}

[[ $(id -u) -eq 0 ]] || fail "needs root (debootstrap, systemd-nspawn, nsenter)"

apt_updated=""
apt_install() {
  [[ -n $apt_updated ]] || apt-get update -qq
  apt_updated=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v curl >/dev/null || missing+=(curl)
command -v jq >/dev/null || missing+=(jq)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
  log "installing ${missing[*]} (apt)"
  apt_install "${missing[@]}"
fi

WORK="$(mktemp -d /var/tmp/cronhook-boot-test.XXXXXX)"
NSPAWN_PID=""
LEADER=""
cleanup() {
  local rc=$?
  if ((rc != 0)) && [[ -n $LEADER ]] && kill -0 "$LEADER" 2>/dev/null; then
    log "journal of the container (last 80 lines):"
    C journalctl --no-pager -n 80 -o short-monotonic >&2 || true
  fi
  if [[ -n $NSPAWN_PID ]] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    # SIGTERM: nspawn asks the container's systemd to power off.
    kill -TERM "$NSPAWN_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do
      kill -0 "$NSPAWN_PID" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL "$NSPAWN_PID" 2>/dev/null || true
    wait "$NSPAWN_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

# --- the packages: the checkout's version, and a newer one of the same build to upgrade to
# --fast: lighter compression, the same contents.
log "building the packages (scripts/deb.sh)"
mkdir -p "$WORK/debs"
scripts/deb.sh --fast --output "$WORK/debs/" >"$WORK/deb.log" 2>&1 || {
  cat "$WORK/deb.log" >&2
  fail "scripts/deb.sh failed"
}
DEB1="$(ls "$WORK"/debs/cronhook_*.deb)"
VERSION1="$(dpkg-deb --field "$DEB1" Version)"
VERSION2="$VERSION1+upgrade"
scripts/deb.sh --fast --deb-version "$VERSION2" --output "$WORK/debs/" >>"$WORK/deb.log" 2>&1 || {
  cat "$WORK/deb.log" >&2
  fail "scripts/deb.sh --deb-version $VERSION2 failed"
}
DEB2="$(ls "$WORK"/debs/cronhook_*"+upgrade"_*.deb)"
dpkg --compare-versions "$VERSION2" gt "$VERSION1" || fail "$VERSION2 does not sort after $VERSION1"

# --- the rootfs, cached
# The host's own Debian mirror (apt's sources), so the test reaches only the registry the
# machine already uses.
debian_mirror() {
  local uri
  uri="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1)"
  if [[ -z $uri ]]; then
    uri="$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n1)"
  fi
  [[ -n $uri ]] || fail "no Debian mirror in /etc/apt/sources.list{,.d}"
  printf '%s\n' "$uri"
}
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9
if [[ "$(cat "$ROOTFS/.cronhook-test-stamp" 2>/dev/null)" != "$ROOTFS_STAMP" ]]; then
  mirror="$(debian_mirror)"
  log "building the $SUITE rootfs in $ROOTFS (debootstrap from $mirror, about a minute)"
  rm -rf "$ROOTFS" "$ROOTFS.tmp"
  debootstrap --variant=minbase --include="$ROOTFS_PACKAGES" "$SUITE" "$ROOTFS.tmp" "$mirror" \
    >"$WORK/debootstrap.log" 2>&1 || {
    tail -n 30 "$WORK/debootstrap.log" >&2
    fail "debootstrap failed"
  }
  printf '%s\n' "$ROOTFS_STAMP" >"$ROOTFS.tmp/.cronhook-test-stamp"
  mv "$ROOTFS.tmp" "$ROOTFS"
fi
flock -u 9

# --- boot
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
MACHINE="cronhook-test-$$"
log "booting $ROOTFS (systemd-nspawn, machine $MACHINE, daemon port $PORT)"
# --register=no --keep-unit: the host need not run systemd. The packages come in read-only.
systemd-nspawn --quiet --register=no --keep-unit --volatile=overlay --console=read-only \
  --directory="$ROOTFS" --machine="$MACHINE" --bind-ro="$WORK/debs:/srv/debs" --boot \
  >"$WORK/console.log" 2>&1 </dev/null &
NSPAWN_PID=$!

# The container's PID 1 as the host sees it: the systemd below nspawn that is PID 1 in its
# own PID namespace.
leader_pid() {
  local pid ppid
  for pid in $(pgrep -x systemd); do
    grep -Eq '^NSpid:.*[[:space:]]1$' "/proc/$pid/status" 2>/dev/null || continue
    ppid=$pid
    while [[ -n $ppid && $ppid -gt 1 ]]; do
      if [[ $ppid == "$NSPAWN_PID" ]]; then
        echo "$pid"
        return 0
      fi
      ppid="$(awk '/^PPid:/ {print $2}' "/proc/$ppid/status" 2>/dev/null)"
    done
  done
  return 1
}
for _ in $(seq 1 100); do
  LEADER="$(leader_pid)" && break
  kill -0 "$NSPAWN_PID" 2>/dev/null || {
    cat "$WORK/console.log" >&2
    fail "systemd-nspawn exited"
  }
  sleep 0.1
done
[[ -n $LEADER ]] || fail "no systemd in the container after 10 s"

# A command inside the container, with a clean environment.
C() {
  nsenter --target "$LEADER" --all \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
prop() { C systemctl show --value --property "$1" cronhook.service; }
main_pid() { prop MainPID; }
journal() { C journalctl --no-pager -o cat "$@"; }

# systemctl needs PID 1's private socket, which appears a moment after PID 1 does.
state=""
for _ in $(seq 1 100); do
  state="$(C timeout 60 systemctl is-system-running --wait 2>/dev/null || true)"
  [[ -z $state ]] || break
  sleep 0.1
done
case $state in
  running | degraded) ;;
  *) fail "the container's systemd is '$state' after booting" ;;
esac
if [[ $state == degraded ]]; then
  log "container degraded; failed units: $(C systemctl --failed --no-legend --plain | awk '{print $1}' | xargs)"
fi
ok "container booted: systemd $(C systemctl --version | awk 'NR==1 {print $2}') is PID 1 ($state)"

# --- install
# The daemon's port, set before the package starts it: the shipped 8123 may be taken on the
# host, whose network the container shares. A drop-in, as an operator would add one.
C mkdir -p /etc/systemd/system/cronhook.service.d
printf '[Service]\nEnvironment=CRONHOOK_BIND=127.0.0.1:%s\n' "$PORT" |
  C tee /etc/systemd/system/cronhook.service.d/10-test-port.conf >/dev/null

C env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "/srv/debs/$(basename "$DEB1")" \
  >"$WORK/install.log" 2>&1 || {
  cat "$WORK/install.log" >&2
  fail "apt-get install of $(basename "$DEB1") failed"
}
depends="$(C dpkg-query --showformat='${Depends}' --show cronhook)"
[[ $depends == *libc6* && $depends == *ca-certificates* ]] || fail "Depends: $depends"
[[ "$(C systemctl is-enabled cronhook)" == enabled ]] || fail "cronhook.service not enabled by the install"
[[ "$(C systemctl is-active cronhook)" == active ]] || fail "cronhook.service not active after the install"
# The install's start returned, so the service is active: /ok must answer now, not later.
[[ "$(curl -sS --max-time 5 "$URL/ok")" == '{"ok":true}' ]] || fail "/ok does not answer right after the install"
ok "apt-get install $(basename "$DEB1"): enabled, active, /ok answers"

# Active only after READY: systemd entered `active` after the daemon logged that it listens
# (migrations run before that), and the STATUS= line is the daemon's.
check_ready_order() {
  local active listening
  active="$(prop ActiveEnterTimestampMonotonic)"
  listening="$(C journalctl --no-pager -u cronhook -o json _PID="$(main_pid)" |
    jq -r 'select(.MESSAGE | test("cronhook listening")) | .__MONOTONIC_TIMESTAMP' | tail -n1)"
  [[ -n $listening ]] || fail "no 'cronhook listening' line from the running daemon in the journal"
  ((listening < active)) || fail "active at ${active}us, before the daemon listened at ${listening}us"
  [[ "$(prop Type)" == notify ]] || fail "Type is not notify"
  [[ "$(prop StatusText)" == "listening on 127.0.0.1:$PORT;"* ]] || fail "StatusText: $(prop StatusText)"
}
check_ready_order
ok "active $(($(prop ActiveEnterTimestampMonotonic) - $(prop ExecMainStartTimestampMonotonic)))us after exec, after the daemon listened; StatusText from the daemon"

# What the package put where.
for path in /usr/bin/cronhook /lib/systemd/system/cronhook.service /etc/cronhook/cronhook.toml \
  /etc/cronhook/cronhook.env /usr/share/doc/cronhook/README.md /usr/share/doc/cronhook/CHANGELOG.md \
  /usr/share/doc/cronhook/docs/operations.md /usr/share/doc/cronhook/copyright \
  /usr/share/man/man1/cronhook.1.gz /usr/share/man/man1/cronhook-crons-create.1.gz \
  /usr/share/bash-completion/completions/cronhook /usr/share/zsh/vendor-completions/_cronhook \
  /usr/share/fish/vendor_completions.d/cronhook.fish; do
  C test -f "$path" || fail "$path is not installed"
done
conffiles="$(C dpkg-query --showformat='${Conffiles}' --show cronhook)"
grep -q '/etc/cronhook/cronhook.toml' <<<"$conffiles" && grep -q '/etc/cronhook/cronhook.env' <<<"$conffiles" ||
  fail "the config files are not conffiles: $conffiles"
[[ "$(C stat -c %a /etc/cronhook/cronhook.env)" == 600 ]] || fail "cronhook.env is not mode 0600"
C sh -c 'zcat /usr/share/man/man1/cronhook.1.gz | grep -q "^\.TH cronhook 1"' || fail "cronhook.1 is not a man page"
completed="$(C bash -c '. /usr/share/bash-completion/completions/cronhook
  COMP_WORDS=(cronhook crons pa); COMP_CWORD=2; COMP_LINE="cronhook crons pa"; COMP_POINT=${#COMP_LINE}
  _cronhook cronhook pa crons; echo "${COMPREPLY[*]}"')"
[[ $completed == pause ]] || fail "bash completion of 'cronhook crons pa' gave '$completed', not 'pause'"
ok "binary, unit, conffiles (env 0600), docs, man pages, bash/zsh/fish completions installed; bash completes 'crons pa' to 'pause'"

# --- the operator's config: two command graphs; a short grace and lease keep the test short
C mkdir -p /opt/cronhook-test
C tee /opt/cronhook-test/probe.py >/dev/null <<'EOF'
# Reports what the sandbox lets it do; the last line of stdout is the run's output.
import json, os, sys
sys.stdin.read()
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
print(json.dumps({
    "uid": os.getuid(),
    "etc_writable": os.access("/etc", os.W_OK),
    "no_new_privs": status["NoNewPrivs"].strip(),
    "seccomp": status["Seccomp"].strip(),
    "cap_eff": status["CapEff"].strip(),
    "home_readable": os.access("/home", os.R_OK),
}))
EOF
C sed -i -e 's/^shutdown_grace = "30s"/shutdown_grace = "2s"/' -e 's/^lease = "30s"/lease = "3s"/' /etc/cronhook/cronhook.toml
C tee -a /etc/cronhook/cronhook.toml >/dev/null <<'EOF'

# Added by scripts/systemd-boot-test.sh.
[graphs.probe]
kind = "command"
command = ["python3", "/opt/cronhook-test/probe.py"]
timeout = "30s"

[graphs.slow]
kind = "command"
command = ["python3", "-c", "import time; time.sleep(10); print('{\"slept\": 10}')"]
timeout = "60s"
EOF
C grep -q '^shutdown_grace = "2s"' /etc/cronhook/cronhook.toml && C grep -q '^lease = "3s"' /etc/cronhook/cronhook.toml ||
  fail "editing shutdown_grace and lease in /etc/cronhook/cronhook.toml did not take"
# The check-config line the docs give, with the service's kind of user and environment.
checked="$(C systemd-run --pipe --wait --quiet --collect -p DynamicUser=yes \
  -p EnvironmentFile=/etc/cronhook/cronhook.env \
  /usr/bin/cronhook check-config --config /etc/cronhook/cronhook.toml 2>&1)" ||
  fail "check-config under systemd-run failed: $checked"
[[ $checked == *"config ok: 3 graph(s)"* ]] || fail "check-config said: $checked"
C systemctl restart cronhook
[[ "$(curl -sS --max-time 5 "$URL/ok")" == '{"ok":true}' ]] || fail "/ok does not answer right after a restart"
check_ready_order
ok "edited config passes check-config under systemd-run (DynamicUser, EnvironmentFile); restart ready at once"

# --- the sandbox, as a command graph sees it
probe="$(curl -sS --max-time 30 -H 'content-type: application/json' \
  -d '{"assistant_id": "probe", "input": {}}' "$URL/runs/wait")"
jq -e '.uid != 0 and .etc_writable == false and .no_new_privs == "1" and .seccomp == "2"
  and .cap_eff == "0000000000000000" and .home_readable == false' \
  <<<"$probe" >/dev/null || fail "the command graph's sandbox: $probe"
ok "command graph runs sandboxed: $probe"

# --- watchdog and worker pinning
[[ "$(prop WatchdogUSec)" == 30s ]] || fail "WatchdogUSec is '$(prop WatchdogUSec)', not 30s"
ok "watchdog armed: WatchdogUSec=30s"

cron="$(curl -sS --max-time 10 -H 'content-type: application/json' \
  -d '{"assistant_id": "probe", "schedule": "* * * * * *", "misfire_policy": "fire_all"}' "$URL/runs/crons")"
CRON_ID="$(jq -r .cron_id <<<"$cron")"
[[ $CRON_ID != null && -n $CRON_ID ]] || fail "creating the per-second cron: $cron"
sleep 3
cron_history() {
  curl -sS --max-time 10 "$URL/runs/crons/$CRON_ID/history?limit=1000"
}
fired="$(cron_history | jq '[.[] | select(.fire == "fired" and .run_status == "success")] | length')"
((fired >= 2)) || fail "the per-second cron: $fired successful fires in 3 s: $(cron_history)"
ok "per-second cron on the command graph: $fired runs ended success in 3 s"

cpus="$(C nproc)"
if ((cpus > 1)); then
  # tokio's worker threads are named tokio-rt-worker (tokio-runtime-worker, cut to
  # tokio-runtime-w, before tokio 1.48); each parked at least once since the start, so each
  # pinned itself.
  pid="$(main_pid)"
  masks="$(C sh -c "for t in /proc/$pid/task/*; do
      grep -Eqx 'tokio-rt-worker|tokio-runtime-w' \$t/comm && awk '/^Cpus_allowed_list/ {print \$2}' \$t/status; done; true" | sort)"
  workers="$(wc -l <<<"$masks")"
  distinct="$(sort -u <<<"$masks" | grep -cv '[-,]' || true)"
  [[ $workers == "$cpus" && $distinct == "$cpus" ]] ||
    fail "pin_workers: $cpus CPUs, workers' allowed CPUs: $(xargs <<<"$masks")"
  if journal -u cronhook | grep -i 'pinning a runtime worker failed'; then
    fail "pin_workers warned (above)"
  fi
  ok "pin_workers: $workers workers, each pinned to its own CPU ($(xargs <<<"$masks")), no warning"
else
  log "skipped: pin_workers needs 2 CPUs, the container has $cpus"
fi

# --- systemctl stop during a 10 s run: clean exit, the run handed back, finished after start
thread="$(curl -sS --max-time 10 -H 'content-type: application/json' -d '{}' "$URL/threads" | jq -r .thread_id)"
run="$(curl -sS --max-time 10 -H 'content-type: application/json' \
  -d '{"assistant_id": "slow"}' "$URL/threads/$thread/runs" | jq -r .run_id)"
run_status() { curl -sS --max-time 10 "$URL/threads/$thread/runs/$run" | jq -r .status; }
for _ in $(seq 1 50); do
  [[ "$(run_status)" == running ]] && break
  sleep 0.1
done
[[ "$(run_status)" == running ]] || fail "the slow run is '$(run_status)', not running"
sleep 1
stop_started=$SECONDS
C systemctl stop cronhook
stop_took=$((SECONDS - stop_started))
timeout_stop="$(prop TimeoutStopUSec)"
result="$(prop Result)" exit_code="$(prop ExecMainCode)" exit_status="$(prop ExecMainStatus)"
[[ $result == success && $exit_code == 1 && $exit_status == 0 ]] ||
  fail "stop: Result=$result ExecMainCode=$exit_code ExecMainStatus=$exit_status (want success, 1 = exited, 0)"
((stop_took < 45)) || fail "stop took ${stop_took}s, TimeoutStopSec is $timeout_stop"
journal -u cronhook | grep -q "run handed back to the queue.*$run" ||
  journal -u cronhook | grep -q "$run.*run handed back to the queue" ||
  fail "the journal does not show run $run handed back to the queue"
start_at=$SECONDS
C systemctl start cronhook
for _ in $(seq 1 200); do
  [[ "$(run_status)" == success ]] && break
  sleep 0.1
done
[[ "$(run_status)" == success ]] || fail "the handed-back run is '$(run_status)' 20 s after the start"
((SECONDS - start_at >= 9)) || fail "the handed-back run ended $((SECONDS - start_at)) s after the start: it did not run again"
ok "stop during a 10 s run: ${stop_took}s (TimeoutStopSec=$timeout_stop), Result=success, exit 0; run handed back, success $((SECONDS - start_at))s after start"

# --- SIGKILL: restarted by Restart=on-failure
restarts="$(prop NRestarts)" pid="$(main_pid)"
C systemctl kill --signal=SIGKILL cronhook
for _ in $(seq 1 100); do
  [[ "$(prop NRestarts)" -gt $restarts && "$(C systemctl is-active cronhook)" == active ]] && break
  sleep 0.1
done
[[ "$(prop NRestarts)" -gt $restarts && "$(C systemctl is-active cronhook)" == active ]] ||
  fail "no restart after SIGKILL (NRestarts $(prop NRestarts), $(C systemctl is-active cronhook))"
[[ "$(main_pid)" != "$pid" ]] || fail "same MainPID after SIGKILL"
[[ "$(curl -sS --max-time 5 "$URL/ok")" == '{"ok":true}' ]] || fail "/ok after the SIGKILL restart"
ok "SIGKILL: restarted by Restart=on-failure (NRestarts $(prop NRestarts)), /ok answers"

# --- a hung daemon: the watchdog kills and restarts it
C mkdir -p /etc/systemd/system/cronhook.service.d
printf '[Service]\nWatchdogSec=5s\n' | C tee /etc/systemd/system/cronhook.service.d/20-test-watchdog.conf >/dev/null
C systemctl daemon-reload
C systemctl restart cronhook
[[ "$(prop WatchdogUSec)" == 5s ]] || fail "WatchdogUSec is '$(prop WatchdogUSec)' with the drop-in"
restarts="$(prop NRestarts)" pid="$(main_pid)"
stopped_at=$SECONDS
C systemctl kill --kill-whom=main --signal=SIGSTOP cronhook
for _ in $(seq 1 300); do
  [[ "$(prop NRestarts)" -gt $restarts && "$(C systemctl is-active cronhook)" == active ]] && break
  sleep 0.1
done
[[ "$(prop NRestarts)" -gt $restarts && "$(C systemctl is-active cronhook)" == active ]] ||
  fail "no restart 30 s after SIGSTOP with WatchdogSec=5s"
journal -u cronhook | grep -q 'Watchdog timeout' || fail "the journal shows no watchdog timeout"
[[ "$(main_pid)" != "$pid" ]] || fail "same MainPID after the watchdog"
ok "SIGSTOP with WatchdogSec=5s: watchdog timeout, restarted $((SECONDS - stopped_at))s after the hang"
C rm /etc/systemd/system/cronhook.service.d/20-test-watchdog.conf
C systemctl daemon-reload
C systemctl restart cronhook
[[ "$(prop WatchdogUSec)" == 30s ]] || fail "WatchdogUSec is '$(prop WatchdogUSec)' without the drop-in"

# --- upgrade while the per-second cron fires
sleep 2
pid="$(main_pid)"
C env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "/srv/debs/$(basename "$DEB2")" \
  >"$WORK/upgrade.log" 2>&1 || {
  cat "$WORK/upgrade.log" >&2
  fail "apt-get install of $(basename "$DEB2") failed"
}
[[ "$(C dpkg-query --showformat='${Version}' --show cronhook)" == "$VERSION2" ]] || fail "not upgraded to $VERSION2"
[[ "$(C systemctl is-active cronhook)" == active && "$(main_pid)" != "$pid" ]] ||
  fail "the upgrade did not restart the service"
C grep -q '^\[graphs.slow\]' /etc/cronhook/cronhook.toml && C grep -q '^lease = "3s"' /etc/cronhook/cronhook.toml ||
  fail "the upgrade lost the edits to /etc/cronhook/cronhook.toml"
if C sh -c 'ls /etc/cronhook/*.dpkg-* 2>/dev/null' | grep -q .; then
  fail "the upgrade left $(C sh -c 'ls /etc/cronhook/*.dpkg-*')"
fi
[[ "$(curl -sS --max-time 5 "$URL/ok")" == '{"ok":true}' ]] || fail "/ok after the upgrade"
ok "upgrade $VERSION1 -> $VERSION2 while the cron fires: restarted, edited conffile kept, /ok answers"
sleep 3

# --- every instant of the per-second cron: one entry, fired, its run ended success
# (runs lost with a killed daemon come back when their 3 s lease lapses).
verdict=""
for _ in $(seq 1 30); do
  cron_history >"$WORK/history.json"
  if verdict="$(python3 - "$WORK/history.json" <<'EOF'
import json, sys
from datetime import datetime, timedelta
entries = json.load(open(sys.argv[1]))
def at(text):
    return datetime.fromisoformat(text)
scheduled = sorted(at(e["scheduled_for"]) for e in entries if e["scheduled_for"])
bad = [e for e in entries if e["fire"] != "fired"]
if bad:
    print(f"entries not fired: {bad}"); sys.exit(1)
if len(scheduled) != len(set(scheduled)):
    print("an instant has two entries"); sys.exit(1)
first, last = scheduled[0], scheduled[-1]
expected = int((last - first).total_seconds()) + 1
if len(scheduled) != expected:
    have = set(scheduled)
    gaps = [str(first + timedelta(seconds=i)) for i in range(expected) if first + timedelta(seconds=i) not in have]
    print(f"{expected - len(scheduled)} instants missing: {gaps[:10]}"); sys.exit(1)
unfinished = [e for e in entries if e["run_status"] != "success"]
if unfinished:
    print(f"{len(unfinished)} runs not ended success: {[(e['scheduled_for'], e['run_status']) for e in unfinished[:5]]}")
    sys.exit(2)
late = max(e["lateness_ms"] or 0 for e in entries)
print(f"{len(scheduled)} instants from {first:%H:%M:%S} to {last:%H:%M:%S}, one entry each, all fired and ended success (latest start {late} ms after its instant)")
EOF
  )"; then
    break
  else
    rc=$?
    ((rc == 2)) || fail "cron history: $verdict"
  fi
  sleep 1
done
[[ $verdict == *"ended success"* ]] || fail "cron history: $verdict"
ok "through stop/start, SIGKILL, watchdog and upgrade: $verdict"

# --- the journal: no permission or system-call errors
if journal -u cronhook | grep -Ei 'permission denied|operation not permitted|EPERM|EACCES|seccomp|bad system call|SIGSYS'; then
  fail "permission or system-call errors in the journal (above)"
fi
if C journalctl --no-pager -o cat -k 2>/dev/null | grep -Ei 'audit.*(seccomp|denied)'; then
  fail "audit denials in the journal (above)"
fi
ok "journal: no permission or system-call errors"
# For the record: the unit's warnings (the kills above make some).
journal -u cronhook -p warning | sed 's/^/systemd-boot-test:   warning: /' >&2 || true

# --- remove, then purge
C env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q cronhook >"$WORK/remove.log" 2>&1 ||
  fail "apt-get remove: $(cat "$WORK/remove.log")"
[[ "$(C systemctl is-active cronhook || true)" != active ]] || fail "cronhook still active after remove"
! curl -sS --max-time 2 "$URL/ok" >/dev/null 2>&1 || fail "/ok still answers after remove"
C test -f /etc/cronhook/cronhook.toml && C test -e /var/lib/private/cronhook/cronhook.db ||
  fail "remove deleted the config or the database"
C env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q cronhook >"$WORK/purge.log" 2>&1 ||
  fail "apt-get purge: $(cat "$WORK/purge.log")"
for path in /etc/cronhook /var/lib/cronhook /var/lib/private/cronhook; do
  ! C test -e "$path" || fail "$path is still there after purge"
done
ok "remove stops the service and keeps config and data; purge deletes /etc/cronhook and the state"

log "passed: $CHECKS checks in $((SECONDS - STARTED)) s"
