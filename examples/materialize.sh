#!/usr/bin/env bash
# Makes a git repository from an example's plain files, exactly as `m1 fix`/`m1 eval` do when a
# task's repo is a plain folder: same author, dates and message, so the commit id is the
# base_commit named in the example's task.jsonl.
#   examples/materialize.sh examples/py-stats/repo /tmp/py-stats   -> prints the commit id
set -euo pipefail
src=${1:?usage: materialize.sh SRC_DIR DEST_DIR}
dest=${2:?usage: materialize.sh SRC_DIR DEST_DIR}
[ -e "$dest" ] && { echo "materialize.sh: $dest already exists" >&2; exit 2; }
cp -a "$src" "$dest"
cd "$dest"
git init -q
git add -A
GIT_AUTHOR_DATE="2024-01-01T00:00:00+0000" GIT_COMMITTER_DATE="2024-01-01T00:00:00+0000" \
  git -c user.name=m1 -c user.email=m1@example.invalid -c commit.gpgsign=false \
  commit -q -m "example repository"
git rev-parse HEAD
