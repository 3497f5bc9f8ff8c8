// `m1 bench engine --device cpu [--model DIR | --preset tiny|cpu-500m]`: decode ms/token against the
// memory-bandwidth floor and prefill GEMM GFLOP/s against OpenBLAS sgemm, both ceilings measured
// in the same run. Prints a table, then one JSON line (the only output with --json).
// Decision: preset folders are generated once into --scratch (default /tmp/m1-bench) and reused,
// so repeated runs time the engine, not the writer; weights stay memory-mapped as in production.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>

#include "bench/bench_engine_cpu.h"
#include "cli/command.h"
#include "engine/engine.h"
#include "engine/sampler.h"

namespace m1::cli {
namespace {

struct BenchArgs {
  std::string device = "cpu", model, preset = "tiny", scratch = "/tmp/m1-bench";
  int64_t prompt_tokens = 256, decode_tokens = 32;
  bool json = false;
};

double rss_mb(const char* field) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(std::string(field).size())) / 1024.0;
  return 0;
}

Result<std::string> model_dir(const BenchArgs& a) {
  if (!a.model.empty()) return a.model;
  const std::filesystem::path dir = std::filesystem::path(a.scratch) / a.preset;
  if (std::filesystem::exists(dir / "config.json")) return dir.string();
  std::cerr << "generating the " << a.preset << " model into " << dir << " ...\n";
  if (a.preset == "cpu-500m") {
    M1_TRY(bench::write_random_model(dir, bench::cpu_500m_config()));
  } else {
    engine::InitOptions o;
    o.preset = a.preset;
    o.out = dir;
    o.sync = false;
    auto r = engine::init_model(o);
    if (!r.ok()) return r.error();
  }
  return dir.string();
}

// Engine matmul over a real weight vs sgemm of the same shape: {engine GFLOP/s, sgemm GFLOP/s}.
std::pair<double, double> gemm_pair(engine::Backend& be, const engine::TensorView& t, int64_t T) {
  engine::Weight w = be.upload_weight(t).value();
  std::vector<float> x(size_t(T * w.cols), 0.01f), y(size_t(T * w.rows));
  double best = 1e30;
  for (int r = 0; r < 3; ++r) {
    const double t0 = bench::now_s();
    be.matmul(x.data(), T, w, y.data(), false);
    be.synchronize();
    best = std::min(best, bench::now_s() - t0);
  }
  return {2.0 * double(T) * double(w.rows) * double(w.cols) / best / 1e9,
          bench::sgemm_gflops(int(T), int(w.rows), int(w.cols))};
}

Status run_bench(const BenchArgs& a) {
  M1_ASSIGN_OR_RETURN(std::string dir, model_dir(a));
  engine::EngineOptions eo;
  eo.device = a.device;
  M1_ASSIGN_OR_RETURN(auto eng, engine::Engine::open(dir, eo));
  const engine::ModelConfig& c = eng->config();
  M1_ASSIGN_OR_RETURN(engine::ModelWeights w, engine::bind_weights(eng->checkpoint()));
  const int64_t P = a.prompt_tokens;

  std::mt19937 g(1);
  std::vector<int32_t> prompt(static_cast<size_t>(P));
  for (auto& t : prompt) t = int32_t(g() % uint32_t(std::min<int64_t>(eng->usable_vocab(), 200000)));
  M1_ASSIGN_OR_RETURN(auto s, eng->new_session());
  double t0 = bench::now_s();
  M1_TRY(s->append(prompt));
  const double prefill_s = bench::now_s() - t0;
  engine::Sampler greedy(engine::SamplingParams{0.f});
  std::vector<double> steps;
  for (int64_t i = 0; i < a.decode_tokens; ++i) {
    t0 = bench::now_s();
    auto r = s->decode(greedy, eng->usable_vocab());
    if (!r.ok()) return r.error();
    steps.push_back((bench::now_s() - t0) * 1e3);
  }
  std::sort(steps.begin(), steps.end());
  const double decode_ms = steps.empty() ? 0 : steps[steps.size() / 2];
  const double rss = rss_mb("VmRSS:"), peak = rss_mb("VmHWM:");  // before the ceilings' buffers
  // Ceilings, measured after the model ran so their buffers do not count in its memory.
  const double bw = bench::copy_bandwidth_gbps();
  const double bytes_tok = bench::decode_bytes_per_token(w, c);
  const double floor_ms = bytes_tok / (bw * 1e9) * 1e3;
  auto [qkv_gf, qkv_blas] = gemm_pair(eng->backend(), c.layer_kinds[0] == engine::LayerKind::Lightning ? w.layers[0].qkv : w.layers[0].q, P);
  auto [w1_gf, w1_blas] = gemm_pair(eng->backend(), w.layers[0].w1[0], P);
  uint64_t params = 0;
  for (const auto& n : eng->checkpoint().names()) params += uint64_t(eng->checkpoint().find(n)->numel());

  nlohmann::json j = {{"bench", "engine"}, {"device", eng->backend().name()}, {"model", dir},
                      {"params_B", double(params) / 1e9}, {"weights_GB", double(eng->checkpoint().total_bytes()) / 1e9},
                      {"copy_GBps", bw}, {"decode_bytes_per_token_MB", bytes_tok / 1e6},
                      {"decode_floor_ms", floor_ms}, {"decode_ms_per_token", decode_ms},
                      {"decode_vs_floor", decode_ms / floor_ms}, {"prefill_tokens", P},
                      {"prefill_tokens_per_s", double(P) / prefill_s},
                      {"gemm_qkv_GFLOPs", qkv_gf}, {"sgemm_qkv_GFLOPs", qkv_blas},
                      {"gemm_expert_GFLOPs", w1_gf}, {"sgemm_expert_GFLOPs", w1_blas},
                      {"rss_MB", rss}, {"peak_rss_MB", peak}};
  if (!a.json) {
    std::printf("m1 bench engine: %s, %s, %.3f B params (%.2f GB on disk)\n", eng->backend().name().c_str(),
                dir.c_str(), double(params) / 1e9, double(eng->checkpoint().total_bytes()) / 1e9);
    std::printf("  %-38s %12s %12s %8s\n", "figure", "measured", "ceiling", "ratio");
    std::printf("  %-38s %12.1f %12s %8s\n", "copy bandwidth, GB/s (read+write)", bw, "", "");
    std::printf("  %-38s %12.2f %12.2f %7.2fx\n", "decode ms/token vs bandwidth floor", decode_ms, floor_ms, decode_ms / floor_ms);
    std::printf("  %-38s %12.1f %12s %8s\n", "  weights read per token, MB", bytes_tok / 1e6, "", "");
    std::printf("  %-38s %12.1f %12.1f %7.2fx\n", "prefill GEMM qkv GFLOP/s vs sgemm", qkv_gf, qkv_blas, qkv_blas > 0 ? qkv_gf / qkv_blas : 0);
    std::printf("  %-38s %12.1f %12.1f %7.2fx\n", "prefill GEMM expert GFLOP/s vs sgemm", w1_gf, w1_blas, w1_blas > 0 ? w1_gf / w1_blas : 0);
    std::printf("  %-38s %12.1f\n", ("prefill tokens/s (" + std::to_string(P) + " tokens)").c_str(), double(P) / prefill_s);
    std::printf("  %-38s %12.0f (peak %.0f)\n", "resident memory after decode, MB", rss, peak);
  }
  std::cout << j.dump() << std::endl;
  return {};
}

M1_REGISTER_COMMAND([](CLI::App& root) {
  auto a = std::make_shared<BenchArgs>();
  auto* bench = root.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto* eng = bench->add_subcommand("engine", "Engine decode/prefill speed against the machine's ceilings");
  eng->add_option("--device", a->device, "cpu (default), cuda, cuda:N");
  auto* model = eng->add_option("--model", a->model, "Model folder to benchmark");
  eng->add_option("--preset", a->preset, "tiny (default) or cpu-500m, generated into --scratch once")
      ->excludes(model)
      ->check(CLI::IsMember({"tiny", "cpu-500m"}));
  eng->add_option("--scratch", a->scratch, "Folder for generated preset models (default /tmp/m1-bench)");
  eng->add_option("--prompt-tokens", a->prompt_tokens, "Prefill length (default 256)")->check(CLI::Range(int64_t(9), int64_t(1) << 20));
  eng->add_option("--decode-tokens", a->decode_tokens, "Decode steps timed (default 32)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  eng->add_flag("--json", a->json, "Print only the JSON line");
  eng->callback([a] {
    auto st = run_bench(*a);
    if (!st.ok()) fail(st.error());
  });
});

}  // namespace
}  // namespace m1::cli
