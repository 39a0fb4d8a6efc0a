#!/usr/bin/env bash
# Builds the Debian package in one command:
#   scripts/deb.sh            # → target/debian/cronhook_<version>-1_amd64.deb
#   sudo apt install ./target/debian/cronhook_*_amd64.deb
# (under $CARGO_TARGET_DIR instead of target/ when that is set). Arguments go to `cargo deb`
# (e.g. --deb-version 0.2.0-1, --output DIR, --fast). It prints the path of the package and of
# cronhook-dbgsym's .ddeb beside it (the binary's debug info, for perf and backtraces).
# Builds the release binary, writes the man pages and shell completions it generates from
# its own command line (`cronhook generate`), then packages them with the unit, the config
# files and the docs as Cargo.toml's [package.metadata.deb] says.
# Installs cargo-deb (`cargo install --locked`) and dpkg-dev (dpkg-shlibdeps, which works
# out the package's library dependencies) when they are missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

apt_install() {
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if ! cargo deb --version >/dev/null 2>&1; then
  echo "deb: installing cargo-deb (cargo install --locked cargo-deb)" >&2
  cargo install --locked cargo-deb
fi
if ! command -v dpkg-shlibdeps >/dev/null 2>&1; then
  echo "deb: installing dpkg-shlibdeps (apt package dpkg-dev)" >&2
  apt_install dpkg-dev
fi

cargo build --release --locked --package cronhook --bin cronhook
release="${CARGO_TARGET_DIR:-$ROOT/target}/release"
# Written fresh for every package, so what ships matches the binary it ships with.
generated="$release/generated"
rm -rf "$generated"
"$release/cronhook" generate man "$generated/man" >/dev/null
gzip -9n "$generated"/man/*.1
"$release/cronhook" generate completions "$generated/completions" >/dev/null

cargo deb --no-build "$@"
