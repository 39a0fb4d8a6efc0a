#!/usr/bin/env bash
# Checks systemd/cronhook.service without a running systemd (CI's PID 1 is not systemd):
#   1. `systemd-analyze verify` must print nothing about the unit and exit 0 (it only warns,
#      exit 0, on an unknown key or a bad value, so any line naming the unit fails the check);
#   2. `systemd-analyze security --offline=true` prints the overall exposure, which must not
#      exceed MAX_EXPOSURE.
# verify refuses a unit whose ExecStart binary is missing, so both run on a temporary copy
# whose ExecStart points at a stub executable: no build and no install needed.
# Installs the Debian package `systemd` (for systemd-analyze) when it is missing.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
UNIT="${1:-$ROOT/systemd/cronhook.service}"
# Measured 1.2 (systemd 252, Debian 12); a change that weakens the unit fails here.
MAX_EXPOSURE="${MAX_EXPOSURE:-1.2}"

apt_install() {
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-check: installing systemd-analyze (apt package systemd)" >&2
  apt_install systemd
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
printf '#!/bin/sh\nexit 0\n' >"$tmp/cronhook"
chmod 0755 "$tmp/cronhook"
# Same file name, so the unit is checked as cronhook.service.
sed "s|/usr/bin/cronhook |$tmp/cronhook |" "$UNIT" >"$tmp/cronhook.service"
if ! grep -q "^ExecStart=$tmp/cronhook " "$tmp/cronhook.service"; then
  echo "systemd-check: FAIL: ExecStart does not start /usr/bin/cronhook in $UNIT" >&2
  exit 1
fi

rc=0
out="$(systemd-analyze verify --man=no --recursive-errors=no "$tmp/cronhook.service" 2>&1)" || rc=$?
if [[ -n $out ]]; then
  printf '%s\n' "$out" | sed "s|$tmp/|systemd/|g" >&2
fi
if ((rc != 0)) || grep -q 'cronhook\.service' <<<"$out"; then
  echo "systemd-check: FAIL: systemd-analyze verify found problems in $UNIT (exit $rc)" >&2
  exit 1
fi
echo "systemd-check: systemd-analyze verify: ok"

security="$(systemd-analyze security --offline=true --no-pager "$tmp/cronhook.service" 2>&1)" || {
  printf '%s\n' "$security" >&2
  echo "systemd-check: FAIL: systemd-analyze security failed" >&2
  exit 1
}
line="$(grep 'Overall exposure level' <<<"$security" || true)"
score="$(sed -n 's/.*: \([0-9][0-9]*\.[0-9]\).*/\1/p' <<<"$line")"
if [[ -z $score ]]; then
  printf '%s\n' "$security" >&2
  echo "systemd-check: FAIL: no exposure score in the output above" >&2
  exit 1
fi
echo "systemd-check: $line"
if awk -v s="$score" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(s > max) }'; then
  # Show what is exposed, to see what changed.
  grep '✗' <<<"$security" >&2 || true
  echo "systemd-check: FAIL: exposure $score is above $MAX_EXPOSURE" >&2
  exit 1
fi
echo "systemd-check: exposure $score <= $MAX_EXPOSURE: ok"
