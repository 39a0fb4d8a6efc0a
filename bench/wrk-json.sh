#!/usr/bin/env bash
# Runs wrk and prints one JSON line: wrk-json.sh NAME SERVER STORED URL [wrk args...]
set -euo pipefail
name="$1" server="$2" stored="$3" url="$4"; shift 4
out="$(wrk --latency "$@" "$url")"
rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
to_ms() { awk '{v=$1; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; printf "%.3f", v}'; }
p50="$(awk '$1 == "50%" {print $2}' <<<"$out" | to_ms)"
p99="$(awk '$1 == "99%" {print $2}' <<<"$out" | to_ms)"
errors="$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')"
echo "{\"server\":\"$server\",\"stored\":$stored,\"bench\":\"$name\",\"requests_per_s\":$rps,\"latency_ms\":{\"p50\":$p50,\"p99\":$p99},\"errors\":\"$errors\"}"
