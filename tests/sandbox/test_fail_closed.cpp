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

// run() normally starts the m1-sandbox-exec helper (so a large caller is never forked); without it
// it clones in-process. Both paths must give the same confinement.
TEST_F(SandboxTest, HelperAndInProcessPathsConfineAlike) {
  ASSERT_FALSE(detail::helper_path_for_testing().empty()) << "m1-sandbox-exec was not built next to the tests";
  struct Reset {
    ~Reset() { detail::use_helper_for_testing(-1); }
  } reset;
  for (int mode : {1, 0}) {
    SCOPED_TRACE(mode ? "helper" : "in-process");
    detail::use_helper_for_testing(mode);
    auto r = run_sh("grep -E '^(NoNewPrivs|Seccomp|CapEff):' /proc/self/status; echo x > /etc/m1-mode-escape; "
                    "sleep 1000.951 & echo done > out");
    EXPECT_NE(r.output.find("NoNewPrivs:\t1"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("Seccomp:\t2"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("CapEff:\t0000000000000000"), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists("/etc/m1-mode-escape"));
    EXPECT_EQ(slurp(ws / "out"), "done\n");
    EXPECT_EQ(host_processes_with("1000.951"), 0);
    Policy p = policy();
    p.timeout_s = 0.5;
    r = run_sh("sleep 1000.952", p);
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(host_processes_with("1000.952"), 0);
    p.mode = Mode::Off;
    r = run_sh("sleep 1000.953 & sleep 1000.954", p);
    EXPECT_TRUE(r.timed_out);
    EXPECT_EQ(host_processes_with("1000.953") + host_processes_with("1000.954"), 0);
  }
}

}  // namespace
}  // namespace m1::sandbox::testing
