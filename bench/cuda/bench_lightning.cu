// Kernel lab: lightning attention decode (fused state update + output) and chunked prefill
// variants (engine/cuda/lightning.h). Checks each variant against a plain CPU recurrence first,
// then times M1's shape (H = 64, D = 128). Floors: decode = the fp32 state read + written once
// (B*H*D*D*8 bytes) at the copy bandwidth measured in this run; prefill = q, k, v read + o written
// once in bf16 (T*H*D*2*4 bytes).
// Build: part of the CMake build (target bench_cuda_lightning). Run: ./bench_cuda_lightning
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "bench/cuda/bench_common.h"
#include "engine/cuda/lightning.h"

using namespace m1::bench;
using namespace m1::cuda;

namespace {

HeadSlopes slopes_for(int H) {
  HeadSlopes s{};
  for (int h = 0; h < H; ++h) s.v[h] = float(std::pow(2.0, -8.0 * (h + 1) / H) * (1.0 - 3.0 / 7.0 + 1e-5));
  return s;
}

// CPU recurrence (double) over one sequence; qkv values as stored (no SiLU).
std::vector<double> ref_out(const std::vector<float>& qkv, const std::vector<float>& S0, int T, int H, int D,
                            const HeadSlopes& sl) {
  std::vector<double> out((size_t)T * H * D);
  for (int h = 0; h < H; ++h) {
    std::vector<double> S(S0.begin() + (size_t)h * D * D, S0.begin() + (size_t)(h + 1) * D * D);
    const double lam = std::exp(-(double)sl.v[h]);
    for (int t = 0; t < T; ++t) {
      const float* b = qkv.data() + ((size_t)t * H + h) * 3 * D;
      for (int i = 0; i < D; ++i)
        for (int j = 0; j < D; ++j) S[(size_t)i * D + j] = lam * S[(size_t)i * D + j] + (double)b[D + i] * b[2 * D + j];
      for (int j = 0; j < D; ++j) {
        double a = 0;
        for (int i = 0; i < D; ++i) a += (double)b[i] * S[(size_t)i * D + j];
        out[((size_t)t * H + h) * D + j] = a;
      }
    }
  }
  return out;
}

bool check_prefill(int variant) {
  const int H = 2, D = 128, T = 300;
  bf16* qkv = dev_random<bf16>((size_t)T * H * 3 * D, 1, 0.3f);
  float* S = dev_random<float>((size_t)H * D * D, 2, 0.3f);
  const std::vector<float> S0 = download_f(S, (size_t)H * D * D);
  bf16* out;
  M1_CUDA_CHECK(cudaMalloc(&out, (size_t)T * H * D * 2));
  int* cu;
  const int cuh[2] = {0, T};
  M1_CUDA_CHECK(cudaMalloc(&cu, 8));
  M1_CUDA_CHECK(cudaMemcpy(cu, cuh, 8, cudaMemcpyHostToDevice));
  StatePtrs sp{};
  sp.p[0] = S;
  const HeadSlopes sl = slopes_for(H);
  lightning_prefill_variant<bf16>(variant, qkv, cu, 1, sp, sl, out, H, D, false, nullptr);
  const auto ref = ref_out(download_f(qkv, (size_t)T * H * 3 * D), S0, T, H, D, sl);
  const bool ok = check(("prefill variant " + std::to_string(variant)).c_str(),
                        rel_err(download_f(out, (size_t)T * H * D), ref), 1.5e-2);
  cudaFree(qkv); cudaFree(S); cudaFree(out); cudaFree(cu);
  return ok;
}

bool check_decode() {
  const int B = 3, H = 2, D = 128;
  bf16* qkv = dev_random<bf16>((size_t)B * H * 3 * D, 3, 0.5f);
  const auto q = download_f(qkv, (size_t)B * H * 3 * D);
  StatePtrs sp{};
  std::vector<std::vector<float>> S0(B);
  for (int b = 0; b < B; ++b) {
    sp.p[b] = dev_random<float>((size_t)H * D * D, 10 + b, 0.5f);
    S0[b] = download_f(sp.p[b], (size_t)H * D * D);
  }
  bf16* out;
  M1_CUDA_CHECK(cudaMalloc(&out, (size_t)B * H * D * 2));
  const HeadSlopes sl = slopes_for(H);
  lightning_decode<bf16>(qkv, sp, sl, out, B, H, D, false, nullptr);
  const auto got = download_f(out, (size_t)B * H * D);
  std::vector<double> ref;
  for (int b = 0; b < B; ++b) {
    std::vector<float> one(q.begin() + (size_t)b * H * 3 * D, q.begin() + (size_t)(b + 1) * H * 3 * D);
    const auto r = ref_out(one, S0[b], 1, H, D, sl);
    ref.insert(ref.end(), r.begin(), r.end());
  }
  for (int b = 0; b < B; ++b) cudaFree(sp.p[b]);
  cudaFree(qkv); cudaFree(out);
  return check("decode bf16", rel_err(got, ref), 1e-2);
}

}  // namespace

int main(int argc, char** argv) {
  std::printf("device: %s\n", device_name().c_str());
  if (argc > 1 && std::string(argv[1]) == "--profile") {  // one large launch of each variant, for ncu
    const int H = 64, D = 128, T = 16384;
    bf16* qkv = dev_random<bf16>((size_t)T * H * 3 * D, 7, 1.0f);
    bf16* out;
    float* S;
    int* cu;
    const int cuh[2] = {0, T};
    M1_CUDA_CHECK(cudaMalloc(&out, (size_t)T * H * D * 2));
    M1_CUDA_CHECK(cudaMalloc(&S, (size_t)H * D * D * 4));
    M1_CUDA_CHECK(cudaMemset(S, 0, (size_t)H * D * D * 4));
    M1_CUDA_CHECK(cudaMalloc(&cu, 8));
    M1_CUDA_CHECK(cudaMemcpy(cu, cuh, 8, cudaMemcpyHostToDevice));
    StatePtrs sp{};
    sp.p[0] = S;
    lightning_prefill_variant<bf16>(1, qkv, cu, 1, sp, slopes_for(H), out, H, D, true, nullptr);
    M1_CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
  }
  bool ok = check_decode();
  for (int v : {0, 1, 2, 3}) ok = check_prefill(v) && ok;
  if (!ok) {
    std::printf("correctness failed: not timing\n");
    return 1;
  }
  const double bw = copy_gbps();
  std::printf("copy bandwidth %.0f GB/s\n", bw);
  const int H = 64, D = 128;
  const HeadSlopes sl = slopes_for(H);

  // ---- decode ----
  for (int B : {1, 8, 32}) {
    for (int fp32 : {0, 1}) {
      StatePtrs sp{};
      std::vector<float*> S(B);
      for (int b = 0; b < B; ++b) sp.p[b] = S[b] = dev_random<float>((size_t)H * D * D, 100 + b, 0.1f);
      void* qkv = fp32 ? (void*)dev_random<float>((size_t)B * H * 3 * D, 5, 0.5f)
                       : (void*)dev_random<bf16>((size_t)B * H * 3 * D, 5, 0.5f);
      void* out;
      M1_CUDA_CHECK(cudaMalloc(&out, (size_t)B * H * D * 4));
      const double ms = time_ms([&] {
        if (fp32)
          lightning_decode<float>((const float*)qkv, sp, sl, (float*)out, B, H, D, false, nullptr);
        else
          lightning_decode<bf16>((const bf16*)qkv, sp, sl, (bf16*)out, B, H, D, false, nullptr);
      }, 50);
      const double bytes = (double)B * H * D * D * 8;
      const double floor_us = bytes / (bw * 1e9) * 1e6;
      row("lightning_decode", "B=" + std::to_string(B) + " H=64 D=128 " + (fp32 ? "f32" : "bf16"), ms * 1e3,
          fmt("%.0f GB/s", bytes / (ms * 1e-3) / 1e9), fmt("%.2fx floor", ms * 1e3 / floor_us));
      std::printf("JSON {\"op\":\"lightning_decode\",\"B\":%d,\"act\":\"%s\",\"us\":%.2f,\"floor_us\":%.2f}\n", B,
                  fp32 ? "f32" : "bf16", ms * 1e3, floor_us);
      for (float* s : S) cudaFree(s);
      cudaFree(qkv); cudaFree(out);
    }
  }

  // ---- prefill ----
  for (int T : {4096, 16384, 65536}) {
    bf16* qkv = dev_random<bf16>((size_t)T * H * 3 * D, 7, 1.0f);
    bf16* out;
    M1_CUDA_CHECK(cudaMalloc(&out, (size_t)T * H * D * 2));
    float* S;
    M1_CUDA_CHECK(cudaMalloc(&S, (size_t)H * D * D * 4));
    int* cu;
    const int cuh[2] = {0, T};
    M1_CUDA_CHECK(cudaMalloc(&cu, 8));
    M1_CUDA_CHECK(cudaMemcpy(cu, cuh, 8, cudaMemcpyHostToDevice));
    StatePtrs sp{};
    sp.p[0] = S;
    for (int v : {0, 1, 2, 3}) {
      if (v == 0 && T > 4096) continue;  // the recurrent fallback is for small heads only
      const double ms = time_ms([&] {
        M1_CUDA_CHECK(cudaMemsetAsync(S, 0, (size_t)H * D * D * 4));
        lightning_prefill_variant<bf16>(v, qkv, cu, 1, sp, sl, out, H, D, true, nullptr);
      }, v == 0 ? 3 : 10, 1);
      const double bytes = (double)T * H * D * 2 * 4;
      const double floor_ms = bytes / (bw * 1e9) * 1e3;
      const double flops = (double)T * H * (2.0 * 64 * D + 4.0 * D * D);  // intra (causal) + inter + state update
      row("lightning_prefill v" + std::to_string(v), "T=" + std::to_string(T) + " H=64 D=128 bf16", ms * 1e3,
          fmt("%.1f TFLOP/s", flops / (ms * 1e-3) / 1e12), fmt("%.2fx bytes floor", ms / floor_ms));
      std::printf("JSON {\"op\":\"lightning_prefill\",\"variant\":%d,\"T\":%d,\"ms\":%.4f,\"floor_ms\":%.4f}\n", v, T,
                  ms, floor_ms);
    }
    cudaFree(qkv); cudaFree(out); cudaFree(S); cudaFree(cu);
  }
  return 0;
}
