#!/usr/bin/env bash
# Run the real LangGraph reference server (`langgraph dev`, in-memory runtime) offline on
# 127.0.0.1, serving the fixture graph tests/fixtures/reference_graph (graph "agent").
#
#   scripts/reference-server.sh PORT         start; waits for GET /ok on PORT, prints the PID
#   scripts/reference-server.sh stop PORT    stop the server started on PORT
#   scripts/reference-server.sh status PORT  exit 0 if it is running and answering
#
# Each start runs in a fresh copy of the fixture under $TMPDIR/cronhook-reference-PORT/, so no
# state (.langgraph_api/) is kept between starts and the work tree stays clean. The server log
# is $TMPDIR/cronhook-reference-PORT/server.log. Environment:
#   REFERENCE_START_TIMEOUT  seconds to wait for /ok (default 120)
# `langgraph dev` silently binds another port when PORT is taken: this script refuses a busy
# PORT up front and only reports success once /ok answers on PORT itself.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/tests/reference/.venv"
FIXTURE="$ROOT/tests/fixtures/reference_graph"

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "reference-server: $*" >&2; exit 1; }

cmd=start
case "${1:-}" in
  stop|status|start) cmd="$1"; shift ;;
  -h|--help|"") usage ;;
esac
PORT="${1:-}"
[[ "$PORT" =~ ^[0-9]+$ ]] && ((PORT > 0 && PORT < 65536)) || usage

STATE="${TMPDIR:-/tmp}/cronhook-reference-$PORT"
PIDFILE="$STATE/server.pid"
LOG="$STATE/server.log"

ok_answers() { curl -fsS --max-time 2 -o /dev/null "http://127.0.0.1:$PORT/ok" 2>/dev/null; }
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
running_pid() {
  local pid
  [[ -f "$PIDFILE" ]] || return 1
  pid="$(cat "$PIDFILE")"
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

stop_server() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    echo "reference-server: nothing running on port $PORT (no live pid in $PIDFILE)" >&2
    return 0
  fi
  # The server was started with setsid: its pid is its process group; signal the group only.
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  echo "reference-server: stopped pid $pid (port $PORT)" >&2
}

case "$cmd" in
  stop) stop_server; exit 0 ;;
  status)
    if pid="$(running_pid)" && ok_answers; then echo "$pid"; exit 0; fi
    echo "reference-server: not running on port $PORT" >&2; exit 1 ;;
esac

if pid="$(running_pid)"; then
  die "already running on port $PORT (pid $pid); stop it with: $0 stop $PORT"
fi
if port_busy; then
  die "port $PORT is already in use on 127.0.0.1 (langgraph dev would silently pick another port); choose a free port"
fi

"$ROOT/scripts/venv.sh" --reference-only
[[ -x "$VENV/bin/langgraph" ]] || die "$VENV/bin/langgraph missing after scripts/venv.sh --reference"

rm -rf "$STATE"
mkdir -p "$STATE/app"
cp "$FIXTURE/graph.py" "$FIXTURE/langgraph.json" "$STATE/app/"

started=$SECONDS
# Offline: no tracing, no version check, no CLI analytics, no browser, no reloader.
(
  cd "$STATE/app"
  exec setsid env \
    LANGSMITH_TRACING=false LANGCHAIN_TRACING_V2=false LANGSMITH_API_KEY= LANGCHAIN_API_KEY= \
    LANGGRAPH_NO_VERSION_CHECK=true LANGGRAPH_CLI_NO_ANALYTICS=1 \
    PYTHONUNBUFFERED=1 \
    "$VENV/bin/langgraph" dev --no-browser --no-reload --host 127.0.0.1 --port "$PORT" \
    --config "$STATE/app/langgraph.json"
) </dev/null >"$LOG" 2>&1 &
pid=$!
echo "$pid" >"$PIDFILE"

timeout="${REFERENCE_START_TIMEOUT:-120}"
deadline=$((SECONDS + timeout))
until ok_answers; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$PIDFILE"
    tail -n 40 "$LOG" >&2 || true
    die "langgraph dev (pid $pid) exited before answering GET http://127.0.0.1:$PORT/ok; log: $LOG"
  fi
  if ((SECONDS >= deadline)); then
    tail -n 40 "$LOG" >&2 || true
    stop_server || true
    die "no answer from GET http://127.0.0.1:$PORT/ok after ${timeout}s (did it bind another port? see $LOG)"
  fi
  sleep 0.5
done
echo "reference-server: up on http://127.0.0.1:$PORT in $((SECONDS - started)) s (pid $pid, log $LOG)" >&2
echo "$pid"
