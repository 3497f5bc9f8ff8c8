// Model graph of MiniMax-M1 over Backend ops (see model.h). Postnorm layers: the residual is the
// NORMED input, x' = alpha * a + beta * Attn(a), then y = alpha_mlp * m + beta_mlp * MoE(m) with
// m = RMSNorm(x'). Activations stay fp32 throughout, so the reference's "cast back to the input
// dtype" after each RMSNorm is the identity here.
#include "engine/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace m1::engine {
namespace {

uint64_t fnv1a(uint64_t h, const void* p, size_t n) {
  const unsigned char* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < n; ++i) { h ^= c[i]; h *= 1099511628211ull; }
  return h;
}

std::vector<double> alibi_slopes(int64_t n) {
  auto pow2 = [](int64_t m) {
    std::vector<double> s(static_cast<size_t>(m));
    const double start = std::pow(2.0, -8.0 / double(m));
    for (int64_t j = 0; j < m; ++j) s[size_t(j)] = std::pow(start, double(j + 1));
    return s;
  };
  if ((n & (n - 1)) == 0) return pow2(n);
  int64_t closest = 1;
  while (closest * 2 <= n) closest *= 2;
  std::vector<double> s = pow2(closest);
  std::vector<double> extra = alibi_slopes(2 * closest);
  for (int64_t j = 0; int64_t(s.size()) < n; j += 2) s.push_back(extra[size_t(j)]);
  return s;
}

bool row_is_zero(const TensorView& t, int64_t row, int64_t cols) {
  const size_t es = dtype_size(t.dtype);
  const std::byte* p = t.data + size_t(row * cols) * es;
  for (size_t i = 0; i < size_t(cols) * es; ++i) {
    // -0.0 counts as zero: test the value bits without the sign bit of each element.
    const bool sign_byte = (i % es) == es - 1;
    if ((std::to_integer<unsigned>(p[i]) & (sign_byte ? 0x7fu : 0xffu)) != 0) return false;
  }
  return true;
}

}  // namespace

std::vector<float> lightning_slopes(int64_t num_heads, int64_t layer, int64_t num_layers) {
  const double factor = 1.0 - (num_layers > 1 ? double(layer) / double(num_layers - 1) : 0.0) + 1e-5;
  std::vector<double> s = alibi_slopes(num_heads);
  std::vector<float> out;
  for (double v : s) out.push_back(float(v * factor));
  return out;
}

Result<int32_t> KvPool::acquire() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!free_.empty()) {
    int32_t p = free_.back();
    free_.pop_back();
    return p;
  }
  M1_ASSIGN_OR_RETURN(Buffer b, backend_.alloc(size_t(shape_.floats_per_page()) * sizeof(float)));
  bases_.push_back(b.f32());
  pages_.push_back(std::move(b));
  return int32_t(pages_.size() - 1);
}

void KvPool::release(int32_t page) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(page);
}

SequenceState::~SequenceState() {
  if (!pool) return;
  for (auto& layer : kv_pages)
    for (int32_t p : layer) pool->release(p);
}

Status Model::load(const ModelWeights& w, const std::function<Result<Weight>(const TensorView&)>& get,
                   int64_t expert_sets) {
  const ModelConfig& c = cfg_;
  auto up = [&](const TensorView& t, Weight& dst) -> Status {
    M1_ASSIGN_OR_RETURN(dst, get(t));
    weight_bytes_ += uint64_t(dst.rows * dst.cols) * dtype_size(dst.dtype);
    return {};
  };
  M1_TRY(up(w.embed, embed_));
  M1_TRY(up(w.final_norm, final_norm_));
  M1_TRY(up(w.lm_head, lm_head_));
  int64_t n_lin = 0, n_soft = 0;
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& lw = w.layers[l];
    Layer L;
    L.kind = lw.kind;
    M1_TRY(up(lw.input_norm, L.in_norm));
    M1_TRY(up(lw.post_norm, L.post_norm));
    if (lw.kind == LayerKind::Lightning) {
      L.slot = n_lin++;
      M1_TRY(up(lw.qkv, L.qkv));
      M1_TRY(up(lw.output_gate, L.gate));
      M1_TRY(up(lw.out_proj, L.out));
      M1_TRY(up(lw.attn_norm, L.attn_norm));
    } else {
      L.slot = n_soft++;
      M1_TRY(up(lw.q, L.q));
      M1_TRY(up(lw.k, L.k));
      M1_TRY(up(lw.v, L.v));
      M1_TRY(up(lw.o, L.o));
    }
    M1_TRY(up(lw.router, L.moe.router));
    L.moe.top_k = c.num_experts_per_tok;
    if (expert_sets > 0 && int64_t(l) >= expert_sets) {
      const MoeWeights& src = layers_[size_t(int64_t(l) % expert_sets)].moe;
      L.moe.w1 = src.w1, L.moe.w2 = src.w2, L.moe.w3 = src.w3;
    } else {
      for (size_t e = 0; e < lw.w1.size(); ++e) {
        Weight w1, w2, w3;
        M1_TRY(up(lw.w1[e], w1));
        M1_TRY(up(lw.w2[e], w2));
        M1_TRY(up(lw.w3[e], w3));
        L.moe.w1.push_back(w1);
        L.moe.w2.push_back(w2);
        L.moe.w3.push_back(w3);
      }
    }
    layers_.push_back(std::move(L));
    slopes_.push_back(lightning_slopes(c.num_attention_heads, int64_t(l), c.num_hidden_layers));
  }
  const int64_t nl = int64_t(w.layers.size());
  expert_sets_ = expert_sets > 0 ? std::min(expert_sets, nl) : nl;
  pool_ = std::make_unique<KvPool>(backend_, KvPoolShape{opt_.kv_page_size, c.num_key_value_heads, c.head_dim});
  return {};
}

Result<std::unique_ptr<Model>> Model::create(std::shared_ptr<Checkpoint> ckpt, Backend& backend, ModelOptions opt) {
  std::unique_ptr<Model> m(new Model(backend));
  m->ckpt_ = ckpt;
  m->cfg_ = ckpt->config();
  const ModelConfig& c = m->cfg_;
  if (opt.block_size <= 0) opt.block_size = c.block_size;
  if (opt.prefill_chunk <= 0 || opt.kv_page_size <= 0)
    return make_error("model options: prefill_chunk and kv_page_size must be positive");
  m->opt_ = opt;
  M1_ASSIGN_OR_RETURN(ModelWeights w, bind_weights(*ckpt));
  M1_TRY(m->load(w, [&](const TensorView& t) { return backend.upload_weight(t); }, 0));
  // Identity: config fingerprint + tensor list.
  std::string fp = config_fingerprint(c);
  uint64_t h = fnv1a(1469598103934665603ull, fp.data(), fp.size());
  std::vector<std::string> names = ckpt->names();
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    const TensorView* t = ckpt->find(n);
    h = fnv1a(h, n.data(), n.size());
    std::string_view dn = dtype_name(t->dtype);
    h = fnv1a(h, dn.data(), dn.size());
    h = fnv1a(h, t->shape.data(), t->shape.size() * sizeof(int64_t));
  }
  m->identity_ = h;
  int64_t v = w.embed.shape[0];
  while (v > 0 && row_is_zero(w.embed, v - 1, w.embed.shape[1])) --v;
  m->usable_vocab_ = v;
  return m;
}

namespace {

// Shapes (no data) of every tensor the graph needs, as bind_weights gives them for MiniMax's names.
ModelWeights shaped_weights(const ModelConfig& c, DType dt) {
  const int64_t H = c.hidden_size, A = c.num_attention_heads * c.head_dim, KV = c.num_key_value_heads * c.head_dim;
  auto tv = [](std::string name, DType d, std::vector<int64_t> shape) {
    TensorView t;
    t.name = std::move(name);
    t.dtype = d;
    t.shape = std::move(shape);
    t.nbytes = size_t(t.numel()) * dtype_size(d);
    return t;
  };
  ModelWeights w;
  w.embed = tv("model.embed_tokens.weight", dt, {c.vocab_size, H});
  w.final_norm = tv("model.norm.weight", dt, {H});
  w.lm_head = tv("lm_head.weight", dt, {c.vocab_size, H});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights L;
    L.kind = c.layer_kinds[size_t(l)];
    L.input_norm = tv(p + "input_layernorm.weight", dt, {H});
    L.post_norm = tv(p + "post_attention_layernorm.weight", dt, {H});
    if (L.kind == LayerKind::Lightning) {
      L.qkv = tv(p + "self_attn.qkv_proj.weight", dt, {3 * A, H});
      L.output_gate = tv(p + "self_attn.output_gate.weight", dt, {A, H});
      L.out_proj = tv(p + "self_attn.out_proj.weight", dt, {H, A});
      L.attn_norm = tv(p + "self_attn.norm.weight", dt, {A});
    } else {
      L.q = tv(p + "self_attn.q_proj.weight", dt, {A, H});
      L.k = tv(p + "self_attn.k_proj.weight", dt, {KV, H});
      L.v = tv(p + "self_attn.v_proj.weight", dt, {KV, H});
      L.o = tv(p + "self_attn.o_proj.weight", dt, {H, A});
    }
    L.router = tv(p + "block_sparse_moe.gate.weight", DType::F32, {c.num_local_experts, H});
    for (int64_t e = 0; e < c.num_local_experts; ++e) {
      const std::string q = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
      L.w1.push_back(tv(q + "w1.weight", dt, {c.intermediate_size, H}));
      L.w2.push_back(tv(q + "w2.weight", dt, {H, c.intermediate_size}));
      L.w3.push_back(tv(q + "w3.weight", dt, {c.intermediate_size, H}));
    }
    w.layers.push_back(std::move(L));
  }
  return w;
}

}  // namespace

Result<std::unique_ptr<Model>> Model::create_random(const ModelConfig& config, Backend& backend, ModelOptions opt,
                                                    RandomWeights rw) {
  std::unique_ptr<Model> m(new Model(backend));
  m->cfg_ = config;
  const ModelConfig& c = m->cfg_;
  if (int64_t(c.layer_kinds.size()) != c.num_hidden_layers || c.hidden_size <= 0 || c.vocab_size <= 0)
    return make_error("random model: the config's shape is incomplete (layer kinds, hidden size, vocabulary)");
  if (opt.block_size <= 0) opt.block_size = c.block_size;
  if (opt.prefill_chunk <= 0 || opt.kv_page_size <= 0)
    return make_error("model options: prefill_chunk and kv_page_size must be positive");
  m->opt_ = opt;
  const ModelWeights w = shaped_weights(c, rw.dtype);
  auto gen = [&](const TensorView& t) -> Result<Weight> {
    M1_ASSIGN_OR_RETURN(Weight d, describe_weight(t));
    const bool norm = t.name.find("norm") != std::string::npos;
    const uint64_t seed = fnv1a(rw.seed * 0x9e3779b97f4a7c15ull + 1, t.name.data(), t.name.size());
    return backend.random_weight(t.dtype, d.rows, d.cols, seed, norm ? 1.f : 0.f, norm ? 0.f : rw.std);
  };
  M1_TRY(m->load(w, gen, rw.expert_sets));
  const std::string fp = config_fingerprint(c) + "|random|" + std::to_string(rw.seed) + "|" +
                         std::string(dtype_name(rw.dtype)) + "|" + std::to_string(rw.expert_sets);
  m->identity_ = fnv1a(1469598103934665603ull, fp.data(), fp.size());
  m->usable_vocab_ = c.vocab_size;
  return m;
}

int64_t Model::lightning_state_floats() const {
  return cfg_.num_lightning_layers() * cfg_.num_attention_heads * cfg_.head_dim * cfg_.head_dim;
}
int64_t Model::kv_floats_per_token() const { return 2 * cfg_.num_key_value_heads * cfg_.head_dim; }

Result<std::unique_ptr<SequenceState>> Model::new_state() {
  auto s = std::make_unique<SequenceState>();
  M1_ASSIGN_OR_RETURN(s->lightning, backend_.alloc(size_t(std::max<int64_t>(1, lightning_state_floats())) * 4));
  backend_.fill_zero(s->lightning.data(), s->lightning.bytes());
  M1_ASSIGN_OR_RETURN(s->logits, backend_.alloc(size_t(cfg_.vocab_size) * 4));
  s->kv_pages.resize(size_t(cfg_.num_softmax_layers()));
  s->pool = pool_.get();
  return s;
}

Result<std::unique_ptr<SequenceState>> Model::copy_state(const SequenceState& src) {
  M1_ASSIGN_OR_RETURN(auto s, new_state());
  backend_.copy_device(s->lightning.data(), src.lightning.data(), src.lightning.bytes());
  backend_.copy_device(s->logits.data(), src.logits.data(), src.logits.bytes());
  s->has_logits = src.has_logits;
  const size_t page_bytes = size_t(pool_->shape().floats_per_page()) * 4;
  for (size_t l = 0; l < src.kv_pages.size(); ++l)
    for (int32_t p : src.kv_pages[l]) {
      M1_ASSIGN_OR_RETURN(int32_t q, pool_->acquire());
      s->kv_pages[l].push_back(q);
      backend_.copy_device(pool_->bases()[q], pool_->bases()[p], page_bytes);
    }
  s->length = src.length;
  return s;
}

Status Model::ensure_workspace(int64_t T, bool all_logits) {
  const ModelConfig& c = cfg_;
  if (T > ws_tokens_) {
    const size_t H = size_t(c.hidden_size), A = size_t(c.num_attention_heads * c.head_dim);
    const size_t big = std::max(3 * A, A + size_t(2 * c.num_key_value_heads * c.head_dim));
    const size_t t = size_t(T) * 4;
    M1_ASSIGN_OR_RETURN(x_, backend_.alloc(t * H));
    M1_ASSIGN_OR_RETURN(a_, backend_.alloc(t * H));
    M1_ASSIGN_OR_RETURN(o_, backend_.alloc(t * H));
    M1_ASSIGN_OR_RETURN(m_, backend_.alloc(t * H));
    M1_ASSIGN_OR_RETURN(big_, backend_.alloc(t * big));
    M1_ASSIGN_OR_RETURN(attn_, backend_.alloc(t * A));
    M1_ASSIGN_OR_RETURN(gate_, backend_.alloc(t * A));
    ws_tokens_ = T;
  }
  // Every row's logits only when asked for (an 8K-token chunk of a 200K vocabulary is 6.5 GB).
  if (all_logits && T > ws_logit_rows_) {
    M1_ASSIGN_OR_RETURN(logits_, backend_.alloc(size_t(T) * size_t(c.vocab_size) * 4));
    ws_logit_rows_ = T;
  }
  return {};
}

Status Model::ensure_pages(SequenceState& st, int64_t T) {
  const int64_t ps = pool_->shape().page_size;
  for (auto& pages : st.kv_pages)
    while (int64_t(pages.size()) * ps < st.length + T) {
      M1_ASSIGN_OR_RETURN(int32_t pg, pool_->acquire());
      pages.push_back(pg);
    }
  return {};
}

Status Model::forward(SequenceState& st, std::span<const int32_t> ids, bool all_logits, std::vector<float>* logits) {
  if (ids.empty()) return make_error("forward: no tokens to process");
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= cfg_.vocab_size)
      return make_error("token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                        " is outside the model's vocabulary [0, " + std::to_string(cfg_.vocab_size) + ")");
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t n = int64_t(ids.size()), V = cfg_.vocab_size;
  all_logits = all_logits && logits;
  if (logits) logits->assign(size_t(all_logits ? n * V : V), 0.f);
  for (int64_t c0 = 0; c0 < n; c0 += opt_.prefill_chunk) {
    const int64_t T = std::min(opt_.prefill_chunk, n - c0);
    const bool last = c0 + T == n;
    float* dst = nullptr;
    if (logits && all_logits) dst = logits->data() + c0 * V;
    if (logits && !all_logits && last) dst = logits->data();
    M1_TRY(forward_chunk(st, ids.data() + c0, T, all_logits, dst));
  }
  return {};
}

Status Model::forward_chunk(SequenceState& st, const int32_t* ids, int64_t T, bool all_logits, float* logits) {
  M1_TRY(ensure_workspace(T, all_logits));
  M1_TRY(ensure_pages(st, T));
  Backend& B = backend_;
  if (T == 1 && !all_logits && opt_.step_graphs) {
    // A decode step: recorded once per sequence state, replayed after (see Backend::begin_graph).
    const uint64_t key = uint64_t(reinterpret_cast<uintptr_t>(st.lightning.data())) ^
                         (uint64_t(reinterpret_cast<uintptr_t>(st.logits.data())) << 1);
    for (int attempt = 0; attempt < 2; ++attempt) {
      const bool graphed = B.begin_graph(key);
      run_chunk(st, ids, T, false);
      if (!graphed || B.end_graph()) break;
    }
  } else {
    run_chunk(st, ids, T, all_logits);
  }
  st.length += T;
  st.has_logits = true;
  if (logits) {
    const int64_t rows = all_logits ? T : 1;
    B.copy_to_host(logits, all_logits ? logits_.data() : st.logits.data(), size_t(rows * cfg_.vocab_size) * 4);
  }
  return {};
}

void Model::run_chunk(SequenceState& st, const int32_t* ids, int64_t T, bool all_logits) {
  Backend& B = backend_;
  const ModelConfig& c = cfg_;
  const int64_t H = c.hidden_size, V = c.vocab_size;
  const float eps = float(c.rms_norm_eps);
  float *x = x_.f32(), *a = a_.f32(), *o = o_.f32(), *m = m_.f32();
  B.embedding(embed_, ids, T, x);
  B.rmsnorm(x, layers_[0].in_norm, T, H, eps, a);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];  // a = in_norm(x) here
    double alpha, beta;
    if (L.kind == LayerKind::Lightning) {
      attention_lightning(L, st, T, a, o);
      alpha = c.linear_attn_alpha, beta = c.linear_attn_beta;
    } else {
      attention_softmax(L, st, T, a, o);
      alpha = c.full_attn_alpha, beta = c.full_attn_beta;
    }
    B.add_rmsnorm(float(alpha), a, float(beta), o, T, H, L.post_norm, eps, x, m);  // x = res, m = norm(x)
    B.moe(m, T, L.moe, o);
    if (l + 1 < layers_.size())  // the next layer's input norm rides on the residual
      B.add_rmsnorm(float(c.mlp_alpha), m, float(c.mlp_beta), o, T, H, layers_[l + 1].in_norm, eps, x, a);
    else
      B.axpby(float(c.mlp_alpha), m, float(c.mlp_beta), o, T * H, x);
  }
  const int64_t rows = all_logits ? T : 1;
  B.rmsnorm(x + (T - rows) * H, final_norm_, rows, H, eps, a);
  if (all_logits) {
    B.matmul(a, rows, lm_head_, logits_.f32());
    B.copy_device(st.logits.data(), logits_.f32() + (T - 1) * V, size_t(V) * 4);
  } else {
    B.matmul(a, 1, lm_head_, st.logits.f32());
  }
}

void Model::attention_lightning(const Layer& L, SequenceState& st, int64_t T, float* a, float* out) {
  Backend& B = backend_;
  const int64_t nh = cfg_.num_attention_heads, d = cfg_.head_dim, A = nh * d;
  float* qkv = big_.f32();
  B.matmul(a, T, L.qkv, qkv);
  B.matmul(a, T, L.gate, gate_.f32());
  LightningParams p{nh, d, slopes_[size_t(&L - layers_.data())].data(), opt_.block_size};
  float* S = st.lightning.f32() + L.slot * nh * d * d;
  if (T == 1)
    B.silu_lightning_decode(qkv, 1, p, &S, attn_.f32());
  else
    B.silu_lightning_prefill(qkv, T, p, S, attn_.f32());
  B.rmsnorm_sigmoid_gate(attn_.f32(), L.attn_norm, T, A, 1e-6f, gate_.f32(), attn_.f32());
  B.matmul(attn_.f32(), T, L.out, out);
}

void Model::attention_softmax(const Layer& L, SequenceState& st, int64_t T, float* a, float* out) {
  Backend& B = backend_;
  const int64_t nh = cfg_.num_attention_heads, nkv = cfg_.num_key_value_heads, d = cfg_.head_dim;
  float* q = big_.f32();
  float* k = q + T * nh * d;
  float* v = k + T * nkv * d;
  B.matmul(a, T, L.q, q);
  B.matmul(a, T, L.k, k);
  B.matmul(a, T, L.v, v);
  std::vector<int64_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[size_t(t)] = st.length + t;
  RopeParams rp{d, cfg_.rotary_dim, cfg_.rope_theta};
  B.rope(q, T, nh, pos.data(), rp);
  B.rope(k, T, nkv, pos.data(), rp);
  const std::vector<int32_t>& pages = st.kv_pages[size_t(L.slot)];  // enough for st.length + T (ensure_pages)
  B.kv_write(pool_->bases(), pool_->shape(), KvSeq{pages.data(), st.length}, k, v, T);
  KvSeq seq{pages.data(), st.length + T};
  if (T == 1)
    B.attention_decode(q, 1, nh, pool_->bases(), pool_->shape(), &seq, attn_.f32());
  else
    B.attention_prefill(q, T, nh, pool_->bases(), pool_->shape(), seq, attn_.f32());
  B.matmul(attn_.f32(), T, L.o, out);
}

void Model::read_state(const SequenceState& s, std::vector<float>& lightning, std::vector<std::vector<float>>& kv) {
  lightning.resize(size_t(lightning_state_floats()));
  backend_.copy_to_host(lightning.data(), s.lightning.data(), lightning.size() * 4);
  const KvPoolShape& sh = pool_->shape();
  const int64_t row = sh.num_kv_heads * sh.head_dim;
  kv.assign(s.kv_pages.size(), {});
  for (size_t l = 0; l < s.kv_pages.size(); ++l) {
    kv[l].resize(size_t(2 * s.length * row));
    for (int64_t t0 = 0; t0 < s.length; t0 += sh.page_size) {
      const int64_t n = std::min(sh.page_size, s.length - t0);
      const float* base = pool_->bases()[s.kv_pages[l][size_t(t0 / sh.page_size)]];
      backend_.copy_to_host(kv[l].data() + t0 * row, base, size_t(n * row) * 4);
      backend_.copy_to_host(kv[l].data() + (s.length + t0) * row, base + sh.page_size * row, size_t(n * row) * 4);
    }
  }
}

Status Model::write_state(SequenceState& s, const std::vector<float>& lightning,
                          const std::vector<std::vector<float>>& kv, int64_t length) {
  const KvPoolShape& sh = pool_->shape();
  const int64_t row = sh.num_kv_heads * sh.head_dim;
  if (int64_t(lightning.size()) != lightning_state_floats() || kv.size() != s.kv_pages.size())
    return make_error("session state does not fit this model (lightning or layer count differs)");
  backend_.copy_to_device(s.lightning.data(), lightning.data(), lightning.size() * 4);
  for (size_t l = 0; l < kv.size(); ++l) {
    if (int64_t(kv[l].size()) != 2 * length * row) return make_error("session K/V size does not fit this model");
    while (int64_t(s.kv_pages[l].size()) * sh.page_size < length) {
      M1_ASSIGN_OR_RETURN(int32_t pg, pool_->acquire());
      s.kv_pages[l].push_back(pg);
    }
    for (int64_t t0 = 0; t0 < length; t0 += sh.page_size) {
      const int64_t n = std::min(sh.page_size, length - t0);
      float* base = pool_->bases()[s.kv_pages[l][size_t(t0 / sh.page_size)]];
      backend_.copy_to_device(base, kv[l].data() + t0 * row, size_t(n * row) * 4);
      backend_.copy_to_device(base + sh.page_size * row, kv[l].data() + (length + t0) * row, size_t(n * row) * 4);
    }
  }
  s.length = length;
  return {};
}

Status Model::read_logits(const SequenceState& st, std::vector<float>& out) {
  if (!st.has_logits) return make_error("no logits yet: the sequence has processed no token");
  std::lock_guard<std::mutex> lock(mu_);
  out.resize(size_t(cfg_.vocab_size));
  backend_.copy_to_host(out.data(), st.logits.data(), out.size() * 4);
  return {};
}

void Model::write_logits(SequenceState& st, const std::vector<float>& logits) {
  if (int64_t(logits.size()) != cfg_.vocab_size) return;
  std::lock_guard<std::mutex> lock(mu_);
  backend_.copy_to_device(st.logits.data(), logits.data(), logits.size() * 4);
  st.has_logits = true;
}

Result<std::optional<int32_t>> Model::sample_on_device(const SequenceState& st, Sampler& sampler, int64_t usable_vocab) {
  const SamplingParams& sp = sampler.params();
  if (!backend_.can_sample() || sp.repetition_penalty != 1.0f || !st.has_logits) return std::optional<int32_t>{};
  DeviceSampling p;
  p.vocab = std::min<int64_t>(cfg_.vocab_size, std::max<int64_t>(1, usable_vocab));
  p.mask = sampler.mask().empty() ? nullptr : sampler.mask().data();
  p.mask_len = int64_t(sampler.mask().size());
  p.temperature = sp.temperature;
  p.top_k = sp.top_k;
  p.top_p = sp.top_p;
  p.min_p = sp.min_p;
  p.u = sp.temperature == 0.0f ? 0.0 : sampler.uniform();  // the draw Sampler::sample would take
  std::lock_guard<std::mutex> lock(mu_);
  M1_ASSIGN_OR_RETURN(int32_t id, backend_.sample(st.logits.f32(), cfg_.vocab_size, p));
  return std::optional<int32_t>(id);
}

}  // namespace m1::engine
