#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, so they run on a fresh machine:
# PostgreSQL server binaries (for the throw-away test servers), the Python venvs, and for
# the console's browser tests Debian's chromium, Node.js and the npm packages of tests/ui.
# Idempotent and quick when everything is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

have_pg() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
apt_install() {
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! have_pg; then
  echo "install-deps: installing PostgreSQL server binaries (apt package postgresql)" >&2
  apt_install postgresql
fi
# README's tour (scripts/readme-tour.sh) uses curl and jq, as its readers do.
if ! command -v jq >/dev/null || ! command -v curl >/dev/null; then
  apt_install jq curl
fi
if ! python3 -m venv --help >/dev/null 2>&1; then
  apt_install python3-venv
fi
# The console's browser tests (scripts/ui-tests.sh): Playwright drives Debian's chromium;
# no browser is downloaded by npm.
if [[ ! -x /usr/bin/chromium ]]; then
  echo "install-deps: installing chromium (apt) for the console's browser tests" >&2
  apt_install chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
# npm ci only when the lock file changed since the last install.
lock_hash="$(sha256sum "$ROOT/tests/ui/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$ROOT/tests/ui/node_modules/.lock-hash" 2>/dev/null)" != "$lock_hash" ]]; then
  (cd "$ROOT/tests/ui" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" >"$ROOT/tests/ui/node_modules/.lock-hash"
fi

"$ROOT/scripts/venv.sh" "$@"
