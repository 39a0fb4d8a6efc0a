#!/usr/bin/env bash
# Create or refresh the Python virtual environments used by the test tooling.
#
#   scripts/venv.sh               tests/sdk/.venv        (SDK conformance suite, croniter)
#   scripts/venv.sh --reference   ... and tests/reference/.venv (langgraph dev, the reference server)
#   scripts/venv.sh --reference-only   only tests/reference/.venv
#   scripts/venv.sh --schemathesis      only tests/schemathesis/.venv (API fuzzing)
#
# Idempotent and quiet: a venv is rebuilt from scratch only when its requirements.txt (or the
# Python interpreter) changed since the last successful install; a hash of both is stored
# inside the venv. Otherwise it returns in well under a second. Set PYTHON to choose the
# interpreter (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"

want_sdk=1
want_ref=0
want_st=0
for arg in "$@"; do
  case "$arg" in
    --reference) want_ref=1 ;;
    --reference-only) want_ref=1; want_sdk=0 ;;
    --schemathesis) want_st=1; want_sdk=0 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "venv.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "venv.sh: '$PY' not found; install Python 3.10+ or set PYTHON" >&2
  exit 1
fi

# ensure_venv DIR REQUIREMENTS
ensure_venv() {
  local dir="$1" req="$2" stamp want have=""
  stamp="$dir/.requirements.sha256"
  want="$( { "$PY" -c 'import sys; print(sys.version)'; cat "$req"; } | sha256sum | cut -d' ' -f1)"
  [[ -f "$stamp" ]] && have="$(cat "$stamp")"
  if [[ "$have" == "$want" ]] && "$dir/bin/python" -c '' >/dev/null 2>&1; then
    return 0
  fi
  local rel="${dir#"$ROOT"/}" start=$SECONDS
  echo "venv.sh: installing $rel from ${req#"$ROOT"/} ..." >&2
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  if ! "$dir/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-input -r "$req" >"$dir/.pip-install.log" 2>&1; then
    cat "$dir/.pip-install.log" >&2
    rm -f "$stamp"
    echo "venv.sh: pip install failed for $rel" >&2
    return 1
  fi
  echo "$want" >"$stamp"
  echo "venv.sh: $rel ready ($((SECONDS - start)) s)" >&2
}

# One installer at a time per checkout (a test runner and a developer may race).
lock="${TMPDIR:-/tmp}/cronhook-venv-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12).lock"
exec 9>"$lock"
flock 9

if [[ $want_sdk == 1 ]]; then
  ensure_venv "$ROOT/tests/sdk/.venv" "$ROOT/tests/sdk/requirements.txt"
fi
if [[ $want_ref == 1 ]]; then
  ensure_venv "$ROOT/tests/reference/.venv" "$ROOT/tests/reference/requirements.txt"
fi
if [[ $want_st == 1 ]]; then
  ensure_venv "$ROOT/tests/schemathesis/.venv" "$ROOT/tests/schemathesis/requirements.txt"
fi
