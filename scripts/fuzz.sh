#!/usr/bin/env bash
# Runs a cargo fuzz target for a bounded time (not part of CI):
#   scripts/fuzz.sh [schedule|config|filter] [seconds] [libFuzzer flags…]     defaults: schedule 60
# Targets (fuzz/fuzz_targets/): `schedule` = cron expressions through Schedule::parse and the
# next-instant search in a time zone; `config` = TOML text through Config::from_toml and
# validate(); `filter` = a search body through the API's parsing and filter cap, then the
# thread, cron and assistant filters run against a SQLite file. New interesting inputs go to fuzz/corpus/TARGET (kept, not committed); a crash
# is written to fuzz/artifacts/TARGET/ and the script exits non-zero; so is an input that takes
# longer than 10 s (timeout-…; `-timeout=N` after the seconds changes that). Replay one with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET fuzz/artifacts/TARGET/crash-…
# Installs cargo-fuzz (crates.io) when missing. cargo fuzz needs nightly -Z flags; the only
# toolchain here is stable, so RUSTC_BOOTSTRAP=1 lets stable rustc accept them.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${1:-schedule}"
secs="${2:-60}"
case "$target" in
  schedule | config | filter) ;;
  *)
    echo "usage: scripts/fuzz.sh [schedule|config|filter] [seconds] [libFuzzer flags…]" >&2
    exit 2
    ;;
esac
[[ $secs =~ ^[0-9]+$ ]] || {
  echo "fuzz.sh: seconds must be a whole number, not '$secs'" >&2
  exit 2
}

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
  cargo install cargo-fuzz --locked
fi

cd "$ROOT"
mkdir -p "fuzz/corpus/$target"
args=(-max_total_time="$secs" -timeout=10 -print_final_stats=1)
[[ -f fuzz/$target.dict ]] && args+=(-dict="fuzz/$target.dict")
args+=("${@:3}") # later flags win
# The first corpus directory receives new inputs; the seeds are read only.
RUSTC_BOOTSTRAP=1 exec cargo fuzz run "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- "${args[@]}"
