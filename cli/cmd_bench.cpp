// `m1 bench engine --device cpu [--model DIR | --preset tiny|cpu-500m]`: decode ms/token against the
// memory-bandwidth floor and prefill GEMM GFLOP/s against OpenBLAS sgemm, both ceilings measured
// in the same run (bench/bench_engine_cpu.h does the work). Prints a table, then one JSON line
// (the only output with --json).
#include "bench/bench_engine_cpu.h"
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
  eng->add_option("--preset", a->preset, "tiny (default) or cpu-500m, generated into --scratch once")
      ->excludes(model)
      ->check(CLI::IsMember({"tiny", "cpu-500m"}));
  eng->add_option("--scratch", a->scratch, "Folder for generated preset models (default /tmp/m1-bench)");
  eng->add_option("--prompt-tokens", a->prompt_tokens, "Prefill length (default 256)")->check(CLI::Range(int64_t(9), int64_t(1) << 20));
  eng->add_option("--decode-tokens", a->decode_tokens, "Decode steps timed (default 32)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  eng->add_flag("--json", a->json, "Print only the JSON line");
  eng->callback([a] {
    auto st = bench::run_engine_bench(*a);
    if (!st.ok()) fail(st.error());
  });
});

}  // namespace
}  // namespace m1::cli
