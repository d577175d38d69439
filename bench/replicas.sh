#!/usr/bin/env bash
# bench/replicas.sh — one replica against two, both behind nginx and sharing
# Redis, in one run of the shared harness.
#
#   bench/replicas.sh            # needs redis-server, nginx, wrk (apt-get install -y redis-server nginx-light wrk)
#   ROUNDS=3 bench/replicas.sh   # the harness's knobs pass through
#
# Builds the release binary, starts redis-server, two wasmbot replicas with
# quote and cat (WASMBOT_STATE on that Redis, quote's upstream the harness's
# stub) and nginx with two upstreams: `one` (the first replica) and `two`
# (both, round robin). Prints the harness's table: two ÷ one per message
# kind. Both targets pay the same proxy hop. On a machine with fewer cores
# than replicas × their threads, two replicas share the same CPUs: the
# ratio then shows the cost of coordination, not added capacity.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
harness="${BENCH_HARNESS:-$repo/../shared/bench}"
stub_port="${STUB_PORT:-18081}"
base="${WASMBOT_BENCH_PORT:-18090}"
for tool in redis-server nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing" >&2; exit 2; }
done

if [ -n "${WASMBOT_BIN:-}" ]; then
  bin="$(realpath "$WASMBOT_BIN")"
else
  echo "== building the release binary and the bundled plugins"
  (cd "$repo" && cargo build --release -p wasmbot --quiet)
  bin="$repo/target/release/wasmbot"
fi

work="$(mktemp -d /tmp/wasmbot-replicas.XXXXXX)"
pids=()
# The scratch folder goes when the run succeeds (KEEP_WORK, any value,
# keeps it); a failed run keeps it, with the servers', Redis's and
# nginx's logs.
cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  if [ "$status" = 0 ] && [ -z "${KEEP_WORK:-}" ]; then
    rm -rf "$work"
  else
    echo "kept $work (the logs are there)" >&2
  fi
  true
}
trap cleanup EXIT

redis_port=$((base + 9))
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
  >"$work/redis.log" 2>&1 &
pids+=($!)

for i in 1 2; do
  mkdir -p "$work/r$i/plugins"
  cp "$repo/plugins/quote.wasm" "$repo/plugins/cat.wasm" "$work/r$i/plugins/"
  (cd "$work/r$i" && exec env -u TWILIO_AUTH_TOKEN \
    WASMBOT_QUOTE__URL="http://127.0.0.1:$stub_port/random" \
    WASMBOT_STATE="redis://127.0.0.1:$redis_port/0" \
    XDG_DATA_HOME="$work/r$i/data" \
    "$bin" serve --addr "127.0.0.1:$((base + i))" --plugins plugins --no-watch) \
    >"$work/r$i/wasmbot.log" 2>&1 &
  pids+=($!)
done
for i in 1 2; do
  for _ in $(seq 1 1200); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((base + i))/readyz")" = 200 ] && break
    sleep 0.05
  done
done

cat >"$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  upstream one { server 127.0.0.1:$((base + 1)); keepalive 32; }
  upstream two { server 127.0.0.1:$((base + 1)); server 127.0.0.1:$((base + 2)); keepalive 32; }
  server {
    listen 127.0.0.1:$((base + 3));
    location / { proxy_pass http://one; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
  server {
    listen 127.0.0.1:$((base + 4));
    location / { proxy_pass http://two; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work"
sleep 0.5

"$harness/compare.sh" "one=http://127.0.0.1:$((base + 3))/bot" "two=http://127.0.0.1:$((base + 4))/bot"
for i in 1 2; do
  rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/${pids[$i]}/status")
  echo "replica $i RSS after the run: $((rss_kb / 1024)) MiB"
done
