// The shipped default model (models/m1-small, issue 7) against transformers: the reference logits
// in tests/fixtures/m1-small/parity.json were computed by train/train.py on the GPU machine with
// transformers' MiniMaxForCausalLM in fp32 over the exported bf16 weights, on a training prefix of
// 384 tokens, plus 8 greedy steps by full recompute. Our engine reads the exported original-format
// folder (bf16 weights, fp32 compute), so every argmax and greedy token must agree.
// Logit values: unlike the random parity fixtures (routers made decisive on purpose), a trained
// router has near-ties between experts; a rounding difference that flips one top-2 choice early in
// the prompt changes that token's hidden state, and the lightning state carries the change to every
// later position. Measured: 0.4-1.7% max relative error per row, one row at 25%. So rows are held to
// a loose bound and their mean to a tighter one; the argmax checks (392 positions) carry the weight.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "engine/engine.h"

using namespace m1::engine;
namespace fs = std::filesystem;

namespace {

const fs::path kModel = fs::path(M1_SOURCE_DIR) / "models/m1-small";
const fs::path kRef = fs::path(M1_SOURCE_DIR) / "tests/fixtures/m1-small/parity.json";

int argmax(const float* p, int64_t n) {
  int best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (p[i] > p[best]) best = static_cast<int>(i);
  return best;
}

double max_rel(const float* a, const nlohmann::json& b, int64_t n) {
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    double r = b[i].get<double>();
    worst = std::max(worst, std::abs(a[i] - r) / std::max(1.0, std::abs(r)));
  }
  return worst;
}

TEST(ParityM1Small, MatchesTransformers) {
  ASSERT_TRUE(fs::exists(kModel / "config.json")) << kModel << " missing";
  nlohmann::json ref = nlohmann::json::parse(std::ifstream(kRef));
  auto e = Engine::open(kModel);
  ASSERT_TRUE(e.ok()) << e.error().message;
  Engine& eng = *e.value();
  const int64_t V = eng.config().vocab_size;
  std::vector<int32_t> prompt = ref["prompt"].get<std::vector<int32_t>>();
  auto s = eng.new_session().value();
  std::vector<float> all;
  ASSERT_TRUE(s->append(prompt, &all).ok());
  ASSERT_EQ(all.size(), prompt.size() * size_t(V));
  auto want = ref["argmax"].get<std::vector<int>>();
  int mismatches = 0;
  for (size_t t = 0; t < prompt.size(); ++t) mismatches += argmax(&all[t * V], V) != want[t];
  EXPECT_EQ(mismatches, 0) << "argmax differs at " << mismatches << " of " << prompt.size() << " positions";
  const auto& last = ref["last_logits"];
  double sum_rel = 0;
  int rows = 0;
  for (size_t k = 0; k < last.size(); ++k) {
    size_t t = prompt.size() - last.size() + k;
    double r = max_rel(&all[t * V], last[k], V);
    EXPECT_LT(r, 0.5) << "position " << t;
    sum_rel += r, ++rows;
  }
  // Greedy continuation, one token at a time through the session's decode path.
  auto greedy = ref["greedy"].get<std::vector<int32_t>>();
  const auto& gl = ref["greedy_logits"];
  // greedy[i] is the argmax after the prompt and greedy[0..i); greedy_logits[i] are the logits
  // after greedy[i] has been fed.
  for (size_t i = 0; i < greedy.size(); ++i) {
    ASSERT_EQ(s->logits().size(), size_t(V));
    EXPECT_EQ(argmax(s->logits().data(), V), greedy[i]) << "greedy step " << i;
    std::vector<int32_t> one{greedy[i]};
    ASSERT_TRUE(s->append(one).ok());
    double r = max_rel(s->logits().data(), gl[i], V);
    EXPECT_LT(r, 0.5) << "greedy step " << i;
    sum_rel += r, ++rows;
  }
  EXPECT_LT(sum_rel / rows, 0.05) << "mean of the rows' max relative errors";
}

}  // namespace
