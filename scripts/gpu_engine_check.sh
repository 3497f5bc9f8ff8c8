#!/usr/bin/env bash
# One GPU-machine call for the engine on the GPU (issue 6): configure engine-only (CLI11 headers from
# .deps/include, carried), build `m1` and the CUDA tests with -j16, run the tests, stream
# `m1 generate --device cuda` from the tiny preset and models/m1-small, run
# `m1 bench engine --preset m1-block --random-weights --device cuda`, the transformers baseline
# (bench/cuda/hf_baseline.py) and the ratio table (bench/cuda/compare_hf.py). Every step has its own
# timeout and goes on when an earlier one fails; logs and JSON go to $OUT (7 files at most: the
# device call returns 8); a summary prints last.
# Usage (repo root): scripts/gpu_engine_check.sh [--no-hf] [--no-tests] [-- extra m1 bench args...]
set -uo pipefail
OUT=${OUT:-/tmp/m1_gpu_out}
mkdir -p "$OUT"
BUILD=${BUILD:-build-gpu}
HF=1
TESTS=1
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-hf) HF=0 ;;
    --no-tests) TESTS=0 ;;
    --) shift; EXTRA=("$@"); break ;;
  esac
  shift
done
status=0
t_start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t_start )) s] $*"; }

GPU=$(nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | head -1)
echo "$GPU"

stamp "configure + build"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DM1_ENGINE_ONLY=ON >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
TARGETS=(m1 engine_test_cuda_engine engine_test_cuda_parity engine_test_cuda_ops engine_test_cuda_lightning bench_cuda_moe)
timeout 300 cmake --build "$BUILD" -j16 --target "${TARGETS[@]}" >>"$OUT/build.log" 2>&1 || { echo "build FAILED"; status=1; }
grep -E "error|Error" "$OUT/build.log" | head -20
stamp "built"

if [ "$TESTS" = 1 ]; then
  # transformers' bf16 reference for CudaParity.Bf16WideModel* (64 heads x 128, bf16 weights).
  FIX=/tmp/m1_bf16_topk
  rm -rf "$FIX"
  if PYTHONUNBUFFERED=1 timeout 180 python3 scripts/make_bf16_topk_fixture.py "$FIX" >"$OUT/fixture.log" 2>&1; then
    export M1_HF_BF16_FIXTURE="$FIX"
    tail -1 "$OUT/fixture.log"
  else
    echo "bf16 fixture FAILED"; tail -5 "$OUT/fixture.log"; status=1
  fi
  stamp "bf16 fixture made"
  : >"$OUT/tests.log"
  for t in engine_test_cuda_engine engine_test_cuda_parity engine_test_cuda_ops engine_test_cuda_lightning; do
    if [ -x "$BUILD/$t" ]; then
      timeout 240 "$BUILD/$t" >>"$OUT/tests.log" 2>&1 || { echo "$t FAILED (exit $?)"; status=1; }
    else
      echo "$t: not built" | tee -a "$OUT/tests.log"; status=1
    fi
  done
  grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|\[(sampling|graphs|generate|moe|attention|parity|session)\]|Failure" "$OUT/tests.log" | head -60
  stamp "tests done"
fi

M1="$BUILD/m1"
if [ -x "$M1" ]; then
  {
    echo "== m1 generate --device cuda (tiny preset, random weights: text is noise) =="
    timeout 60 "$M1" model init --preset tiny --out /tmp/m1-tiny --force >/dev/null 2>&1
    timeout 60 "$M1" generate --device cuda --model /tmp/m1-tiny --prompt "Hello" --max-tokens 16 --temperature 0
    echo "== m1 generate --device cuda (models/m1-small) =="
    timeout 60 "$M1" generate --device cuda --model models/m1-small --prompt "def add(a, b):" --max-tokens 48 --temperature 0
    timeout 60 "$M1" generate --device cuda --model models/m1-small --prompt "def add(a, b):" --max-tokens 48 --temperature 0 --json
    timeout 60 "$M1" generate --device cpu --model models/m1-small --prompt "def add(a, b):" --max-tokens 48 --temperature 0 --json
  } >"$OUT/generate.log" 2>&1 || status=1
  stamp "generate done"
  timeout 300 "$M1" bench engine --preset m1-block --random-weights --device cuda ${EXTRA[@]+"${EXTRA[@]}"} 2>&1 | tee "$OUT/engine.log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "engine bench FAILED"; status=1; }
  stamp "engine bench done"
  # The same decode without CUDA graphs (what replay buys), appended to engine.log.
  echo "== without graphs ==" >>"$OUT/engine.log"
  timeout 120 "$M1" bench engine --preset m1-block --random-weights --device cuda --prefill 1024 --contexts 1024 \
    --no-graphs --no-profile 2>&1 | grep -E "^\| decode|^\{" >>"$OUT/engine.log"
  stamp "no-graph decode done"
fi

if [ "$HF" = 1 ]; then
  PYTHONUNBUFFERED=1 timeout 240 python3 bench/cuda/hf_baseline.py >"$OUT/hf.log" 2>"$OUT/hf.err" || { echo "hf baseline exited non-zero"; tail -5 "$OUT/hf.err"; }
  stamp "hf baseline done"
fi

echo "== summary ($GPU) =="
[ -f "$OUT/tests.log" ] && grep -E "^\[  PASSED|^\[  FAILED|\[(sampling|graphs|generate|moe|attention|parity|session)\]" "$OUT/tests.log" | sort | uniq | head -30
[ -f "$OUT/generate.log" ] && grep -E "^\{|prompt tokens" "$OUT/generate.log" | cut -c1-300
[ -f "$OUT/engine.log" ] && grep -E "^\||^note|^ceilings|^m1 bench|^== without" "$OUT/engine.log"
[ -f "$OUT/hf.log" ] && [ -f "$OUT/engine.log" ] && python3 bench/cuda/compare_hf.py "$OUT/engine.log" "$OUT/hf.log"
stamp "end"
exit $status
