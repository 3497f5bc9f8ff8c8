// Kernel lab: the ceilings of this run (device copy; bf16 GEMM 8192^3 through cuBLASLt) and the
// dense projections of M1 through engine/cuda/gemm.h (fp32 activations cast to bf16, bf16
// weights, fp32 out): decode (M = 1, 32; bandwidth bound) and prefill (M = 4096; FLOP bound).
// Build: CMake target bench_cuda_gemm.
#include <cstdio>
#include <vector>

#include "bench/cuda/bench_common.h"
#include "engine/cuda/gemm.h"

using namespace m1::bench;
using namespace m1::cuda;

int main() {
  std::printf("device: %s\n", device_name().c_str());
  Gemm g;
  {  // correctness: 64 x 256 x 512 against a CPU product of the bf16-rounded operands
    const int M = 64, N = 256, K = 512;
    float* x = dev_random<float>((size_t)M * K, 1, 1.f);
    bf16* w = dev_random<bf16>((size_t)N * K, 2, 0.05f);
    float *y;
    bf16* scratch;
    M1_CUDA_CHECK(cudaMalloc(&y, (size_t)M * N * 4));
    M1_CUDA_CHECK(cudaMalloc(&scratch, (size_t)M * K * 2));
    g.run(x, w, WDType::BF16, y, M, N, K, false, scratch, nullptr);
    const auto xh = download_f(x, (size_t)M * K), wh = download_f(w, (size_t)N * K), got = download_f(y, (size_t)M * N);
    std::vector<double> ref((size_t)M * N);
    for (int m = 0; m < M; ++m)
      for (int n = 0; n < N; ++n) {
        double a = 0;
        for (int k = 0; k < K; ++k) a += (double)float(bf16(xh[(size_t)m * K + k])) * wh[(size_t)n * K + k];
        ref[(size_t)m * N + n] = a;
      }
    if (!check("gemm bf16 64x256x512", rel_err(got, ref), 1e-5)) return 1;
    cudaFree(x); cudaFree(w); cudaFree(y); cudaFree(scratch);
  }
  const double bw = copy_gbps();
  row("device copy", "1 GiB", 0, fmt("%.0f GB/s", bw), "ceiling");
  std::printf("JSON {\"op\":\"copy\",\"gbps\":%.1f}\n", bw);

  // bf16 GEMM ceiling: x already bf16 (cast excluded) -> use the Gemm on a pre-cast scratch by
  // timing the cuBLASLt call alone through a bf16 "weight" on both sides is not exposed, so time
  // the full run and the cast separately and report both.
  double tflops_ceiling = 0;
  {
    const int M = 8192, N = 8192, K = 8192;
    float* x = dev_random<float>((size_t)M * K, 3, 1.f);
    bf16* w = dev_random<bf16>((size_t)N * K, 4, 0.02f);
    float* y;
    bf16* scratch;
    M1_CUDA_CHECK(cudaMalloc(&y, (size_t)M * N * 4));
    M1_CUDA_CHECK(cudaMalloc(&scratch, (size_t)M * K * 2));
    const double ms = time_ms([&] { g.run(x, w, WDType::BF16, y, M, N, K, false, scratch, nullptr); }, 10, 2, false);
    const double cast_ms = time_ms([&] { cast_f32_to_bf16(x, scratch, (int64_t)M * K, nullptr); }, 10, 2, false);
    tflops_ceiling = 2.0 * M * N * K / ((ms - cast_ms) * 1e-3) / 1e12;
    row("gemm bf16 (cuBLASLt)", "8192^3, fp32 out", (ms - cast_ms) * 1e3, fmt("%.0f TFLOP/s", tflops_ceiling),
        "ceiling (cast excluded)");
    std::printf("JSON {\"op\":\"gemm_ceiling\",\"tflops\":%.1f,\"cast_ms\":%.3f}\n", tflops_ceiling, cast_ms);
    cudaFree(x); cudaFree(w); cudaFree(y); cudaFree(scratch);
  }
  struct Shape { const char* name; int N, K; };
  for (Shape s : {Shape{"qkv_proj", 24576, 6144}, Shape{"out_proj", 6144, 8192}, Shape{"gate_proj", 8192, 6144},
                  Shape{"lm_head", 200064, 6144}}) {
    for (int M : {1, 4, 32, 4096}) {
     for (int path = 0; path < (M <= 4 ? 2 : 1); ++path) {  // M <= 4: GEMV (path 0) and cuBLASLt (path 1)
      g.set_gemv_rows(path == 0 ? 4 : 0);
      if ((M == 4096 && s.N == 200064) || (M > 4 && s.N == 8192)) continue;
      float* x = dev_random<float>((size_t)M * s.K, 5, 1.f);
      bf16* w = dev_random<bf16>((size_t)s.N * s.K, 6, 0.02f);
      float* y;
      bf16* scratch;
      M1_CUDA_CHECK(cudaMalloc(&y, (size_t)M * s.N * 4));
      M1_CUDA_CHECK(cudaMalloc(&scratch, (size_t)M * s.K * 2));
      const double ms = time_ms([&] { g.run(x, w, WDType::BF16, y, M, s.N, s.K, false, scratch, nullptr); }, 20);
      const double bytes = (double)s.N * s.K * 2, flops = 2.0 * M * s.N * s.K;
      const double floor_ms = std::max(bytes / (bw * 1e9), flops / (tflops_ceiling * 1e12)) * 1e3;
      row(std::string(M <= 4 ? (path == 0 ? "gemv " : "cublas ") : "gemm ") + s.name, "M=" + std::to_string(M) + " N=" + std::to_string(s.N) + " K=" + std::to_string(s.K),
          ms * 1e3, M < 64 ? fmt("%.0f GB/s", bytes / (ms * 1e-3) / 1e9) : fmt("%.0f TFLOP/s", flops / (ms * 1e-3) / 1e12),
          fmt("%.2fx floor", ms / floor_ms));
      std::printf("JSON {\"op\":\"gemm\",\"name\":\"%s\",\"M\":%d,\"path\":\"%s\",\"ms\":%.4f,\"floor_ms\":%.4f}\n",
                  s.name, M, M <= 4 && path == 0 ? "gemv" : "cublaslt", ms, floor_ms);
      cudaFree(x); cudaFree(w); cudaFree(y); cudaFree(scratch);
     }
    }
    g.set_gemv_rows(0);
  }
  return 0;
}
