// `m1 bench engine --device cuda`: the engine's own graph (engine/model.cpp) on the CUDA backend,
// timed against ceilings measured in the same run (a 1 GiB device copy and an 8192^3 bf16 cuBLAS
// GEMM). Prefill tokens/s at several prompt lengths, decode ms/token at several contexts (greedy,
// sampled on the device, steps replayed as CUDA graphs), load and upload GB/s, peak memory, and a
// per-op breakdown of one decode step against each op's floor. Prints a table, then one JSON line.
// The implementation (engine_bench.cpp) is compiled into m1_engine_cuda (bench/cuda/CMakeLists.txt)
// so it exists only in CUDA builds; callers test the weak symbol before calling it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace m1::bench {

struct CudaEngineBenchArgs {
  std::string device = "cuda";
  std::string model;                 // a model folder, or empty for the preset
  std::string preset = "m1-block";
  bool random_weights = false;       // generate the preset's weights on the GPU (no files)
  std::vector<int64_t> prefill = {1024, 4096, 16384, 65536};
  std::vector<int64_t> contexts = {1024, 16384, 65536};  // decode contexts (each a prefill length too)
  int64_t decode_tokens = 32;        // timed decode steps per context
  int64_t prefill_chunk = 8192;      // tokens per forward chunk (bounds activation memory)
  int64_t expert_sets = 0;           // 0: as many distinct sets as fit the card
  bool profile = true;               // per-op breakdown of one eager decode step
  bool graphs = true;
  bool json = false;
};

Status run_engine_bench_cuda(const CudaEngineBenchArgs& a) __attribute__((weak));

}  // namespace m1::bench
