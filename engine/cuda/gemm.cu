// cuBLASLt GEMM wrapper (see gemm.h). Column-major view: D (N x M, ld N) = op(A) B with A = W
// stored as K x N (ld K, transposed) and B = x as K x M (ld K): D is y row-major [M, N].
#include "engine/cuda/gemm.h"

#include "engine/cuda/gemv.cuh"

#define M1_CUBLAS_CHECK(call)                                                                            \
  do {                                                                                                   \
    cublasStatus_t m1_s_ = (call);                                                                       \
    if (m1_s_ != CUBLAS_STATUS_SUCCESS) {                                                                \
      std::fprintf(stderr, "cuBLAS error %d (%s) at %s:%d: %s\n", (int)m1_s_, cublasLtGetStatusString(m1_s_), \
                   __FILE__, __LINE__, #call);                                                           \
      std::abort();                                                                                      \
    }                                                                                                    \
  } while (0)

namespace m1::cuda {

Gemm::Gemm() {
  M1_CUBLAS_CHECK(cublasLtCreate(&handle_));
  M1_CUDA_CHECK(cudaMalloc(&workspace_, workspace_bytes_));
}

Gemm::~Gemm() {
  for (auto& [key, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.op);
  }
  cudaFree(workspace_);
  cublasLtDestroy(handle_);
}

namespace {

// Decode-sized products (M <= kGemvRows): one warp per weight row, every activation row in the
// same pass, weights read once in their stored dtype (cuBLASLt's picks reached only 1.2-1.6x of
// the bandwidth floor at M = 1 for M1's projections).
// 2 warps (rows) per CTA: on an H200 the m1-block decode step took 3.24 / 3.20 / 3.19 ms (1K) and
// 3.58 / 3.56 / 3.55 ms (64K) with 8 / 4 / 2 (clean builds, interleaved runs).
constexpr int kGemvRows = 4, kGemvWarps = 2, kGemvMinRows = 1024;

template <typename WT, int U1>
__global__ void __launch_bounds__(32 * kGemvWarps) dense_gemv_kernel(const float* __restrict__ x,
                                                                     const WT* __restrict__ W, float* y, int M,
                                                                     int N, int K, bool accumulate) {
  const int row = blockIdx.x * kGemvWarps + threadIdx.x / 32, lane = threadIdx.x & 31;
  if (row >= N) return;
  const WT* r = W + (size_t)row * K;
  for (int m0 = 0; m0 < M; m0 += kTok) {
    const int ntok = min(kTok, M - m0);
    const float* xr[kTok];
#pragma unroll
    for (int j = 0; j < kTok; ++j) xr[j] = x + (size_t)(m0 + (j < ntok ? j : 0)) * K;
    float a[kTok] = {0.f, 0.f, 0.f, 0.f};
    if (U1 > 0 && ntok == 1)  // M = 1: the branch-free one-row loop, U1 steps unrolled
      dot_rows<WT, false, (U1 > 0 ? U1 : 1), 1>(r, r, xr, 1, K, lane, a, a);
    else
      dot_rows<WT, false>(r, r, xr, ntok, K, lane, a, a);
#pragma unroll
    for (int j = 0; j < kTok; ++j) {
      const float sum = warp_sum(a[j]);
      if (lane == 0 && j < ntok) {
        float* out = y + (size_t)(m0 + j) * N + row;
        *out = accumulate ? *out + sum : sum;
      }
    }
  }
}

// Largest power of two <= 256 dividing the address (cuBLASLt picks kernels by operand alignment).
int alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  int al = 256;
  while (al > 1 && a % al) al /= 2;
  return al;
}
}  // namespace

const Gemm::Plan& Gemm::plan(int64_t M, int64_t N, int64_t K, WDType wt, int align_a, int align_b, int align_c) {
  const auto key = std::make_tuple(M, N, K, (int)wt, align_a, align_b, align_c);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan p;
  const cudaDataType_t ab = wt == WDType::F32 ? CUDA_R_32F : wt == WDType::F16 ? CUDA_R_16F : CUDA_R_16BF;
  M1_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  M1_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  M1_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  M1_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, ab, K, N, K));
  M1_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, ab, K, M, K));
  M1_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.c, CUDA_R_32F, N, M, N));
  cublasLtMatmulPreference_t pref;
  M1_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  M1_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                       &workspace_bytes_, sizeof(workspace_bytes_)));
  const uint32_t al[3] = {uint32_t(align_a), uint32_t(align_b), uint32_t(align_c)};
  M1_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], 4));
  M1_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], 4));
  M1_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], 4));
  M1_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[2], 4));
  cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  M1_CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(handle_, p.op, p.a, p.b, p.c, p.c, pref, 1, &res, &found));
  cublasLtMatmulPreferenceDestroy(pref);
  if (found == 0) {
    std::fprintf(stderr, "cuBLASLt: no algorithm for M=%lld N=%lld K=%lld\n", (long long)M, (long long)N,
                 (long long)K);
    std::abort();
  }
  p.algo = res.algo;
  return plans_.emplace(key, p).first->second;
}

void Gemm::run(const float* x, const void* W, WDType wt, float* y, int64_t M, int64_t N, int64_t K, bool accumulate,
               void* cast_scratch, cudaStream_t stream) {
  if (M <= 0 || N <= 0) return;
  // The GEMV needs rows to fill the GPU (one warp each): a 32-row router stays on cuBLASLt.
  if (M <= gemv_rows_ && M <= kGemvRows && N >= kGemvMinRows && K % 8 == 0 && alignment_of(W) >= 16 &&
      alignment_of(x) >= 16) {
    const unsigned blocks = (unsigned)((N + kGemvWarps - 1) / kGemvWarps);
    if (M == 1) {
      M1_WDTYPE_SWITCH(wt, (dense_gemv_kernel<WT, 8><<<blocks, 32 * kGemvWarps, 0, stream>>>(
                               x, static_cast<const WT*>(W), y, (int)M, (int)N, (int)K, accumulate)));
    } else {
      M1_WDTYPE_SWITCH(wt, (dense_gemv_kernel<WT, 0><<<blocks, 32 * kGemvWarps, 0, stream>>>(
                               x, static_cast<const WT*>(W), y, (int)M, (int)N, (int)K, accumulate)));
    }
    M1_CUDA_CHECK_LAUNCH();
    return;
  }
  const void* B = x;
  if (wt == WDType::BF16) {
    cast_f32_to_bf16(x, static_cast<bf16*>(cast_scratch), M * K, stream);
    B = cast_scratch;
  } else if (wt == WDType::F16) {
    cast_f32_to_f16(x, static_cast<__half*>(cast_scratch), M * K, stream);
    B = cast_scratch;
  }
  const Plan& p = plan(M, N, K, wt, alignment_of(W), alignment_of(B), alignment_of(y));
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  M1_CUBLAS_CHECK(cublasLtMatmul(handle_, p.op, &alpha, W, p.a, B, p.b, &beta, y, p.c, y, p.c, &p.algo, workspace_,
                                 workspace_bytes_, stream));
}

}  // namespace m1::cuda
