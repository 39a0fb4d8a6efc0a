#!/usr/bin/env bash
# Replicas on one PostgreSQL under per-second load: REPLICAS daemons (default 3) share
# THREAD_CRONS thread crons (each on a thread of its own) and STATELESS_CRONS stateless
# crons, all firing every second, for DURATION seconds; one replica is SIGKILLed a third of
# the way in and restarted 3 s later. Reports the `deadlock detected` errors PostgreSQL
# logged, duplicated instants (runs of one cron for one instant), and start lateness
# (started_at - scheduled_for) of the runs, the runs that never started, and how long the
# replicas took to stop.
#
#   bench/replicas.sh                          3 replicas, 200 + 200 crons, 25 s
#   REPLICAS=5 DURATION=300 bench/replicas.sh  5 replicas for five minutes
#   CRONHOOK_BIN=path/to/cronhook              the daemon measured (default: release build)
#
# Loopback only. Not part of CI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source "$ROOT/scripts/lib.sh"
REPLICAS="${REPLICAS:-3}"
DURATION="${DURATION:-25}"
THREAD_CRONS="${THREAD_CRONS:-200}"
STATELESS_CRONS="${STATELESS_CRONS:-200}"

if [[ -z ${CRONHOOK_BIN:-} ]]; then
  cargo build --release --quiet -p cronhook
  CRONHOOK_BIN="$ROOT/target/release/cronhook"
fi
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT
pg_start
psql_q() { psql -X -q -t -A -h 127.0.0.1 -p "$pg_port" -U postgres -d bench -c "$1"; }

# start_replica N: replica N on its own port and log; sets ports[N], pids[N].
ports=()
start_replica() {
  local port
  port="$(free_port)"
  "$CRONHOOK_BIN" --bind "127.0.0.1:$port" --data-dir "$work/r$1" --database-url "$pg_url" \
    2>>"$work/r$1.log" &
  pids[$1]=$!
  ports[$1]=$port
  wait_ready "${pids[$1]}" "$port" "$work/r$1.log"
}
for n in $(seq 0 $((REPLICAS - 1))); do start_replica "$n"; done

api="http://127.0.0.1:${ports[0]}"
post() { curl -fsS -X POST "$api$1" -H 'content-type: application/json' -d "$2"; }
for _ in $(seq 1 "$THREAD_CRONS"); do
  thread="$(post /threads '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["thread_id"])')"
  post "/threads/$thread/runs/crons" '{"assistant_id":"agent","schedule":"* * * * * *","input":{"n":1}}' >/dev/null
done
for _ in $(seq 1 "$STATELESS_CRONS"); do
  post /runs/crons '{"assistant_id":"agent","schedule":"* * * * * *","input":{"n":1},"on_run_completed":"keep"}' >/dev/null
done
started="$(date +%s%3N)"
echo "# $REPLICAS replicas, $THREAD_CRONS thread + $STATELESS_CRONS stateless per-second crons, ${DURATION}s; $(date -u +%FT%TZ)"

sleep $((DURATION / 3))
kill -9 "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true
sleep 3
start_replica 1
sleep $((DURATION - DURATION / 3 - 3))
stopped="$(date +%s%3N)"
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
pids=()
stop_ms=$(( $(date +%s%3N) - stopped ))

# Counted where PostgreSQL logs them: a deadlock between two run batches of one replica is
# retried there without an error line of the replica's own.
deadlocks="$(grep -c 'deadlock detected' "$pg_dir/log" || true)"
duplicated="$(psql_q "SELECT count(*) FROM (SELECT cron_id, scheduled_for FROM runs WHERE scheduled_for IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) AS d")"
fired="$(psql_q "SELECT count(*) FROM cron_fires WHERE outcome = 'fired' AND scheduled_for >= $started")"
read -r p50 p99 maxl < <(psql_q "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY started_at - scheduled_for), percentile_cont(0.99) WITHIN GROUP (ORDER BY started_at - scheduled_for), max(started_at - scheduled_for) FROM runs WHERE scheduled_for >= $started AND started_at IS NOT NULL" | tr '|' ' ')
errors="$(cat "$work"/r*.log | grep -c ' ERROR ' || true)"
# Runs of instants more than 5 s before the stop that never started: a backlog the
# lateness figures (started runs only) would not show.
not_started="$(psql_q "SELECT count(*) FROM runs WHERE scheduled_for >= $started AND scheduled_for < $stopped - 5000 AND started_at IS NULL")"
echo "{\"replicas\":$REPLICAS,\"seconds\":$DURATION,\"thread_crons\":$THREAD_CRONS,\"stateless_crons\":$STATELESS_CRONS,\"fired\":$fired,\"duplicated_instants\":$duplicated,\"deadlocks\":$deadlocks,\"error_lines\":$errors,\"not_started\":$not_started,\"stop_ms\":$stop_ms,\"start_lateness_ms\":{\"p50\":$p50,\"p99\":$p99,\"max\":$maxl}}"
# What PostgreSQL says of each deadlock: the statements and the rows they waited for.
grep -A8 'deadlock detected' "$pg_dir/log" | sed 's/^/# pg: /' | head -60 || true
