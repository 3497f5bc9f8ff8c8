// Tokenizer throughput on source code: the repository's own C++/Python files (or the folders given
// on the command line), one thread. Checks decode(encode(file)) == file for every file first, then
// times encode with a cold word cache (fresh tokenizer) and a warm one, for the default tokenizer
// with its hand-written split fast path and with the general regex engine, and for any extra
// tokenizer.json given with --tokenizer PATH. Prints a table and one JSON line.
// Usage: bench_engine_tokenizer [--tokenizer PATH]... [DIR]...   (default DIR: the current folder)
#include <nlohmann/json.hpp>

#include <ctime>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/tokenizer.h"

namespace fs = std::filesystem;
using m1::engine::Tokenizer;

namespace {

std::vector<std::string> collect(const std::vector<std::string>& dirs, size_t max_bytes) {
  std::vector<fs::path> paths;
  for (const auto& d : dirs) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(d, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      std::string name = it->path().filename().string();
      if (it->is_directory() && (name.rfind("build", 0) == 0 || name[0] == '.' ||
                                 name == "node_modules" || name == "fixtures")) {
        it.disable_recursion_pending();
        continue;
      }
      auto ext = it->path().extension();
      if (it->is_regular_file() && (ext == ".cpp" || ext == ".h" || ext == ".py" || ext == ".cu" ||
                                    ext == ".cuh"))
        paths.push_back(it->path());
    }
  }
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> files;
  size_t total = 0;
  for (const auto& p : paths) {
    if (p.filename() == "unicode_tables.cpp" || p.filename() == "tokenizer_default_merges.cpp")
      continue;  // generated tables, not representative code
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    total += ss.str().size();
    files.push_back(ss.str());
    if (total >= max_bytes) break;
  }
  return files;
}

struct Row {
  std::string name;
  double cold_mbs, warm_mbs;
  size_t tokens;
};

// Thread CPU time, not wall time: MB/s per core stays meaningful on a loaded (shared) machine.
double now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

Row measure(const std::string& name, const Tokenizer& proto_src, bool general,
            const std::vector<std::string>& files, size_t bytes, const std::string& json_text) {
  auto fresh = Tokenizer::from_json(json_text, name);
  Tokenizer tok = std::move(fresh).value();
  if (general) tok.disable_fast_paths();
  (void)proto_src;
  size_t tokens = 0;
  double t0 = now();
  for (const auto& f : files) tokens += tok.encode(f).size();
  double cold = now() - t0;
  double best_warm = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    t0 = now();
    for (const auto& f : files) tok.encode(f);
    best_warm = std::min(best_warm, now() - t0);
  }
  return {name, double(bytes) / cold / 1e6, double(bytes) / best_warm / 1e6, tokens};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> dirs, extra;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tokenizer" && i + 1 < argc) extra.push_back(argv[++i]);
    else dirs.push_back(a);
  }
  if (dirs.empty()) dirs.push_back(".");
  auto files = collect(dirs, size_t(8) << 20);
  size_t bytes = 0;
  for (const auto& f : files) bytes += f.size();
  if (bytes == 0) {
    std::fprintf(stderr, "bench_engine_tokenizer: no .cpp/.h/.py files under the given folders\n");
    return 1;
  }
  std::string def_json = m1::engine::default_tokenizer_json();
  auto def = Tokenizer::from_json(def_json, "default");
  if (!def.ok()) {
    std::fprintf(stderr, "%s\n", def.error().message.c_str());
    return 1;
  }
  // Correctness first: every file round-trips.
  for (const auto& f : files) {
    if (def->decode(def->encode(f)) != f) {
      std::fprintf(stderr, "bench_engine_tokenizer: round trip failed on a corpus file\n");
      return 1;
    }
  }
  std::vector<Row> rows;
  rows.push_back(measure("default (fast split)", *def, false, files, bytes, def_json));
  rows.push_back(measure("default (regex engine)", *def, true, files, bytes, def_json));
  for (const auto& path : extra) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    auto t = Tokenizer::from_json(ss.str(), path);
    if (!t.ok()) {
      std::fprintf(stderr, "%s\n", t.error().message.c_str());
      return 1;
    }
    rows.push_back(measure(fs::path(path).parent_path().parent_path().parent_path().filename().string(),
                           *t, false, files, bytes, ss.str()));
  }
  // Decode throughput (bytes of text produced per second).
  std::vector<std::vector<int32_t>> ids;
  for (const auto& f : files) ids.push_back(def->encode(f));
  double t0 = now();
  size_t out_bytes = 0;
  for (const auto& v : ids) out_bytes += def->decode(v).size();
  double decode_mbs = double(out_bytes) / (now() - t0) / 1e6;

  std::printf("corpus: %zu files, %.2f MB of source code, 1 thread, MB/s per CPU-second\n", files.size(), bytes / 1e6);
  std::printf("%-26s %12s %12s %10s %8s\n", "tokenizer", "cold MB/s", "warm MB/s", "tokens", "B/tok");
  nlohmann::json j = {{"bench", "tokenizer"}, {"corpus_bytes", bytes}, {"files", files.size()},
                      {"decode_mb_s", decode_mbs}};
  for (const auto& r : rows) {
    std::printf("%-26s %12.1f %12.1f %10zu %8.2f\n", r.name.c_str(), r.cold_mbs, r.warm_mbs, r.tokens,
                double(bytes) / double(r.tokens));
    j["results"].push_back({{"tokenizer", r.name}, {"cold_mb_s", r.cold_mbs},
                            {"warm_mb_s", r.warm_mbs}, {"tokens", r.tokens}});
  }
  std::printf("decode: %.1f MB/s\n", decode_mbs);
  std::printf("%s\n", j.dump().c_str());
  return 0;
}
