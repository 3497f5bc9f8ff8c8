#!/usr/bin/env bash
# Held-out evaluation of the small default model, on CPU, with one command:
#   train/eval_heldout.sh [MODEL_DIR]      (default: models/m1-small)
# Makes the held-out tasks (seeds from 900000 and (domain, mutation) combinations that the training
# split never uses, see gen_repos.py), runs `m1 fix --provider local` on each (2 workers, at most
# 12 steps and 60 s a task), grades them with `m1 eval`, and prints the table and a JSON summary
# with the resolve rate and how many tool calls were well-formed.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/m1-small}
N=${N:-40}
OUT=${OUT:-$(mktemp -d /tmp/m1-heldout.XXXXXX)}
M1=${M1:-build/m1}   # the m1 binary (default: the one scripts/setup.sh builds)
[ -x "$M1" ] || scripts/setup.sh
export M1_STATE_DIR="$OUT/state"
python3 train/gen_repos.py --out "$OUT/repos" --count "$N" --seed 900000 --split heldout >&2
"$M1" fix --instances "$OUT/repos/tasks.jsonl" --provider local --model "$MODEL" --workers 2 \
  --max-steps 12 --max-seconds 60 --out "$OUT/predictions.jsonl" --store "$OUT/state/m1.db" >&2
"$M1" eval --instances "$OUT/repos/tasks.jsonl" --predictions "$OUT/predictions.jsonl" \
  --workers 2 --report "$OUT/report.json"
python3 train/call_stats.py "$OUT/state/m1.db"
echo "eval_heldout: everything is in $OUT" >&2
