// The whole model on the CUDA backend: transformers' logits (tests/fixtures/parity, fp32
// checkpoints) within the CPU reference's tolerance, GPU vs CPU backend greedy tokens identical
// for 64 steps, and the tensor-core paths (lightning and attention prefill, bf16 operands) within
// bf16 tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/backend.h"
#include "engine/checkpoint.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/model.h"
#include "tests/engine/cuda_test_util.h"

using namespace m1::engine;

namespace {

const std::string kDir = std::string(M1_SOURCE_DIR) + "/tests/fixtures/parity/";
const char* kNames[] = {"gqa1_hd16", "hd128", "gqa2_hd32", "gqa4_hd64_l16"};

nlohmann::json load_ref(const std::string& name) {
  std::ifstream f(kDir + name + "/logits.json");
  EXPECT_TRUE(f.good()) << "missing fixture " << name;
  return nlohmann::json::parse(f);
}

// Max over logits of |ours - ref| / max(1, |ref|).
double worst_err(const std::vector<float>& ours, const nlohmann::json& ref) {
  const size_t V = ref[0].size();
  EXPECT_GE(ours.size(), ref.size() * V);
  double worst = 0;
  for (size_t r = 0; r < ref.size(); ++r)
    for (size_t v = 0; v < V; ++v) {
      const double b = ref[r][v].get<double>(), a = ours[r * V + v];
      worst = std::max(worst, std::isfinite(a) ? std::abs(a - b) / std::max(1.0, std::abs(b)) : 1e30);
    }
  return worst;
}

struct Loaded {
  std::shared_ptr<Checkpoint> ckpt;
  std::unique_ptr<Model> model;
};
Loaded open_model(Backend& be, const std::string& path) {
  Loaded l;
  auto ck = Checkpoint::open(path);
  EXPECT_TRUE(ck.ok()) << (ck.ok() ? "" : ck.error().message);
  if (!ck.ok()) return l;
  l.ckpt = ck.value();
  auto m = Model::create(l.ckpt, be);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  if (m.ok()) l.model = std::move(m.value());
  return l;
}

void check_fixture(const std::string& name, bool tensor_cores, double tol) {
  CudaOptions o;
  o.tensor_core_lightning = tensor_cores;
  o.tensor_core_attention = tensor_cores;  // prompts of >= 16 tokens: bf16 Q/K/V on tensor cores
  auto be = make_cuda_backend(o);
  ASSERT_TRUE(be.ok()) << be.error().message;
  Loaded L = open_model(*be.value(), kDir + name + "/orig");
  ASSERT_TRUE(L.model);
  const nlohmann::json ref = load_ref(name);
  const auto prompt = ref["prompt"].get<std::vector<int32_t>>();
  auto st = L.model->new_state().value();
  std::vector<float> logits;
  ASSERT_TRUE(L.model->forward(*st, prompt, true, &logits).ok());
  const double e1 = worst_err(logits, ref["prefill_logits"]);
  EXPECT_LE(e1, tol) << name << " prefill";
  std::vector<float> dec;
  for (int32_t t : ref["decode_tokens"].get<std::vector<int32_t>>()) {
    std::vector<float> one;
    ASSERT_TRUE(L.model->forward(*st, std::span<const int32_t>(&t, 1), false, &one).ok());
    dec.insert(dec.end(), one.begin(), one.end());
  }
  const double e2 = worst_err(dec, ref["decode_logits_full"]);
  EXPECT_LE(e2, tol) << name << " decode";
  std::printf("[parity] %s tensor_cores=%d: prefill worst rel %.3g, decode worst rel %.3g\n", name.c_str(),
              int(tensor_cores), e1, e2);
}

TEST(CudaParity, Fp32FixturesMatchTransformers) {
  M1_SKIP_WITHOUT_GPU();
  for (const char* n : kNames) check_fixture(n, false, 1e-4);
}

TEST(CudaParity, TensorCoreLightningWithinBf16Tolerance) {
  M1_SKIP_WITHOUT_GPU();
  check_fixture("hd128", true, 3e-2);
}

// GPU vs CPU backend on the same checkpoint: identical greedy tokens for 64 steps. With the fp32
// lightning path every logit agrees to 1e-4; with the tensor-core path (bf16 operands, used for
// head_dim 128 by default) to bf16 tolerance.
void greedy_vs_cpu(const char* name, bool tensor_cores, double tol) {
  auto cpu = make_cpu_backend();
  CudaOptions o;
  o.tensor_core_lightning = tensor_cores;
  o.tensor_core_attention = tensor_cores;  // prompts of >= 16 tokens: bf16 Q/K/V on tensor cores
  auto gpu = make_cuda_backend(o);
  ASSERT_TRUE(gpu.ok());
  Loaded A = open_model(*cpu, kDir + name + "/orig"), B = open_model(*gpu.value(), kDir + name + "/orig");
  ASSERT_TRUE(A.model && B.model);
  const auto prompt = load_ref(name)["prompt"].get<std::vector<int32_t>>();
  auto sa = A.model->new_state().value(), sb = B.model->new_state().value();
  std::vector<float> la, lb;
  ASSERT_TRUE(A.model->forward(*sa, prompt, false, &la).ok());
  ASSERT_TRUE(B.model->forward(*sb, prompt, false, &lb).ok());
  double worst = 0;
  for (int step = 0; step < 64; ++step) {
    for (size_t i = 0; i < la.size(); ++i)
      worst = std::max(worst, std::abs(double(la[i]) - lb[i]) / std::max(1.0, std::abs(double(la[i]))));
    const int32_t ta = int32_t(std::max_element(la.begin(), la.end()) - la.begin());
    const int32_t tb = int32_t(std::max_element(lb.begin(), lb.end()) - lb.begin());
    ASSERT_EQ(ta, tb) << name << ": greedy tokens differ at step " << step;
    ASSERT_TRUE(A.model->forward(*sa, std::span<const int32_t>(&ta, 1), false, &la).ok());
    ASSERT_TRUE(B.model->forward(*sb, std::span<const int32_t>(&tb, 1), false, &lb).ok());
  }
  std::printf("[parity] %s tensor_cores=%d: 64 greedy steps identical, worst logit rel diff GPU vs CPU %.3g\n", name,
              int(tensor_cores), worst);
  EXPECT_LE(worst, tol) << name;
}

TEST(CudaParity, GreedyTokensMatchCpuFor64Steps) {
  M1_SKIP_WITHOUT_GPU();
  for (const char* name : kNames) greedy_vs_cpu(name, false, 1e-4);
}

TEST(CudaParity, GreedyTokensMatchCpuTensorCoreLightning) {
  M1_SKIP_WITHOUT_GPU();
  greedy_vs_cpu("hd128", true, 3e-2);
}

// ---- bf16, a wide M1-shaped random model, against transformers' bf16 run ----------------------
// scripts/make_bf16_topk_fixture.py (run on the GPU machine by scripts/gpu_engine_check.sh, which
// sets M1_HF_BF16_FIXTURE to its folder) writes the model (64 heads x 128, GQA 8, 8 experts, bf16)
// and transformers' top-5 per position, computed in bf16 and in fp32 over the same weights.

const char* hf_bf16_dir() { return std::getenv("M1_HF_BF16_FIXTURE"); }

// Logits at every position of `tokens`: one prefill of the first n_prompt tokens (all rows), then
// the rest fed one token at a time (the decode path), teacher-forced.
std::vector<float> logits_at_every_position(Model& m, const std::vector<int32_t>& tokens, size_t n_prompt) {
  auto st = m.new_state().value();
  std::vector<float> all;
  EXPECT_TRUE(m.forward(*st, std::span<const int32_t>(tokens.data(), n_prompt), true, &all).ok());
  for (size_t i = n_prompt; i < tokens.size(); ++i) {
    std::vector<float> one;
    EXPECT_TRUE(m.forward(*st, std::span<const int32_t>(&tokens[i], 1), false, &one).ok());
    all.insert(all.end(), one.begin(), one.end());
  }
  return all;
}

std::vector<int32_t> top5_of(const float* row, size_t V) {
  std::vector<int32_t> idx(V);
  for (size_t v = 0; v < V; ++v) idx[v] = int32_t(v);
  std::partial_sort(idx.begin(), idx.begin() + 5, idx.end(), [&](int32_t a, int32_t b) {
    return row[a] > row[b] || (row[a] == row[b] && a < b);
  });
  idx.resize(5);
  return idx;
}

struct Agreement {
  size_t positions = 0, top1 = 0, overlap = 0;  // overlap: shared members of the two top-5 sets
  double worst_gap_of_a_miss = 0;               // the reference's top-1 minus top-2 logit at a miss
  double top1_rate() const { return positions ? double(top1) / positions : 0; }
  double top5_overlap() const { return positions ? double(overlap) / (5.0 * positions) : 0; }
};

void count(Agreement& a, const std::vector<float>& ours, size_t V, const nlohmann::json& ref) {
  const auto& ids = ref["ids"];
  const auto& vals = ref["logits"];
  for (size_t p = 0; p < ids.size(); ++p) {
    const auto mine = top5_of(ours.data() + p * V, V);
    const auto theirs = ids[p].get<std::vector<int32_t>>();
    ++a.positions;
    if (mine[0] == theirs[0]) {
      ++a.top1;
    } else {
      a.worst_gap_of_a_miss =
          std::max(a.worst_gap_of_a_miss, vals[p][0].get<double>() - vals[p][1].get<double>());
    }
    for (int32_t t : mine) a.overlap += size_t(std::count(theirs.begin(), theirs.end(), t));
  }
}

TEST(CudaParity, Bf16WideModelTop1MatchesTransformers) {
  M1_SKIP_WITHOUT_GPU();
  if (!hf_bf16_dir()) GTEST_SKIP() << "M1_HF_BF16_FIXTURE is not set (scripts/gpu_engine_check.sh makes it)";
  const std::string dir = hf_bf16_dir();
  std::ifstream f(dir + "/topk.json");
  ASSERT_TRUE(f.good()) << "missing " << dir << "/topk.json";
  const auto ref = nlohmann::json::parse(f);
  auto be = make_cuda_backend(CudaOptions{});  // the defaults users get: tensor cores, bf16 weights
  ASSERT_TRUE(be.ok()) << be.error().message;
  Loaded L = open_model(*be.value(), dir + "/orig");
  ASSERT_TRUE(L.model);
  const size_t V = size_t(L.model->config().vocab_size);
  Agreement vs_bf16, vs_fp32;
  for (const auto& seq : ref["sequences"]) {
    const auto tokens = seq["tokens"].get<std::vector<int32_t>>();
    const auto logits = logits_at_every_position(*L.model, tokens, seq["n_prompt"].get<size_t>());
    ASSERT_EQ(logits.size(), tokens.size() * V);
    count(vs_bf16, logits, V, seq["hf_bf16"]);
    count(vs_fp32, logits, V, seq["hf_fp32"]);
  }
  std::printf("[parity] bf16 wide model (%s, %zu positions): engine vs transformers bf16: top-1 %.2f%%, top-5 "
              "overlap %.2f%% (worst reference gap at a miss %.3g); vs transformers fp32: top-1 %.2f%%, top-5 "
              "overlap %.2f%%; transformers bf16 vs its fp32: top-1 %.2f%%\n",
              ref["device"].get<std::string>().c_str(), vs_bf16.positions, 100 * vs_bf16.top1_rate(),
              100 * vs_bf16.top5_overlap(), vs_bf16.worst_gap_of_a_miss, 100 * vs_fp32.top1_rate(),
              100 * vs_fp32.top5_overlap(), 100 * ref["hf_bf16_vs_fp32_top1"].get<double>());
  // Against transformers on the same bf16 weights computing in fp32 (the precise answer): >= 99%.
  EXPECT_GE(vs_fp32.top1_rate(), 0.99);
  EXPECT_GE(vs_fp32.top5_overlap(), 0.98);
  // transformers computing in bf16 rounds every activation; on this random model (near-uniform
  // logits, std 0.02 weights) that alone moves its own top-1 away from the fp32 answer at ~3% of
  // positions (first H200 run: 96.74%), so no implementation more precise than it can agree with
  // it at 99%. What must hold: we sit as close to it as it sits to the exact answer.
  const double hf_self = ref["hf_bf16_vs_fp32_top1"].get<double>();
  EXPECT_GE(vs_bf16.top1_rate(), hf_self - 0.01);
  EXPECT_GE(vs_bf16.top5_overlap(), 0.95);
}

// The same wide model on the CPU backend (the reference: fp32 activations) and the GPU: logits
// and top-1 within the distance bf16 arithmetic puts transformers from its own fp32 answer.
TEST(CudaParity, Bf16WideModelGpuMatchesCpu) {
  M1_SKIP_WITHOUT_GPU();
  if (!hf_bf16_dir()) GTEST_SKIP() << "M1_HF_BF16_FIXTURE is not set (scripts/gpu_engine_check.sh makes it)";
  const std::string dir = hf_bf16_dir();
  std::ifstream f(dir + "/topk.json");
  ASSERT_TRUE(f.good());
  const auto ref = nlohmann::json::parse(f);
  const auto& seq = ref["sequences"][0];
  const auto tokens = seq["tokens"].get<std::vector<int32_t>>();
  auto cpu = make_cpu_backend();
  auto gpu = make_cuda_backend(CudaOptions{});
  ASSERT_TRUE(gpu.ok());
  Loaded A = open_model(*cpu, dir + "/orig"), B = open_model(*gpu.value(), dir + "/orig");
  ASSERT_TRUE(A.model && B.model);
  const size_t V = size_t(A.model->config().vocab_size), n_prompt = seq["n_prompt"].get<size_t>();
  const auto lc = logits_at_every_position(*A.model, tokens, n_prompt);
  const auto lg = logits_at_every_position(*B.model, tokens, n_prompt);
  ASSERT_EQ(lc.size(), lg.size());
  double worst = 0, worst_rms = 0;
  size_t same_top1 = 0;
  for (size_t p = 0; p < tokens.size(); ++p) {
    const float *c = lc.data() + p * V, *g = lg.data() + p * V;
    double num = 0, den = 0;
    for (size_t v = 0; v < V; ++v) {
      worst = std::max(worst, std::isfinite(g[v]) ? std::abs(double(g[v]) - c[v]) / std::max(1.0, std::abs(double(c[v])))
                                                  : 1e30);
      num += (double(g[v]) - c[v]) * (double(g[v]) - c[v]);
      den += double(c[v]) * c[v];
    }
    worst_rms = std::max(worst_rms, std::sqrt(num / std::max(den, 1e-300)));
    same_top1 += std::max_element(c, c + V) - c == std::max_element(g, g + V) - g;
  }
  std::printf("[parity] bf16 wide model, GPU vs CPU over %zu positions (%zu prefill + %zu decode): worst logit rel "
              "diff %.3g, worst per-position rms rel %.3g, same top-1 %.2f%%\n",
              tokens.size(), n_prompt, tokens.size() - n_prompt, worst, worst_rms,
              100.0 * same_top1 / tokens.size());
  // bf16 tolerance, measured rather than guessed: the GPU (bf16 operands on tensor cores) may sit
  // as far from the CPU (fp32 activations) as transformers' bf16 run sits from its fp32 run.
  const double hf_rms = ref["hf_bf16_vs_fp32_worst_rms_rel"].get<double>();
  const double hf_worst = ref["hf_bf16_vs_fp32_worst_rel"].get<double>();
  const double hf_top1 = ref["hf_bf16_vs_fp32_top1"].get<double>();
  std::printf("[parity] transformers bf16 vs its fp32 on the same model: worst logit rel %.3g, worst rms rel %.3g, "
              "top-1 %.2f%%\n",
              hf_worst, hf_rms, 100 * hf_top1);
  EXPECT_LE(worst_rms, hf_rms);
  EXPECT_LE(worst, hf_worst);
  EXPECT_GE(double(same_top1) / tokens.size(), hf_top1 - 0.01);
}

TEST(CudaParity, NoDeviceIsAClearError) {
  if (m1::cuda::device_available()) GTEST_SKIP() << "a device is present";
  auto be = make_cuda_backend(CudaOptions{});
  ASSERT_FALSE(be.ok());
  EXPECT_NE(be.error().message.find("no CUDA device"), std::string::npos);
}

}  // namespace
