// The CUDA backend as the engine uses it (issue 6): device sampling against the CPU Sampler (same
// seed stream, only the id comes back), decode steps replayed as CUDA graphs against eager steps,
// `generate` on the GPU against the CPU (tiny fp32 model: every greedy and sampled token; the
// trained bf16 m1-small: greedy), the prefill paths (per-expert GEMM MoE, tensor-core attention)
// against the CPU backend's ops, and a random-weight model. Every test skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "engine/checkpoint.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/model_init.h"
#include "tests/engine/cuda_test_util.h"
#include "tests/engine/test_util.h"

using namespace m1::engine;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Backend> gpu(bool graphs = true) {
  CudaOptions o;
  o.graphs = graphs;
  auto b = make_cuda_backend(o);
  EXPECT_TRUE(b.ok()) << (b.ok() ? "" : b.error().message);
  return b.ok() ? std::move(b.value()) : nullptr;
}

// ---- sampling -------------------------------------------------------------------------------

struct Case {
  const char* name;
  SamplingParams p;
  float logit_scale;
  bool mask;
};

TEST(CudaSampling, MatchesCpuSampler) {
  M1_SKIP_WITHOUT_GPU();
  auto be = gpu();
  ASSERT_TRUE(be);
  const int64_t V = 200064, usable = 200026;
  const Case cases[] = {
      {"greedy", {0.f, 0, 1.f, 0.f, 1.f, 1}, 3.f, false},
      {"greedy+mask", {0.f, 0, 1.f, 0.f, 1.f, 2}, 3.f, true},
      {"temperature", {0.8f, 0, 1.f, 0.f, 1.f, 3}, 3.f, false},
      {"top-k 40", {1.f, 40, 1.f, 0.f, 1.f, 4}, 2.f, false},
      {"top-p 0.9 peaked", {0.7f, 0, 0.9f, 0.f, 1.f, 5}, 4.f, true},
      {"top-p 0.95 flat", {1.f, 0, 0.95f, 0.f, 1.f, 6}, 0.05f, false},  // the cut lies deep in the order
      {"min-p 0.05", {1.f, 0, 1.f, 0.05f, 1.f, 7}, 2.f, false},
      {"top-k 1000 + top-p 0.8 + min-p", {0.9f, 1000, 0.8f, 0.01f, 1.f, 8}, 1.f, true},
  };
  std::mt19937 rng(11);
  std::vector<uint8_t> mask(size_t(usable), 1);
  for (size_t i = 0; i < mask.size(); i += 7) mask[i] = 0;  // holes, as a tokenizer leaves
  auto dev = be->alloc(size_t(V) * 4).value();
  int draws = 0;
  for (const Case& c : cases) {
    Sampler cpu(c.p), host_u(c.p);
    if (c.mask) cpu.set_mask(mask), host_u.set_mask(mask);
    for (int trial = 0; trial < 24; ++trial) {
      std::vector<float> logits = m1::cuda::testing::randn(size_t(V), rng, c.logit_scale);
      if (trial % 4 == 3) logits[size_t(rng() % usable)] = logits[0] + 50.f;  // one dominant id
      if (trial % 5 == 4) std::fill(logits.begin() + 100, logits.begin() + 160, 7.5f);  // exact ties
      be->copy_to_device(dev.data(), logits.data(), logits.size() * 4);
      const int32_t want = cpu.sample(logits, usable, {});
      DeviceSampling d;
      d.vocab = usable;
      d.mask = c.mask ? mask.data() : nullptr;
      d.mask_len = c.mask ? int64_t(mask.size()) : 0;
      d.temperature = c.p.temperature;
      d.top_k = c.p.top_k;
      d.top_p = c.p.top_p;
      d.min_p = c.p.min_p;
      d.u = c.p.temperature == 0 ? 0.0 : host_u.uniform();
      auto got = be->sample(dev.f32(), V, d);
      ASSERT_TRUE(got.ok()) << got.error().message;
      ASSERT_EQ(got.value(), want) << c.name << " trial " << trial;
      ++draws;
    }
  }
  std::printf("[sampling] %d device draws identical to the CPU sampler\n", draws);
}

// ---- step graphs ----------------------------------------------------------------------------

const std::string kFixtures = std::string(M1_SOURCE_DIR) + "/tests/fixtures/parity/";

// Decode through recorded/replayed graphs gives the same logits as eager steps, across a page-bucket
// boundary (the graph is recorded again there).
TEST(CudaGraphs, ReplayedDecodeEqualsEagerDecode) {
  M1_SKIP_WITHOUT_GPU();
  auto ck = Checkpoint::open(kFixtures + "hd128/orig");
  ASSERT_TRUE(ck.ok()) << ck.error().message;
  auto with = gpu(true), without = gpu(false);
  ASSERT_TRUE(with && without);
  auto A = Model::create(ck.value(), *with).value(), B = Model::create(ck.value(), *without).value();
  const int64_t V = A->config().vocab_size;
  std::mt19937 rng(3);
  std::vector<int32_t> prompt(1000);
  for (auto& t : prompt) t = int32_t(rng() % uint32_t(V));
  auto sa = A->new_state().value(), sb = B->new_state().value();
  std::vector<float> la, lb;
  ASSERT_TRUE(A->forward(*sa, prompt, false, &la).ok());
  ASSERT_TRUE(B->forward(*sb, prompt, false, &lb).ok());
  Sampler ga(SamplingParams{0.f}), gb(SamplingParams{0.f});
  double worst = 0;
  for (int step = 0; step < 60; ++step) {  // positions 1000 .. 1059: crosses 1024
    auto ia = A->sample_on_device(*sa, ga, V).value(), ib = B->sample_on_device(*sb, gb, V).value();
    ASSERT_TRUE(ia && ib);
    ASSERT_EQ(*ia, *ib) << "step " << step;
    ASSERT_TRUE(A->forward(*sa, std::span<const int32_t>(&*ia, 1), false, nullptr).ok());
    ASSERT_TRUE(B->forward(*sb, std::span<const int32_t>(&*ib, 1), false, nullptr).ok());
    ASSERT_TRUE(A->read_logits(*sa, la).ok());
    ASSERT_TRUE(B->read_logits(*sb, lb).ok());
    for (int64_t i = 0; i < V; ++i) worst = std::max(worst, double(std::abs(la[size_t(i)] - lb[size_t(i)])));
  }
  CudaControl* c = cuda_control(*with);
  ASSERT_TRUE(c);
  std::printf("[graphs] 60 steps: %lld recorded, %lld replayed; worst |graph - eager| logit %.3g\n",
              (long long)c->graph_captures(), (long long)c->graph_replays(), worst);
  EXPECT_EQ(worst, 0.0);  // the same kernels with the same arguments
  EXPECT_GE(c->graph_captures(), 2);  // before and after the 1024-token bucket
  EXPECT_GE(c->graph_replays(), 55);
  EXPECT_EQ(cuda_control(*without)->graph_captures(), 0);
}

// ---- generate on the GPU vs the CPU -----------------------------------------------------------

std::vector<int32_t> run_generate(const fs::path& dir, const std::string& device, const std::vector<int32_t>& prompt,
                                  SamplingParams sp, int64_t n) {
  EngineOptions o;
  o.device = device;
  auto e = Engine::open(dir, o);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  if (!e.ok()) return {};
  Engine& eng = *e.value();
  auto s = eng.new_session().value();
  EXPECT_TRUE(s->append(prompt).ok());
  GenerateOptions go;
  go.sampling = sp;
  go.max_tokens = n;
  go.usable_vocab = eng.usable_vocab();
  go.allowed = eng.token_mask();
  std::string streamed;
  auto r = generate(*s, eng.tokenizer(), go, [&](std::string_view d) { streamed += d; return true; });
  EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
  if (!r.ok()) return {};
  EXPECT_EQ(streamed, r.value().text);
  return r.value().tokens;
}

TEST(CudaGenerate, TinyFp32GreedyAndSampledTokensEqualCpu) {
  M1_SKIP_WITHOUT_GPU();
  m1::test::TempDir tmp("m1_cuda_gen");
  InitOptions io;
  io.preset = "tiny";
  io.out = tmp.path / "tiny";
  io.dtype = DType::F32;
  io.seed = 5;
  io.sync = false;
  ASSERT_TRUE(init_model(io).ok());
  auto tok = Tokenizer::load(io.out).value();
  const std::vector<int32_t> prompt = tok.encode("def add(a, b):\n    return a");
  const SamplingParams greedy{0.f}, sampled{0.8f, 50, 0.95f, 0.f, 1.f, 42};
  for (const SamplingParams& sp : {greedy, sampled}) {
    const auto c = run_generate(io.out, "cpu", prompt, sp, 48), g = run_generate(io.out, "cuda", prompt, sp, 48);
    ASSERT_EQ(c.size(), 48u);
    EXPECT_EQ(g, c) << "temperature " << sp.temperature;
  }
  std::printf("[generate] tiny fp32: 48 greedy and 48 sampled tokens identical on GPU and CPU\n");
}

TEST(CudaGenerate, M1SmallGreedyTokensEqualCpu) {
  M1_SKIP_WITHOUT_GPU();
  const fs::path dir = fs::path(M1_SOURCE_DIR) / "models/m1-small";
  const fs::path ref = fs::path(M1_SOURCE_DIR) / "tests/fixtures/m1-small/parity.json";
  ASSERT_TRUE(fs::exists(dir / "config.json") && fs::exists(ref));
  const auto prompt = nlohmann::json::parse(std::ifstream(ref))["prompt"].get<std::vector<int32_t>>();
  const auto c = run_generate(dir, "cpu", prompt, SamplingParams{0.f}, 32);
  const auto g = run_generate(dir, "cuda", prompt, SamplingParams{0.f}, 32);
  size_t same = 0;
  while (same < std::min(c.size(), g.size()) && c[same] == g[same]) ++same;
  std::printf("[generate] m1-small (bf16): GPU and CPU greedy agree on the first %zu of %zu tokens\n", same, c.size());
  // bf16 weights: the GPU's tensor-core products round activations to bf16, the CPU's do not; a
  // trained model's greedy margins hold for the first tokens (tolerance for a late near-tie).
  EXPECT_GE(same, 16u);
}

// ---- prefill paths vs the CPU backend's ops ---------------------------------------------------

struct HostWeight {
  std::vector<uint16_t> bits;
  TensorView view;
};
HostWeight bf16_weight(int64_t rows, int64_t cols, std::mt19937& rng, float scale) {
  HostWeight w;
  w.bits.resize(size_t(rows * cols));
  std::normal_distribution<float> d(0.f, scale);
  for (auto& b : w.bits) b = f32_to_bf16(d(rng));
  w.view.name = "w";
  w.view.dtype = DType::BF16;
  w.view.shape = {rows, cols};
  w.view.data = reinterpret_cast<const std::byte*>(w.bits.data());
  w.view.nbytes = w.bits.size() * 2;
  return w;
}

double rel(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i])) return 1e30;
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

TEST(CudaPrefill, MoeGemmAndGemvPathsMatchCpu) {
  M1_SKIP_WITHOUT_GPU();
  auto g = gpu();
  auto c = make_cpu_backend();
  const int64_t E = 8, H = 256, I = 384, k = 2;
  std::mt19937 rng(5);
  std::vector<HostWeight> keep;
  MoeWeights wg, wc;
  wg.top_k = wc.top_k = k;
  // fp32 router, as checkpoints store it (m1 model init too): both backends route in fp32, so the
  // comparison measures the expert products. (A bf16 router on the GPU sees bf16-rounded inputs;
  // with 160 tokens one near-tie flips a top-2 choice and that token's row differs wholesale: the
  // first run measured 2.4e-2 that way.)
  std::vector<float> rbits(size_t(E * H));
  std::normal_distribution<float> rd(0.f, 0.5f);
  for (auto& v : rbits) v = rd(rng);
  TensorView r;
  r.name = "router";
  r.dtype = DType::F32;
  r.shape = {E, H};
  r.data = reinterpret_cast<const std::byte*>(rbits.data());
  r.nbytes = rbits.size() * 4;
  wg.router = g->upload_weight(r).value();
  wc.router = c->upload_weight(r).value();
  for (int64_t e = 0; e < E; ++e) {
    for (int m = 0; m < 3; ++m) {
      HostWeight w = m == 1 ? bf16_weight(H, I, rng, 0.05f) : bf16_weight(I, H, rng, 0.05f);
      (m == 0 ? wg.w1 : m == 1 ? wg.w2 : wg.w3).push_back(g->upload_weight(w.view).value());
      (m == 0 ? wc.w1 : m == 1 ? wc.w2 : wc.w3).push_back(c->upload_weight(w.view).value());
      keep.push_back(std::move(w));
    }
  }
  for (int64_t T : {int64_t(7), int64_t(160)}) {  // 7: grouped GEMV; 160: per-expert GEMMs
    const auto x = m1::cuda::testing::randn(size_t(T * H), rng);
    auto xg = g->alloc(x.size() * 4).value(), og = g->alloc(x.size() * 4).value();
    auto xc = c->alloc(x.size() * 4).value(), oc = c->alloc(x.size() * 4).value();
    g->copy_to_device(xg.data(), x.data(), x.size() * 4);
    c->copy_to_device(xc.data(), x.data(), x.size() * 4);
    g->moe(xg.f32(), T, wg, og.f32());
    c->moe(xc.f32(), T, wc, oc.f32());
    std::vector<float> a(x.size()), b(x.size());
    g->copy_to_host(a.data(), og.data(), a.size() * 4);
    c->copy_to_host(b.data(), oc.data(), b.size() * 4);
    const double e = rel(a, b);
    std::printf("[moe] T=%lld: GPU vs CPU rel err %.3g\n", (long long)T, e);
    EXPECT_LE(e, 1e-2) << "T=" << T;
  }
}

// Tensor-core causal prefill (bf16 Q/K/V) against the CPU backend over the same paged K/V.
void attention_case(int64_t nh, int64_t nkv, int64_t D, int64_t past, int64_t T) {
  auto g = gpu();
  auto c = make_cpu_backend();
  const KvPoolShape s{64, nkv, D};
  const int64_t L = past + T, npages = (L + 63) / 64, row = nkv * D;
  std::mt19937 rng(uint32_t(nh * 131 + D + T));
  const auto k = m1::cuda::testing::randn(size_t(L * row), rng), v = m1::cuda::testing::randn(size_t(L * row), rng);
  const auto q = m1::cuda::testing::randn(size_t(T * nh * D), rng);
  std::vector<float> outs[2];
  for (int which = 0; which < 2; ++which) {
    Backend& b = which == 0 ? *g : *c;
    std::vector<Buffer> pages;
    std::vector<float*> base;
    std::vector<int32_t> ids;
    for (int64_t p = 0; p < npages; ++p) {
      pages.push_back(b.alloc(size_t(s.floats_per_page()) * 4).value());
      base.push_back(pages.back().f32());
      ids.push_back(int32_t(p));
    }
    auto dk = b.alloc(k.size() * 4).value(), dv = b.alloc(v.size() * 4).value(), dq = b.alloc(q.size() * 4).value();
    auto out = b.alloc(q.size() * 4).value();
    b.copy_to_device(dk.data(), k.data(), k.size() * 4);
    b.copy_to_device(dv.data(), v.data(), v.size() * 4);
    b.copy_to_device(dq.data(), q.data(), q.size() * 4);
    b.kv_write(base.data(), s, KvSeq{ids.data(), 0}, dk.f32(), dv.f32(), L);
    b.attention_prefill(dq.f32(), T, nh, base.data(), s, KvSeq{ids.data(), L}, out.f32());
    outs[which].resize(q.size());
    b.copy_to_host(outs[which].data(), out.data(), q.size() * 4);
  }
  const double e = rel(outs[0], outs[1]);
  std::printf("[attention] nh=%lld nkv=%lld D=%lld past=%lld T=%lld: tensor cores vs CPU rel err %.3g\n",
              (long long)nh, (long long)nkv, (long long)D, (long long)past, (long long)T, e);
  EXPECT_LE(e, 1e-2);
}

TEST(CudaPrefill, TensorCoreAttentionMatchesCpu) {
  M1_SKIP_WITHOUT_GPU();
  attention_case(16, 2, 128, 300, 200);  // GQA 8: two heads per CTA, a partial last row block
  attention_case(4, 4, 64, 0, 70);       // no GQA: one head per CTA, prompt from position 0
  attention_case(8, 1, 128, 1000, 16);   // short chunk late in a sequence
}

// ---- random weights -------------------------------------------------------------------------

TEST(CudaRandomModel, RunsDeterministicallyWithSharedExpertSets) {
  M1_SKIP_WITHOUT_GPU();
  ModelConfig cfg = preset_config("tiny").value();
  cfg.hidden_size = 128;
  cfg.head_dim = 32;
  cfg.intermediate_size = 256;
  std::vector<float> logits[2];
  for (int run = 0; run < 2; ++run) {
    auto be = gpu();
    RandomWeights rw;
    rw.seed = 9;
    rw.expert_sets = 3;
    auto m = Model::create_random(cfg, *be, ModelOptions{}, rw);
    ASSERT_TRUE(m.ok()) << m.error().message;
    EXPECT_EQ(m.value()->expert_sets(), 3);
    auto st = m.value()->new_state().value();
    const std::vector<int32_t> ids = {1, 2, 3, 500, 70000, 200000};
    ASSERT_TRUE(m.value()->forward(*st, ids, false, &logits[run]).ok());
  }
  for (float v : logits[0]) ASSERT_TRUE(std::isfinite(v));
  EXPECT_EQ(logits[0], logits[1]);
}

// ---- sessions ---------------------------------------------------------------------------------
// Sessions on the GPU behave as on the CPU: a fork is independent and continues the same state,
// save/load continues bit-identically, and a session saved on one device continues on the other
// (fp32 fixture, fp32 kernels: the same greedy tokens and logits within 1e-4).

struct TwoDevices {
  std::shared_ptr<Checkpoint> ck;
  std::unique_ptr<Backend> cpu, cuda;
  std::unique_ptr<Model> on_cpu, on_gpu;
  TwoDevices() {
    ck = Checkpoint::open(std::string(M1_SOURCE_DIR) + "/tests/fixtures/parity/gqa2_hd32/orig").value();
    cpu = make_cpu_backend();
    CudaOptions o;
    o.tensor_core_lightning = false;  // fp32 kernels: comparable with the CPU at 1e-4
    o.tensor_core_attention = false;
    cuda = std::move(make_cuda_backend(o).value());
    const ModelOptions mo{0, 256, 16, true};  // 16-token K/V pages: a 40-token prompt spans 3
    on_cpu = std::move(Model::create(ck, *cpu, mo).value());
    on_gpu = std::move(Model::create(ck, *cuda, mo).value());
  }
};

using m1::test::max_abs_diff;
using m1::test::random_tokens;

TEST(CudaSession, ForkIsIndependentAndSaveLoadContinuesExactly) {
  M1_SKIP_WITHOUT_GPU();
  TwoDevices d;
  const int V = int(d.on_gpu->config().vocab_size);
  Sampler greedy(SamplingParams{0.f});
  auto s = Session::create(*d.on_gpu).value();
  ASSERT_TRUE(s->append(random_tokens(40, V, 7)).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->decode(greedy, V).ok());
  auto f = s->fork().value();
  const auto a = random_tokens(5, V, 8), b = random_tokens(6, V, 9);
  ASSERT_TRUE(s->append(a).ok());
  ASSERT_TRUE(f->append(b).ok());
  auto fresh = Session::create(*d.on_gpu).value();
  std::vector<int32_t> fb = s->tokens();
  fb.resize(fb.size() - a.size());
  fb.insert(fb.end(), b.begin(), b.end());
  ASSERT_TRUE(fresh->append(fb).ok());
  EXPECT_EQ(f->tokens(), fb);
  ASSERT_EQ(f->logits().size(), fresh->logits().size());
  EXPECT_LT(max_abs_diff(f->logits(), fresh->logits()), 1e-4);  // the fork continued the same state
  EXPECT_GT(max_abs_diff(s->logits(), f->logits()), 1e-3);      // and apart from the original

  const fs::path p = fs::temp_directory_path() / "m1_test_cuda_session.m1s";
  ASSERT_TRUE(s->save(p).ok());
  auto l = Session::load(*d.on_gpu, p);
  ASSERT_TRUE(l.ok()) << l.error().message;
  auto& r = *l.value();
  EXPECT_EQ(r.tokens(), s->tokens());
  EXPECT_EQ(r.logits(), s->logits());
  for (int i = 0; i < 6; ++i) ASSERT_EQ(r.decode(greedy, V).value(), s->decode(greedy, V).value()) << "step " << i;
  EXPECT_EQ(r.logits(), s->logits());  // bit-identical: same state, same kernels
  fs::remove(p);
}

TEST(CudaSession, SavedOnOneDeviceContinuesOnTheOther) {
  M1_SKIP_WITHOUT_GPU();
  TwoDevices d;
  const int V = int(d.on_gpu->config().vocab_size);
  Sampler greedy(SamplingParams{0.f});
  for (int from_gpu = 0; from_gpu < 2; ++from_gpu) {
    Model& src = from_gpu ? *d.on_gpu : *d.on_cpu;
    Model& dst = from_gpu ? *d.on_cpu : *d.on_gpu;
    auto s = Session::create(src).value();
    ASSERT_TRUE(s->append(random_tokens(45, V, 11 + from_gpu)).ok());
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(s->decode(greedy, V).ok());
    const fs::path p = fs::temp_directory_path() / "m1_test_cuda_cross_device.m1s";
    ASSERT_TRUE(s->save(p).ok());
    auto l = Session::load(dst, p);
    ASSERT_TRUE(l.ok()) << (from_gpu ? "GPU -> CPU: " : "CPU -> GPU: ") << l.error().message;
    auto& r = *l.value();
    EXPECT_EQ(r.tokens(), s->tokens());
    EXPECT_EQ(r.logits(), s->logits());  // the file carries the last logits
    const auto more = random_tokens(7, V, 21);
    ASSERT_TRUE(s->append(more).ok());
    ASSERT_TRUE(r.append(more).ok());
    EXPECT_LT(max_abs_diff(r.logits(), s->logits()), 1e-4) << (from_gpu ? "GPU -> CPU" : "CPU -> GPU");
    for (int i = 0; i < 8; ++i)
      ASSERT_EQ(r.decode(greedy, V).value(), s->decode(greedy, V).value())
          << (from_gpu ? "GPU -> CPU" : "CPU -> GPU") << ", step " << i;
    std::printf("[session] %s: saved after %lld tokens, loaded, 7 appended + 8 greedy steps agree (logit diff %.3g)\n",
                from_gpu ? "GPU -> CPU" : "CPU -> GPU", (long long)s->length(), max_abs_diff(r.logits(), s->logits()));
    fs::remove(p);
  }
}

}  // namespace
