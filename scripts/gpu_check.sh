#!/usr/bin/env bash
# One call on the GPU machine: configure engine-only (-DM1_ENGINE_ONLY=ON), build with -j16, run the
# CUDA tests, run the kernel benchmarks (bench/cuda), write logs + JSON under $OUT and print a
# table last. Usage (repo root): [PROFILE=1] scripts/gpu_check.sh [--tests-only|--bench-only] [bench names...]
# Each step goes on when an earlier one fails (a broken file elsewhere in engine/ must not cost the
# whole device call); the exit status is non-zero when any test or check failed.
set -uo pipefail
OUT=${OUT:-/tmp/m1_gpu_out}
mkdir -p "$OUT"
BUILD=${BUILD:-build-gpu}
MODE=all
BENCHES=()
for a in "$@"; do
  case "$a" in
    --tests-only) MODE=tests ;;
    --bench-only) MODE=bench ;;
    *) BENCHES+=("$a") ;;
  esac
done
[ ${#BENCHES[@]} -eq 0 ] && BENCHES=(gemm lightning attention moe decode_step)
status=0

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
DEVICE=$(head -1 "$OUT/gpu.txt" | cut -d, -f1)

echo "== configure + build =="
t0=$(date +%s)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DM1_ENGINE_ONLY=ON >"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
BENCH_TARGETS=()
for b in "${BENCHES[@]}"; do BENCH_TARGETS+=("bench_cuda_$b"); done
TESTS=(engine_test_cuda_lightning engine_test_cuda_ops engine_test_cuda_parity)
# kernels + benchmarks first: they depend on engine/cuda only
cmake --build "$BUILD" -j16 --target m1_cuda_kernels "${BENCH_TARGETS[@]}" >>"$OUT/build.log" 2>&1 || { echo "kernel/bench build FAILED"; status=1; }
if [ "$MODE" != bench ]; then
  for t in "${TESTS[@]}"; do
    cmake --build "$BUILD" -j16 --target "$t" >>"$OUT/build.log" 2>&1 || { echo "build of $t FAILED"; status=1; }
  done
fi
echo "build: $(( $(date +%s) - t0 )) s"
grep -E "error" "$OUT/build.log" | head -20

if [ "$MODE" != bench ]; then
  echo "== tests =="
  : >"$OUT/tests.log"
  for t in "${TESTS[@]}"; do
    if [ -x "$BUILD/$t" ]; then
      "$BUILD/$t" 2>&1 | tee -a "$OUT/tests.log" | grep -E "^\[  (PASSED|FAILED|SKIPPED) |^\[  FAILED|Failure|parity\]|rel err" | head -60
      [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    else
      echo "$t: not built" | tee -a "$OUT/tests.log"
      status=1
    fi
  done
fi

if [ "$MODE" != tests ]; then
  echo "== benchmarks =="
  : >"$OUT/bench.log"
  for b in "${BENCHES[@]}"; do
    exe="$BUILD/bench_cuda_$b"
    if [ -x "$exe" ]; then
      timeout 240 "$exe" >>"$OUT/bench.log" 2>&1 || { echo "bench $b exited non-zero"; status=1; }
    else
      echo "bench $b: not built"; status=1
    fi
  done
  python3 - "$OUT" "$DEVICE" <<'PY'
import json, sys
out, dev = sys.argv[1], sys.argv[2]
rows = []
for line in open(f"{out}/bench.log"):
    if line.startswith("JSON "):
        try:
            rows.append(json.loads(line[5:]))
        except Exception:
            pass
json.dump({"device": dev, "results": rows}, open(f"{out}/results.json", "w"), indent=1)
PY
fi

# PROFILE=1: Nsight Compute on one large lightning-prefill launch (stall reasons, throughput).
if [ "${PROFILE:-0}" = 1 ] && [ -x "$BUILD/bench_cuda_lightning" ]; then
  echo "== ncu: lightning prefill =="
  timeout 180 ncu --section SpeedOfLight --section WarpStateStats --section Occupancy --section LaunchStats \
    -k regex:lightning_prefill_wmma -c 1 "$BUILD/bench_cuda_lightning" --profile >"$OUT/ncu.txt" 2>&1 || echo "ncu failed"
  grep -E "Duration|Throughput|Stall|Warp Cycles|Achieved Occupancy|Registers|Block Limit|Issued" "$OUT/ncu.txt" | head -40
fi

echo "== summary ($DEVICE) =="
[ -f "$OUT/tests.log" ] && grep -E "^\[  PASSED|^\[  FAILED|^\[  SKIPPED|\[parity\]" "$OUT/tests.log" | sort | uniq | head -40
[ -f "$OUT/bench.log" ] && grep -E "^CHECK|^copy bandwidth" "$OUT/bench.log"
[ -f "$OUT/bench.log" ] && grep -E "^ROW" "$OUT/bench.log" | sed 's/^ROW //'
exit $status
