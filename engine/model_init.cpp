// Random model folders. The generator is counter-based (splitmix64 of seed, tensor name and
// element index) feeding an inverse-CDF table of the normal distribution: each element costs a
// hash and a table lookup, chunks fill in parallel, and the value of any element is a pure
// function (init_value) that tests recompute. The table truncates the normal at ~4.6 sigma and is
// rescaled so the standard deviation is exactly 0.02.
#include "engine/model_init.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "engine/tokenizer.h"

namespace m1::engine {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- presets

std::vector<std::string> preset_names() { return {"tiny", "m1-block", "m1"}; }

Result<ModelConfig> preset_config(std::string_view preset, int64_t layers) {
  ModelConfig c;
  c.vocab_size = 200064;
  c.max_position_embeddings = 10240000;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 1e7;
  c.block_size = 256;
  c.postnorm = true;
  c.tie_word_embeddings = false;
  c.bos_token_id = 200019;  // <beginning_of_sentence>
  c.eos_token_id = 200020;  // <end_of_sentence>
  c.eos_token_ids = {200020};
  const double alpha = 3.5565588200778455;  // M1's (2 x 80)^(1/4)
  c.linear_attn_alpha = c.full_attn_alpha = c.mlp_alpha = alpha;
  c.linear_attn_beta = c.full_attn_beta = c.mlp_beta = 1.0;
  int64_t n = 0;
  if (preset == "tiny") {
    c.hidden_size = 32;
    c.intermediate_size = 64;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 16;
    c.rotary_dim = 8;
    c.num_local_experts = 4;
    c.num_experts_per_tok = 2;
    c.max_position_embeddings = 131072;
    n = 8;
  } else if (preset == "m1-block" || preset == "m1") {
    c.hidden_size = 6144;
    c.intermediate_size = 9216;
    c.num_attention_heads = 64;
    c.num_key_value_heads = 8;
    c.head_dim = 128;
    c.rotary_dim = 64;
    c.num_local_experts = 32;
    c.num_experts_per_tok = 2;
    n = preset == "m1" ? 80 : 8;
  } else {
    return make_error("unknown preset '" + std::string(preset) + "' (expected tiny, m1-block or m1)", 2);
  }
  if (layers < 0) return make_error("--layers must be positive", 2);
  if (layers > 0) n = layers;
  c.num_hidden_layers = n;
  bool any_softmax = false;
  for (int64_t i = 0; i < n; ++i) {
    bool softmax = i % 8 == 7;
    any_softmax |= softmax;
    c.layer_kinds.push_back(softmax ? LayerKind::Softmax : LayerKind::Lightning);
  }
  if (!any_softmax) c.layer_kinds.back() = LayerKind::Softmax;
  c.dtype = DType::BF16;
  c.raw = config_to_json(c, ConfigFormat::Original);
  return c;
}

std::vector<TensorSpec> model_tensors(const ModelConfig& c, ConfigFormat format, DType dt) {
  const int64_t V = c.vocab_size, H = c.hidden_size, I = c.intermediate_size, E = c.num_local_experts;
  const int64_t A = c.num_attention_heads * c.head_dim, KV = c.num_key_value_heads * c.head_dim;
  std::vector<TensorSpec> t;
  auto add = [&](std::string name, std::vector<int64_t> shape, DType d) {
    t.push_back(TensorSpec{std::move(name), d, std::move(shape)});
  };
  add("model.embed_tokens.weight", {V, H}, dt);
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    add(p + "input_layernorm.weight", {H}, dt);
    if (c.layer_kinds[size_t(l)] == LayerKind::Lightning) {
      add(p + "self_attn.qkv_proj.weight", {3 * A, H}, dt);
      add(p + "self_attn.output_gate.weight", {A, H}, dt);
      add(p + "self_attn.out_proj.weight", {H, A}, dt);
      add(p + "self_attn.norm.weight", {A}, dt);
    } else {
      add(p + "self_attn.q_proj.weight", {A, H}, dt);
      add(p + "self_attn.k_proj.weight", {KV, H}, dt);
      add(p + "self_attn.v_proj.weight", {KV, H}, dt);
      add(p + "self_attn.o_proj.weight", {H, A}, dt);
    }
    add(p + "post_attention_layernorm.weight", {H}, dt);
    if (format == ConfigFormat::Original) {
      add(p + "block_sparse_moe.gate.weight", {E, H}, DType::F32);
      for (int64_t e = 0; e < E; ++e) {
        const std::string x = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
        add(x + "w1.weight", {I, H}, dt);
        add(x + "w2.weight", {H, I}, dt);
        add(x + "w3.weight", {I, H}, dt);
      }
    } else {
      add(p + "mlp.gate.weight", {E, H}, DType::F32);
      add(p + "mlp.experts.gate_up_proj", {E, 2 * I, H}, dt);
      add(p + "mlp.experts.down_proj", {E, H, I}, dt);
    }
  }
  add("model.norm.weight", {H}, dt);
  if (!c.tie_word_embeddings) add("lm_head.weight", {V, H}, dt);
  return t;
}

bool is_norm_tensor(std::string_view n) {
  auto ends = [&](std::string_view s) { return n.size() >= s.size() && n.substr(n.size() - s.size()) == s; };
  return ends("layernorm.weight") || ends("self_attn.norm.weight") || n == "model.norm.weight";
}

// ---------------------------------------------------------------- generator

namespace {

inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t tensor_key(uint64_t seed, std::string_view name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) { h ^= c; h *= 1099511628211ull; }
  return mix64(h ^ mix64(seed));
}

struct NormalTable {
  static constexpr int N = 4096;
  float t[N + 1];
};

// Quantiles of N(0, 1) at k/N, ends at 1/(64N), scaled so the piecewise-uniform mixture they
// define has standard deviation 0.02 exactly.
const NormalTable& normal_table() {
  static const NormalTable tab = [] {
    NormalTable n{};
    constexpr int N = NormalTable::N;
    auto quantile = [](double p) {
      double lo = -12, hi = 12;
      for (int k = 0; k < 64; ++k) {
        double mid = 0.5 * (lo + hi);
        (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
      }
      return 0.5 * (lo + hi);
    };
    std::vector<double> q(N + 1);
    q[0] = quantile(1.0 / (64.0 * N));
    for (int k = 1; k < N / 2; ++k) q[size_t(k)] = quantile(double(k) / N);
    q[N / 2] = 0;
    for (int k = 0; k < N / 2; ++k) q[size_t(N - k)] = -q[size_t(k)];
    double var = 0;
    for (int k = 0; k < N; ++k) {
      double a = q[size_t(k)], b = q[size_t(k + 1)];
      var += (a * a + a * b + b * b) / 3.0;
    }
    var /= N;
    const double scale = 0.02 / std::sqrt(var);
    for (int k = 0; k <= N; ++k) n.t[k] = float(q[size_t(k)] * scale);
    return n;
  }();
  return tab;
}

inline float draw(const NormalTable& tab, uint64_t key, uint64_t i) {
  uint64_t r = mix64(key + (i >> 1));
  uint32_t u = (i & 1) ? uint32_t(r) : uint32_t(r >> 32);
  uint32_t idx = u >> 20;
  float frac = float(u & 0xfffff) * (1.0f / 1048576.0f);
  return tab.t[idx] + frac * (tab.t[idx + 1] - tab.t[idx]);
}

}  // namespace

namespace {
// One element type per instantiation so the loop body has no dtype branch; one hash per pair.
template <class T, class Conv>
void fill_typed(T* o, int64_t n, uint64_t e0, uint64_t key, bool norm, Conv conv) {
  if (norm) {
    const T one = conv(1.0f);
    for (int64_t j = 0; j < n; ++j) o[j] = one;
    return;
  }
  const NormalTable& tab = normal_table();
  auto from_bits = [&](uint32_t u) {
    uint32_t idx = u >> 20;
    float frac = float(u & 0xfffff) * (1.0f / 1048576.0f);
    return tab.t[idx] + frac * (tab.t[idx + 1] - tab.t[idx]);
  };
  int64_t j = 0;
  if (n > 0 && (e0 & 1)) { o[0] = conv(draw(tab, key, e0)); j = 1; }  // align to a pair
  const int64_t pairs = (n - j) / 2;
  const uint64_t p0 = (e0 + uint64_t(j)) >> 1;
  T* q = o + j;
#pragma omp parallel for schedule(static) if (pairs > (1 << 15))
  for (int64_t k = 0; k < pairs; ++k) {
    uint64_t r = mix64(key + p0 + uint64_t(k));
    q[2 * k] = conv(from_bits(uint32_t(r >> 32)));
    q[2 * k + 1] = conv(from_bits(uint32_t(r)));
  }
  j += 2 * pairs;
  if (j < n) o[j] = conv(draw(tab, key, e0 + uint64_t(j)));
}
}  // namespace

void fill_init_values(const TensorSpec& t, uint64_t seed, uint64_t byte_offset, std::span<std::byte> out) {
  const size_t esz = dtype_size(t.dtype);
  const int64_t n = int64_t(out.size() / esz);
  const uint64_t e0 = byte_offset / esz;
  const bool norm = is_norm_tensor(t.name);
  const uint64_t key = tensor_key(seed, t.name);
  // Output buffers come from std::vector<std::byte> (malloc-aligned) at element-aligned offsets.
  if (t.dtype == DType::BF16)
    fill_typed(reinterpret_cast<uint16_t*>(out.data()), n, e0, key, norm, [](float v) { return f32_to_bf16(v); });
  else if (t.dtype == DType::F16)
    fill_typed(reinterpret_cast<uint16_t*>(out.data()), n, e0, key, norm, [](float v) { return f32_to_f16(v); });
  else
    fill_typed(reinterpret_cast<float*>(out.data()), n, e0, key, norm, [](float v) { return v; });
}

namespace {

// The project's tokenizer files (tokenizer.json + tokenizer_config.json): the tokenizer module's
// default BPE with M1's special tokens at their real ids.
Status write_tokenizer_files(const fs::path& dir) { return write_default_tokenizer(dir); }

Status write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) return make_error(p.string() + ": write failed");
  return {};
}

}  // namespace

float init_value(uint64_t seed, std::string_view name, uint64_t i) {
  if (is_norm_tensor(name)) return 1.0f;
  return draw(normal_table(), tensor_key(seed, name), i);
}

// ---------------------------------------------------------------- sizes

Status check_disk_space(uint64_t needed, uint64_t available, const fs::path& where) {
  const uint64_t margin = std::max<uint64_t>(64ull << 20, needed / 100);
  if (needed + margin <= available) return {};
  return make_error("not enough disk space: the model needs " + format_bytes(needed) + " at " + where.string() +
                    " but only " + format_bytes(available) +
                    " is free (pick another --out, fewer --layers, or --preset tiny)");
}

Result<uint64_t> parse_byte_size(std::string_view s) {
  std::string str(s);
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(str, &pos);
  } catch (...) {
    return make_error("invalid size '" + str + "' (expected e.g. 64MB, 2GB, 512MiB or a byte count)", 2);
  }
  std::string unit = str.substr(pos);
  while (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  for (auto& ch : unit) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  double mul = 0;
  if (unit.empty() || unit == "B") mul = 1;
  else if (unit == "KB" || unit == "K") mul = 1e3;
  else if (unit == "MB" || unit == "M") mul = 1e6;
  else if (unit == "GB" || unit == "G") mul = 1e9;
  else if (unit == "TB" || unit == "T") mul = 1e12;
  else if (unit == "KIB") mul = 1024.0;
  else if (unit == "MIB") mul = 1024.0 * 1024;
  else if (unit == "GIB") mul = 1024.0 * 1024 * 1024;
  else if (unit == "TIB") mul = 1024.0 * 1024 * 1024 * 1024;
  if (mul == 0 || !(v > 0) || v * mul > 1.8e19)
    return make_error("invalid size '" + str + "' (expected e.g. 64MB, 2GB, 512MiB or a byte count)", 2);
  return uint64_t(v * mul);
}

std::string format_bytes(uint64_t b) {
  char buf[32];
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  double v = double(b);
  int u = 0;
  while (v >= 1000 && u < 4) { v /= 1000; ++u; }
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

// ---------------------------------------------------------------- init_model

Result<InitResult> init_model(const InitOptions& opt) {
  if (opt.out.empty()) return make_error("--out is required", 2);
  ModelConfig cfg;
  if (opt.config) {
    // Round trip through config.json's parser: the same validation a loader applies.
    M1_ASSIGN_OR_RETURN(cfg, parse_config(config_to_json(*opt.config, ConfigFormat::Original), "the requested config"));
  } else {
    M1_ASSIGN_OR_RETURN(cfg, preset_config(opt.preset, opt.layers));
  }
  if (opt.dtype != DType::BF16 && opt.dtype != DType::F16 && opt.dtype != DType::F32)
    return make_error("--dtype must be bf16, fp16 or fp32", 2);
  cfg.dtype = opt.dtype;
  // transformers' port rotates all of head_dim; an HF folder is meant for parity with it.
  if (opt.format == ConfigFormat::HF) cfg.rotary_dim = cfg.head_dim;
  cfg.format = opt.format;
  cfg.raw = config_to_json(cfg, opt.format);

  InitResult res;
  res.config = cfg;
  const std::vector<TensorSpec> tensors = model_tensors(cfg, opt.format, opt.dtype);
  for (const auto& t : tensors) res.tensor_bytes += t.nbytes();
  res.num_tensors = tensors.size();

  std::error_code ec;
  fs::path out = fs::absolute(opt.out, ec).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" names dir
  fs::path name = out.filename();
  if (name.empty()) return make_error("--out '" + opt.out.string() + "' has no folder name", 2);
  const fs::path parent = out.parent_path();
  fs::create_directories(parent, ec);
  if (ec) return make_error(parent.string() + ": cannot create: " + ec.message());
  const bool exists = fs::exists(out, ec);
  if (exists && !fs::is_directory(out, ec)) return make_error(out.string() + ": exists and is not a folder");
  const bool nonempty = exists && !fs::is_empty(out, ec);
  if (nonempty && !opt.force)
    return make_error(out.string() + ": already exists and is not empty (pass --force to replace it)");

  uint64_t available = opt.assume_free_bytes;
  if (available == 0) {
    auto space = fs::space(parent, ec);
    if (ec) return make_error(parent.string() + ": cannot query free space: " + ec.message());
    available = space.available;
  }
  M1_TRY(check_disk_space(res.tensor_bytes + (16ull << 20), available, parent));

  const std::string tag = std::to_string(::getpid());
  const fs::path tmp = parent / ("." + name.string() + ".tmp-" + tag);
  fs::remove_all(tmp, ec);
  if (!fs::create_directory(tmp, ec)) return make_error(tmp.string() + ": cannot create: " + ec.message());
  auto fail = [&](Error e) -> Error {
    std::error_code ec2;
    fs::remove_all(tmp, ec2);
    return e;
  };

  if (Status s = write_text(tmp / "config.json", cfg.raw.dump(2) + "\n"); !s.ok()) return fail(s.error());
  if (Status s = write_tokenizer_files(tmp); !s.ok()) return fail(s.error());
  WriteOptions wo;
  wo.shard_bytes = opt.shard_bytes                                 ? opt.shard_bytes
                  : res.tensor_bytes < 1'000'000'000ull || (!opt.config && opt.preset == "tiny") ? 8'000'000ull
                                                                   : 2'000'000'000ull;
  wo.first_shard_number = opt.format == ConfigFormat::Original ? 0 : 1;  // M1 numbers from 00000
  wo.sync = opt.sync;
  wo.progress = opt.progress;
  const uint64_t seed = opt.seed;
  TensorFiller fill = [&](size_t i, uint64_t off, std::span<std::byte> o) { fill_init_values(tensors[i], seed, off, o); };
  auto written = write_checkpoint_tensors(tmp, tensors, fill, wo);
  if (!written.ok()) return fail(written.error());

  for (const auto& e : fs::directory_iterator(tmp, ec)) res.files.push_back(e.path().filename().string());
  std::sort(res.files.begin(), res.files.end());

  // Swap into place: an old folder is moved aside first and deleted only after the rename.
  fs::path old;
  if (exists) {
    old = parent / ("." + name.string() + ".old-" + tag);
    fs::remove_all(old, ec);
    fs::rename(out, old, ec);
    if (ec) return fail(make_error(out.string() + ": cannot move the existing folder aside: " + ec.message()));
  }
  fs::rename(tmp, out, ec);
  if (ec) {
    std::error_code ec2;
    if (!old.empty()) fs::rename(old, out, ec2);
    return fail(make_error(out.string() + ": cannot rename the finished folder into place: " + ec.message()));
  }
  if (!old.empty()) fs::remove_all(old, ec);
  return res;
}

}  // namespace m1::engine
