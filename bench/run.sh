#!/usr/bin/env bash
# bench/run.sh — wasmbot against the native ceiling, in one run of the shared harness.
#
#   bench/run.sh                  # wasmbot vs axum-native (the same job in plain Rust)
#   bench/run.sh full             # the whole baseline: seed (flask, gunicorn), anchors, wasmbot
#   ROUNDS=3 bench/run.sh         # medians of three rounds (the harness's knobs all pass through)
#
# Builds the release binary, starts it from a scratch folder with the bundled
# plugins (quote's upstream pointed at the harness's stub on 127.0.0.1:18081),
# runs the harness (`$BENCH_HARNESS`, default ../shared/bench next to this
# repository; see its README for wrk/nginx prerequisites), prints the table
# with wasmbot ÷ axum-native per message kind, then the server's RSS, and stops it.
# Extra environment for the server: WASMBOT_* variables pass through;
# WASMBOT_BIN=path runs that binary instead of building this checkout's;
# PLUGINS_FROM=dir serves that folder's quote.wasm and cat.wasm instead of
# the bundled ones (e.g. builds of another commit); KEEP_WORK=1 keeps the
# scratch folder and the server's log after a successful run.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
harness="${BENCH_HARNESS:-$repo/../shared/bench}"
port="${WASMBOT_BENCH_PORT:-18090}"
stub_port="${STUB_PORT:-18081}"
mode="${1:-native}"

[ -x "$harness/compare.sh" ] || {
  echo "error: the shared harness is not at $harness (set BENCH_HARNESS)" >&2
  exit 2
}
command -v wrk >/dev/null || {
  echo "error: wrk is missing: apt-get install -y wrk nginx-light" >&2
  exit 2
}

if [ -n "${WASMBOT_BIN:-}" ]; then
  bin="$(realpath "$WASMBOT_BIN")" # a binary built before (e.g. another commit's)
  [ -x "$bin" ] || { echo "error: WASMBOT_BIN=$WASMBOT_BIN is not an executable" >&2; exit 2; }
else
  echo "== building the release binary and the bundled plugins"
  (cd "$repo" && cargo build --release -p wasmbot --quiet)
  bin="$repo/target/release/wasmbot"
fi

work="$(mktemp -d /tmp/wasmbot-bench.XXXXXX)"
# The scratch folder goes when the run succeeds: the server's log holds a
# line per message, some 150 MB a run. KEEP_WORK (any value) keeps it; a
# failed run keeps it and says where.
cleanup() {
  local status=$?
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  if [ "$status" = 0 ] && [ -z "${KEEP_WORK:-}" ]; then
    rm -rf "$work"
  else
    echo "kept $work (the server's log is there)" >&2
  fi
  true
}
trap cleanup EXIT
mkdir -p "$work/plugins"
plugins_from="${PLUGINS_FROM:-$repo/plugins}"
cp "$plugins_from/quote.wasm" "$plugins_from/cat.wasm" "$work/plugins/"

if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
  echo "error: something already listens on 127.0.0.1:$port; stop it or set WASMBOT_BENCH_PORT" >&2
  exit 2
fi
echo "== starting wasmbot on 127.0.0.1:$port (log: $work/wasmbot.log)"
started=$(date +%s.%N)
# The harness posts unsigned forms: no Auth Token, whatever the shell has.
(cd "$work" && exec env -u TWILIO_AUTH_TOKEN WASMBOT_QUOTE__URL="http://127.0.0.1:$stub_port/random" \
  "$bin" serve --addr "127.0.0.1:$port" --plugins plugins --no-watch) \
  >"$work/wasmbot.log" 2>&1 &
server=$!
# Cold start: from exec to the first answered webhook (a cat message);
# with the compiled-code cache warm this is mostly loading the plugins.
form='Body=cat&From=whatsapp%3A%2B15550001111&To=whatsapp%3A%2B14155238886&MessageSid=SM0&AccountSid=AC0&NumMedia=0'
for _ in $(seq 1 1200); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -d "$form" "http://127.0.0.1:$port/bot" || true)
  [ "$code" = 200 ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/wasmbot.log" >&2; exit 1; }
  sleep 0.01
done
awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "   first reply %.2f s after start\n", b - a }'

target="wasmbot=http://127.0.0.1:$port/bot"
case "$mode" in
  native) "$harness/compare.sh" @axum-native "$target" ;;
  full) "$harness/run-seed-baseline.sh" "$target" ;;
  *) echo "usage: $0 [native|full]" >&2; exit 2 ;;
esac

rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/$server/status")
hwm_kb=$(awk '/^VmHWM/ {print $2}' "/proc/$server/status")
echo "wasmbot RSS after the run: $((rss_kb / 1024)) MiB (peak $((hwm_kb / 1024)) MiB)"
