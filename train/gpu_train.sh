#!/usr/bin/env bash
# On the GPU machine: trains the small default model from the carried data archive and sends the
# model folder back through $OUT, split into parts under the device tool's 16 MiB file limit:
#   [TRAIN_ARGS="--context-loss 0.2"] train/gpu_train.sh DATA.tar.xz TOKENIZER_DIR [MINUTES]
# Then here: cat model.tar.part-* | tar -x -C DIR
set -euo pipefail
cd "$(dirname "$0")/.."
ARCHIVE=${1:?usage: train/gpu_train.sh DATA.tar.xz TOKENIZER_DIR [MINUTES]}
TOK=${2:?tokenizer folder}
MINUTES=${3:-8}
OUT=${OUT:?OUT must name the folder that comes back}
W=$(mktemp -d)
tar -xJf "$ARCHIVE" -C "$W"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/card.txt"
PYTHONUNBUFFERED=1 python3 train/train.py --data "$W/data" --out "$W/m1-small" --minutes "$MINUTES" \
  --seed 0 --max-len 3584 ${TRAIN_ARGS:-} 2>&1 | tee "$OUT/train.log"
cp "$TOK/tokenizer.json" "$TOK/tokenizer_config.json" "$W/m1-small/"
tar -cf - -C "$W" m1-small | split -b 15M - "$OUT/model.tar.part-"
