#!/usr/bin/env bash
# An hour of faults: three replicas on one PostgreSQL and one daemon on SQLite under a mixed
# load (per-second, minute and hourly crons, thread and stateless, every one with a webhook),
# with a fault every few minutes, then a check of the databases and the receivers' logs.
#
#   bench/faults.sh                 60 minutes
#   bench/faults.sh --minutes 3     every fault once, in about 4 minutes (scripts/test.sh)
#   CRONHOOK_BIN=… BENCH_BIN=…      the binaries used (default: release builds)
#
# Faults, in a cycle, each followed by a quiet gap (a twentieth of the run, at least 9 s):
# SIGKILL of replica r1 and its restart; `pg_ctl restart -m fast`; the receivers failing every
# other webhook (a minute), then down (five minutes); replica r2, in a network namespace of its
# own, cut from PostgreSQL for 30 s (tc netem loss 100 % on its veth pair when the kernel has
# netem, else the link set down); the SQLite daemon's tmpfs made full (remounted at the size
# it uses) and freed; `pg_ctl restart -m immediate` (once; later cycles use -m fast). Fault
# durations scale with the run (at most the figures above).
#
# Needs root (ip netns, veth, mount). Traffic stays on loopback and on the script's own veth
# pair (10.213.X.0/30) between the namespace it creates and this host. Everything it creates
# (namespace, link, tmpfs, PostgreSQL cluster, processes) is removed on exit. Prints a
# per-phase table and the totals and exits 1 when an invariant fails (a duplicated instant,
# an instant with no history entry, a missed instant against the misfire policy, a lost run,
# a webhook not delivered or delivered more than twice, a daemon that exited, /ok other than
# 503 with a JSON detail while its database was away, readiness later than 5 s after the
# database came back, a full disk not answered 503, or, from the low point of the quiet
# phases of minutes 10-30 to that of minutes 45-60 (in the same shares of a shorter run), RSS
# up more than 10 % or descriptors up more than 10 % and more than the 24 the pools may open
# lazily).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib.sh"

MINUTES=60
while [[ $# -gt 0 ]]; do
  case "$1" in
    --minutes) MINUTES="$2"; shift 2 ;;
    *) echo "usage: bench/faults.sh [--minutes N]" >&2; exit 2 ;;
  esac
done
[[ $MINUTES =~ ^[0-9]+$ && $MINUTES -ge 3 ]] || { echo "--minutes: 3 or more" >&2; exit 2; }
[[ $(id -u) == 0 ]] || { echo "bench/faults.sh needs root (network namespace, tmpfs)" >&2; exit 2; }

target="${CARGO_TARGET_DIR:-$ROOT/target}"
if [[ -z ${CRONHOOK_BIN:-} || -z ${BENCH_BIN:-} ]]; then
  cargo build --release --quiet -p cronhook -p cronhook-bench
fi
CRONHOOK_BIN="${CRONHOOK_BIN:-$target/release/cronhook}"
BENCH_BIN="${BENCH_BIN:-$target/release/cronhook-bench}"

now_ms() { date +%s%3N; }
T=$((MINUTES * 60))
clamp() { local v=$1; ((v < $2)) && v=$2; ((v > $3)) && v=$3; echo "$v"; }
GAP=$(clamp $((T / 20)) 9 180)      # quiet time after each fault
HALF=$(clamp $((T / 60)) 10 60)     # receivers failing every other webhook
DOWN=$(clamp $((T / 12)) 20 300)    # receivers down
CUT=30                              # r2 cut from PostgreSQL
FULL=$(clamp $((T / 60)) 15 60)     # SQLite's disk full

work="$(mktemp -d)"
ns="chfaults$$"; va="chf$$a"; vb="chf$$b"
net="10.213.$(($$ % 250)).0"; host_ip="${net%.0}.1"; ns_ip="${net%.0}.2"
disk="$work/disk"
declare -A pids=() ports=()
helpers=()
netem=0
status=1

cleanup() {
  set +e
  for name in "${!pids[@]}"; do kill -9 "${pids[$name]}" 2>/dev/null; done
  for pid in "${helpers[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  [[ -n ${pg_dir:-} ]] && pg_stop
  mountpoint -q "$disk" && umount "$disk"
  ip netns del "$ns" 2>/dev/null
  ip link del "$va" 2>/dev/null
  if [[ $status == 0 ]]; then rm -rf "$work"; else echo "logs kept in $work" >&2; fi
}
trap cleanup EXIT

# The namespace of r2 and its veth pair; netem when the kernel has it.
if ip -4 addr | grep -q " ${net%.0}\."; then echo "10.213.x in use here; retry" >&2; exit 2; fi
ip netns add "$ns"
ip link add "$va" type veth peer name "$vb"
ip link set "$vb" netns "$ns"
ip addr add "$host_ip/30" dev "$va"
ip link set "$va" up
ip netns exec "$ns" ip addr add "$ns_ip/30" dev "$vb"
ip netns exec "$ns" ip link set "$vb" up
ip netns exec "$ns" ip link set lo up
if tc qdisc add dev "$va" root netem delay 1ms 2>/dev/null; then
  ip netns exec "$ns" tc qdisc add dev "$vb" root netem delay 1ms
  netem=1
fi
in_ns() { ip netns exec "$ns" "$@"; }

pg_start "$host_ip" "$ns_ip/32"
pg_as=(runuser -u postgres --)
pg_ctl_restart() { "${pg_as[@]}" pg_ctl -D "$pg_dir/data" -l "$pg_dir/log" -w -m "$1" restart >/dev/null; }

mkdir -p "$disk"
mount -t tmpfs -o size=256m tmpfs "$disk"

cat >"$work/cronhook.toml" <<'EOF'
# bench/faults.sh: loopback and veth receivers, retries that outlast a receiver down 5 min,
# and every instant's history entry kept for the check (an hour is 3,600 per-second instants).
[history]
keep_per_cron = 10000
[webhooks.url]
disable_loopback = false
[webhooks.retry]
delays = ["1s", "2s", "5s", "10s", "20s", "30s", "30s", "30s", "30s", "30s", "30s", "30s",
          "30s", "30s", "30s", "30s", "30s", "30s", "30s", "30s"]
EOF

# start_daemon NAME: r0 and r1 on loopback, r2 in the namespace, sq on SQLite in the tmpfs;
# sets `ready` to the milliseconds it took to answer /ok.
start_daemon() {
  local name="$1" port run=() url
  port="${ports[$name]:-$(free_port)}"   # a restart keeps its port (the watcher follows it)
  url="$pg_url"
  case "$name" in
    r2) run=(ip netns exec "$ns"); url="postgres://postgres@$host_ip:$pg_port/bench" ;;
    sq) url="sqlite://$disk/cronhook.db?mode=rwc" ;;
  esac
  mkdir -p "$work/$name"
  "${run[@]}" "$CRONHOOK_BIN" --config "$work/cronhook.toml" --bind "127.0.0.1:$port" \
    --data-dir "$work/$name" --database-url "$url" 2>>"$work/$name.log" &
  pids[$name]=$!
  ports[$name]=$port
  local started; started="$(now_ms)"
  for _ in $(seq 1 300); do
    if "${run[@]}" curl -fsS -o /dev/null "http://127.0.0.1:$port/ok" 2>/dev/null; then
      echo "${pids[$name]}" >"$work/$name.pid"
      ready=$(($(now_ms) - started))
      return 0
    fi
    kill -0 "${pids[$name]}" 2>/dev/null || { tail -20 "$work/$name.log" >&2; return 1; }
    sleep 0.1
  done
  echo "$name did not become ready" >&2; tail -20 "$work/$name.log" >&2; return 1
}
# stop_daemon NAME SIGNAL: the pid file goes first, so the watcher knows it was asked; sets
# `code` to its exit status.
stop_daemon() {
  local name="$1"
  rm -f "$work/$name.pid"
  kill "-$2" "${pids[$name]}" 2>/dev/null || true
  code=0
  wait "${pids[$name]}" 2>/dev/null || code=$?
  unset "pids[$name]"
}

recv_port_pg="$(free_port)"; recv_port_sq="$(free_port)"
receivers=()
start_receivers() {
  "$BENCH_BIN" faults-receiver --listen "$host_ip:$recv_port_pg" --log "$work/recv-pg.log" &
  receivers=($!)
  "$BENCH_BIN" faults-receiver --listen "127.0.0.1:$recv_port_sq" --log "$work/recv-sq.log" &
  receivers+=($!)
  helpers+=("${receivers[@]}")
  for url in "http://$host_ip:$recv_port_pg" "http://127.0.0.1:$recv_port_sq"; do
    for _ in $(seq 1 100); do curl -fsS -o /dev/null -X POST "$url/_mode/ok" 2>/dev/null && break; sleep 0.05; done
  done
}
receivers_mode() {
  curl -fsS -X POST "http://$host_ip:$recv_port_pg/_mode/$1"
  curl -fsS -X POST "http://127.0.0.1:$recv_port_sq/_mode/$1"
}
start_receivers

for name in r0 r1 r2 sq; do start_daemon "$name"; done
"$BENCH_BIN" faults-watch --log "$work/watch.log" \
  --daemon "r0,http://127.0.0.1:${ports[r0]},$work/r0.pid" \
  --daemon "r1,http://127.0.0.1:${ports[r1]},$work/r1.pid" \
  --daemon "sq,http://127.0.0.1:${ports[sq]},$work/sq.pid" &
helpers+=($!)
ip netns exec "$ns" "$BENCH_BIN" faults-watch --log "$work/watch-ns.log" \
  --daemon "r2,http://127.0.0.1:${ports[r2]},$work/r2.pid" &
helpers+=($!)

# The load. crons NAME COUNT KIND SCHEDULE POLICY: KIND thread (a thread each) or stateless.
crons() {
  local daemon="$1" count="$2" kind="$3" schedule="$4" policy="$5" hook path
  local api="http://127.0.0.1:${ports[$daemon]}"
  if [[ $daemon == sq ]]; then hook="http://127.0.0.1:$recv_port_sq/hook"; else hook="http://$host_ip:$recv_port_pg/hook"; fi
  local body
  body="$(jq -nc --arg s "$schedule" --arg p "$policy" --arg h "$hook" --arg l "$kind $schedule $policy" \
    '{assistant_id: "agent", schedule: $s, misfire_policy: $p, webhook: $h, input: {n: 1},
      on_run_completed: "keep", metadata: {load: $l}}')"
  for _ in $(seq 1 "$count"); do
    if [[ $kind == thread ]]; then
      path="/threads/$(curl -fsS -X POST "$api/threads" -H 'content-type: application/json' -d '{}' | jq -r .thread_id)/runs/crons"
    else
      path=/runs/crons
    fi
    curl -fsS -X POST "$api$path" -H 'content-type: application/json' -d "$body" >/dev/null
  done
}
crons r0 10 thread '* * * * * *' fire_all
crons r0 10 thread '* * * * * *' fire_once
crons r0 10 stateless '* * * * * *' fire_all
crons r0 10 stateless '* * * * * *' skip
crons r0 10 thread '* * * * *' fire_once
crons r0 10 stateless '* * * * *' fire_all
crons r0 3 thread '0 * * * *' fire_once
crons r0 3 stateless '0 * * * *' fire_all
crons sq 3 stateless '* * * * * *' fire_all
crons sq 2 thread '* * * * * *' fire_once
crons sq 3 stateless '* * * * *' fire_all
crons sq 1 stateless '0 * * * *' fire_once

started="$(now_ms)"
end=$((started + T * 1000))
phase=baseline
echo "$started $phase" >"$work/phases"
: >"$work/events"
event() { echo "$(now_ms) $1 $phase $2 ${3:-}" >>"$work/events"; }
begin() { phase="$1"; echo "$(now_ms) $phase" >>"$work/phases"; echo "# $(date -u +%T) $phase" >&2; }
echo "# faults: $MINUTES min, 3 replicas on PostgreSQL + 1 on SQLite, netem=$netem, gap ${GAP}s; $(date -u +%FT%TZ); $work" >&2

fault_kill() {
  begin "kill-r1#$1"
  stop_daemon r1 9
  sleep 3
  start_daemon r1
  event ok r1 "SIGKILLed, restarted 3 s later, ready in $ready ms"
}
fault_pg() {
  begin "pg-$1#$2"
  event db-down r0,r1,r2
  pg_ctl_restart "$1"
  event db-back r0,r1,r2
}
fault_receivers() {
  begin "receivers-half#$1"
  receivers_mode half
  sleep "$HALF"
  receivers_mode ok
  begin "receivers-down#$1"
  kill "${receivers[@]}"; wait "${receivers[@]}" 2>/dev/null || true
  sleep "$DOWN"
  start_receivers
  event ok receivers "failed every other webhook ${HALF} s, down ${DOWN} s"
}
cut_link() {
  if [[ $netem == 1 ]]; then
    tc qdisc change dev "$va" root netem "$@"
    in_ns tc qdisc change dev "$vb" root netem "$@"
  elif [[ $1 == loss ]]; then
    ip link set "$va" down
  else
    ip link set "$va" up
  fi
}
fault_cut() {
  begin "cut-r2#$1"
  event db-down r2
  cut_link loss 100%
  sleep "$CUT"
  cut_link delay 1ms
  event db-back r2
}
# A write that does not fit: a cron with 256 KiB of metadata (answers the status and body).
big_write() {
  [[ -f $work/big.json ]] || printf '{"assistant_id":"agent","schedule":"0 0 1 1 *","metadata":{"pad":"%s"}}' \
    "$(head -c 262144 /dev/zero | tr '\0' x)" >"$work/big.json"
  curl -sS -o "$work/answer" -w '%{http_code}' -X POST "http://127.0.0.1:${ports[sq]}/runs/crons" \
    -H 'content-type: application/json' -d "@$work/big.json" || true
}
fault_disk() {
  begin "disk-full#$1"
  local used code="" i
  for i in $(seq 1 20); do
    used="$(df --output=used -k "$disk" | tail -1 | tr -d ' ')"
    mount -o "remount,size=${used}k" "$disk" 2>/dev/null && break
  done
  for i in $(seq 1 40); do
    code="$(big_write)"
    [[ $code != 200 ]] && break
  done
  if [[ $code == 503 ]] && jq -e '.detail | test("disk is full")' "$work/answer" >/dev/null; then
    event ok sq "a write on the full disk: 503 $(jq -c . "$work/answer")"
  else
    event fail sq "a write on the full disk answered $code $(head -c 300 "$work/answer")"
  fi
  sleep "$FULL"
  mount -o remount,size=256m "$disk"
  local freed; freed="$(now_ms)"
  while :; do
    code="$(curl -sS -o "$work/answer" -w '%{http_code}' -X POST "http://127.0.0.1:${ports[sq]}/runs/crons" \
      -H 'content-type: application/json' -d '{"assistant_id":"agent","schedule":"0 0 1 1 *"}' || true)"
    [[ $code == 200 ]] && break
    if (($(now_ms) - freed > 5000)); then
      event fail sq "writes not back 5 s after space freed: $code $(head -c 300 "$work/answer")"
      return
    fi
    sleep 0.2
  done
  event ok sq "writes back $(($(now_ms) - freed)) ms after space freed"
}

# fault KIND N: runs it when it fits before the end with its gap after it.
fault() {
  local need
  case "$1" in
    kill) need=5 ;; pg-*) need=5 ;; receivers) need=$((HALF + DOWN + 2)) ;;
    cut) need=$((CUT + 1)) ;; disk) need=$((FULL + 5)) ;;
  esac
  (($(now_ms) + (need + GAP) * 1000 <= end)) || return 1
  case "$1" in
    kill) fault_kill "$2" ;; pg-fast) fault_pg fast "$2" ;; pg-immediate) fault_pg immediate "$2" ;;
    receivers) fault_receivers "$2" ;; cut) fault_cut "$2" ;; disk) fault_disk "$2" ;;
  esac
  begin "after-$phase"
  sleep "$GAP"
}

sleep "$GAP"
cycle=1
while :; do
  last=pg-fast; ((cycle == 1)) && last=pg-immediate
  fault kill "$cycle" || break
  fault pg-fast "$cycle" || break
  fault receivers "$cycle" || break
  fault cut "$cycle" || break
  fault disk "$cycle" || break
  fault "$last" "${cycle}b" || break
  cycle=$((cycle + 1))
done
while (($(now_ms) < end)); do sleep 1; done
horizon=$(($(now_ms) - 3000))
echo "# $(date -u +%T) schedule over; waiting for the queues to drain" >&2

sqlite_url="sqlite://$disk/cronhook.db?mode=rw"
"$BENCH_BIN" faults-drain --database-url "$pg_url" --database-url "$sqlite_url" \
  --horizon "$horizon" --timeout 180
for name in r0 r1 r2 sq; do
  stop_daemon "$name" TERM
  [[ $code == 0 ]] || event fail "$name" "exit status $code on SIGTERM"
done
for name in r0 r1 r2 sq; do
  if grep -q 'panicked' "$work/$name.log"; then event fail "$name" "panicked: $(grep -m1 panicked "$work/$name.log")"; fi
done
for pid in "${helpers[@]}"; do kill "$pid" 2>/dev/null || true; done

echo "## An hour of faults: $MINUTES min, $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
set +e
"$BENCH_BIN" faults-report \
  --database "pg=$pg_url" --database "sqlite=$sqlite_url" \
  --receiver-log "$work/recv-pg.log" --receiver-log "$work/recv-sq.log" \
  --watch-log "$work/watch.log" --watch-log "$work/watch-ns.log" \
  --phases "$work/phases" --events "$work/events" \
  --started "$started" --horizon "$horizon" --json "$work/summary.json"
status=$?
set -e
grep -h -c ' ERROR ' "$work"/r?.log "$work"/sq.log | paste -sd' ' | sed 's/^/# ERROR lines per daemon (r0 r1 r2 sq): /'
exit "$status"
