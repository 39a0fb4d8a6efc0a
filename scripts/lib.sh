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
