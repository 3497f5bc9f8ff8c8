// Sampler and generate(): greedy / temperature / top-k / top-p / min-p / repetition penalty /
// masking / seeds, and the decode loop's streaming (deltas concatenate to the text, never split
// UTF-8), stop strings (never streamed), stop ids and max tokens.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "engine/checkpoint.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

using namespace m1::engine;

namespace {

std::vector<float> logp(std::vector<double> p) {
  std::vector<float> l;
  for (double v : p) l.push_back(float(std::log(v)));
  return l;
}

std::map<int32_t, double> freq(SamplingParams sp, const std::vector<float>& l, int n = 20000, int64_t usable = 1 << 30) {
  Sampler s(sp);
  std::map<int32_t, double> f;
  for (int i = 0; i < n; ++i) f[s.sample(l, usable, {})] += 1.0 / n;
  return f;
}

TEST(Sampler, GreedyIsArgmaxAndMaskedIdsAreNeverChosen) {
  const std::vector<float> l = {0.1f, 3.f, 0.5f, 9.f};
  Sampler g(SamplingParams{0.f});
  EXPECT_EQ(g.sample(l, 4, {}), 3);
  EXPECT_EQ(g.sample(l, 3, {}), 1);  // id 3 masked (beyond the usable vocabulary)
  auto f = freq(SamplingParams{5.f}, l, 5000, 3);
  EXPECT_EQ(f.count(3), 0u);
  g.set_mask({1, 0, 1, 0});  // ids 1 and 3 undefined (say, holes in a tokenizer's vocabulary)
  EXPECT_EQ(g.sample(l, 4, {}), 2);
}

TEST(Sampler, TemperatureOneFollowsTheDistribution) {
  auto f = freq(SamplingParams{1.f}, logp({0.5, 0.3, 0.2}));
  EXPECT_NEAR(f[0], 0.5, 0.02);
  EXPECT_NEAR(f[1], 0.3, 0.02);
  EXPECT_NEAR(f[2], 0.2, 0.02);
  // Temperature 0.5 squares the odds: 25:9:4.
  auto g = freq(SamplingParams{0.5f}, logp({0.5, 0.3, 0.2}));
  EXPECT_NEAR(g[0], 25.0 / 38, 0.02);
}

TEST(Sampler, TopKTopPMinPCut) {
  const auto l = logp({0.4, 0.3, 0.2, 0.1});
  SamplingParams k{1.f};
  k.top_k = 2;
  auto f = freq(k, l);
  EXPECT_EQ(f.count(2) + f.count(3), 0u);
  EXPECT_NEAR(f[0], 0.4 / 0.7, 0.02);
  SamplingParams p{1.f};
  p.top_p = 0.65f;  // 0.4 + 0.3 reaches it
  f = freq(p, l);
  EXPECT_EQ(f.count(2) + f.count(3), 0u);
  EXPECT_GT(f[1], 0.3);
  SamplingParams m{1.f};
  m.min_p = 0.5f;  // keeps p >= 0.2
  f = freq(m, l);
  EXPECT_EQ(f.count(3), 0u);
  EXPECT_GT(f[2], 0.15);
}

TEST(Sampler, RepetitionPenaltyAndSeeds) {
  const std::vector<float> l = {2.0f, 1.9f, -1.f};
  SamplingParams rp{0.f};
  rp.repetition_penalty = 1.5f;
  Sampler s(rp);
  const std::vector<int32_t> hist = {0, 0};
  EXPECT_EQ(s.sample(l, 3, hist), 1);  // 2.0 / 1.5 < 1.9
  SamplingParams a{1.f};
  a.seed = 42;
  Sampler s1(a), s2(a);
  a.seed = 43;
  Sampler s3(a);
  const auto u = logp({0.25, 0.25, 0.25, 0.25});
  std::vector<int32_t> x, y, z;
  for (int i = 0; i < 64; ++i) x.push_back(s1.sample(u, 4, {})), y.push_back(s2.sample(u, 4, {})), z.push_back(s3.sample(u, 4, {}));
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
}

TEST(Sampler, ValidateNamesTheParameter) {
  SamplingParams p;
  p.top_p = 0;
  EXPECT_NE(p.validate().error().message.find("top-p"), std::string::npos);
  p = {};
  p.temperature = -1;
  EXPECT_NE(p.validate().error().message.find("temperature"), std::string::npos);
  EXPECT_TRUE(SamplingParams{}.validate().ok());
}

struct GenEnv {
  std::unique_ptr<Backend> be = make_cpu_backend();
  std::shared_ptr<Checkpoint> ck = Checkpoint::open(std::string(M1_SOURCE_DIR) + "/tests/fixtures/parity/gqa1_hd16/hf").value();
  std::unique_ptr<Model> model = std::move(Model::create(ck, *be).value());
  Tokenizer tok = Tokenizer::from_json(default_tokenizer_json(), "default").value();
  std::unique_ptr<Session> session() {
    auto s = Session::create(*model).value();
    std::vector<int32_t> prompt = {72, 101, 108, 108, 111, 44, 32, 119};
    EXPECT_TRUE(s->append(prompt).ok());
    return s;
  }
};

TEST(Generate, StreamsDeltasThatConcatenateToTheTextAndStopAtStopStrings) {
  GenEnv e;
  GenerateOptions o;
  o.sampling.temperature = 0.9f;
  o.sampling.seed = 7;
  o.max_tokens = 40;
  std::string streamed;
  auto s = e.session();
  auto r = generate(*s, e.tok, o, [&](std::string_view d) { streamed += d; return true; });
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->tokens.size(), 40u);
  EXPECT_EQ(r->reason, StopReason::MaxTokens);
  EXPECT_EQ(streamed, r->text);
  EXPECT_EQ(r->text, e.tok.decode(r->tokens));
  EXPECT_EQ(s->length(), 48);
  ASSERT_GE(r->text.size(), 12u);
  // Same seed again, with a stop string taken from the middle of that text.
  const std::string stop = r->text.substr(r->text.size() / 2, 3);
  const size_t cut = r->text.find(stop);
  o.stop_strings = {stop};
  std::string streamed2;
  auto s2 = e.session();
  auto r2 = generate(*s2, e.tok, o, [&](std::string_view d) {
    streamed2 += d;
    EXPECT_EQ(std::string(d).find(stop), std::string::npos);
    return true;
  });
  ASSERT_TRUE(r2.ok());
  EXPECT_EQ(r2->reason, StopReason::StopString);
  EXPECT_EQ(r2->text, r->text.substr(0, cut));
  EXPECT_EQ(streamed2, r2->text);
  // A stop id ends generation right after it is sampled.
  GenerateOptions g;
  g.sampling.temperature = 0;
  g.max_tokens = 10;
  auto s3 = e.session();
  auto r3 = generate(*s3, e.tok, g);
  ASSERT_TRUE(r3.ok());
  g.stop_ids = {r3->tokens[3]};
  auto s4 = e.session();
  auto r4 = generate(*s4, e.tok, g);
  ASSERT_TRUE(r4.ok());
  EXPECT_EQ(r4->reason, StopReason::StopToken);
  EXPECT_LE(r4->tokens.size(), 4u);
  EXPECT_EQ(r4->tokens.back(), r3->tokens[3]);
}

}  // namespace
