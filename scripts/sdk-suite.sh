#!/usr/bin/env bash
# Runs the official-SDK conformance suite (tests/sdk) against a freshly started server:
#   scripts/sdk-suite.sh cronhook    the debug build of this repo, on a temp SQLite file
#   scripts/sdk-suite.sh reference   the real LangGraph server (langgraph dev)
# Extra arguments go to pytest. Only loopback addresses are used.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:?usage: sdk-suite.sh cronhook|reference [pytest args]}"
shift
source "$ROOT/scripts/lib.sh"
port="$(free_port)"
work="$(mktemp -d)"
cleanup() {
  if [[ $target == reference ]]; then
    "$ROOT/scripts/reference-server.sh" stop "$port" >/dev/null 2>&1 || true
  elif [[ -n "${pid:-}" ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

case "$target" in
  cronhook)
    "$ROOT/scripts/venv.sh"
    (cd "$ROOT" && cargo build --quiet --bin cronhook)
    "$ROOT/target/debug/cronhook" --bind "127.0.0.1:$port" --data-dir "$work" \
      --config "$ROOT/tests/fixtures/sdk-cronhook.toml" >"$work/daemon.log" 2>&1 &
    pid=$!
    wait_ready "$pid" "$port" "$work/daemon.log"
    ;;
  reference)
    "$ROOT/scripts/venv.sh" --reference
    "$ROOT/scripts/reference-server.sh" "$port" >/dev/null
    ;;
  *) echo "sdk-suite: unknown target '$target'" >&2; exit 2 ;;
esac

cd "$ROOT/tests/sdk"
LANGGRAPH_URL="http://127.0.0.1:$port" SDK_TARGET="$target" \
  "$ROOT/tests/sdk/.venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
