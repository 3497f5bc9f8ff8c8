// Helpers of `m1 bench engine` (cli/cmd_bench.cpp): the ceilings measured in the same run (a copy
// loop's bandwidth, OpenBLAS sgemm's FLOP rate), the bytes a batch-1 decode step must read, and a
// writer of random model folders of any shape (the "cpu-500m" benchmark model has no
// `m1 model init` preset).
// Decision: bandwidth counts bytes read + written by the copy (as performance.md does for the
// GPU), and the decode floor divides the weight bytes a token reads by that figure.
#pragma once
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/model_init.h"
#include "engine/safetensors.h"
#include "engine/tokenizer.h"

#ifdef M1_HAVE_CBLAS
#include <cblas.h>
#pragma weak openblas_set_num_threads
#endif

namespace m1::bench {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best of `reps` parallel copies of `bytes` (bytes read + bytes written) / time, in GB/s.
inline double copy_bandwidth_gbps(size_t bytes = size_t(512) << 20, int reps = 5) {
  std::vector<char> a(bytes, 1), b(bytes, 0);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
#pragma omp parallel
    {
      const int n = omp_get_num_threads(), i = omp_get_thread_num();
      const size_t chunk = (bytes + size_t(n) - 1) / size_t(n), lo = std::min(bytes, chunk * size_t(i));
      std::memcpy(b.data() + lo, a.data() + lo, std::min(bytes, lo + chunk) - lo);
    }
    best = std::min(best, now_s() - t0);
    a[size_t(r)] = char(r);  // keep the copies from being merged
  }
  return 2.0 * double(bytes) / best / 1e9;
}

// OpenBLAS sgemm [M,K] x [K,N]^T on all cores (its own threading), best of reps, in GFLOP/s
// (0 without cblas). The engine keeps OpenBLAS single-threaded inside its OpenMP threads; this
// ceiling lets OpenBLAS use every core its own way, then puts it back to one thread.
inline double sgemm_gflops(int M, int N, int K, int reps = 3) {
#ifdef M1_HAVE_CBLAS
  if (openblas_set_num_threads) openblas_set_num_threads(omp_get_max_threads());
  struct Restore { ~Restore() { if (openblas_set_num_threads) openblas_set_num_threads(1); } } restore;
  std::vector<float> x(size_t(M) * K, 0.01f), w(size_t(N) * K, 0.02f), y(size_t(M) * N);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.f, x.data(), K, w.data(), K, 0.f, y.data(), N);
    best = std::min(best, now_s() - t0);
  }
  return 2.0 * M * N * K / best / 1e9;
#else
  (void)M, (void)N, (void)K, (void)reps;
  return 0;
#endif
}

// Weight bytes one batch-1 decode step reads: all attention and norm weights, the routers, top_k
// experts per layer (the average expert size), one embedding row, the final norm and the lm_head.
inline double decode_bytes_per_token(const engine::ModelWeights& w, const engine::ModelConfig& c) {
  double b = double(w.embed.nbytes) / double(w.embed.shape[0]) + double(w.final_norm.nbytes + w.lm_head.nbytes);
  for (const auto& L : w.layers) {
    b += double(L.input_norm.nbytes + L.post_norm.nbytes + L.router.nbytes);
    b += double(L.qkv.nbytes + L.output_gate.nbytes + L.out_proj.nbytes + L.attn_norm.nbytes);
    b += double(L.q.nbytes + L.k.nbytes + L.v.nbytes + L.o.nbytes);
    double experts = 0;
    for (size_t e = 0; e < L.w1.size(); ++e) experts += double(L.w1[e].nbytes + L.w2[e].nbytes + L.w3[e].nbytes);
    b += experts * double(c.num_experts_per_tok) / double(std::max<size_t>(1, L.w1.size()));
  }
  return b;
}

// The benchmark's own mid-size shape: ~0.56 B parameters, M1's layer pattern, 6 heads (not a power
// of two), partial RoPE, 8 experts top-2, M1's vocabulary (so the default tokenizer fits).
inline engine::ModelConfig cpu_500m_config() {
  engine::ModelConfig c = engine::preset_config("tiny").value();
  c.hidden_size = 768;
  c.intermediate_size = 1536;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 2;
  c.head_dim = 128;
  c.rotary_dim = 64;
  c.num_local_experts = 8;
  c.num_experts_per_tok = 2;
  c.num_hidden_layers = 8;
  c.layer_kinds.assign(8, engine::LayerKind::Lightning);
  c.layer_kinds[7] = engine::LayerKind::Softmax;
  c.max_position_embeddings = 1 << 20;
  return c;
}

// Writes a random bf16 model folder for config c (normal-ish std 0.02 weights from a fast
// generator, norms 1) with the default tokenizer. Not atomic: a benchmark scratch folder.
inline Status write_random_model(const std::filesystem::path& dir, engine::ModelConfig c) {
  using namespace engine;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return make_error(dir.string() + ": cannot create: " + ec.message());
  c.dtype = DType::BF16;
  c.format = ConfigFormat::Original;
  const std::vector<TensorSpec> tensors = model_tensors(c, ConfigFormat::Original, DType::BF16);
  {
    std::ofstream f(dir / "config.json");
    f << config_to_json(c, ConfigFormat::Original).dump(2) << "\n";
    if (!f) return make_error((dir / "config.json").string() + ": write failed");
  }
  M1_TRY(write_default_tokenizer(dir));
  TensorFiller fill = [&](size_t i, uint64_t off, std::span<std::byte> out) {
    const TensorSpec& t = tensors[i];
    const bool norm = is_norm_tensor(t.name);
    uint64_t s = std::hash<std::string>()(t.name) ^ (off * 0x9e3779b97f4a7c15ull);
    const size_t es = dtype_size(t.dtype);
    for (size_t k = 0; k < out.size(); k += es) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      // Sum of two uniforms: triangular, std 0.02, never exactly zero in practice.
      const float u = (float((s >> 40) & 0xffff) + float((s >> 8) & 0xffff)) / 65536.f - 1.f;
      const float v = norm ? 1.f : u * 0.049f;
      if (es == 4) std::memcpy(&out[k], &v, 4);
      else { const uint16_t h = f32_to_bf16(v); std::memcpy(&out[k], &h, 2); }
    }
  };
  WriteOptions wo;
  wo.shard_bytes = 2'000'000'000ull;
  wo.sync = false;
  auto r = write_checkpoint_tensors(dir, tensors, fill, wo);
  if (!r.ok()) return r.error();
  return {};
}

}  // namespace m1::bench
