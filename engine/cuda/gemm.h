// Dense GEMMs through cuBLASLt: y[M, N] (fp32) = x[M, K] (fp32) @ W^T, W [N, K] row-major in its
// stored dtype. defines: Gemm
// Decisions: bf16/fp16 weights run on tensor cores with the activations cast to the weight's
// type (fp32 accumulation, fp32 output); fp32 weights run in true fp32 (no TF32), so fp32
// checkpoints stay comparable with the CPU reference. Plans (heuristic picks) are cached by shape
// and operand alignment. A warp-per-row GEMV for decode-sized products is available
// (set_gemv_rows; the backend uses it for one-row products).
#pragma once
#include <cstdint>
#include <map>
#include <tuple>

#include <cublasLt.h>

#include "engine/cuda/ops.h"

namespace m1::cuda {

class Gemm {
 public:
  Gemm();
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // y = x W^T (accumulate: y += x W^T). cast_scratch: device memory of at least M*K*2 bytes for
  // 16-bit weights (unused for fp32).
  void run(const float* x, const void* W, WDType wt, float* y, int64_t M, int64_t N, int64_t K, bool accumulate,
           void* cast_scratch, cudaStream_t stream);
  // Products with M <= rows use the warp-per-row GEMV (0, the default here: always cuBLASLt; the
  // CUDA backend sets 1: its M = 1 instance beat cuBLASLt on an H200, see bench/NOTES.md).
  void set_gemv_rows(int rows) { gemv_rows_ = rows; }

 private:
  struct Plan {
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  const Plan& plan(int64_t M, int64_t N, int64_t K, WDType wt, int align_a, int align_b, int align_c);
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 32u << 20;
  int gemv_rows_ = 0;
  std::map<std::tuple<int64_t, int64_t, int64_t, int, int, int, int>, Plan> plans_;
};

}  // namespace m1::cuda
