#!/usr/bin/env bash
# Cron API benchmark: cronhook (release build, SQLite) and the LangGraph reference server
# (`langgraph dev`), measured in the same run with the same client (cronhook-bench).
#
#   bench/run.sh                 full run (fills cronhook to 1,000,000 crons; ~25 min)
#   FILL_TO=100000 bench/run.sh  stop filling at 100k
#   SECTIONS="api runs fires webhooks load history herd"   which parts to run (default: all)
#   HERD_SPECS="20000 sqlite;..."   which herd cases (default: 1,000, 20,000, 100,000 on SQLite,
#                                   20,000 and 100,000 on PostgreSQL; the reference at 1,000)
#   FIRE_SPECS="1000 1.0 20 stateless sqlite;..."   which fire cases (default: all seven)
#   CRONHOOK_BIN=path/to/cronhook   the daemon measured (default: this tree's release build),
#                                   e.g. an older commit's build for a back-to-back comparison
#   FIRE_CONF='[runs]\nconcurrency = 64\n'   the fires cases' config (default: the shipped defaults)
#
# Prints one JSON line per measurement. Loopback only. Not part of CI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FILL_TO="${FILL_TO:-1000000}"
SEQ="${SEQ:-1000}"
CONC="${CONC:-2000}"

source "$ROOT/scripts/lib.sh"
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
label() { sed "s/^{/{\"server\":\"$1\",\"stored\":$2,/"; }
# The machine's CPU time since boot (/proc/stat, all cores): "total steal" in ticks. Steal is
# time the hypervisor gave this VM's cores to others: lateness figures mean little without it.
cpu_ticks() { awk '/^cpu / {t = 0; for (i = 2; i <= 11; i++) t += $i; print t, $9}' /proc/stat; }
steal_pct() { awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" 'BEGIN {printf "%.1f", 100 * (d - b) / (c - a)}'; }

cargo build --release --quiet -p cronhook -p cronhook-bench
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$TARGET/release/cronhook-bench"
CRONHOOK_BIN="${CRONHOOK_BIN:-$TARGET/release/cronhook}"
work="$(mktemp -d)"
ch_port="$(free_port)"
ref_port="$(free_port)"
cleanup() {
  kill "${ch_pid:-}" 2>/dev/null || true
  scripts/reference-server.sh stop "$ref_port" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

"$CRONHOOK_BIN" --bind "127.0.0.1:$ch_port" --data-dir "$work" 2>"$work/cronhook.log" &
ch_pid=$!
scripts/venv.sh --reference
ref_pid="$(scripts/reference-server.sh "$ref_port")"
until curl -fsS -o /dev/null "http://127.0.0.1:$ch_port/ok"; do sleep 0.1; done

echo "# machine: $(nproc) cores, $(uname -r); $(date -u +%FT%TZ)"
SECTIONS="${SECTIONS:-api runs fires webhooks load history herd}"

# A cronhook daemon of its own on a fresh data dir: start_daemon DIR CONFIG_TEXT [ARGS];
# sets dpid, dport.
start_daemon() {
  printf '%b' "$2" >"$1/cronhook.toml"
  dport="$(free_port)"
  "$CRONHOOK_BIN" --bind "127.0.0.1:$dport" --data-dir "$1" --config "$1/cronhook.toml" "${@:3}" 2>>"$1/log" &
  dpid=$!
  until curl -fsS -o /dev/null "http://127.0.0.1:$dport/ok"; do sleep 0.1; done
}
# A daemon of its own on SQLite in DIR or on a fresh PostgreSQL: fresh_daemon DIR sqlite|postgres
# CONFIG_TEXT; sets db (the URL the bench reads the store from), dpid, dport. stop_fresh DIR DB
# stops it and removes what it used.
fresh_daemon() {
  if [[ $2 == postgres ]]; then
    pg_start; db="$pg_url"; start_daemon "$1" "$3" --database-url "$pg_url"
  else
    db="sqlite://$1/cronhook.db?mode=ro"; start_daemon "$1" "$3"
  fi
}
stop_fresh() {
  kill "$dpid"; wait "$dpid" 2>/dev/null || true; rm -rf "$1"
  if [[ $2 == postgres ]]; then pg_stop; fi
}

if [[ $SECTIONS == *webhooks* ]]; then
  # Issue 5: run end to webhook arrival at 500 runs/s, both servers (loopback receivers
  # allowed on both), then cronhook draining a 20,000-delivery backlog.
  hooks='[graphs.agent]\nkind = "echo"\n[webhooks.url]\ndisable_loopback = false\n'
  wdir="$(mktemp -d)"
  start_daemon "$wdir" "$hooks"
  "$BENCH" --url "http://127.0.0.1:$dport" webhooks --rate 500 --seconds 10 | label cronhook 0
  kill "$dpid"; wait "$dpid" 2>/dev/null || true
  "$BENCH" --url "http://127.0.0.1:$ref_port" webhooks --rate 500 --seconds 10 | label reference 0
  # Backlog: daemon A queues the runs but delivers nothing (workers = 0); daemon B, started
  # on the same database once the receiver listens, drains the outbox.
  rm -rf "$wdir"; wdir="$(mktemp -d)"; rport="$(free_port)"; backlog="${BACKLOG:-20000}"
  start_daemon "$wdir" "${hooks}[webhooks]\nworkers = 0\n"
  "$BENCH" --url "http://127.0.0.1:$dport" webhook-fill --count "$backlog" --port "$rport" | label cronhook 0
  until curl -fsS "http://127.0.0.1:$dport/webhooks/deliveries?status=pending&limit=1&offset=$((backlog - 1))" | grep -q delivery_id; do sleep 0.5; done
  kill "$dpid"; wait "$dpid" 2>/dev/null || true
  "$BENCH" --url "http://127.0.0.1:$ref_port" webhook-drain --port "$rport" --expect "$backlog" | label cronhook "$backlog" &
  drain_pid=$!
  until (exec 3<>"/dev/tcp/127.0.0.1/$rport") 2>/dev/null; do sleep 0.1; done
  start_daemon "$wdir" "$hooks"
  wait "$drain_pid"
  echo "{\"server\":\"cronhook\",\"after\":\"webhook drain\",\"rss_mb\":$(rss_mb "$dpid")}"
  kill "$dpid"; wait "$dpid" 2>/dev/null || true; rm -rf "$wdir"
fi

if [[ $SECTIONS == *load* ]]; then
  # Issue 6: the API under wrk (2 threads, 32 connections, 15 s) with 100,000 crons stored,
  # against the reference with what it can hold in the same run; then the daemon's RSS and
  # CPU while 1,000 crons fire every second.
  command -v wrk >/dev/null || { sudo -n true 2>/dev/null && S=sudo || S=; $S apt-get install -y -q wrk >/dev/null; }
  ldir="$(mktemp -d)"
  start_daemon "$ldir" '[graphs.agent]\nkind = "echo"\n'
  lurl="http://127.0.0.1:$dport"
  "$BENCH" --url "$lurl" create --count "${LOAD_CRONS:-100000}" --concurrency 32 | label cronhook 0
  for target in "cronhook $lurl ${LOAD_CRONS:-100000}" "reference http://127.0.0.1:$ref_port ${REF_CRONS:-2000}"; do
    set -- $target
    if [[ $1 == reference ]]; then "$BENCH" --url "$2" create --count "$3" --concurrency 32 >/dev/null; fi
    id="$(curl -fsS -X POST "$2/runs/crons/search" -H 'content-type: application/json' -d '{"limit":1,"offset":'$(( $3 / 2 ))'}' | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["cron_id"])')"
    bench/wrk-json.sh get-cron "$1" "$3" "$2/runs/crons/$id" -t2 -c32 -d15s
    bench/wrk-json.sh search-crons "$1" "$3" "$2/runs/crons/search" -t2 -c32 -d15s -s bench/wrk-search.lua
  done
  echo "{\"server\":\"cronhook\",\"stored\":${LOAD_CRONS:-100000},\"after\":\"wrk\",\"rss_mb\":$(rss_mb "$dpid")}"
  cpu_before="$(awk '{print $14+$15}' "/proc/$dpid/stat")"; t_before="$(date +%s%N)"
  "$BENCH" --url "$lurl" fires --crons 1000 --per-second 1.0 --seconds 20 \
    --database-url "sqlite://$ldir/cronhook.db?mode=ro" | label cronhook "${LOAD_CRONS:-100000}"
  cpu_after="$(awk '{print $14+$15}' "/proc/$dpid/stat")"; t_after="$(date +%s%N)"
  echo "{\"server\":\"cronhook\",\"stored\":$(( ${LOAD_CRONS:-100000} + 1000 )),\"while\":\"1,000 crons firing every second\",\"rss_mb\":$(rss_mb "$dpid"),\"cpu_percent\":$(awk -v c=$((cpu_after - cpu_before)) -v t=$((t_after - t_before)) 'BEGIN {printf "%.1f", c / (t / 1e9) }')}"
  kill "$dpid"; wait "$dpid" 2>/dev/null || true; rm -rf "$ldir"
fi

if [[ $SECTIONS == *history* ]]; then
  # Issue 18: a history page with 1,000,000 entries stored (1,000 crons x 1,000, the default
  # keep_per_cron) and the failing-crons search and count at 100,000 crons (1 % failing).
  # The reference keeps no history: nothing to compare.
  hdir="$(mktemp -d)"
  start_daemon "$hdir" '[graphs.agent]\nkind = "echo"\n'
  "$BENCH" --url "http://127.0.0.1:$dport" history --crons 100000 --entries 1000000 \
    --database-url "sqlite://$hdir/cronhook.db?mode=rw" | label cronhook 100000
  echo "{\"server\":\"cronhook\",\"after\":\"history\",\"rss_mb\":$(rss_mb "$dpid"),\"db_mb\":$(du -sm "$hdir" | cut -f1)}"
  kill "$dpid"; wait "$dpid" 2>/dev/null || true; rm -rf "$hdir"
fi

if [[ $SECTIONS == *herd* ]]; then
  # Issue 22: N stateless crons due at one minute boundary, each with a webhook to a receiver
  # in the bench process, beside 100 per-second crons; a fresh daemon on the shipped defaults
  # (loopback webhooks allowed) for each case, and the reference at 1,000 in the same run.
  IFS=';' read -ra herd_specs <<< "${HERD_SPECS:-1000 sqlite;20000 sqlite;100000 sqlite;20000 postgres;100000 postgres}"
  for spec in "${herd_specs[@]}"; do
    set -- $spec
    hdir="$(mktemp -d)"
    fresh_daemon "$hdir" "$2" '[graphs.agent]\nkind = "echo"\n[webhooks.url]\ndisable_loopback = false\n'
    read -r t0 s0 < <(cpu_ticks)
    "$BENCH" --url "http://127.0.0.1:$dport" herd --crons "$1" --database-url "$db" --pid "$dpid" \
      | sed "s/^{/{\"db\":\"$2\",/"
    read -r t1 s1 < <(cpu_ticks)
    echo "{\"server\":\"cronhook\",\"db\":\"$2\",\"herd\":$1,\"steal_pct\":$(steal_pct "$t0" "$s0" "$t1" "$s1")}"
    stop_fresh "$hdir" "$2"
  done
  "$BENCH" --url "http://127.0.0.1:$ref_port" herd --crons 1000 --per-second 0 --pid "$ref_pid" --label reference
fi

if [[ $SECTIONS == *runs* ]]; then
  # Issue 3: runs.wait with the echo graph from 32 clients, both servers, same client.
  "$BENCH" --url "http://127.0.0.1:$ch_port" wait --count 5000 --concurrency 32 | label cronhook 0
  "$BENCH" --url "http://127.0.0.1:$ref_port" wait --count 1000 --concurrency 32 | label reference 0
fi

if [[ $SECTIONS == *fires* ]]; then
  # Issue 4: fire lateness (scheduled_for -> run started) and sustained fires/s, each size on
  # a fresh daemon with the shipped defaults (1,024 in-process run slots: a whole second's
  # burst of 1,000 starts at once).
  # Crons: "stateless" (POST /runs/crons, a new thread per fire) or "thread" (one thread per
  # cron, whose state grows with every run). Spec: crons share-firing-every-second window kind db.
  fire_conf="${FIRE_CONF:-}"
  # FIRE_SPECS (";"-separated) runs only some of them.
  IFS=';' read -ra fire_specs <<< "${FIRE_SPECS:-1000 1.0 20 stateless sqlite;1000 1.0 20 thread sqlite;4000 0.5 20 stateless sqlite;10000 0.1 60 stateless sqlite;100000 0.01 60 stateless sqlite;1000 1.0 20 stateless postgres;4000 0.5 20 stateless postgres}"
  for spec in "${fire_specs[@]}"; do
    set -- $spec
    fdir="$(mktemp -d)"
    fresh_daemon "$fdir" "$5" "$fire_conf"
    read -r t0 s0 < <(cpu_ticks)
    "$BENCH" --url "http://127.0.0.1:$dport" fires --crons "$1" --per-second "$2" --seconds "$3" \
      --kind "$4" --database-url "$db" | sed "s/^{/{\"db\":\"$5\",/" | label cronhook "$1"
    read -r t1 s1 < <(cpu_ticks)
    echo "{\"server\":\"cronhook\",\"db\":\"$5\",\"crons\":$1,\"rss_mb\":$(rss_mb "$dpid"),\"cpu_s\":$(awk '{print ($14+$15)/100}' "/proc/$dpid/stat"),\"steal_pct\":$(steal_pct "$t0" "$s0" "$t1" "$s1")}"
    stop_fresh "$fdir" "$5"
  done
  tests/reference/.venv/bin/python bench/reference_fires.py "http://127.0.0.1:$ref_port" 200
fi

[[ $SECTIONS == *api* ]] || exit 0
for server in cronhook reference; do
  if [[ $server == cronhook ]]; then url="http://127.0.0.1:$ch_port"; else url="http://127.0.0.1:$ref_port"; fi
  "$BENCH" --url "$url" create --count "$SEQ" --concurrency 1 | label "$server" 0
  "$BENCH" --url "$url" create --count "$CONC" --concurrency 32 | label "$server" "$SEQ"
  stored=$((SEQ + CONC))
  "$BENCH" --url "$url" search --requests 200 | label "$server" "$stored"
done
echo "{\"server\":\"reference\",\"stored\":$((SEQ + CONC)),\"rss_mb\":$(rss_mb "$ref_pid")}"

url="http://127.0.0.1:$ch_port"
stored=$((SEQ + CONC))
for goal in 100000 1000000; do
  ((goal <= FILL_TO)) || break
  "$BENCH" --url "$url" create --count $((goal - stored)) --concurrency 32 | label cronhook "$stored"
  stored=$goal
  "$BENCH" --url "$url" search --requests 500 | label cronhook "$stored"
  echo "{\"server\":\"cronhook\",\"stored\":$stored,\"rss_mb\":$(rss_mb "$ch_pid"),\"db_mb\":$(du -sm "$work" | cut -f1)}"
done
# A restart with everything stored: time until /ok answers, and RSS when idle.
kill "$ch_pid"; wait "$ch_pid" 2>/dev/null || true
started=$(date +%s%N)
"$CRONHOOK_BIN" --bind "127.0.0.1:$ch_port" --data-dir "$work" 2>>"$work/cronhook.log" &
ch_pid=$!
until curl -fsS -o /dev/null "http://127.0.0.1:$ch_port/ok" 2>/dev/null; do sleep 0.01; done
echo "{\"server\":\"cronhook\",\"stored\":$stored,\"restart_to_ok_ms\":$(( ($(date +%s%N) - started) / 1000000 )),\"rss_mb\":$(rss_mb "$ch_pid")}"
# Two minutes of the stored crons firing (about 700 a minute: their schedules are daily, spread
# over the day's minutes): RSS then, and the fires counted by the daemon.
sleep 120
fires=$(curl -fsS "http://127.0.0.1:$ch_port/metrics" | awk '/^cronhook_fires_total/ {s += $2} END {print s + 0}')
echo "{\"server\":\"cronhook\",\"stored\":$stored,\"after_restart_s\":120,\"fires\":$fires,\"rss_mb\":$(rss_mb "$ch_pid")}"
