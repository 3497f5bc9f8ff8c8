#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs what is missing (Debian packages, the npm
# tools the MCP checks and tokenizer parity use), builds, runs the MCP conformance suite, then ctest.
# ctest runs last so its summary closes the output. Exit code non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
export JOBS=${JOBS:-$(nproc)}

scripts/setup.sh

# Test data and peers from npm (idempotent; skipped when the scripts are not there yet).
for s in scripts/install-test-data.sh scripts/install-node-tools.sh; do
  [ -x "$s" ] && "$s"
done

status=0
if [ -x scripts/mcp-conformance.sh ]; then
  scripts/mcp-conformance.sh || status=$?
fi

cd build
ctest --output-on-failure -j "$JOBS" --timeout 900 || status=$?
exit $status
