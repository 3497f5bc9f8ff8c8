// Safetensors files: a read-only memory map with a validated header (reader) and a streaming
// writer for single files and index + shards. Format: 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {str: str}}, then the
// data section that data_offsets are relative to. The reader never copies tensor bytes: tensor
// pointers point into the map, which lives as long as any SafetensorsFile sharing it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "engine/dtype.h"

namespace m1::engine {

// A whole file mapped read-only (PROT_READ, MAP_PRIVATE); unmapped on destruction.
class MappedFile {
 public:
  static Result<std::shared_ptr<MappedFile>> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::filesystem::path path_;
};

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the data section
};

struct SafetensorsHeader {
  uint64_t data_offset = 0;          // 8 + header length: where the data section starts
  nlohmann::json metadata;           // "__metadata__" (null when absent)
  std::vector<SafetensorsEntry> tensors;  // in header (JSON key) order
};

// Parses and validates a header against the file's bytes: header length inside the file, JSON
// shape, known dtypes, offsets inside the data section, size == numel x dtype size, no overlaps.
// `name` (the file's path) prefixes every error.
Result<SafetensorsHeader> parse_safetensors_header(std::span<const std::byte> file, const std::string& name);

struct SafetensorsFile {
  std::shared_ptr<MappedFile> map;
  SafetensorsHeader header;

  const std::byte* data(const SafetensorsEntry& e) const {
    return map->data() + header.data_offset + e.begin;
  }
};

// Maps `path` and validates its header.
Result<SafetensorsFile> open_safetensors(const std::filesystem::path& path);

// ---- writing ----

struct TensorSpec {
  std::string name;
  DType dtype = DType::BF16;
  std::vector<int64_t> shape;
  uint64_t numel() const;
  uint64_t nbytes() const { return numel() * dtype_size(dtype); }
};

// Fills `out` with bytes [byte_offset, byte_offset + out.size()) of tensor `index`'s data.
// byte_offset and out.size() are multiples of the element size. Called in order, chunk by chunk,
// so a writer never holds a whole tensor in memory.
using TensorFiller = std::function<void(size_t index, uint64_t byte_offset, std::span<std::byte> out)>;
// Called after each chunk with (bytes written so far, total bytes) over all files.
using WriteProgress = std::function<void(uint64_t done, uint64_t total)>;

struct WriteOptions {
  uint64_t shard_bytes = 5'000'000'000ull;  // a tensor larger than this gets a shard of its own
  int first_shard_number = 1;               // HF numbers from 00001; MiniMax's M1 from 00000
  nlohmann::json metadata = {{"format", "pt"}};  // transformers refuses files without format=pt
  bool sync = true;                         // fdatasync each file before returning
  WriteProgress progress;
};

// Writes one safetensors file holding tensors[i] for i in `members` (laid out widest dtype first
// so every tensor is naturally aligned). Errors name the file (disk full, permissions).
Status write_safetensors(const std::filesystem::path& file, std::span<const TensorSpec> tensors,
                         std::span<const size_t> members, const TensorFiller& fill,
                         const WriteOptions& opt, uint64_t* progress_done = nullptr,
                         uint64_t progress_total = 0);

// Splits tensors (in order) into shards of at most opt.shard_bytes of data each.
std::vector<std::vector<size_t>> plan_shards(std::span<const TensorSpec> tensors, uint64_t shard_bytes);
std::string shard_file_name(int number, int count);  // "model-00001-of-00004.safetensors"

// Writes all tensors into `dir`: one "model.safetensors" when they fit one shard, else
// "model-XXXXX-of-NNNNN.safetensors" files plus "model.safetensors.index.json". Returns the
// file names written.
Result<std::vector<std::string>> write_checkpoint_tensors(const std::filesystem::path& dir,
                                                          std::span<const TensorSpec> tensors,
                                                          const TensorFiller& fill, const WriteOptions& opt);

}  // namespace m1::engine
