#!/usr/bin/env bash
# The main job on a fresh machine: set up and build, then run `m1 fix` on the example Python
# repository (examples/py-stats: a wrong median) and print what happened: the agent's steps, the
# patch and the summary. The model is the embedded default (models/m1-small) unless M1_MODEL names
# another model folder.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

MODEL=${M1_MODEL:-models/m1-small}
TASK=examples/py-stats/task.jsonl
ISSUE=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["problem_statement"])' "$TASK")
STATE=$(mktemp -d)
export M1_STATE_DIR="$STATE"   # keep the demo's session store out of the user's

if [ -f "$MODEL/config.json" ]; then
  exec build/m1 fix --repo examples/py-stats/repo --issue "$ISSUE" --provider local --model "$MODEL" "$@"
fi
echo "run.sh: no model folder at $MODEL (the trained default model is not in this checkout yet);" >&2
echo "run.sh: replaying examples/py-stats/fix.jsonl with the scripted provider instead (labelled script:)." >&2
exec build/m1 fix --repo examples/py-stats/repo --issue "$ISSUE" --provider scripted \
  --script examples/py-stats/fix.jsonl "$@"
