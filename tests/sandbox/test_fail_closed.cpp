// Fail-closed: when any confinement layer cannot be set up, check_available() names it, run()
// refuses (pointing at --sandbox off) and the command never runs; Mode::Off still runs it.
// The failures are injected in the child (detail::inject_failure_for_testing) at the exact step
// where the kernel would refuse, so this runs on a machine where every layer works.
#include "sandbox/plan.h"
#include "tests/sandbox/sandbox_fixture.h"

namespace m1::sandbox::testing {
namespace {

struct InjectionGuard {
  ~InjectionGuard() { detail::inject_failure_for_testing(0); }
};

TEST_F(SandboxTest, EveryMissingLayerIsRefusedByName) {
  InjectionGuard guard;
  const std::pair<int32_t, const char*> cases[] = {
      {detail::kStepUidMap, "user namespace"}, {detail::kStepReadonlyRoot, "mount namespace"},
      {detail::kStepProc, "pid namespace"},    {detail::kStepLandlock, "Landlock"},
      {detail::kStepCaps, "capability drop"},  {detail::kStepSeccomp, "seccomp"}};
  for (const auto& [step, layer] : cases) {
    SCOPED_TRACE(layer);
    detail::inject_failure_for_testing(step);
    Status st = check_available();
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.error().message.find(layer), std::string::npos) << st.error().message;

    Command c;
    c.argv = {"/bin/sh", "-c", "echo ran > marker"};
    auto r = run(c, policy());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.error().message.find(layer), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("--sandbox off"), std::string::npos) << r.error().message;
    EXPECT_FALSE(fs::exists(ws / "marker"));

    Policy off = policy();
    off.mode = Mode::Off;  // the user's explicit choice still runs, unconfined
    r = run(c, off);
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->exit_code, 0);
    EXPECT_TRUE(fs::exists(ws / "marker"));
    fs::remove(ws / "marker");
  }
  detail::inject_failure_for_testing(0);
  EXPECT_TRUE(check_available().ok());
}

}  // namespace
}  // namespace m1::sandbox::testing
