// Checkpoint::open and bind_weights. Lookups go through the index's weight_map (a layer's tensors
// are scattered over many shards in the real M1), and every shard's header is validated at open
// so a truncated or lying file fails before any forward pass. Stacked experts (transformers v5)
// become per-expert views by pointer arithmetic: nothing is copied or converted here.
#include "engine/checkpoint.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include "engine/safetensors.h"

namespace m1::engine {

namespace fs = std::filesystem;
using nlohmann::json;

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

float TensorView::at(int64_t i) const {
  assert(data && i >= 0 && i < numel());
  const std::byte* p = data + size_t(i) * dtype_size(dtype);
  switch (dtype) {
    case DType::F32: { float f; std::memcpy(&f, p, 4); return f; }
    case DType::F16: { uint16_t h; std::memcpy(&h, p, 2); return f16_to_f32(h); }
    case DType::BF16: { uint16_t h; std::memcpy(&h, p, 2); return bf16_to_f32(h); }
    case DType::F8_E4M3: return f8e4m3_to_f32(uint8_t(*p));
    case DType::I32: { int32_t v; std::memcpy(&v, p, 4); return float(v); }
    case DType::I64: { int64_t v; std::memcpy(&v, p, 8); return float(v); }
    case DType::U8: return float(uint8_t(*p));
  }
  return 0;
}

namespace {
std::string shape_str(std::span<const int64_t> s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// Shard names come from a file we do not control: keep them inside the model folder.
bool safe_file_name(const std::string& f) {
  if (f.empty() || f.front() == '/') return false;
  for (const auto& part : fs::path(f)) if (part == "..") return false;
  return true;
}
}  // namespace

struct Checkpoint::Impl {
  fs::path dir;
  ModelConfig config;
  std::map<std::string, SafetensorsFile> files;          // by file name relative to dir
  std::map<std::string, std::unordered_map<std::string, size_t>> entries;  // file -> name -> header index
  std::unordered_map<std::string, TensorView> tensors;   // node-stable: views may point at views
  std::string index_name;                                // where lookups come from (for errors)
  uint64_t total = 0;

  Status add_file(const std::string& fname) {
    if (files.count(fname)) return {};
    M1_ASSIGN_OR_RETURN(SafetensorsFile f, open_safetensors(dir / fname));
    auto& idx = entries[fname];
    for (size_t i = 0; i < f.header.tensors.size(); ++i) idx.emplace(f.header.tensors[i].name, i);
    files.emplace(fname, std::move(f));
    return {};
  }

  Status add_tensor(const std::string& name, const std::string& fname) {
    const SafetensorsFile& f = files.at(fname);
    const auto& idx = entries.at(fname);
    if (auto it = idx.find(name); it != idx.end()) {
      const SafetensorsEntry& e = f.header.tensors[it->second];
      TensorView v;
      v.name = name;
      v.dtype = e.dtype;
      v.shape = e.shape;
      v.data = f.data(e);
      v.nbytes = size_t(e.end - e.begin);
      v.file = (dir / fname).string();
      total += v.nbytes;
      tensors.emplace(name, std::move(v));
      return {};
    }
    return make_error((dir / index_name).string() + " maps tensor '" + name + "' to " + fname + ", but " +
                      (dir / fname).string() + " has no tensor of that name");
  }

  // F8 weights: record `<name>_scale_inv` (DeepSeek/FP8 block scales) or `<name>_scale`.
  void link_scales() {
    for (auto& [name, v] : tensors) {
      if (v.dtype != DType::F8_E4M3) continue;
      for (const char* suffix : {"_scale_inv", "_scale"}) {
        auto it = tensors.find(name + suffix);
        if (it != tensors.end()) { v.scale = &it->second; break; }
      }
    }
  }
};

Result<std::shared_ptr<Checkpoint>> Checkpoint::open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return make_error(dir.string() + ": no such directory (expected a model folder with config.json and safetensors)");
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  M1_ASSIGN_OR_RETURN(impl->config, load_config(dir));

  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index, ec)) {
    impl->index_name = "model.safetensors.index.json";
    std::ifstream in(index, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    json j = json::parse(ss.str(), nullptr, false);
    if (!in || j.is_discarded() || !j.is_object()) return make_error(index.string() + ": not a valid JSON object");
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      return make_error(index.string() + ": missing 'weight_map' (expected an object of tensor name -> shard file)");
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        return make_error(index.string() + ": weight_map entry '" + it.key() + "' is not a file name");
      std::string fname = it.value().get<std::string>();
      if (!safe_file_name(fname))
        return make_error(index.string() + ": weight_map entry '" + it.key() + "' points outside the model folder: " + fname);
      if (!fs::exists(dir / fname, ec))
        return make_error(index.string() + " maps tensor '" + it.key() + "' to " + fname + ", which does not exist in " +
                          dir.string());
      M1_TRY(impl->add_file(fname));
      M1_TRY(impl->add_tensor(it.key(), fname));
    }
  } else if (fs::exists(dir / "model.safetensors", ec)) {
    impl->index_name = "model.safetensors";
    M1_TRY(impl->add_file("model.safetensors"));
    for (const auto& e : impl->files.at("model.safetensors").header.tensors)
      M1_TRY(impl->add_tensor(e.name, "model.safetensors"));
  } else {
    return make_error(dir.string() + ": no model.safetensors.index.json or model.safetensors (expected a Hugging Face model folder)");
  }
  impl->link_scales();
  auto ck = std::shared_ptr<Checkpoint>(new Checkpoint());
  ck->impl_ = std::move(impl);
  return ck;
}

Checkpoint::~Checkpoint() = default;
const ModelConfig& Checkpoint::config() const { return impl_->config; }
const fs::path& Checkpoint::dir() const { return impl_->dir; }
uint64_t Checkpoint::total_bytes() const { return impl_->total; }
size_t Checkpoint::num_files() const { return impl_->files.size(); }

const TensorView* Checkpoint::find(std::string_view name) const {
  auto it = impl_->tensors.find(std::string(name));
  return it == impl_->tensors.end() ? nullptr : &it->second;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> r;
  r.reserve(impl_->tensors.size());
  for (const auto& [n, v] : impl_->tensors) r.push_back(n);
  std::sort(r.begin(), r.end());
  return r;
}

Result<TensorView> Checkpoint::get(std::string_view name, std::span<const int64_t> expected) const {
  const TensorView* v = find(name);
  if (!v)
    return make_error("tensor '" + std::string(name) + "' (expected shape " + shape_str(expected) +
                      ") is missing from " + (impl_->dir / impl_->index_name).string());
  if (!std::equal(v->shape.begin(), v->shape.end(), expected.begin(), expected.end()))
    return make_error("tensor '" + std::string(name) + "' in " + v->file + " has shape " + shape_str(v->shape) +
                      ", expected " + shape_str(expected));
  if (v->dtype != DType::F32 && v->dtype != DType::F16 && v->dtype != DType::BF16 && v->dtype != DType::F8_E4M3)
    return make_error("tensor '" + std::string(name) + "' in " + v->file + " has dtype " +
                      std::string(dtype_name(v->dtype)) + ", expected a floating-point dtype (F32, F16, BF16, F8_E4M3)");
  return *v;
}

// ---------------------------------------------------------------- bind_weights

namespace {

// Rows [row0, row0 + rows) of matrix `m` of stacked tensor `v` ([E, R, C]) as an [rows, C] view.
TensorView expert_rows(const TensorView& v, int64_t e, int64_t row0, int64_t rows, const char* what) {
  const int64_t R = v.shape[1], C = v.shape[2];
  const size_t esz = dtype_size(v.dtype);
  TensorView r;
  r.name = v.name + "[" + std::to_string(e) + "]" + what;
  r.dtype = v.dtype;
  r.shape = {rows, C};
  r.data = v.data + size_t((e * R + row0) * C) * esz;
  r.nbytes = size_t(rows * C) * esz;
  r.file = v.file;
  r.scale = v.scale;
  return r;
}

Status bind_moe(const Checkpoint& ck, const std::string& p, LayerWeights& L) {
  const ModelConfig& c = ck.config();
  const int64_t E = c.num_local_experts, H = c.hidden_size, I = c.intermediate_size;
  const int64_t router_shape[] = {E, H};
  const std::string bsm = p + "block_sparse_moe.", mlp = p + "mlp.";
  const std::string router_name = ck.find(bsm + "gate.weight") || !ck.find(mlp + "gate.weight")
                                      ? bsm + "gate.weight" : mlp + "gate.weight";
  M1_ASSIGN_OR_RETURN(L.router, ck.get(router_name, router_shape));

  if (ck.find(bsm + "experts.0.w1.weight")) {  // per-expert (MiniMax original, transformers 4.x)
    const int64_t up[] = {I, H}, down[] = {H, I};
    for (int64_t e = 0; e < E; ++e) {
      const std::string x = bsm + "experts." + std::to_string(e) + ".";
      M1_ASSIGN_OR_RETURN(TensorView w1, ck.get(x + "w1.weight", up));
      M1_ASSIGN_OR_RETURN(TensorView w2, ck.get(x + "w2.weight", down));
      M1_ASSIGN_OR_RETURN(TensorView w3, ck.get(x + "w3.weight", up));
      L.w1.push_back(std::move(w1));
      L.w2.push_back(std::move(w2));
      L.w3.push_back(std::move(w3));
    }
    return {};
  }
  // Stacked (transformers v5): gate_up_proj [E, 2I, H] with w1 rows first, down_proj [E, H, I].
  std::string base = mlp + "experts.";
  if (!ck.find(base + "gate_up_proj") && ck.find(bsm + "experts.gate_up_proj")) base = bsm + "experts.";
  if (!ck.find(base + "gate_up_proj"))
    return make_error("layer '" + p + "' has no MoE expert weights: expected '" + bsm +
                      "experts.0.w1.weight' (per-expert layout) or '" + mlp +
                      "experts.gate_up_proj' (stacked layout) in " + (ck.dir()).string());
  const int64_t gu_shape[] = {E, 2 * I, H}, dn_shape[] = {E, H, I};
  M1_ASSIGN_OR_RETURN(TensorView gu, ck.get(base + "gate_up_proj", gu_shape));
  M1_ASSIGN_OR_RETURN(TensorView dn, ck.get(base + "down_proj", dn_shape));
  for (int64_t e = 0; e < E; ++e) {
    L.w1.push_back(expert_rows(gu, e, 0, I, "[w1]"));
    L.w3.push_back(expert_rows(gu, e, I, I, "[w3]"));
    L.w2.push_back(expert_rows(dn, e, 0, H, ""));
  }
  L.stacked_experts = true;
  return {};
}

}  // namespace

Result<ModelWeights> bind_weights(const Checkpoint& ck) {
  const ModelConfig& c = ck.config();
  const int64_t V = c.vocab_size, H = c.hidden_size, nh = c.num_attention_heads, hd = c.head_dim;
  const int64_t nkv = c.num_key_value_heads;
  const int64_t vh[] = {V, H}, h1[] = {H};
  ModelWeights w;
  M1_ASSIGN_OR_RETURN(w.embed, ck.get("model.embed_tokens.weight", vh));
  M1_ASSIGN_OR_RETURN(w.final_norm, ck.get("model.norm.weight", h1));
  if (c.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    M1_ASSIGN_OR_RETURN(w.lm_head, ck.get("lm_head.weight", vh));
  }
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights L;
    L.kind = c.layer_kinds[size_t(l)];
    M1_ASSIGN_OR_RETURN(L.input_norm, ck.get(p + "input_layernorm.weight", h1));
    M1_ASSIGN_OR_RETURN(L.post_norm, ck.get(p + "post_attention_layernorm.weight", h1));
    const std::string a = p + "self_attn.";
    if (L.kind == LayerKind::Lightning) {
      const int64_t qkv[] = {3 * nh * hd, H}, gate[] = {nh * hd, H}, out[] = {H, nh * hd}, norm[] = {nh * hd};
      M1_ASSIGN_OR_RETURN(L.qkv, ck.get(a + "qkv_proj.weight", qkv));
      M1_ASSIGN_OR_RETURN(L.output_gate, ck.get(a + "output_gate.weight", gate));
      M1_ASSIGN_OR_RETURN(L.out_proj, ck.get(a + "out_proj.weight", out));
      M1_ASSIGN_OR_RETURN(L.attn_norm, ck.get(a + "norm.weight", norm));
    } else {
      const int64_t q[] = {nh * hd, H}, kv[] = {nkv * hd, H}, o[] = {H, nh * hd};
      M1_ASSIGN_OR_RETURN(L.q, ck.get(a + "q_proj.weight", q));
      M1_ASSIGN_OR_RETURN(L.k, ck.get(a + "k_proj.weight", kv));
      M1_ASSIGN_OR_RETURN(L.v, ck.get(a + "v_proj.weight", kv));
      M1_ASSIGN_OR_RETURN(L.o, ck.get(a + "o_proj.weight", o));
    }
    M1_TRY(bind_moe(ck, p, L));
    w.layers.push_back(std::move(L));
  }
  return w;
}

}  // namespace m1::engine
