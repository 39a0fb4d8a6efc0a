#!/usr/bin/env bash
# schemathesis (PyPI) against the OpenAPI document cronhook serves: generated and mutated
# requests to every operation, a bounded number of examples each. Fails on any 5xx, on an
# error answer that is not JSON `{"detail": …}`, or if the daemon is gone afterwards.
#
#   scripts/schemathesis.sh              the bounded run CI does (ST_MAX_EXAMPLES=25 per operation)
#   ST_MAX_EXAMPLES=200 scripts/schemathesis.sh   a longer run
#
# Loopback only: the daemon's config (tests/fixtures/schemathesis.toml) accepts webhook URLs
# on 127.0.0.1 only and calls none.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
"$ROOT/scripts/venv.sh" --schemathesis
cargo build --quiet --bin cronhook
source "$ROOT/scripts/lib.sh"
port="$(free_port)"
work="$(mktemp -d)"
cleanup() {
  kill "${pid:-}" 2>/dev/null || true
  wait "${pid:-}" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
target/debug/cronhook --bind "127.0.0.1:$port" --data-dir "$work" \
  --config tests/fixtures/schemathesis.toml >"$work/daemon.log" 2>&1 &
pid=$!
wait_ready "$pid" "$port" "$work/daemon.log"

status=0
PYTHONPATH="$ROOT/tests/schemathesis" SCHEMATHESIS_HOOKS=hooks \
  tests/schemathesis/.venv/bin/schemathesis run "http://127.0.0.1:$port/openapi.json" \
  --checks not_a_server_error,error_is_json_detail \
  --max-examples "${ST_MAX_EXAMPLES:-25}" --phases examples,coverage,fuzzing \
  --request-timeout 30 --workers 2 --seed "${ST_SEED:-20261202}" \
  --generation-database none --no-color --report-dir "$work/report" || status=$?

if ! curl -fsS -o /dev/null "http://127.0.0.1:$port/ok"; then
  echo "schemathesis.sh: the daemon no longer answers /ok" >&2
  tail -50 "$work/daemon.log" >&2
  exit 1
fi
if grep -q "panicked" "$work/daemon.log"; then
  echo "schemathesis.sh: the daemon logged a panic" >&2
  grep -B2 -A10 "panicked" "$work/daemon.log" >&2
  exit 1
fi
exit "$status"
