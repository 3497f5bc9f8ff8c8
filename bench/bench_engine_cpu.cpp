// bench_engine_cpu: `m1 bench engine` as an engine-only program (the GPU machine builds engine/
// without the CLI's modules, and without CLI11: hence the plain argument loop). Same options,
// same table and JSON line.
#include <cstdlib>
#include <iostream>
#include <string>

#include "bench/bench_engine_cpu.h"

int main(int argc, char** argv) {
  m1::bench::EngineBenchArgs a;
  const std::string usage =
      "usage: bench_engine_cpu [--device cpu|cuda[:N]] [--model DIR | --preset tiny|cpu-500m] [--scratch DIR]\n"
      "                        [--prompt-tokens N] [--decode-tokens N] [--json]\n"
      "Without --model or --preset: both presets (tiny and cpu-500m) in one table.\n";
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "bench_engine_cpu: " << k << " needs a value\n" << usage;
        std::exit(2);
      }
      return argv[++i];
    };
    auto count = [&](const std::string& v) -> int64_t {
      char* end = nullptr;
      const long long n = std::strtoll(v.c_str(), &end, 10);
      if (end == v.c_str() || *end || n < 1) {
        std::cerr << "bench_engine_cpu: " << k << " is '" << v << "', expected a positive integer\n";
        std::exit(2);
      }
      return n;
    };
    if (k == "--device") a.device = value();
    else if (k == "--model") a.model = value();
    else if (k == "--preset") a.preset = value();
    else if (k == "--scratch") a.scratch = value();
    else if (k == "--prompt-tokens") a.prompt_tokens = count(value());
    else if (k == "--decode-tokens") a.decode_tokens = count(value());
    else if (k == "--json") a.json = true;
    else if (k == "-h" || k == "--help") { std::cout << usage; return 0; }
    else { std::cerr << "bench_engine_cpu: unknown option '" << k << "'\n" << usage; return 2; }
  }
  if (!a.preset.empty() && a.preset != "tiny" && a.preset != "cpu-500m") {
    std::cerr << "bench_engine_cpu: --preset is '" << a.preset << "', expected tiny or cpu-500m\n";
    return 2;
  }
  if (!a.preset.empty() && !a.model.empty()) {
    std::cerr << "bench_engine_cpu: --model and --preset exclude each other\n";
    return 2;
  }
  auto st = m1::bench::run_engine_bench(a);
  if (!st.ok()) {
    std::cerr << "bench_engine_cpu: " << st.error().message << "\n";
    return st.error().code;
  }
  return 0;
}
