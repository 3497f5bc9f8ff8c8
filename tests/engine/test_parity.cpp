// Parity with transformers' MiniMaxForCausalLM (the reference no one here wrote): the fixtures in
// tests/fixtures/parity/ were made by scripts/make_parity_fixtures.py (transformers 5.17, torch 2.11,
// fp32 on CPU). Every logit must satisfy |ours - ref| <= 1e-4 * max(1, |ref|): relative for logits
// above 1 in magnitude, absolute 1e-4 below (relative error of a logit near zero is meaningless).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/backend.h"
#include "engine/checkpoint.h"
#include "engine/model.h"

using namespace m1::engine;

namespace {

const std::string kDir = std::string(M1_SOURCE_DIR) + "/tests/fixtures/parity/";
const char* kNames[] = {"gqa1_hd16", "hd128", "gqa2_hd32", "gqa4_hd64_l16"};

nlohmann::json load_ref(const std::string& name) {
  std::ifstream f(kDir + name + "/logits.json");
  EXPECT_TRUE(f.good()) << "missing fixture " << name;
  return nlohmann::json::parse(f);
}

// Compares rows of `ours` (flat [rows][V]) with ref rows; reports the first mismatches.
void expect_close(const std::vector<float>& ours, const nlohmann::json& ref, const std::string& what,
                  size_t first_row = 0) {
  const size_t V = ref[0].size();
  ASSERT_GE(ours.size(), (first_row + ref.size()) * V) << what;
  int bad = 0;
  double worst = 0;
  for (size_t r = 0; r < ref.size(); ++r)
    for (size_t v = 0; v < V; ++v) {
      const double b = ref[r][v].get<double>(), a = ours[(first_row + r) * V + v];
      const double err = std::abs(a - b) / std::max(1.0, std::abs(b));
      worst = std::max(worst, err);
      if (err > 1e-4 && bad++ < 5)
        ADD_FAILURE() << what << ": row " << r << " id " << v << " ours " << a << " ref " << b;
    }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " logits off, worst rel " << worst;
  ::testing::Test::RecordProperty(what, std::to_string(worst));
}

struct Loaded {
  std::shared_ptr<Checkpoint> ckpt;
  std::unique_ptr<Model> model;
};

Loaded open_model(Backend& be, const std::string& path, ModelOptions opt = {}) {
  Loaded l;
  auto ck = Checkpoint::open(path);
  EXPECT_TRUE(ck.ok()) << (ck.ok() ? "" : ck.error().message);
  if (!ck.ok()) return l;
  l.ckpt = ck.value();
  auto m = Model::create(l.ckpt, be, opt);
  EXPECT_TRUE(m.ok()) << (m.ok() ? "" : m.error().message);
  if (m.ok()) l.model = std::move(m.value());
  return l;
}

class Parity : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(Parity, PrefillDecodeAndSplitMatchTransformers) {
  const std::string name = std::get<0>(GetParam()), fmt = std::get<1>(GetParam());
  auto be = make_cpu_backend();
  Loaded L = open_model(*be, kDir + name + "/" + fmt);
  ASSERT_TRUE(L.model);
  const nlohmann::json ref = load_ref(name);
  const std::vector<int32_t> prompt = ref["prompt"].get<std::vector<int32_t>>();
  ASSERT_LT(ref["block_size"].get<int64_t>(), int64_t(prompt.size())) << "fixture must span several blocks";
  EXPECT_EQ(L.model->options().block_size, ref["block_size"].get<int64_t>());

  // One prefill, every position's logits.
  auto st = L.model->new_state().value();
  std::vector<float> logits;
  ASSERT_TRUE(L.model->forward(*st, prompt, true, &logits).ok());
  expect_close(logits, ref["prefill_logits"], name + "/" + fmt + " prefill");

  // Greedy decode steps, one token at a time (the recurrent lightning path), vs the recomputation.
  const auto toks = ref["decode_tokens"].get<std::vector<int32_t>>();
  std::vector<float> dec;
  for (int32_t t : toks) {
    std::vector<float> one;
    ASSERT_TRUE(L.model->forward(*st, std::span<const int32_t>(&t, 1), false, &one).ok());
    dec.insert(dec.end(), one.begin(), one.end());
  }
  expect_close(dec, ref["decode_logits_full"], name + "/" + fmt + " decode");
  if (!ref["decode_logits"].is_null()) expect_close(dec, ref["decode_logits"], name + "/" + fmt + " decode(cache)");

  // The prompt in two appends continues the same state: same logits as one prefill.
  const size_t split = ref["split"].get<size_t>();
  auto st2 = L.model->new_state().value();
  std::vector<float> la, lb;
  ASSERT_TRUE(L.model->forward(*st2, std::span(prompt).first(split), true, &la).ok());
  ASSERT_TRUE(L.model->forward(*st2, std::span(prompt).subspan(split), true, &lb).ok());
  la.insert(la.end(), lb.begin(), lb.end());
  expect_close(la, ref["prefill_logits"], name + "/" + fmt + " two appends");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Parity,
                         ::testing::Combine(::testing::ValuesIn(kNames), ::testing::Values("hf", "orig")),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                         });

// Block size and prefill chunking change rounding only.
TEST(Parity, BlockSizeAndChunkingDoNotChangeResults) {
  auto be = make_cpu_backend();
  const nlohmann::json ref = load_ref("gqa2_hd32");
  const auto prompt = ref["prompt"].get<std::vector<int32_t>>();
  for (auto [block, chunk] : {std::pair<int64_t, int64_t>{5, 256}, {256, 256}, {8, 7}, {3, 1}}) {
    Loaded L = open_model(*be, kDir + "gqa2_hd32/hf", ModelOptions{block, chunk, 16});
    ASSERT_TRUE(L.model);
    auto st = L.model->new_state().value();
    std::vector<float> logits;
    ASSERT_TRUE(L.model->forward(*st, prompt, true, &logits).ok());
    expect_close(logits, ref["prefill_logits"],
                 "block " + std::to_string(block) + " chunk " + std::to_string(chunk));
  }
}

}  // namespace
