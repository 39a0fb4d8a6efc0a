#!/usr/bin/env bash
# Runs README.md's five-minute tour as written, and checks what it says happens: the
# daemon started with the tour's config (the debug build in place of `cargo run --release`,
# on the tour's ports 8123 and 9999), the tour's webhook receiver, then its curl, Python SDK
# and CLI steps. Fails when a step fails, when the receiver gets no webhook from the cron
# firing every 10 seconds, or when the SDK's search does not find the crons it made.
# Loopback only.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh

work="$(mktemp -d)"
cleanup() {
  kill "${daemon:-}" 2>/dev/null || true
  # The receiver runs in a session of its own: its python3 goes with its shell.
  [[ -n ${receiver:-} ]] && kill -- "-$receiver" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The tour's code blocks, in order: tour.toml, the daemon's start, the receiver, the curl
# steps (create, watch), the SDK script, the CLI steps.
python3 - "$work" <<'EOF'
import pathlib, re, sys
work = pathlib.Path(sys.argv[1])
readme = pathlib.Path("README.md").read_text()
tour = readme.split("## Five-minute tour", 1)[1].split("\n## ", 1)[0]
blocks = re.findall(r"```(\w+)\n(.*?)```", tour, re.S)
names = ["tour.toml", "start.sh", "receiver.sh", "create.sh", "watch.sh", "sdk.py", "cli.sh"]
if len(blocks) != len(names):
    sys.exit(f"readme-tour: expected {len(names)} code blocks in the tour, found {len(blocks)}")
for name, (_, body) in zip(names, blocks):
    (work / name).write_text(body)
EOF

for port in 8123 9999; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "readme-tour: port $port is taken; the tour needs it" >&2
    exit 1
  fi
done

cargo build --quiet --bin cronhook
grep -q -- "--config tour.toml" "$work/start.sh" || { echo "readme-tour: the start step changed" >&2; exit 1; }
(cd "$work" && exec "$ROOT/target/debug/cronhook" --config tour.toml --data-dir "$work/data") \
  >"$work/daemon.log" 2>&1 &
daemon=$!
wait_ready "$daemon" 8123 "$work/daemon.log"

setsid bash "$work/receiver.sh" >"$work/receiver.out" 2>&1 &
receiver=$!
until (exec 3<>/dev/tcp/127.0.0.1/9999) 2>/dev/null; do sleep 0.1; done

"$ROOT/scripts/venv.sh" >/dev/null
# One shell for every step, as in the reader's terminal: the CLI step uses the curl step's
# $thread. The CLI step's binary is the debug build here.
export PATH="$ROOT/target/debug:$PATH"
{
  echo 'echo "== curl steps" >&2'
  cat "$work/create.sh"
  echo 'sleep 11'
  cat "$work/watch.sh"
  echo 'echo "== SDK step" >&2'
  echo "\"$ROOT/tests/sdk/.venv/bin/python\" \"$work/sdk.py\""
  echo 'echo "== CLI step" >&2'
  sed "s|target/release|target/debug|" "$work/cli.sh"
} >"$work/steps.sh"
bash -euo pipefail "$work/steps.sh" | tee "$work/steps.out"

fail() { echo "readme-tour: $*" >&2; exit 1; }
grep -q '"status": "success"' "$work/steps.out" || fail "the thread lists no successful fire"
grep -q '^success ' "$work/receiver.out" || fail "no webhook arrived: $(cat "$work/receiver.out")"
# The SDK's search prints the crons it finds by metadata: the thread's and its own.
[[ $(grep -c "^{'cron_id'" "$work/steps.out") -ge 2 ]] || fail "the SDK's search did not find both crons"
grep -q 'delivered' "$work/steps.out" || fail "the CLI listed no delivered webhook"
echo "readme-tour: every step ran as written" >&2
