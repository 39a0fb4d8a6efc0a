#!/usr/bin/env bash
# The web console's browser tests: Playwright (npm playwright-core) drives Debian's chromium
# against the real daemon binary (target/debug/cronhook, built when missing), axe-core checks
# every page, and a screenshot of every page goes to tests/ui/screenshots (or
# CRONHOOK_UI_SHOTS). Needs scripts/install-deps.sh first (chromium, npm ci).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

target="${CARGO_TARGET_DIR:-$ROOT/target}"
export CRONHOOK_BIN="${CRONHOOK_BIN:-$target/debug/cronhook}"
# Cargo builds only what changed: a no-op after `cargo test`.
cargo build --quiet --bin cronhook
[[ -x /usr/bin/chromium && -d tests/ui/node_modules/playwright-core ]] || scripts/install-deps.sh
cd tests/ui
exec node --test --test-concurrency=1 console.test.mjs
