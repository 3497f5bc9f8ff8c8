// Lightning-attention kernels (engine/cuda/lightning.h) against a plain double-precision
// recurrent reference written from m1-model.md §3.1: o_t = q_t S_t, S_t = lambda S_{t-1} + k_t^T v_t.
// Random inputs and random initial states, several sequences of lengths that are not multiples
// of the 64-token block, both activation types, every prefill variant.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/cuda/lightning.h"
#include "tests/engine/cuda_test_util.h"

namespace m1::cuda {
namespace {
using namespace m1::cuda::testing;

double silu_d(double x) { return x / (1.0 + std::exp(-x)); }

// qkv [rows, H, 3, D] (values as the kernel sees them), state [H, D, D] in/out, out [rows, H, D].
void reference(const std::vector<float>& qkv, int row0, int len, int H, int D, const std::vector<float>& slopes,
               bool silu, std::vector<double>& S, std::vector<double>& out) {
  for (int h = 0; h < H; ++h) {
    const double lam = std::exp(-(double)slopes[h]);
    double* s = S.data() + (size_t)h * D * D;
    for (int t = 0; t < len; ++t) {
      const float* base = qkv.data() + ((size_t)(row0 + t) * H + h) * 3 * D;
      auto act = [&](int i) { return silu ? silu_d(base[i]) : (double)base[i]; };
      for (int i = 0; i < D; ++i) {
        const double k = act(D + i);
        for (int j = 0; j < D; ++j) s[(size_t)i * D + j] = lam * s[(size_t)i * D + j] + k * act(2 * D + j);
      }
      for (int j = 0; j < D; ++j) {
        double acc = 0;
        for (int i = 0; i < D; ++i) acc += act(i) * s[(size_t)i * D + j];
        out[((size_t)(row0 + t) * H + h) * D + j] = acc;
      }
    }
  }
}

HeadSlopes make_slopes(int H, std::vector<float>& host) {
  HeadSlopes s{};
  host.resize(H);
  for (int h = 0; h < H; ++h) {
    // the model's formula for layer 3 of 8: 2^(-8(h+1)/H) * (1 - 3/7 + 1e-5)
    host[h] = (float)(std::pow(2.0, -8.0 * (h + 1) / H) * (1.0 - 3.0 / 7.0 + 1e-5));
    s.v[h] = host[h];
  }
  return s;
}

template <typename T>
std::vector<float> cast_in(const std::vector<float>& v);
template <>
std::vector<float> cast_in<float>(const std::vector<float>& v) { return v; }
template <>
std::vector<float> cast_in<bf16>(const std::vector<float>& v) {
  std::vector<float> o(v);
  for (auto& x : o) x = bf16_round(x);
  return o;
}
template <typename T>
std::vector<T> to_dev_type(const std::vector<float>& v);
template <>
std::vector<float> to_dev_type<float>(const std::vector<float>& v) { return v; }
template <>
std::vector<bf16> to_dev_type<bf16>(const std::vector<float>& v) { return to_bf16(v); }
std::vector<float> to_float(const std::vector<float>& v) { return v; }
std::vector<float> to_float(const std::vector<bf16>& v) { return from_bf16(v); }

template <typename T>
void run_prefill_case(int variant, int H, int D, std::vector<int> lens, bool silu, double tol, uint32_t seed) {
  std::mt19937 rng(seed);
  const int nseq = (int)lens.size();
  std::vector<int> cu(nseq + 1, 0);
  for (int s = 0; s < nseq; ++s) cu[s + 1] = cu[s] + lens[s];
  const int rows = cu[nseq];
  // q, k small enough that states stay O(1): scale 0.5 (silu of N(0, 1) for the silu case)
  std::vector<float> qkv = cast_in<T>(randn((size_t)rows * H * 3 * D, rng, silu ? 1.f : 0.3f));
  std::vector<float> slopes_h;
  const HeadSlopes slopes = make_slopes(H, slopes_h);
  std::vector<std::vector<float>> S0(nseq);
  for (auto& s : S0) s = randn((size_t)H * D * D, rng, 0.5f);

  DevBuf<T> d_qkv(to_dev_type<T>(qkv));
  DevBuf<T> d_out((size_t)rows * H * D);
  DevBuf<int> d_cu(cu);
  std::vector<std::unique_ptr<DevBuf<float>>> d_S;
  StatePtrs sp{};
  for (int s = 0; s < nseq; ++s) {
    d_S.push_back(std::make_unique<DevBuf<float>>(S0[s]));
    sp.p[s] = d_S.back()->p;
  }
  lightning_prefill_variant<T>(variant, d_qkv.p, d_cu.p, nseq, sp, slopes, d_out.p, H, D, silu, nullptr);
  const std::vector<float> got = to_float(d_out.download());

  std::vector<double> ref_out((size_t)rows * H * D, 0.0);
  for (int s = 0; s < nseq; ++s) {
    std::vector<double> S(S0[s].begin(), S0[s].end());
    reference(qkv, cu[s], lens[s], H, D, slopes_h, silu, S, ref_out);
    const std::vector<float> gotS = d_S[s]->download();
    EXPECT_TRUE(close_rel(gotS, S, tol, "state"));
  }
  EXPECT_TRUE(close_rel(got, ref_out, tol, "out"));
}

TEST(CudaLightning, PrefillWmmaW32Bf16) {
  M1_SKIP_WITHOUT_GPU();
  run_prefill_case<bf16>(1, 4, 128, {1, 64, 200, 131}, true, 1.5e-2, 1);
}
TEST(CudaLightning, PrefillWmmaW64Bf16) {
  M1_SKIP_WITHOUT_GPU();
  run_prefill_case<bf16>(2, 3, 128, {77, 256, 5}, false, 1.5e-2, 2);
}
TEST(CudaLightning, PrefillWmma8WarpsBf16) {
  M1_SKIP_WITHOUT_GPU();
  run_prefill_case<bf16>(3, 4, 128, {129, 64, 3}, true, 1.5e-2, 8);
}
TEST(CudaLightning, PrefillWmma8WarpsFp32Input) {
  M1_SKIP_WITHOUT_GPU();
  run_prefill_case<float>(3, 2, 128, {200}, false, 1.5e-2, 9);
}
TEST(CudaLightning, PrefillWmmaFp32Input) {
  M1_SKIP_WITHOUT_GPU();
  run_prefill_case<float>(1, 2, 128, {300}, false, 1.5e-2, 3);
}
TEST(CudaLightning, PrefillRecurrentFp32) {
  M1_SKIP_WITHOUT_GPU();
  run_prefill_case<float>(0, 4, 16, {1, 70, 33}, false, 1e-5, 4);
  run_prefill_case<float>(0, 2, 64, {130}, true, 1e-5, 5);
  run_prefill_case<float>(0, 2, 128, {40}, false, 1e-5, 6);
}
TEST(CudaLightning, PrefillDispatchPicksByHeadDim) {
  M1_SKIP_WITHOUT_GPU();
  // The public entry: D == 128 goes to the tensor cores, D = 48 to the recurrent kernel.
  std::mt19937 rng(7);
  for (int D : {48, 128}) {
    const int H = 2, T = 90;
    std::vector<float> qkv = randn((size_t)T * H * 3 * D, rng, 0.3f);
    std::vector<float> sl;
    const HeadSlopes slopes = make_slopes(H, sl);
    DevBuf<float> d_qkv(qkv), d_out((size_t)T * H * D), d_S(std::vector<float>((size_t)H * D * D, 0.f));
    DevBuf<int> d_cu(std::vector<int>{0, T});
    StatePtrs sp{};
    sp.p[0] = d_S.p;
    lightning_prefill<float>(d_qkv.p, d_cu.p, 1, sp, slopes, d_out.p, H, D, false, nullptr);
    std::vector<double> S((size_t)H * D * D, 0.0), ref((size_t)T * H * D);
    reference(qkv, 0, T, H, D, sl, false, S, ref);
    EXPECT_TRUE(close_rel(to_float(d_out.download()), ref, D == 128 ? 1.5e-2 : 1e-5, "out"));
  }
}

template <typename T>
void run_decode_case(int B, int H, int D, bool silu, double tol, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> qkv = cast_in<T>(randn((size_t)B * H * 3 * D, rng, 0.5f));
  std::vector<float> sl;
  const HeadSlopes slopes = make_slopes(H, sl);
  DevBuf<T> d_qkv(to_dev_type<T>(qkv));
  DevBuf<T> d_out((size_t)B * H * D);
  std::vector<std::vector<float>> S0(B);
  std::vector<std::unique_ptr<DevBuf<float>>> d_S;
  StatePtrs sp{};
  for (int b = 0; b < B; ++b) {
    S0[b] = randn((size_t)H * D * D, rng, 0.5f);
    d_S.push_back(std::make_unique<DevBuf<float>>(S0[b]));
    sp.p[B - 1 - b] = d_S.back()->p;  // sessions' slots in another order than their rows
  }
  lightning_decode<T>(d_qkv.p, sp, slopes, d_out.p, B, H, D, silu, nullptr);
  const std::vector<float> got = to_float(d_out.download());
  std::vector<double> ref((size_t)B * H * D);
  for (int b = 0; b < B; ++b) {
    const int slot_owner = B - 1 - b;  // row slot_owner uses state S0[b]
    std::vector<double> S(S0[b].begin(), S0[b].end());
    std::vector<double> o((size_t)B * H * D, 0.0);
    reference(qkv, slot_owner, 1, H, D, sl, silu, S, o);
    for (size_t i = 0; i < (size_t)H * D; ++i) ref[(size_t)slot_owner * H * D + i] = o[(size_t)slot_owner * H * D + i];
    EXPECT_TRUE(close_rel(d_S[b]->download(), S, 1e-6, "state"));
  }
  EXPECT_TRUE(close_rel(got, ref, tol, "out"));
}

TEST(CudaLightning, DecodeFp32Fast) {
  M1_SKIP_WITHOUT_GPU();
  run_decode_case<float>(3, 4, 128, false, 1e-5, 11);
  run_decode_case<float>(2, 3, 64, true, 1e-5, 12);
  run_decode_case<float>(1, 2, 32, false, 1e-5, 13);
}
TEST(CudaLightning, DecodeFp32Generic) {
  M1_SKIP_WITHOUT_GPU();
  run_decode_case<float>(2, 3, 16, false, 1e-5, 14);
  run_decode_case<float>(2, 2, 40, true, 1e-5, 15);
}
TEST(CudaLightning, DecodeBf16) {
  M1_SKIP_WITHOUT_GPU();
  run_decode_case<bf16>(5, 8, 128, true, 1e-2, 16);
}
TEST(CudaLightning, DecodeContinuesPrefill) {
  M1_SKIP_WITHOUT_GPU();
  // prefill 150 tokens then 3 decode steps == one 153-token prefill (fp32, recurrent + fast decode)
  std::mt19937 rng(21);
  const int H = 2, D = 64, T = 153;
  std::vector<float> qkv = randn((size_t)T * H * 3 * D, rng, 0.4f);
  std::vector<float> sl;
  const HeadSlopes slopes = make_slopes(H, sl);
  DevBuf<float> d_qkv(qkv), d_out((size_t)T * H * D), d_S(std::vector<float>((size_t)H * D * D, 0.f));
  DevBuf<int> d_cu(std::vector<int>{0, 150});
  StatePtrs sp{};
  sp.p[0] = d_S.p;
  lightning_prefill<float>(d_qkv.p, d_cu.p, 1, sp, slopes, d_out.p, H, D, false, nullptr);
  for (int t = 150; t < T; ++t)
    lightning_decode<float>(d_qkv.p + (size_t)t * H * 3 * D, sp, slopes, d_out.p + (size_t)t * H * D, 1, H, D, false,
                            nullptr);
  std::vector<double> S((size_t)H * D * D, 0.0), ref((size_t)T * H * D);
  reference(qkv, 0, T, H, D, sl, false, S, ref);
  EXPECT_TRUE(close_rel(d_out.download(), ref, 1e-5, "out"));
  EXPECT_TRUE(close_rel(d_S.download(), S, 1e-5, "state"));
}

}  // namespace
}  // namespace m1::cuda
