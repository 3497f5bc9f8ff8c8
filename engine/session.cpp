// Session implementation and its file format (see session.h). Loading checks, in order: magic,
// version, header checksum, dtype, model identity, sizes against this model, file length, then each
// section's checksum; the first failure is the error and nothing of the file is used.
#include "engine/session.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace m1::engine {
namespace {

constexpr char kMagic[8] = {'M', '1', 'S', 'E', 'S', 'S', 'N', '\0'};
constexpr uint32_t kVersion = 1;

uint64_t fnv(const void* p, size_t n, uint64_t h = 1469598103934665603ull) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) { h ^= c[i]; h *= 1099511628211ull; }
  return h;
}

struct Header {
  char magic[8];
  uint32_t version, dtype;
  uint64_t identity, tokens, lightning, layers, kv_row, vocab;
};
static_assert(sizeof(Header) == 64);

std::string hex(uint64_t v) {
  char b[20];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

Result<std::unique_ptr<Session>> Session::create(Model& model, int64_t context) {
  if (context <= 0) context = model.config().max_position_embeddings;
  std::unique_ptr<Session> s(new Session(model, context));
  M1_ASSIGN_OR_RETURN(s->state_, model.new_state());
  return s;
}

Status Session::append(std::span<const int32_t> ids, std::vector<float>* all_logits) {
  if (ids.empty()) return make_error("nothing to append: the token list is empty", 2);
  if (length() + int64_t(ids.size()) > context_)
    return make_error("input of " + std::to_string(ids.size()) + " tokens (after " + std::to_string(length()) +
                          " already in the session) exceeds the context of " + std::to_string(context_) + " tokens",
                      2);
  std::vector<float> all;
  M1_TRY(model_.forward(*state_, ids, all_logits != nullptr, all_logits ? &all : &logits_));
  logits_stale_ = false;
  if (all_logits) {
    const size_t V = size_t(model_.config().vocab_size);
    logits_.assign(all.end() - V, all.end());
    *all_logits = std::move(all);
  }
  tokens_.insert(tokens_.end(), ids.begin(), ids.end());
  return {};
}

Result<int32_t> Session::decode(Sampler& sampler, int64_t usable_vocab) {
  if (tokens_.empty() || (!logits_stale_ && logits_.empty()))
    return make_error("decode: the session is empty; append a prompt first", 2);
  if (length() + 1 > context_)
    return make_error("input of 1 tokens (after " + std::to_string(length()) +
                          " already in the session) exceeds the context of " + std::to_string(context_) + " tokens",
                      2);
  M1_ASSIGN_OR_RETURN(std::optional<int32_t> on_device, model_.sample_on_device(*state_, sampler, usable_vocab));
  const int32_t id = on_device ? *on_device : sampler.sample(logits(), usable_vocab, tokens_);
  M1_TRY(model_.forward(*state_, std::span<const int32_t>(&id, 1), false, nullptr));
  tokens_.push_back(id);
  logits_stale_ = true;
  return id;
}

const std::vector<float>& Session::logits() const {
  if (logits_stale_) {
    // A failed copy leaves the previous row: only a broken device gets here, and it aborts first.
    (void)model_.read_logits(*state_, logits_);
    logits_stale_ = false;
  }
  return logits_;
}

Result<std::unique_ptr<Session>> Session::fork() const {
  std::unique_ptr<Session> s(new Session(model_, context_));
  M1_ASSIGN_OR_RETURN(s->state_, model_.copy_state(*state_));
  s->tokens_ = tokens_;
  s->logits_ = logits();
  return s;
}

Status Session::save(const std::filesystem::path& path) const {
  std::vector<float> lin;
  std::vector<std::vector<float>> kv;
  model_.read_state(*state_, lin, kv);
  const std::vector<float>& last = logits();
  Header h{};
  std::memcpy(h.magic, kMagic, 8);
  h.version = kVersion;
  h.dtype = 0;
  h.identity = model_.identity();
  h.tokens = tokens_.size();
  h.lightning = lin.size();
  h.layers = kv.size();
  h.kv_row = uint64_t(model_.kv_floats_per_token());
  h.vocab = last.size();
  const std::filesystem::path tmp = path.string() + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) return make_error("cannot write session file '" + tmp.string() + "': " + std::strerror(errno));
    auto put = [&](const void* p, size_t n) {
      f.write(static_cast<const char*>(p), std::streamsize(n));
      const uint64_t c = fnv(p, n);
      f.write(reinterpret_cast<const char*>(&c), 8);
    };
    put(&h, sizeof h);
    put(tokens_.data(), tokens_.size() * 4);
    put(lin.data(), lin.size() * 4);
    for (const auto& l : kv) put(l.data(), l.size() * 4);
    put(last.data(), last.size() * 4);
    f.flush();
    if (!f) {
      std::filesystem::remove(tmp);
      return make_error("writing session file '" + path.string() + "' failed (disk full?)");
    }
  }
  if (FILE* fp = std::fopen(tmp.c_str(), "rb")) {  // flush to disk before the rename
    ::fsync(fileno(fp));
    std::fclose(fp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp);
    return make_error("cannot move session file into '" + path.string() + "': " + ec.message());
  }
  return {};
}

Result<std::unique_ptr<Session>> Session::load(Model& model, const std::filesystem::path& path, int64_t context) {
  const std::string name = "session file '" + path.string() + "'";
  std::ifstream f(path, std::ios::binary);
  if (!f) return make_error("cannot open " + name + ": " + std::strerror(errno));
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t off = 0;
  auto take = [&](void* dst, size_t n, const char* what) -> Status {
    if (bytes.size() - off < n + 8)
      return make_error(name + " is truncated (in the " + what + " section)");
    uint64_t c;
    std::memcpy(&c, bytes.data() + off + n, 8);
    if (fnv(bytes.data() + off, n) != c) return make_error(name + " is corrupt: checksum of the " + what + " section does not match");
    if (n) std::memcpy(dst, bytes.data() + off, n);
    off += n + 8;
    return {};
  };
  Header h;
  if (bytes.size() < sizeof h || std::memcmp(bytes.data(), kMagic, 8) != 0)
    return make_error(name + " is not an m1 session file (bad magic)");
  std::memcpy(&h, bytes.data(), sizeof h);
  if (h.version != kVersion)
    return make_error(name + " has format version " + std::to_string(h.version) + ", expected " + std::to_string(kVersion));
  M1_TRY(take(&h, sizeof h, "header"));
  if (h.dtype != 0) return make_error(name + " stores dtype code " + std::to_string(h.dtype) + ", expected 0 (fp32)");
  if (h.identity != model.identity())
    return make_error(name + " was saved from another model (identity " + hex(h.identity) + ", this model is " +
                      hex(model.identity()) + ")");
  const uint64_t vocab = uint64_t(model.config().vocab_size);
  if (h.lightning != uint64_t(model.lightning_state_floats()) || h.layers != uint64_t(model.config().num_softmax_layers()) ||
      h.kv_row != uint64_t(model.kv_floats_per_token()) || (h.vocab != vocab && h.vocab != 0))
    return make_error(name + " has state sizes that do not fit this model");
  const uint64_t expect = sizeof h + 8 + h.tokens * 4 + 8 + h.lightning * 4 + 8 + h.layers * (h.tokens * h.kv_row * 4 + 8) +
                          h.vocab * 4 + 8;
  if (bytes.size() != expect)
    return make_error(name + " has " + std::to_string(bytes.size()) + " bytes, expected " + std::to_string(expect) +
                      " (truncated or corrupt)");
  if (context <= 0) context = model.config().max_position_embeddings;
  if (int64_t(h.tokens) > context)
    return make_error(name + " holds " + std::to_string(h.tokens) + " tokens, more than the context of " +
                      std::to_string(context));
  std::unique_ptr<Session> s(new Session(model, context));
  s->tokens_.resize(h.tokens);
  M1_TRY(take(s->tokens_.data(), h.tokens * 4, "token"));
  for (int32_t id : s->tokens_)
    if (id < 0 || id >= model.config().vocab_size) return make_error(name + " is corrupt: token id " + std::to_string(id) + " out of range");
  std::vector<float> lin(h.lightning);
  M1_TRY(take(lin.data(), lin.size() * 4, "lightning state"));
  std::vector<std::vector<float>> kv(h.layers, std::vector<float>(h.tokens * h.kv_row));
  for (auto& l : kv) M1_TRY(take(l.data(), l.size() * 4, "K/V"));
  s->logits_.resize(h.vocab);
  M1_TRY(take(s->logits_.data(), h.vocab * 4, "logits"));
  M1_ASSIGN_OR_RETURN(s->state_, model.new_state());
  M1_TRY(model.write_state(*s->state_, lin, kv, int64_t(h.tokens)));
  model.write_logits(*s->state_, s->logits_);
  return s;
}

}  // namespace m1::engine
