// Safetensors reader (mmap + header validation) and streaming writer. The header is the only
// thing read eagerly; tensor pages are faulted in by whoever touches them, so opening a 900 GB
// checkpoint costs one small read per shard. Validation follows the safetensors crate's rules
// (offsets inside the data, size == numel x dtype size, no overlaps) but allows gaps.
#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace m1::engine {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr uint64_t kMaxHeader = 100'000'000;  // same limit as the safetensors crate

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::string known_dtypes() { return "F32, F16, BF16, F8_E4M3, I32, I64, U8"; }

Error errno_error(const std::string& what, const fs::path& p) {
  return make_error(p.string() + ": " + what + ": " + std::strerror(errno));
}
}  // namespace

// ---------------------------------------------------------------- MappedFile

Result<std::shared_ptr<MappedFile>> MappedFile::open(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return make_error(path.string() + ": no such file");
    return errno_error("cannot open", path);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Error e = errno_error("cannot stat", path);
    ::close(fd);
    return e;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(path.string() + ": not a regular file");
  }
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->path_ = path;
  m->size_ = size_t(st.st_size);
  if (m->size_ > 0) {
    void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      Error e = errno_error("cannot memory-map", path);
      ::close(fd);
      return e;
    }
    m->data_ = static_cast<const std::byte*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return m;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

// ---------------------------------------------------------------- header

Result<SafetensorsHeader> parse_safetensors_header(std::span<const std::byte> file, const std::string& name) {
  if (file.size() < 8)
    return make_error(name + ": truncated: " + std::to_string(file.size()) +
                      " bytes, expected at least the 8-byte header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint64_t(file[size_t(i)]);
  if (n > kMaxHeader)
    return make_error(name + ": header length " + std::to_string(n) + " exceeds the 100 MB limit (not a safetensors file?)");
  if (8 + n > file.size())
    return make_error(name + ": header length says " + std::to_string(n) + " bytes but the file has only " +
                      std::to_string(file.size() - 8) + " after the length field (truncated?)");
  std::string_view text(reinterpret_cast<const char*>(file.data() + 8), size_t(n));
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return make_error(name + ": header is not a JSON object (not a safetensors file?)");

  SafetensorsHeader h;
  h.data_offset = 8 + n;
  const uint64_t data_size = file.size() - h.data_offset;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      h.metadata = it.value();
      continue;
    }
    const std::string where = name + ": tensor '" + it.key() + "'";
    const json& e = it.value();
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      return make_error(where + ": header entry must have dtype, shape and data_offsets");
    SafetensorsEntry t;
    t.name = it.key();
    if (!e["dtype"].is_string()) return make_error(where + ": dtype is not a string");
    auto dt = dtype_from_name(e["dtype"].get<std::string>());
    if (!dt)
      return make_error(where + ": unknown dtype \"" + e["dtype"].get<std::string>() + "\" (expected one of " +
                        known_dtypes() + ")");
    t.dtype = *dt;
    if (!e["shape"].is_array()) return make_error(where + ": shape is not an array");
    uint64_t numel = 1;
    for (const auto& d : e["shape"]) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        return make_error(where + ": shape " + e["shape"].dump() + " must hold non-negative integers");
      uint64_t v = d.get<uint64_t>();
      if (v != 0 && numel > (uint64_t(1) << 62) / v) return make_error(where + ": shape is too large");
      numel *= v;
      t.shape.push_back(int64_t(v));
    }
    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      return make_error(where + ": data_offsets must be [begin, end] with non-negative integers");
    t.begin = off[0].get<uint64_t>();
    t.end = off[1].get<uint64_t>();
    if (t.end < t.begin)
      return make_error(where + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                        "] end before they begin");
    if (t.end > data_size)
      return make_error(where + ": data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                        "] run past the end of the data section (" + std::to_string(data_size) +
                        " bytes; truncated file?)");
    const uint64_t want = numel * dtype_size(t.dtype);
    if (t.end - t.begin != want)
      return make_error(where + ": data_offsets span " + std::to_string(t.end - t.begin) + " bytes but " +
                        std::string(dtype_name(t.dtype)) + " x " + shape_str(t.shape) + " needs " +
                        std::to_string(want));
    h.tensors.push_back(std::move(t));
  }
  std::vector<const SafetensorsEntry*> by_off;
  for (const auto& t : h.tensors) by_off.push_back(&t);
  std::sort(by_off.begin(), by_off.end(), [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_off.size(); ++i) {
    const auto* a = by_off[i - 1];
    const auto* b = by_off[i];
    if (b->begin < a->end && b->end > b->begin)
      return make_error(name + ": tensors '" + a->name + "' [" + std::to_string(a->begin) + ", " +
                        std::to_string(a->end) + ") and '" + b->name + "' [" + std::to_string(b->begin) + ", " +
                        std::to_string(b->end) + ") overlap");
  }
  return h;
}

Result<SafetensorsFile> open_safetensors(const fs::path& path) {
  SafetensorsFile f;
  M1_ASSIGN_OR_RETURN(f.map, MappedFile::open(path));
  std::span<const std::byte> bytes(f.map->data(), f.map->size());
  M1_ASSIGN_OR_RETURN(f.header, parse_safetensors_header(bytes, path.string()));
  return f;
}

// ---------------------------------------------------------------- writer

uint64_t TensorSpec::numel() const {
  uint64_t n = 1;
  for (auto d : shape) n *= uint64_t(d);
  return n;
}

namespace {
Status write_all(int fd, const void* p, size_t n, const fs::path& file) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno_error("write failed", file);
    }
    c += w;
    n -= size_t(w);
  }
  return {};
}
}  // namespace

Status write_safetensors(const fs::path& file, std::span<const TensorSpec> tensors, std::span<const size_t> members,
                         const TensorFiller& fill, const WriteOptions& opt, uint64_t* progress_done,
                         uint64_t progress_total) {
  std::vector<size_t> order(members.begin(), members.end());
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors[a].dtype) > dtype_size(tensors[b].dtype);
  });
  json h = json::object();
  if (!opt.metadata.is_null()) h["__metadata__"] = opt.metadata;
  uint64_t off = 0;
  for (size_t i : order) {
    const auto& t = tensors[i];
    h[t.name] = {{"dtype", std::string(dtype_name(t.dtype))}, {"shape", t.shape},
                 {"data_offsets", {off, off + t.nbytes()}}};
    off += t.nbytes();
  }
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section starts 8-byte aligned
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = (uint64_t(text.size()) >> (8 * i)) & 0xff;

  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno_error("cannot create", file);
  Status st = write_all(fd, len, 8, file);
  if (st.ok()) st = write_all(fd, text.data(), text.size(), file);
  constexpr size_t kChunk = size_t(32) << 20;
  std::vector<std::byte> buf;
  for (size_t k = 0; st.ok() && k < order.size(); ++k) {
    const auto& t = tensors[order[k]];
    const uint64_t total = t.nbytes();
    const size_t esz = dtype_size(t.dtype);
    const size_t chunk = kChunk - kChunk % esz;
    buf.resize(size_t(std::min<uint64_t>(chunk, total)));
    for (uint64_t pos = 0; st.ok() && pos < total; pos += chunk) {
      size_t n = size_t(std::min<uint64_t>(chunk, total - pos));
      fill(order[k], pos, std::span<std::byte>(buf.data(), n));
      st = write_all(fd, buf.data(), n, file);
      if (progress_done) {
        *progress_done += n;
        if (opt.progress) opt.progress(*progress_done, progress_total);
      }
    }
  }
  if (st.ok() && opt.sync && ::fdatasync(fd) != 0) st = errno_error("fdatasync failed", file);
  if (::close(fd) != 0 && st.ok()) st = errno_error("close failed", file);
  return st;
}

std::vector<std::vector<size_t>> plan_shards(std::span<const TensorSpec> tensors, uint64_t shard_bytes) {
  std::vector<std::vector<size_t>> shards;
  uint64_t cur = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    uint64_t b = tensors[i].nbytes();
    if (shards.empty() || (cur > 0 && cur + b > shard_bytes)) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(i);
    cur += b;
  }
  return shards;
}

std::string shard_file_name(int number, int count) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", number, count);
  return buf;
}

Result<std::vector<std::string>> write_checkpoint_tensors(const fs::path& dir, std::span<const TensorSpec> tensors,
                                                          const TensorFiller& fill, const WriteOptions& opt) {
  auto shards = plan_shards(tensors, opt.shard_bytes);
  uint64_t total = 0;
  for (const auto& t : tensors) total += t.nbytes();
  uint64_t done = 0;
  std::vector<std::string> names;
  if (shards.size() <= 1) {
    std::vector<size_t> all(tensors.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    M1_TRY(write_safetensors(dir / "model.safetensors", tensors, all, fill, opt, &done, total));
    names.push_back("model.safetensors");
    return names;
  }
  json weight_map = json::object();
  const int count = int(shards.size());
  for (int s = 0; s < count; ++s) {
    std::string name = shard_file_name(opt.first_shard_number + s, count);
    M1_TRY(write_safetensors(dir / name, tensors, shards[size_t(s)], fill, opt, &done, total));
    for (size_t i : shards[size_t(s)]) weight_map[tensors[i].name] = name;
    names.push_back(name);
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  fs::path ip = dir / "model.safetensors.index.json";
  std::ofstream out(ip, std::ios::binary | std::ios::trunc);
  out << index.dump(2) << "\n";
  out.close();
  if (!out) return make_error(ip.string() + ": write failed");
  names.push_back("model.safetensors.index.json");
  return names;
}

}  // namespace m1::engine
