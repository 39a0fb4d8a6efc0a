# Shell helpers shared by the test and bench scripts (source it; defines functions only).

# A free loopback port (bound, read, released).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready PID PORT LOG: waits until the daemon answers /ok on 127.0.0.1:PORT; fails with
# its log if the process dies first, or after 20 s.
wait_ready() {
  local pid="$1" port="$2" log="$3"
  for _ in $(seq 1 200); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/ok" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 0.1
  done
  echo "cronhook on port $port did not become ready; log:" >&2
  cat "$log" >&2
  return 1
}

# A throw-away PostgreSQL server with a database `bench` (benchmarks): pg_start sets pg_url,
# pg_dir and pg_port; pg_stop removes it. `pg_start ADDRESS CLIENTS` also listens on ADDRESS
# and trusts connections from the CIDR CLIENTS (bench/faults.sh: a replica in a namespace).
pg_start() {
  command -v initdb >/dev/null || PATH="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1):$PATH"
  pg_dir="$(mktemp -d)"; pg_port="$(free_port)"
  local as=() listen=127.0.0.1
  if [[ $(id -u) == 0 ]]; then chown postgres "$pg_dir"; as=(runuser -u postgres --); fi
  "${as[@]}" initdb -D "$pg_dir/data" -U postgres -A trust >/dev/null
  if [[ -n ${1:-} ]]; then
    listen="127.0.0.1,$1"
    echo "host all all $2 trust" >>"$pg_dir/data/pg_hba.conf"
  fi
  "${as[@]}" pg_ctl -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=$listen -c fsync=on" start >/dev/null
  "${as[@]}" createdb -h 127.0.0.1 -p "$pg_port" -U postgres bench
  pg_url="postgres://postgres@127.0.0.1:$pg_port/bench"
}
pg_stop() {
  local as=(); [[ $(id -u) == 0 ]] && as=(runuser -u postgres --)
  "${as[@]}" pg_ctl -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
