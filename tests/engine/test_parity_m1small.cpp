// The shipped default model (models/m1-small, issue 7) against transformers: the reference logits
// in tests/fixtures/m1-small/parity.json were computed by train/train.py on the GPU machine with
// transformers' MiniMaxForCausalLM in fp32 over the exported bf16 weights, on a training prefix of
// 384 tokens, plus 8 greedy steps by full recompute. Our engine reads the exported original-format
// folder (bf16 weights, fp32 compute), so every argmax and greedy token must agree and the logits
// must be close (both sides compute in fp32; only summation order differs).
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
  for (size_t k = 0; k < last.size(); ++k) {
    size_t t = prompt.size() - last.size() + k;
    EXPECT_LT(max_rel(&all[t * V], last[k], V), 1e-3) << "position " << t;
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
    EXPECT_LT(max_rel(s->logits().data(), gl[i], V), 1e-3) << "greedy step " << i;
  }
}

}  // namespace
