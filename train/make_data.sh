#!/usr/bin/env bash
# Makes the small model's training data here (CPU), reproducibly from seeds:
#   train/make_data.sh OUT_DIR [TASKS_PER_SHARD [TASKS_USED_PER_SHARD]]      (SHARDS=4 by default)
# Shards of generated repositories (seeds 100000, 110000, ...), two oracle trajectories for each of
# the first TASKS_USED tasks of a shard (models/m1-small: the defaults, 4 shards x 1800 generated,
# 1200 used; GEN_ARGS=--rename-locals gives the renamed-locals variant of README.md)
# through the real loop and tools, then the tokens + loss mask in OUT_DIR/data, encoded with the
# committed tokenizer (models/m1-small/tokenizer.json; TOKENIZER=DIR to use another, e.g. one made by
# `m1-trajgen tokenizer` on OUT_DIR's rendered trajectories). Needs build/m1-trajgen.
# OUT_DIR/data.tar.xz is what travels to the GPU machine (train/gpu_train.sh): it compresses ~40x.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: train/make_data.sh OUT_DIR [TASKS_PER_SHARD]}
N=${2:-1800}
USE=${3:-1200}
SHARDS=${SHARDS:-4}
TOK=${TOKENIZER:-models/m1-small}
TRAJGEN=${TRAJGEN:-build/m1-trajgen}
mkdir -p "$OUT"
convs=()
for ((k = 0; k < SHARDS; k++)); do
  seed=$((100000 + k * 10000))
  (python3 train/gen_repos.py --out "$OUT/g$k/repos" --count "$N" --seed "$seed" --split train ${GEN_ARGS:-} > "$OUT/g$k.gen.log" 2>&1 &&
   head -n "$USE" "$OUT/g$k/repos/tasks.jsonl" > "$OUT/g$k/repos/tasks.used.jsonl" &&
   "$TRAJGEN" trajectories --tasks "$OUT/g$k/repos/tasks.used.jsonl" --out "$OUT/g$k/traj" --seed "$seed" \
     --variants 2 ${TRAJGEN_ARGS:-} > "$OUT/g$k.traj.log" 2>&1 &&
   rm -rf "$OUT/g$k/repos"/train-*) &
  convs+=("$OUT/g$k/traj/conversations.jsonl")
done
wait
"$TRAJGEN" encode --conversations "${convs[@]}" --tokenizer "$TOK" --out "$OUT/data"
tar -C "$OUT" -cf - data | xz -9 -T2 > "$OUT/data.tar.xz"
