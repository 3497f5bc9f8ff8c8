// The engine benchmark behind `m1 bench engine` (cli/cmd_bench.cpp) and the engine-only program
// bench_engine_cpu (bench/bench_engine_cpu.cpp, for machines without the full build): the ceilings
// measured in the same run (a copy loop's bandwidth, OpenBLAS sgemm's FLOP rate), the bytes a
// batch-1 decode step must read, a writer of random model folders of any shape (the "cpu-500m"
// benchmark model has no `m1 model init` preset), and run_engine_bench() printing table + JSON.
// Without --model or --preset it runs both presets, the tiny model and cpu-500m, in one table.
// Decisions: preset folders are generated once into a scratch folder (default /tmp/m1-bench) and
// reused, so repeated runs time the engine, not the writer; weights stay memory-mapped as in
// production, and a first prefill in a throwaway session maps them in before anything is timed.
// Bandwidth counts bytes read + written by the copy (as performance.md does for the GPU), and the
// decode floor divides the weight bytes a token reads by that figure. The load average is printed
// before and after: on a shared machine the numbers are only as good as the quiet they ran in.
#pragma once
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/config.h"
#include "engine/cpu/parallel.h"
#include "engine/engine.h"
#include "engine/model_init.h"
#include "engine/safetensors.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

#ifdef M1_HAVE_CBLAS
#include <cblas.h>
// Declared here too for BLAS builds whose cblas.h lacks it (then the weak symbol is null).
extern "C" void openblas_set_num_threads(int num_threads);
#pragma weak openblas_set_num_threads
#endif

namespace m1::bench {

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best of `reps` parallel copies of `bytes` (bytes read + bytes written) / time, in GB/s, on the
// engine's threads (one slice each).
inline double copy_bandwidth_gbps(size_t bytes = size_t(512) << 20, int reps = 5) {
  std::vector<char> a(bytes, 1), b(bytes, 0);
  const int64_t n = engine::cpu::num_threads();
  const size_t slice = (bytes + size_t(n) - 1) / size_t(n);
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const double t0 = now_s();
    engine::cpu::parallel_for(n, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        const size_t from = std::min(bytes, slice * size_t(i));
        std::memcpy(b.data() + from, a.data() + from, std::min(bytes, from + slice) - from);
      }
    });
    best = std::min(best, now_s() - t0);
    a[size_t(r)] = char(r);  // keep the copies from being merged
  }
  return 2.0 * double(bytes) / best / 1e9;
}

// Repetitions for a best-of timing of `flops`: about 10 GFLOP in all, 5 to 100 (the tiny model's
// 1 MFLOP products take microseconds and one slow wake-up would be the whole figure; with 3
// repetitions of cpu-500m's 0.9 GFLOP a busy 15 ms on the 2-core VM once halved a result).
inline int reps_for(double flops) { return int(std::clamp(1e10 / std::max(flops, 1.0), 5.0, 100.0)); }

// OpenBLAS sgemm [M,K] x [K,N]^T on all cores (its own threading), best of reps_for(), in GFLOP/s
// (0 without cblas). The engine keeps OpenBLAS single-threaded inside its own threads; this
// ceiling lets OpenBLAS use every core its own way, then puts it back to one thread.
inline double sgemm_gflops(int M, int N, int K) {
  const int reps = reps_for(2.0 * M * N * K);
#ifdef M1_HAVE_CBLAS
  if (openblas_set_num_threads) openblas_set_num_threads(engine::cpu::num_threads());
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
  (void)M, (void)N, (void)K;
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

struct EngineBenchArgs {
  std::string device = "cpu", model, scratch = "/tmp/m1-bench";
  std::string preset;  // tiny | cpu-500m; empty with no --model: both
  // 128 decode steps: the median then describes the steady state, not the first steps after the
  // process started (thread wake-ups, OpenBLAS's threads spinning for ~0.1 s after they start).
  int64_t prompt_tokens = 256, decode_tokens = 128;
  bool json = false;
};

inline double rss_mb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(std::string(field).size())) / 1024.0;
  return 0;
}

inline double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

inline double load_average() {
  double l[1] = {0};
  return getloadavg(l, 1) == 1 ? l[0] : -1;
}

// The folder of a preset, generated into the scratch folder the first time.
inline Result<std::string> preset_dir(const EngineBenchArgs& a, const std::string& preset) {
  const std::filesystem::path dir = std::filesystem::path(a.scratch) / preset;
  if (std::filesystem::exists(dir / "config.json")) return dir.string();
  std::cerr << "generating the " << preset << " model into " << dir << " ...\n";
  if (preset == "cpu-500m") {
    M1_TRY(write_random_model(dir, cpu_500m_config()));
  } else {
    engine::InitOptions o;
    o.preset = preset;
    o.out = dir;
    o.sync = false;
    auto r = engine::init_model(o);
    if (!r.ok()) return r.error();
  }
  return dir.string();
}

// Engine matmul over a real weight vs sgemm of the same shape: {engine GFLOP/s, sgemm GFLOP/s}.
inline std::pair<double, double> gemm_pair(engine::Backend& be, const engine::TensorView& t, int64_t T) {
  engine::Weight w = be.upload_weight(t).value();
  std::vector<float> x(size_t(T * w.cols), 0.01f), y(size_t(T * w.rows));
  double best = 1e30;
  const double flops = 2.0 * double(T) * double(w.rows) * double(w.cols);
  for (int r = 0, reps = reps_for(flops); r < reps; ++r) {
    const double t0 = now_s();
    be.matmul(x.data(), T, w, y.data(), false);
    be.synchronize();
    best = std::min(best, now_s() - t0);
  }
  return {flops / best / 1e9, sgemm_gflops(int(T), int(w.rows), int(w.cols))};
}

// One model's figures (the floor is filled in once the copy bandwidth is known).
struct ModelRun {
  std::string name, dir;
  double params_B = 0, weights_GB = 0, bytes_per_token = 0;
  double decode_ms = 0, decode_min_ms = 0, cpu_share = 0, prefill_tok_s = 0, rss = 0, peak = 0;
  std::string qkv_shape, expert_shape;
  double qkv_gf = 0, qkv_blas = 0, w1_gf = 0, w1_blas = 0;
};

inline Result<ModelRun> run_model(const EngineBenchArgs& a, const std::string& name, const std::string& dir) {
  engine::EngineOptions eo;
  eo.device = a.device;
  M1_ASSIGN_OR_RETURN(auto eng, engine::Engine::open(dir, eo));
  const engine::ModelConfig& c = eng->config();
  M1_ASSIGN_OR_RETURN(engine::ModelWeights w, engine::bind_weights(eng->checkpoint()));
  ModelRun m;
  m.name = name, m.dir = dir;
  const int64_t P = a.prompt_tokens;
  std::mt19937 g(1);
  std::vector<int32_t> prompt(static_cast<size_t>(P));
  for (auto& t : prompt) t = int32_t(g() % uint32_t(std::min<int64_t>(eng->usable_vocab(), 200000)));
  {  // map the weights in: the first touch of a page of the map costs a fault, not engine time
    M1_ASSIGN_OR_RETURN(auto warm, eng->new_session());
    M1_TRY(warm->append(prompt));
  }
  M1_ASSIGN_OR_RETURN(auto s, eng->new_session());
  double t0 = now_s();
  M1_TRY(s->append(prompt));
  m.prefill_tok_s = double(P) / (now_s() - t0);
  engine::Sampler greedy(engine::SamplingParams{0.f});
  std::vector<double> steps;
  const double cpu0 = cpu_seconds(), wall0 = now_s();
  for (int64_t i = 0; i < a.decode_tokens; ++i) {
    t0 = now_s();
    auto r = s->decode(greedy, eng->usable_vocab());
    if (!r.ok()) return r.error();
    steps.push_back((now_s() - t0) * 1e3);
  }
  // Share of the cores this process got while decoding: well below 1 means other processes were
  // running and the timings are not the machine's.
  m.cpu_share = (cpu_seconds() - cpu0) / ((now_s() - wall0) * engine::cpu::num_threads());
  std::sort(steps.begin(), steps.end());
  m.decode_ms = steps[steps.size() / 2];
  m.decode_min_ms = steps.front();
  m.rss = rss_mb("VmRSS:"), m.peak = rss_mb("VmHWM:");  // before the ceilings' buffers
  m.bytes_per_token = decode_bytes_per_token(w, c);
  if (eng->backend().name() == "cpu") {  // the sgemm ceiling is a CPU figure
    const engine::TensorView& qkv = c.layer_kinds[0] == engine::LayerKind::Lightning ? w.layers[0].qkv : w.layers[0].q;
    std::tie(m.qkv_gf, m.qkv_blas) = gemm_pair(eng->backend(), qkv, P);
    std::tie(m.w1_gf, m.w1_blas) = gemm_pair(eng->backend(), w.layers[0].w1[0], P);
    auto shape = [&](const engine::TensorView& t) {
      return std::to_string(P) + "x" + std::to_string(t.shape[0]) + "x" + std::to_string(t.shape[1]);
    };
    m.qkv_shape = shape(qkv), m.expert_shape = shape(w.layers[0].w1[0]);
  }
  uint64_t params = 0;
  for (const auto& n : eng->checkpoint().names()) params += uint64_t(eng->checkpoint().find(n)->numel());
  m.params_B = double(params) / 1e9;
  m.weights_GB = double(eng->checkpoint().total_bytes()) / 1e9;
  return m;
}

// Runs the model of --model, the preset of --preset, or both presets; prints one table (unless
// --json) and one JSON line.
inline Status run_engine_bench(const EngineBenchArgs& a) {
  std::vector<std::pair<std::string, std::string>> todo;  // name, folder
  if (!a.model.empty()) {
    todo.push_back({std::filesystem::path(a.model).filename().string(), a.model});
  } else {
    for (std::string p : {"tiny", "cpu-500m"}) {
      if (!a.preset.empty() && a.preset != p) continue;
      M1_ASSIGN_OR_RETURN(std::string dir, preset_dir(a, p));
      todo.push_back({p, dir});
    }
  }
  const double load0 = load_average(), t_start = now_s();
  std::vector<ModelRun> runs;
  for (const auto& [name, dir] : todo) {
    M1_ASSIGN_OR_RETURN(ModelRun m, run_model(a, name, dir));
    runs.push_back(std::move(m));
  }
  // The ceiling, measured after the models ran so its buffers do not count in their memory.
  const double bw = copy_bandwidth_gbps();
  const double load1 = load_average();
  const int threads = engine::cpu::num_threads();
  auto ratio = [](double x, double y) { return y > 0 ? x / y : 0.0; };

  nlohmann::json models = nlohmann::json::array();
  for (const ModelRun& m : runs) {
    const double floor_ms = m.bytes_per_token / (bw * 1e9) * 1e3;
    models.push_back({{"name", m.name}, {"model", m.dir}, {"params_B", m.params_B}, {"weights_GB", m.weights_GB},
                      {"decode_bytes_per_token_MB", m.bytes_per_token / 1e6}, {"decode_floor_ms", floor_ms},
                      {"decode_ms_per_token", m.decode_ms}, {"decode_min_ms", m.decode_min_ms},
                      {"decode_vs_floor", ratio(m.decode_ms, floor_ms)}, {"decode_cpu_share", m.cpu_share},
                      {"prefill_tokens", a.prompt_tokens}, {"prefill_tokens_per_s", m.prefill_tok_s},
                      {"gemm_qkv_shape", m.qkv_shape}, {"gemm_qkv_GFLOPs", m.qkv_gf}, {"sgemm_qkv_GFLOPs", m.qkv_blas},
                      {"gemm_qkv_vs_sgemm", ratio(m.qkv_gf, m.qkv_blas)}, {"gemm_expert_shape", m.expert_shape},
                      {"gemm_expert_GFLOPs", m.w1_gf}, {"sgemm_expert_GFLOPs", m.w1_blas},
                      {"gemm_expert_vs_sgemm", ratio(m.w1_gf, m.w1_blas)}, {"rss_MB", m.rss}, {"peak_rss_MB", m.peak}});
  }
  nlohmann::json j = {{"bench", "engine"}, {"device", a.device}, {"threads", threads}, {"copy_GBps", bw},
                      {"loadavg_before", load0}, {"loadavg_after", load1}, {"seconds", now_s() - t_start},
                      {"models", models}};
  if (!a.json) {
    std::printf("m1 bench engine --device %s: %d threads, copy %.1f GB/s (read+write), load average %.2f -> %.2f\n",
                a.device.c_str(), threads, bw, load0, load1);
    std::printf("  decode floor = weight bytes a token reads / copy bandwidth (target <= 2x);"
                " GEMMs vs OpenBLAS sgemm on all cores (target >= 0.5x)\n");
    std::printf("  %-10s %-40s %10s %10s %8s\n", "model", "figure", "measured", "floor/BLAS", "ratio");
    for (size_t i = 0; i < runs.size(); ++i) {
      const ModelRun& m = runs[i];
      const nlohmann::json& r = models[i];
      const char* n = m.name.c_str();
      std::printf("  %-10s %-40s %10.3f\n", n, "params, B", m.params_B);
      std::printf("  %-10s %-40s %10.1f\n", n, "weights read per decode token, MB", m.bytes_per_token / 1e6);
      std::printf("  %-10s %-40s %10.2f %10.2f %7.2fx\n", n, "decode ms/token (median) vs floor", m.decode_ms,
                  r["decode_floor_ms"].get<double>(), r["decode_vs_floor"].get<double>());
      if (m.qkv_blas > 0 || m.qkv_gf > 0) {
        std::printf("  %-10s %-40s %10.1f %10.1f %7.2fx\n", n, ("GEMM qkv " + m.qkv_shape + " GFLOP/s").c_str(),
                    m.qkv_gf, m.qkv_blas, ratio(m.qkv_gf, m.qkv_blas));
        std::printf("  %-10s %-40s %10.1f %10.1f %7.2fx\n", n, ("GEMM expert " + m.expert_shape + " GFLOP/s").c_str(),
                    m.w1_gf, m.w1_blas, ratio(m.w1_gf, m.w1_blas));
      }
      std::printf("  %-10s %-40s %10.1f\n", n, ("prefill tokens/s (" + std::to_string(a.prompt_tokens) + " tokens)").c_str(),
                  m.prefill_tok_s);
      std::printf("  %-10s %-40s %10.0f (peak %.0f)\n", n, "resident memory after decode, MB", m.rss, m.peak);
      std::printf("  %-10s %-40s %10.2f\n", n, "share of the cores used while decoding", m.cpu_share);
      if (m.cpu_share < 0.8)
        std::printf("  %-10s note: other processes held the cores; these timings are not the machine's\n", n);
    }
  }
  std::cout << j.dump() << std::endl;
  return {};
}

}  // namespace m1::bench
