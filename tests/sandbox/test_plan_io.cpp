// plan_io: the plan handed to the m1-sandbox-exec helper survives the trip byte for byte, and a
// truncated or corrupted plan is refused rather than half-applied.
#include <gtest/gtest.h>

#include <cstring>

#include "sandbox/plan.h"

namespace m1::sandbox::detail {
namespace {

Plan sample() {
  Policy p;
  p.workspace = "/usr";  // any existing directory that is not "/"
  p.hidden = {"/var"};
  p.git_readonly = true;
  p.env = {{"PATH", "/bin:/usr/bin"}, {"X", "a=b c"}};
  Command c;
  c.argv = {"sh", "-c", "echo hi"};
  auto plan = make_plan(c, p, false);
  EXPECT_TRUE(plan.ok()) << (plan.ok() ? "" : plan.error().message);
  return plan.ok() ? std::move(plan).value() : Plan{};
}

TEST(PlanIo, RoundTripKeepsEveryField) {
  Plan a = sample();
  ASSERT_FALSE(a.ops.empty());
  ASSERT_FALSE(a.bpf.empty());
  std::string bytes = serialize_plan(a);
  auto b = deserialize_plan(bytes);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_EQ(serialize_plan(*b), bytes);  // every serialized field came back identical
  ASSERT_EQ(b->ops.size(), a.ops.size());
  for (size_t i = 0; i < a.ops.size(); ++i) {
    EXPECT_EQ(b->ops[i].target, a.ops[i].target);
    EXPECT_EQ(b->ops[i].mkdirs, a.ops[i].mkdirs);
    EXPECT_EQ(b->ops[i].symlinks, a.ops[i].symlinks);
  }
  ASSERT_EQ(b->bpf.size(), a.bpf.size());
  EXPECT_EQ(std::memcmp(b->bpf.data(), a.bpf.data(), a.bpf.size() * sizeof(sock_filter)), 0);
  ASSERT_EQ(b->argv.size(), 4u);  // argv pointers rebuilt into the new strings, NULL-terminated
  EXPECT_STREQ(b->argv[2], "echo hi");
  EXPECT_EQ(b->argv[3], nullptr);
  EXPECT_STREQ(b->envp[1], "X=a=b c");
}

TEST(PlanIo, TruncatedOrCorruptPlansAreRefused) {
  std::string bytes = serialize_plan(sample());
  for (size_t cut : {size_t{0}, size_t{7}, size_t{8}, bytes.size() / 2, bytes.size() - 1}) {
    auto r = deserialize_plan(bytes.substr(0, cut));
    EXPECT_FALSE(r.ok()) << "cut at " << cut;
  }
  std::string bad = bytes;
  bad[0] ^= 1;
  EXPECT_FALSE(deserialize_plan(bad).ok());
  EXPECT_FALSE(deserialize_plan(bytes + "x").ok());
  // A huge length field must not make the reader allocate or read past the end.
  std::string huge = bytes;
  uint64_t big = ~0ull >> 1;
  std::memcpy(huge.data() + 8 * 5, &big, sizeof big);  // the uid_map length
  EXPECT_FALSE(deserialize_plan(huge).ok());
}

}  // namespace
}  // namespace m1::sandbox::detail
