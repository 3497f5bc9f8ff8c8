#!/usr/bin/env bash
# Makes the small model's training data here (CPU), reproducibly from seeds:
#   train/make_data.sh OUT_DIR [TASKS_PER_SHARD]
# Two shards of generated repositories (seeds 0.. and 100000..), two oracle trajectories per task
# through the real loop and tools, the tokenizer (trained on the default corpus plus rendered
# trajectories), and the encoded tokens + loss mask in OUT_DIR/data. Needs build/m1-trajgen.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:?usage: train/make_data.sh OUT_DIR [TASKS_PER_SHARD]}
N=${2:-450}
mkdir -p "$OUT"
for shard in 0:0 1:100000; do
  i=${shard%%:*}; seed=${shard##*:}
  python3 train/gen_repos.py --out "$OUT/s$i/repos" --count "$N" --seed "$seed" --split train &
done
wait
for i in 0 1; do
  build/m1-trajgen trajectories --tasks "$OUT/s$i/repos/tasks.jsonl" --out "$OUT/s$i/traj" \
    --variants 2 --seed $((i + 1)) &
done
wait
head -n 300 "$OUT/s0/traj/conversations.jsonl" > "$OUT/tok_corpus.jsonl"
head -n 300 "$OUT/s1/traj/conversations.jsonl" >> "$OUT/tok_corpus.jsonl"
build/m1-trajgen render --conversations "$OUT/tok_corpus.jsonl" --out "$OUT/corpus.txt"
build/m1-trajgen tokenizer --corpus engine/assets/tokenizer_corpus.txt "$OUT/corpus.txt" \
  --vocab-size 4096 --out "$OUT/tok"
build/m1-trajgen encode --conversations "$OUT/s0/traj/conversations.jsonl" \
  "$OUT/s1/traj/conversations.jsonl" --tokenizer "$OUT/tok" --out "$OUT/data"
