#!/usr/bin/env bash
# The main job on a fresh machine: set up and build, then let `m1 fix` fix a bug in an example
# repository with the embedded default model (models/m1-small, on the CPU) and grade the result:
#   1. `m1 fix` on examples/py-schedule (a function lost its `return`): the agent's steps, the patch
#      and the summary are printed as they happen;
#   2. `m1 eval` applies that patch to a fresh checkout and runs the task's FAIL_TO_PASS and
#      PASS_TO_PASS tests in the sandbox.
# EXAMPLE=py-stats (or c-ringbuf) picks another example; M1_MODEL=DIR another model folder.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

EXAMPLE=${EXAMPLE:-py-schedule}
TASK=examples/$EXAMPLE/task.jsonl
WORK=$(mktemp -d /tmp/m1-run.XXXXXX)
export M1_STATE_DIR="$WORK/state"   # the demo's sessions stay out of the user's store
ISSUE=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["problem_statement"])' "$TASK")
MODEL_ARGS=()
[ -n "${M1_MODEL:-}" ] && MODEL_ARGS=(--model "$M1_MODEL")

echo "== m1 fix on examples/$EXAMPLE (model: ${M1_MODEL:-the embedded default, models/m1-small})"
status=0
build/m1 fix --repo "examples/$EXAMPLE/repo" --issue "$ISSUE" "${MODEL_ARGS[@]}" --max-steps 12 \
  --patch-out "$WORK/patch.diff" "$@" || status=$?

echo
echo "== m1 eval: the patch against the task's tests"
python3 - "$TASK" "$WORK/patch.diff" "$WORK/predictions.jsonl" <<'PY'
import json, sys
task = json.loads(open(sys.argv[1]).readline())
try:
    patch = open(sys.argv[2]).read()
except FileNotFoundError:
    patch = ""
json.dump({"instance_id": task["instance_id"], "model_name_or_path": "m1-small", "model_patch": patch},
          open(sys.argv[3], "w"))
PY
build/m1 eval --instances "$TASK" --predictions "$WORK/predictions.jsonl" --report "$WORK/report.json"
echo "run.sh: sessions, patch and report are in $WORK"
exit $status
