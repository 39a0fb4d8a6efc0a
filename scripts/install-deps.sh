#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain, so they run on a fresh machine:
# PostgreSQL server binaries (for the throw-away test servers) and the Python venvs.
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

"$ROOT/scripts/venv.sh" "$@"
