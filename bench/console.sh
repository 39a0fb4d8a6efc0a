#!/usr/bin/env bash
# The console's crons page at scale: a release daemon (SQLite) filled with FILL crons
# (default 100,000; a daily schedule each, metadata team-0…team-99, like bench/run.sh), then
# each console page shape fetched REQUESTS times in a row; one JSON line per shape with p50,
# p99 and the page's weight with its assets. Loopback only. Not part of CI.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
FILL="${FILL:-100000}"
REQUESTS="${REQUESTS:-200}"
source "$ROOT/scripts/lib.sh"

cargo build --release --quiet -p cronhook -p cronhook-bench
target="${CARGO_TARGET_DIR:-$ROOT/target}"
BENCH="$target/release/cronhook-bench"
CRONHOOK_BIN="${CRONHOOK_BIN:-$target/release/cronhook}"
work="$(mktemp -d)"
port="$(free_port)"
cleanup() {
  kill "${pid:-}" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$CRONHOOK_BIN" --bind "127.0.0.1:$port" --data-dir "$work" 2>"$work/cronhook.log" &
pid=$!
wait_ready "$pid" "$port" "$work/cronhook.log"
echo "# machine: $(nproc) cores, $(uname -r); $(date -u +%FT%TZ); $FILL crons"
"$BENCH" --url "http://127.0.0.1:$port" create --count "$FILL" --concurrency 32
"$BENCH" --url "http://127.0.0.1:$port" console --requests "$REQUESTS"
