// Sampler and generate(): greedy / temperature / top-k / top-p / min-p / repetition penalty /
// masking / seeds, the cuts on a large vocabulary against a full sort, the CPU backend's in-place
// sampler against the host Sampler, and the decode loop's streaming (deltas concatenate to the
// text, never split UTF-8), stop strings (never streamed), stop ids and max tokens.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

#include "engine/backend.h"
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

// pick_token sorts candidates only as far as its cuts look; a plain full sort with the same cuts,
// written out here, must give the same id for every draw, including flat distributions whose
// top-p prefix runs past the first sorted blocks (256, 2048, ...).
int32_t full_sort_pick(std::vector<float> l, const SamplingParams& p, double u) {
  const int64_t V = int64_t(l.size());
  const float mx = *std::max_element(l.begin(), l.end());
  double sum = 0;
  for (float& w : l) sum += (w = float(std::exp(double(w - mx) / p.temperature)));
  for (float& w : l) w = float(w / sum);
  std::vector<int32_t> idx(static_cast<size_t>(V));
  std::iota(idx.begin(), idx.end(), 0);
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return l[size_t(a)] > l[size_t(b)] || (l[size_t(a)] == l[size_t(b)] && a < b); });
  int64_t keep = p.top_k > 0 ? std::min<int64_t>(V, p.top_k) : V;
  if (p.top_p < 1.0f) {
    double cum = 0;
    int64_t n = 0;
    while (n < keep && (cum += l[size_t(idx[size_t(n++)])]) < p.top_p) {}
    keep = std::max<int64_t>(1, n);
  }
  if (p.min_p > 0.0f) {
    int64_t n = 1;
    while (n < keep && l[size_t(idx[size_t(n)])] >= p.min_p * l[size_t(idx[0])]) ++n;
    keep = n;
  }
  double mass = 0;
  for (int64_t i = 0; i < keep; ++i) mass += l[size_t(idx[size_t(i)])];
  double r = u * mass;
  for (int64_t i = 0; i < keep; ++i)
    if ((r -= l[size_t(idx[size_t(i)])]) < 0) return idx[size_t(i)];
  return idx[size_t(keep - 1)];
}

TEST(Sampler, CutsOnALargeVocabularyEqualAFullSort) {
  std::mt19937 g(7);
  for (float spread : {8.f, 0.5f, 0.02f}) {  // peaked to nearly flat
    std::normal_distribution<float> d(0.f, spread);
    std::vector<float> l(50000);
    for (auto& v : l) v = d(g);
    l[123] = l[4567];  // a tie
    for (SamplingParams p : {SamplingParams{1.f, 0, 0.95f}, SamplingParams{0.7f, 0, 0.5f}, SamplingParams{1.f, 3000, 1.f},
                             SamplingParams{1.f, 0, 1.f, 0.05f}, SamplingParams{1.3f, 500, 0.9f, 0.01f}})
      for (double u : {0.0, 0.3, 0.77, 0.999}) {
        std::vector<float> work = l;
        std::vector<int32_t> idx;
        EXPECT_EQ(pick_token(work, idx, p, u), full_sort_pick(l, p, u))
            << "spread " << spread << " T " << p.temperature << " k " << p.top_k << " p " << p.top_p << " min_p "
            << p.min_p << " u " << u;
      }
  }
}

// The CPU backend samples in place (Session::decode's device road); it must pick what the host
// Sampler picks from the same row with the same seed: greedy (ties to the lower id across the
// backend's chunks), masked holes, a usable vocabulary below the row's length, and draws.
TEST(Sampler, CpuBackendSamplesLikeTheHostSampler) {
  auto be = make_cpu_backend();
  ASSERT_TRUE(be->can_sample());
  const int64_t n = 200064;
  std::mt19937 g(11);
  std::normal_distribution<float> d(0.f, 2.f);
  std::vector<float> l(static_cast<size_t>(n));
  for (auto& v : l) v = d(g);
  l[150000] = l[40000] = 30.f;  // equal maxima in different chunks
  std::vector<uint8_t> mask(200026, 1);
  for (size_t i = 0; i < mask.size(); i += 7) mask[i] = 0;
  for (bool masked : {false, true})
    for (float temp : {0.f, 0.8f, 1.f})
      for (int64_t usable : {n, int64_t(150000), int64_t(100)}) {
        SamplingParams sp{temp, temp == 0.8f ? 40 : 0, temp == 1.f ? 0.95f : 1.f};
        sp.seed = 5;
        Sampler host(sp), dev(sp);
        if (masked) host.set_mask(mask), dev.set_mask(mask);
        for (int draw = 0; draw < 8; ++draw) {
          DeviceSampling p;
          p.vocab = std::min(n, usable);
          p.mask = dev.mask().empty() ? nullptr : dev.mask().data();
          p.mask_len = int64_t(dev.mask().size());
          p.temperature = sp.temperature, p.top_k = sp.top_k, p.top_p = sp.top_p, p.min_p = sp.min_p;
          p.u = sp.temperature == 0.0f ? 0.0 : dev.uniform();
          auto id = be->sample(l.data(), n, p);
          ASSERT_TRUE(id.ok());
          EXPECT_EQ(*id, host.sample(l, usable, {})) << "masked " << masked << " T " << temp << " usable " << usable;
          l[size_t(draw * 997)] += 1.f;  // a different row next time
        }
      }
  // Rows no sane model writes, where greedy must still agree: NaN at id 0 (max_element keeps id
  // 0), NaN elsewhere (never taken), every id masked (id 0).
  Sampler greedy(SamplingParams{0.f});
  DeviceSampling q;
  q.vocab = n, q.temperature = 0.f;
  l[0] = NAN;
  EXPECT_EQ(be->sample(l.data(), n, q).value(), greedy.sample(l, n, {}));
  l[0] = 0.f, l[40000] = NAN;
  EXPECT_EQ(be->sample(l.data(), n, q).value(), greedy.sample(l, n, {}));
  std::vector<uint8_t> none(static_cast<size_t>(n), 0);
  greedy.set_mask(none);
  q.mask = none.data(), q.mask_len = n;
  EXPECT_EQ(be->sample(l.data(), n, q).value(), greedy.sample(l, n, {}));
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
