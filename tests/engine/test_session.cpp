// Sessions: any split of appends gives one prefill's logits; fork is independent; save/load
// continues with identical logits; bad files (corrupt, truncated, other model, not a session) and
// bad input (context overflow, empty append, ids out of range) are refused with clear errors.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "engine/checkpoint.h"
#include "engine/model.h"
#include "engine/session.h"
#include "tests/engine/test_util.h"

using namespace m1::engine;
namespace fs = std::filesystem;

namespace {

const std::string kFix = std::string(M1_SOURCE_DIR) + "/tests/fixtures/parity/";

struct Env {
  std::unique_ptr<Backend> be = make_cpu_backend();
  std::shared_ptr<Checkpoint> ck;
  std::unique_ptr<Model> model;
  explicit Env(const std::string& name = "gqa2_hd32/hf", ModelOptions o = {0, 256, 16}) {
    ck = Checkpoint::open(kFix + name).value();
    model = std::move(Model::create(ck, *be, o).value());
  }
};

std::vector<int32_t> tokens(int n, int vocab, uint32_t seed) { return m1::test::random_tokens(n, vocab, seed); }

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  return m1::test::max_abs_diff(a, b);
}

fs::path tmpfile(const std::string& n) { return fs::temp_directory_path() / ("m1_test_session_" + n); }

TEST(Session, AnySplitOfAppendsGivesOnePrefillsLogits) {
  Env e;
  const auto prompt = tokens(70, 384, 1);
  auto one = Session::create(*e.model).value();
  std::vector<float> ref;
  ASSERT_TRUE(one->append(prompt, &ref).ok());
  const size_t V = 384;
  for (std::vector<size_t> cuts : {std::vector<size_t>{1, 2, 3}, {17, 18, 40}, {33}, {5, 21, 22, 23, 69}}) {
    auto s = Session::create(*e.model).value();
    std::vector<float> all;
    size_t at = 0;
    cuts.push_back(prompt.size());
    for (size_t c : cuts) {
      std::vector<float> part;
      ASSERT_TRUE(s->append(std::span(prompt).subspan(at, c - at), &part).ok());
      all.insert(all.end(), part.begin(), part.end());
      at = c;
    }
    EXPECT_LT(max_diff(all, ref), 2e-5) << "cuts starting " << cuts[0];
    EXPECT_EQ(s->length(), int64_t(prompt.size()));
    EXPECT_EQ(s->logits(), std::vector<float>(all.end() - V, all.end()));
  }
}

TEST(Session, ForkIsIndependentAndContinuesTheSameState) {
  Env e;
  const auto prompt = tokens(30, 384, 2), a = tokens(5, 384, 3), b = tokens(7, 384, 4);
  auto s = Session::create(*e.model).value();
  ASSERT_TRUE(s->append(prompt).ok());
  auto f = s->fork().value();
  ASSERT_TRUE(s->append(a).ok());
  ASSERT_TRUE(f->append(b).ok());
  auto fresh = Session::create(*e.model).value();
  std::vector<int32_t> pb = prompt;
  pb.insert(pb.end(), b.begin(), b.end());
  ASSERT_TRUE(fresh->append(pb).ok());
  EXPECT_LT(max_diff(f->logits(), fresh->logits()), 2e-5);
  EXPECT_EQ(f->tokens(), pb);
  EXPECT_EQ(s->length(), 35);
  EXPECT_GT(max_diff(s->logits(), f->logits()), 1e-3);  // different continuations really differ
}

TEST(Session, SaveLoadContinuesWithIdenticalLogits) {
  Env e;
  auto s = Session::create(*e.model).value();
  ASSERT_TRUE(s->append(tokens(40, 384, 5)).ok());  // 40 tokens: K/V spans 3 pages of 16
  Sampler greedy(SamplingParams{0.f});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->decode(greedy, 384).ok());
  const fs::path p = tmpfile("roundtrip.m1s");
  ASSERT_TRUE(s->save(p).ok());
  auto l = Session::load(*e.model, p);
  ASSERT_TRUE(l.ok()) << l.error().message;
  auto& r = *l.value();
  EXPECT_EQ(r.tokens(), s->tokens());
  EXPECT_EQ(r.logits(), s->logits());
  const auto more = tokens(9, 384, 6);
  ASSERT_TRUE(s->append(more).ok());
  ASSERT_TRUE(r.append(more).ok());
  EXPECT_EQ(r.logits(), s->logits());  // bit-identical: same state, same ops
  for (int i = 0; i < 4; ++i) EXPECT_EQ(r.decode(greedy, 384).value(), s->decode(greedy, 384).value());
  fs::remove(p);
}

TEST(Session, RefusesCorruptTruncatedForeignAndNonSessionFiles) {
  Env e;
  auto s = Session::create(*e.model).value();
  ASSERT_TRUE(s->append(tokens(20, 384, 7)).ok());
  const fs::path p = tmpfile("bad.m1s");
  ASSERT_TRUE(s->save(p).ok());
  std::string bytes;
  {
    std::ifstream f(p, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(f), {});
  }
  auto write = [&](const std::string& b) { std::ofstream(p, std::ios::binary | std::ios::trunc) << b; };
  auto err = [&]() { auto r = Session::load(*e.model, p); return r.ok() ? std::string("loaded") : r.error().message; };

  std::string flipped = bytes;
  flipped[bytes.size() / 2] ^= 0x10;  // inside the K/V section
  write(flipped);
  EXPECT_NE(err().find("checksum"), std::string::npos) << err();
  write(bytes.substr(0, bytes.size() - 100));
  EXPECT_NE(err().find("truncated"), std::string::npos) << err();
  write("hello, not a session at all, just some text that is long enough for a header.......");
  EXPECT_NE(err().find("not an m1 session file"), std::string::npos) << err();
  std::string hdr = bytes;
  hdr[20] ^= 1;  // identity byte: caught by the header checksum
  write(hdr);
  EXPECT_NE(err().find("checksum of the header"), std::string::npos) << err();
  write(bytes);
  Env other("hd128/hf");
  auto r = Session::load(*other.model, p);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("another model"), std::string::npos) << r.error().message;
  EXPECT_TRUE(Session::load(*e.model, p).ok());
  EXPECT_FALSE(Session::load(*e.model, tmpfile("does_not_exist")).ok());
  fs::remove(p);
}

TEST(Session, SameWeightsInBothFormatsShareTheIdentity) {
  Env hf("gqa1_hd16/hf"), orig("gqa1_hd16/orig"), other("gqa2_hd32/hf");
  EXPECT_EQ(hf.model->identity(), orig.model->identity());
  EXPECT_NE(hf.model->identity(), other.model->identity());
}

TEST(Session, BadInputGetsClearErrors) {
  Env e;
  auto s = Session::create(*e.model, 10).value();
  auto r = s->append(tokens(11, 384, 8));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("exceeds the context of 10"), std::string::npos) << r.error().message;
  EXPECT_FALSE(s->append({}).ok());
  std::vector<int32_t> bad = {1, 2, 384};
  r = s->append(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("token id 384"), std::string::npos) << r.error().message;
  EXPECT_EQ(s->length(), 0);  // nothing half-appended
  Sampler g(SamplingParams{0.f});
  EXPECT_FALSE(s->decode(g, 384).ok());
}

}  // namespace
