// `m1 bench engine --device cpu [--model DIR | --preset tiny|cpu-500m]`: decode ms/token against the
// memory-bandwidth floor and prefill GEMM GFLOP/s against OpenBLAS sgemm, both ceilings measured
// in the same run (bench/bench_engine_cpu.h does the work), for both presets unless one model is
// named. Prints a table, then one JSON line (the only output with --json).
#include "bench/bench_engine_cpu.h"
#include "bench/cuda/engine_bench.h"
#include "cli/command.h"

namespace m1::cli {
namespace {

M1_REGISTER_COMMAND([](CLI::App& root) {
  auto a = std::make_shared<bench::EngineBenchArgs>();
  auto* grp = root.add_subcommand("bench", "Benchmarks");
  grp->require_subcommand(1);
  auto* eng = grp->add_subcommand("engine", "Engine decode/prefill speed against the machine's ceilings");
  eng->add_option("--device", a->device, "cpu (default), cuda, cuda:N");
  auto* model = eng->add_option("--model", a->model, "Model folder to benchmark");
  eng->add_option("--preset", a->preset, "tiny or cpu-500m (default: both), generated into --scratch once")
      ->excludes(model)
      ->check(CLI::IsMember({"tiny", "cpu-500m", "m1-block"}));  // m1-block: --device cuda --random-weights
  eng->add_option("--scratch", a->scratch, "Folder for generated preset models (default /tmp/m1-bench)");
  eng->add_option("--prompt-tokens", a->prompt_tokens, "Prefill length (default 256)")->check(CLI::Range(int64_t(9), int64_t(1) << 20));
  eng->add_option("--decode-tokens", a->decode_tokens, "Decode steps timed (default 128 on the CPU, 32 on CUDA)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  eng->add_flag("--json", a->json, "Print only the JSON line");
  // --device cuda: bench/cuda/engine_bench.h (prefill at several lengths, decode at several contexts).
  auto g = std::make_shared<bench::CudaEngineBenchArgs>();
  eng->add_flag("--random-weights", g->random_weights, "cuda: generate the preset's weights on the GPU (no files)");
  eng->add_option("--prefill", g->prefill, "cuda: prompt lengths (default 1024,4096,16384,65536)")->delimiter(',');
  eng->add_option("--contexts", g->contexts, "cuda: decode contexts (default 1024,16384,65536)")->delimiter(',');
  eng->add_option("--prefill-chunk", g->prefill_chunk, "cuda: tokens per forward chunk (default 8192)");
  eng->add_option("--expert-sets", g->expert_sets, "cuda: distinct MoE expert sets (default: as many as fit)");
  eng->add_flag_callback("--no-graphs", [g] { g->graphs = false; }, "cuda: decode steps without CUDA graphs");
  eng->add_flag_callback("--no-profile", [g] { g->profile = false; }, "cuda: skip the per-op decode breakdown");
  eng->callback([a, g, eng] {
    if (a->device.rfind("cuda", 0) == 0) {
      if (!bench::run_engine_bench_cuda) {
        fail(make_error("--device " + a->device + ": this build has no CUDA backend", 2));
        return;
      }
      g->device = a->device;
      g->model = a->model;
      if (eng->count("--preset")) g->preset = a->preset;
      if (eng->count("--decode-tokens")) g->decode_tokens = a->decode_tokens;
      g->json = a->json;
      auto st = bench::run_engine_bench_cuda(*g);
      if (!st.ok()) fail(st.error());
      return;
    }
    auto st = bench::run_engine_bench(*a);
    if (!st.ok()) fail(st.error());
  });
});

}  // namespace
}  // namespace m1::cli
