// bench_engine_cpu: `m1 bench engine` as an engine-only program (the GPU machine builds engine/
// without the CLI's SQLite/httplib modules). Same options, same table and JSON line.
#include <CLI/CLI.hpp>

#include <iostream>

#include "bench/bench_engine_cpu.h"

int main(int argc, char** argv) {
  m1::bench::EngineBenchArgs a;
  CLI::App app("Engine decode/prefill speed against the machine's ceilings");
  app.add_option("--device", a.device, "cpu (default), cuda, cuda:N");
  auto* model = app.add_option("--model", a.model, "Model folder to benchmark");
  app.add_option("--preset", a.preset, "tiny (default) or cpu-500m, generated into --scratch once")
      ->excludes(model)
      ->check(CLI::IsMember({"tiny", "cpu-500m"}));
  app.add_option("--scratch", a.scratch, "Folder for generated preset models (default /tmp/m1-bench)");
  app.add_option("--prompt-tokens", a.prompt_tokens, "Prefill length (default 256)")->check(CLI::Range(int64_t(9), int64_t(1) << 20));
  app.add_option("--decode-tokens", a.decode_tokens, "Decode steps timed (default 32)")->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  app.add_flag("--json", a.json, "Print only the JSON line");
  CLI11_PARSE(app, argc, argv);
  auto st = m1::bench::run_engine_bench(a);
  if (!st.ok()) {
    std::cerr << "bench_engine_cpu: " << st.error().message << "\n";
    return st.error().code;
  }
  return 0;
}
