// config.json -> ModelConfig. Every field is looked up under both spellings (MiniMax's original
// `minimax_m1` names and transformers' in-tree `minimax` names), so a config mixing them still
// loads; `format` records which layer list was found. Shape fields are required: the class
// defaults in those codebases (hidden 4096, 8 experts...) are never M1's, and silently using
// them would make every tensor look mis-shaped. Fields those codebases treat as optional get
// the same defaults as there (head_dim = hidden/heads, rotary_dim = head_dim, alpha/beta = 1,
// block_size = 256, kv heads = heads, rope_theta 1e6 as in transformers' MiniMaxConfig).
#include "engine/config.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace m1::engine {

using nlohmann::json;

int64_t ModelConfig::num_softmax_layers() const {
  int64_t n = 0;
  for (auto k : layer_kinds) n += k == LayerKind::Softmax;
  return n;
}
int64_t ModelConfig::num_lightning_layers() const {
  return int64_t(layer_kinds.size()) - num_softmax_layers();
}

namespace {

const char* type_name(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_float: return "a fractional number";
    default: return "a number";
  }
}

// Field access with errors that name the file and the field.
class Fields {
 public:
  Fields(const json& j, const std::string& src) : j_(j), src_(src) {}

  // First present, non-null key among names; nullptr when none.
  const json* find(std::initializer_list<const char*> names, std::string* found = nullptr) const {
    for (const char* n : names) {
      auto it = j_.find(n);
      if (it != j_.end() && !it->is_null()) {
        if (found) *found = n;
        return &*it;
      }
    }
    return nullptr;
  }

  Error missing(const char* name, const char* expected) const {
    return make_error(src_ + ": required field '" + name + "' is missing (expected " + expected + ")");
  }
  Error bad(const std::string& name, const json& v, const char* expected) const {
    return make_error(src_ + ": field '" + name + "' is " + type_name(v) + " (" + v.dump() +
                      "), expected " + expected);
  }
  Error invalid(const std::string& what) const { return make_error(src_ + ": " + what); }

  Result<int64_t> integer(const std::string& name, const json& v) const {
    if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>();
    if (v.is_number_float()) {
      double d = v.get<double>();
      if (std::floor(d) == d && std::fabs(d) < 9e15) return int64_t(d);
    }
    return bad(name, v, "an integer");
  }
  Result<int64_t> req_int(std::initializer_list<const char*> names) const {
    std::string n;
    const json* v = find(names, &n);
    if (!v) return missing(*names.begin(), "a positive integer");
    M1_ASSIGN_OR_RETURN(int64_t x, integer(n, *v));
    if (x <= 0) return invalid("field '" + n + "' is " + std::to_string(x) + ", expected a positive integer");
    return x;
  }
  Result<int64_t> opt_int(std::initializer_list<const char*> names, int64_t def) const {
    std::string n;
    const json* v = find(names, &n);
    if (!v) return def;
    return integer(n, *v);
  }
  Result<double> opt_num(std::initializer_list<const char*> names, double def) const {
    std::string n;
    const json* v = find(names, &n);
    if (!v) return def;
    if (!v->is_number()) return bad(n, *v, "a number");
    return v->get<double>();
  }
  Result<bool> opt_bool(const char* name, bool def) const {
    const json* v = find({name});
    if (!v) return def;
    if (!v->is_boolean()) return bad(name, *v, "true or false");
    return v->get<bool>();
  }

 private:
  const json& j_;
  const std::string& src_;
};

Result<std::vector<LayerKind>> parse_layer_kinds(const Fields& f, ConfigFormat* format,
                                                  const std::string& model_type, int64_t n_layers) {
  const json* hf = f.find({"layer_types"});
  const json* orig = f.find({"attn_type_list"});
  std::vector<LayerKind> kinds;
  if (hf) {
    if (!hf->is_array()) return f.bad("layer_types", *hf, "an array of \"linear_attention\"/\"full_attention\"");
    for (size_t i = 0; i < hf->size(); ++i) {
      const json& e = (*hf)[i];
      if (e == "linear_attention") kinds.push_back(LayerKind::Lightning);
      else if (e == "full_attention") kinds.push_back(LayerKind::Softmax);
      else
        return f.invalid("layer_types[" + std::to_string(i) + "] is " + e.dump() +
                         ", expected \"linear_attention\" or \"full_attention\"");
    }
    *format = ConfigFormat::HF;
  }
  if (orig) {
    if (!orig->is_array()) return f.bad("attn_type_list", *orig, "an array of 0 (lightning) / 1 (softmax)");
    std::vector<LayerKind> k2;
    for (size_t i = 0; i < orig->size(); ++i) {
      const json& e = (*orig)[i];
      if (e.is_number_integer() && (e.get<int64_t>() == 0 || e.get<int64_t>() == 1))
        k2.push_back(e.get<int64_t>() ? LayerKind::Softmax : LayerKind::Lightning);
      else
        return f.invalid("attn_type_list[" + std::to_string(i) + "] is " + e.dump() +
                         ", expected 0 (lightning) or 1 (softmax)");
    }
    if (hf && k2 != kinds) return f.invalid("'layer_types' and 'attn_type_list' disagree");
    if (!hf) {
      kinds = std::move(k2);
      *format = ConfigFormat::Original;
    }
  }
  if (!hf && !orig) {
    if (model_type != "minimax")
      return f.missing("attn_type_list", "0/1 per layer (or transformers' 'layer_types')");
    // transformers' MiniMaxConfig default: full attention on even layers.
    for (int64_t i = 0; i < n_layers; ++i)
      kinds.push_back((i + 1) % 2 ? LayerKind::Softmax : LayerKind::Lightning);
    *format = ConfigFormat::HF;
  }
  if (int64_t(kinds.size()) != n_layers)
    return f.invalid(std::string(hf ? "'layer_types'" : "'attn_type_list'") + " has " +
                     std::to_string(kinds.size()) + " entries, expected num_hidden_layers = " +
                     std::to_string(n_layers));
  return kinds;
}

Result<DType> parse_dtype(const Fields& f) {
  std::string n;
  const json* v = f.find({"torch_dtype", "dtype"}, &n);
  if (!v) return DType::BF16;
  if (!v->is_string()) return f.bad(n, *v, "\"bfloat16\", \"float16\" or \"float32\"");
  std::string s = v->get<std::string>();
  if (s == "bfloat16") return DType::BF16;
  if (s == "float16") return DType::F16;
  if (s == "float32") return DType::F32;
  return f.invalid("field '" + n + "' is \"" + s + "\", expected \"bfloat16\", \"float16\" or \"float32\"");
}

Result<int64_t> parse_token_id(const Fields& f, const char* name, std::vector<int64_t>* all) {
  const json* v = f.find({name});
  if (!v) return int64_t(-1);
  if (v->is_array()) {
    for (const auto& e : *v) {
      M1_ASSIGN_OR_RETURN(int64_t id, f.integer(name, e));
      if (all) all->push_back(id);
    }
    return v->empty() ? int64_t(-1) : (all ? all->front() : int64_t(-1));
  }
  M1_ASSIGN_OR_RETURN(int64_t id, f.integer(name, *v));
  if (all) all->push_back(id);
  return id;
}

Status validate(const ModelConfig& c, const Fields& f) {
  auto s = [](int64_t x) { return std::to_string(x); };
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    return f.invalid("num_attention_heads = " + s(c.num_attention_heads) +
                     " is not divisible by num_key_value_heads = " + s(c.num_key_value_heads));
  if (c.head_dim <= 0) return f.invalid("head_dim = " + s(c.head_dim) + ", expected a positive integer");
  if (c.rotary_dim <= 0 || c.rotary_dim > c.head_dim || c.rotary_dim % 2 != 0)
    return f.invalid("rotary_dim = " + s(c.rotary_dim) + ", expected an even number in [2, head_dim = " +
                     s(c.head_dim) + "]");
  if (c.num_experts_per_tok > c.num_local_experts)
    return f.invalid("num_experts_per_tok = " + s(c.num_experts_per_tok) + " exceeds num_local_experts = " +
                     s(c.num_local_experts));
  if (c.shared_intermediate_size != 0)
    return f.invalid("shared_intermediate_size = " + s(c.shared_intermediate_size) +
                     " is not supported (M1 has no shared expert; expected 0)");
  if (!(c.rms_norm_eps > 0)) return f.invalid("rms_norm_eps must be > 0");
  if (!(c.rope_theta > 0)) return f.invalid("rope_theta must be > 0");
  if (c.block_size <= 0) return f.invalid("block_size = " + s(c.block_size) + ", expected a positive integer");
  if (c.max_position_embeddings <= 0)
    return f.invalid("max_position_embeddings = " + s(c.max_position_embeddings) + ", expected a positive integer");
  return {};
}

}  // namespace

Result<ModelConfig> parse_config(const json& j, const std::string& src) {
  if (!j.is_object()) return make_error(src + ": expected a JSON object, found " + type_name(j));
  Fields f(j, src);
  ModelConfig c;
  c.raw = j;
  std::string model_type;
  if (const json* mt = f.find({"model_type"}); mt && mt->is_string()) model_type = mt->get<std::string>();

  M1_ASSIGN_OR_RETURN(c.vocab_size, f.req_int({"vocab_size"}));
  M1_ASSIGN_OR_RETURN(c.hidden_size, f.req_int({"hidden_size"}));
  M1_ASSIGN_OR_RETURN(c.intermediate_size, f.req_int({"intermediate_size"}));
  M1_ASSIGN_OR_RETURN(c.num_hidden_layers, f.req_int({"num_hidden_layers"}));
  M1_ASSIGN_OR_RETURN(c.num_attention_heads, f.req_int({"num_attention_heads"}));
  M1_ASSIGN_OR_RETURN(c.num_local_experts, f.req_int({"num_local_experts", "num_experts"}));
  M1_ASSIGN_OR_RETURN(c.num_experts_per_tok, f.req_int({"num_experts_per_tok"}));
  if (f.find({"num_key_value_heads"})) {
    M1_ASSIGN_OR_RETURN(c.num_key_value_heads, f.req_int({"num_key_value_heads"}));
  } else {
    c.num_key_value_heads = c.num_attention_heads;
  }
  if (f.find({"head_dim"})) {
    M1_ASSIGN_OR_RETURN(c.head_dim, f.req_int({"head_dim"}));
  } else {
    if (c.hidden_size % c.num_attention_heads != 0)
      return f.invalid("head_dim is absent and hidden_size = " + std::to_string(c.hidden_size) +
                       " is not divisible by num_attention_heads = " + std::to_string(c.num_attention_heads));
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  M1_ASSIGN_OR_RETURN(c.layer_kinds, parse_layer_kinds(f, &c.format, model_type, c.num_hidden_layers));
  bool hf = c.format == ConfigFormat::HF;

  // transformers' port rotates all of head_dim; an explicit rotary_dim is still honoured (our own
  // extension key, which transformers ignores) so config_to_json(HF) round-trips.
  M1_ASSIGN_OR_RETURN(c.rotary_dim, f.opt_int({"rotary_dim"}, c.head_dim));
  M1_ASSIGN_OR_RETURN(c.max_position_embeddings, f.opt_int({"max_position_embeddings"}, 4096 * 32));
  M1_ASSIGN_OR_RETURN(c.block_size, f.opt_int({"block_size"}, 256));
  M1_ASSIGN_OR_RETURN(c.rms_norm_eps, f.opt_num({"rms_norm_eps"}, 1e-5));

  const json* rp = f.find({"rope_parameters"});
  if (rp && !rp->is_object()) return f.bad("rope_parameters", *rp, "an object");
  if (rp && rp->contains("rope_type") && (*rp)["rope_type"] != "default")
    return f.invalid("rope_parameters.rope_type = " + (*rp)["rope_type"].dump() +
                     " is not supported (expected \"default\")");
  if (rp && rp->contains("rope_theta") && !(*rp)["rope_theta"].is_null()) {
    if (!(*rp)["rope_theta"].is_number())
      return f.bad("rope_parameters.rope_theta", (*rp)["rope_theta"], "a number");
    c.rope_theta = (*rp)["rope_theta"].get<double>();
  } else {
    M1_ASSIGN_OR_RETURN(c.rope_theta, f.opt_num({"rope_theta"}, 1e6));
  }

  M1_ASSIGN_OR_RETURN(c.linear_attn_alpha, f.opt_num({"layernorm_linear_attention_alpha", "linear_attn_alpha_factor"}, 1));
  M1_ASSIGN_OR_RETURN(c.linear_attn_beta, f.opt_num({"layernorm_linear_attention_beta", "linear_attn_beta_factor"}, 1));
  M1_ASSIGN_OR_RETURN(c.full_attn_alpha, f.opt_num({"layernorm_full_attention_alpha", "full_attn_alpha_factor"}, 1));
  M1_ASSIGN_OR_RETURN(c.full_attn_beta, f.opt_num({"layernorm_full_attention_beta", "full_attn_beta_factor"}, 1));
  M1_ASSIGN_OR_RETURN(c.mlp_alpha, f.opt_num({"layernorm_mlp_alpha", "mlp_alpha_factor"}, 1));
  M1_ASSIGN_OR_RETURN(c.mlp_beta, f.opt_num({"layernorm_mlp_beta", "mlp_beta_factor"}, 1));
  // The in-tree port always feeds the normed input to the residual (postnorm); MiniMax's own
  // code reads the flag and defaults it to false.
  if (hf && !f.find({"postnorm"})) c.postnorm = true;
  else { M1_ASSIGN_OR_RETURN(c.postnorm, f.opt_bool("postnorm", false)); }
  M1_ASSIGN_OR_RETURN(c.tie_word_embeddings, f.opt_bool("tie_word_embeddings", false));

  if (const json* sh = f.find({"shared_intermediate_size"})) {
    if (sh->is_array()) {  // some exports give one value per layer
      for (const auto& e : *sh) {
        M1_ASSIGN_OR_RETURN(int64_t v, f.integer("shared_intermediate_size", e));
        if (v != 0) { c.shared_intermediate_size = v; break; }
      }
    } else {
      M1_ASSIGN_OR_RETURN(c.shared_intermediate_size, f.integer("shared_intermediate_size", *sh));
    }
  }
  M1_ASSIGN_OR_RETURN(c.bos_token_id, parse_token_id(f, "bos_token_id", nullptr));
  M1_ASSIGN_OR_RETURN(c.eos_token_id, parse_token_id(f, "eos_token_id", &c.eos_token_ids));
  M1_ASSIGN_OR_RETURN(c.dtype, parse_dtype(f));
  M1_TRY(validate(c, f));
  return c;
}

Result<ModelConfig> load_config(const std::filesystem::path& dir_or_file) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path p = fs::is_directory(dir_or_file, ec) ? dir_or_file / "config.json" : dir_or_file;
  std::ifstream in(p, std::ios::binary);
  if (!in) {
    if (!fs::exists(p, ec))
      return make_error(p.string() + ": no such file (expected the model's config.json)");
    return make_error(p.string() + ": cannot be read");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return make_error(p.string() + ": not valid JSON");
  return parse_config(j, p.string());
}

json config_to_json(const ModelConfig& c, ConfigFormat format) {
  json j;
  const bool hf = format == ConfigFormat::HF;
  j["architectures"] = {hf ? "MiniMaxForCausalLM" : "MiniMaxM1ForCausalLM"};
  j["model_type"] = hf ? "minimax" : "minimax_m1";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["num_local_experts"] = c.num_local_experts;
  j["num_experts_per_tok"] = c.num_experts_per_tok;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["bos_token_id"] = c.bos_token_id >= 0 ? json(c.bos_token_id) : json(nullptr);
  if (c.eos_token_ids.size() > 1) j["eos_token_id"] = c.eos_token_ids;
  else j["eos_token_id"] = c.eos_token_id >= 0 ? json(c.eos_token_id) : json(nullptr);
  const char* dt = c.dtype == DType::F32 ? "float32" : c.dtype == DType::F16 ? "float16" : "bfloat16";
  j["torch_dtype"] = dt;
  j["initializer_range"] = 0.02;
  j["router_jitter_noise"] = 0.0;
  j["use_cache"] = true;
  if (hf) {
    json lt = json::array();
    for (auto k : c.layer_kinds) lt.push_back(k == LayerKind::Softmax ? "full_attention" : "linear_attention");
    j["layer_types"] = lt;
    j["linear_attn_alpha_factor"] = c.linear_attn_alpha;
    j["linear_attn_beta_factor"] = c.linear_attn_beta;
    j["full_attn_alpha_factor"] = c.full_attn_alpha;
    j["full_attn_beta_factor"] = c.full_attn_beta;
    j["mlp_alpha_factor"] = c.mlp_alpha;
    j["mlp_beta_factor"] = c.mlp_beta;
    j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", c.rope_theta}};
    j["block_size"] = c.block_size;
    j["dtype"] = dt;
    if (c.rotary_dim != c.head_dim) j["rotary_dim"] = c.rotary_dim;  // ignored by transformers
    if (!c.postnorm) j["postnorm"] = false;
  } else {
    json at = json::array();
    for (auto k : c.layer_kinds) at.push_back(k == LayerKind::Softmax ? 1 : 0);
    j["attn_type_list"] = at;
    j["layernorm_linear_attention_alpha"] = c.linear_attn_alpha;
    j["layernorm_linear_attention_beta"] = c.linear_attn_beta;
    j["layernorm_full_attention_alpha"] = c.full_attn_alpha;
    j["layernorm_full_attention_beta"] = c.full_attn_beta;
    j["layernorm_mlp_alpha"] = c.mlp_alpha;
    j["layernorm_mlp_beta"] = c.mlp_beta;
    j["rotary_dim"] = c.rotary_dim;
    j["rope_theta"] = c.rope_theta;
    j["postnorm"] = c.postnorm;
    j["shared_intermediate_size"] = 0;
    j["block_size"] = c.block_size;  // not read by MiniMax's code; kept so it round-trips
  }
  return j;
}

std::string config_fingerprint(const ModelConfig& c) {
  // FNV-1a over the canonical (original-format) serialization: the same model gives the same
  // fingerprint whichever format its config.json used. Token ids do not change the computation.
  json j = config_to_json(c, ConfigFormat::Original);
  j.erase("bos_token_id");
  j.erase("eos_token_id");
  std::string s = j.dump();
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) { h ^= ch; h *= 1099511628211ull; }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace m1::engine
