// bench_engine_checkpoint: how fast checkpoint bytes reach memory. Compares touching every page of
// the memory-mapped tensors (what the CPU backend does: TensorView::data points into the map) with
// a plain read() into a buffer (fresh mapping each pass), each from a cold page cache (the file's pages evicted with
// posix_fadvise DONTNEED, which affects only this file) and warm. Also times Checkpoint::open
// (headers only). Checks first that the mapped bytes equal the read bytes.
// Usage: bench_engine_checkpoint [--model DIR | --size-mb N (default 512, written to a temp folder)]
// Prints a table and one JSON line.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/model_init.h"
#include "engine/safetensors.h"

namespace fs = std::filesystem;
using namespace m1::engine;
using Clock = std::chrono::steady_clock;

namespace {

double secs(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void evict(const std::vector<fs::path>& files) {
  for (const auto& f : files) {
    int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// One byte per 4 KiB page of every tensor: faults the whole mapping in.
uint64_t touch(const Checkpoint& ck) {
  uint64_t sum = 0;
  for (const auto& n : ck.names()) {
    const TensorView* v = ck.find(n);
    for (size_t i = 0; i < v->nbytes; i += 4096) sum += uint8_t(v->data[i]);
  }
  return sum;
}

uint64_t read_all(const std::vector<fs::path>& files, std::vector<char>& buf) {
  uint64_t sum = 0;
  for (const auto& f : files) {
    int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) continue;
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0)
      for (ssize_t i = 0; i < n; i += 4096) sum += uint8_t(buf[size_t(i)]);
    ::close(fd);
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  fs::path model;
  uint64_t size_mb = 512;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) model = argv[++i];
    else if (a == "--size-mb" && i + 1 < argc) size_mb = std::strtoull(argv[++i], nullptr, 10);
    else {
      std::fprintf(stderr, "usage: bench_engine_checkpoint [--model DIR | --size-mb N]\n");
      return 2;
    }
  }
  fs::path tmp;
  if (model.empty()) {
    // A tiny-shaped model whose expert width is stretched to reach about size_mb of bf16.
    tmp = fs::temp_directory_path() / ("m1_bench_ckpt_" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    ModelConfig c = preset_config("tiny", 2).value();
    c.vocab_size = 1024;
    c.hidden_size = 1024;
    c.intermediate_size = int64_t(std::max<uint64_t>(64, size_mb * 1'000'000 / (2 * 4 * 3 * 1024 * 2)));
    std::FILE* f = std::fopen((tmp / "config.json").c_str(), "w");
    std::fputs(config_to_json(c, ConfigFormat::Original).dump().c_str(), f);
    std::fclose(f);
    auto specs = model_tensors(c, ConfigFormat::Original, DType::BF16);
    WriteOptions wo;
    wo.shard_bytes = 200'000'000;
    auto w = write_checkpoint_tensors(
        tmp, specs, [&](size_t i, uint64_t off, std::span<std::byte> o) { fill_init_values(specs[i], 1, off, o); }, wo);
    if (!w.ok()) {
      std::fprintf(stderr, "bench_engine_checkpoint: %s\n", w.error().message.c_str());
      return 1;
    }
    model = tmp;
  }
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(model))
    if (e.path().extension() == ".safetensors") files.push_back(e.path());

  auto t0 = Clock::now();
  auto ck = Checkpoint::open(model);
  double open_s = secs(t0);
  if (!ck.ok()) {
    std::fprintf(stderr, "bench_engine_checkpoint: %s\n", ck.error().message.c_str());
    return 1;
  }
  const double gb = double((*ck)->total_bytes()) / 1e9;
  uint64_t file_bytes = 0;
  for (const auto& f : files) file_bytes += fs::file_size(f);
  std::vector<char> buf(size_t(16) << 20);

  // Correctness: the first tensor's bytes through the map equal the file's bytes at its offset.
  {
    const TensorView* v = (*ck)->find((*ck)->names().front());
    auto sf = open_safetensors(v->file);
    const auto& e = *std::find_if(sf->header.tensors.begin(), sf->header.tensors.end(),
                                  [&](const SafetensorsEntry& x) { return x.name == v->name; });
    int fd = ::open(v->file.c_str(), O_RDONLY);
    size_t n = std::min<size_t>(v->nbytes, buf.size());
    ssize_t got = ::pread(fd, buf.data(), n, off_t(sf->header.data_offset + e.begin));
    ::close(fd);
    if (got != ssize_t(n) || std::memcmp(buf.data(), v->data, n) != 0) {
      std::fprintf(stderr, "bench_engine_checkpoint: mapped bytes differ from read bytes\n");
      return 1;
    }
  }

  // Each mmap pass opens a fresh Checkpoint: a new mapping, so every page faults once (warm: the
  // page cache holds the file and a fault only maps it; cold: it must come from the disk).
  auto mmap_pass = [&](uint64_t* sum) {
    auto c2 = Checkpoint::open(model);
    auto t = Clock::now();
    *sum = touch(**c2);
    return secs(t);
  };
  evict(files);
  uint64_t s1 = 0, s2 = 0;
  double mmap_cold = mmap_pass(&s1);
  double mmap_warm = mmap_pass(&s2);
  evict(files);
  t0 = Clock::now();
  uint64_t s3 = read_all(files, buf);
  double read_cold = secs(t0);
  t0 = Clock::now();
  uint64_t s4 = read_all(files, buf);
  double read_warm = secs(t0);
  const double fgb = double(file_bytes) / 1e9;

  std::printf("checkpoint %s: %.3f GB of tensors in %zu files; open (headers) %.2f ms\n", model.c_str(), gb,
              files.size(), open_s * 1e3);
  std::printf("%-28s %10s %10s\n", "path", "seconds", "GB/s");
  std::printf("%-28s %10.3f %10.2f\n", "mmap + touch pages, cold", mmap_cold, gb / mmap_cold);
  std::printf("%-28s %10.3f %10.2f\n", "mmap + touch pages, warm", mmap_warm, gb / mmap_warm);
  std::printf("%-28s %10.3f %10.2f\n", "read() 16 MB chunks, cold", read_cold, fgb / read_cold);
  std::printf("%-28s %10.3f %10.2f\n", "read() 16 MB chunks, warm", read_warm, fgb / read_warm);
  std::printf("{\"bench\":\"engine_checkpoint\",\"gb\":%.4f,\"files\":%zu,\"open_ms\":%.3f,\"mmap_cold_gbps\":%.3f,"
              "\"mmap_warm_gbps\":%.3f,\"read_cold_gbps\":%.3f,\"read_warm_gbps\":%.3f,\"checksum\":%llu}\n",
              gb, files.size(), open_s * 1e3, gb / mmap_cold, gb / mmap_warm, fgb / read_cold, fgb / read_warm,
              (unsigned long long)((s1 + s2) ^ (s3 + s4)));
  ck = m1::Error{};
  if (!tmp.empty()) fs::remove_all(tmp);
  return 0;
}
