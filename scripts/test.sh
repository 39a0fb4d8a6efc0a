#!/usr/bin/env bash
# Every test of the project, as CI runs it (.ci/run calls this):
#   lints, the systemd unit check, the Debian package under a real systemd (a booted
#   container), Rust unit and integration tests (SQLite and a throw-away
#   PostgreSQL), the croniter property test, three minutes of faults under three replicas
#   (bench/faults.sh --minutes 3), schemathesis against the served OpenAPI document,
#   the official-SDK suite against cronhook and the reference, README's tour as written, and
#   the web console in a real browser (chromium driven by Playwright).
# Installs what it needs first (PostgreSQL binaries, Python venvs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/install-deps.sh --reference
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
scripts/systemd-check.sh
scripts/systemd-boot-test.sh
CRONHOOK_TEST_PYTHON="$ROOT/tests/sdk/.venv/bin/python" cargo test --workspace
bench/faults.sh --minutes 3
scripts/ui-tests.sh
scripts/schemathesis.sh
scripts/sdk-suite.sh cronhook
scripts/readme-tour.sh
scripts/sdk-suite.sh reference
