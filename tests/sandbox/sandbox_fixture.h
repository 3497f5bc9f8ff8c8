// sandbox_fixture: a temporary workspace and helpers to run shell snippets in the sandbox.
// The workspace lives under the build directory, not /tmp, so that its parent is part of the
// read-only root inside the sandbox (under /tmp, "../" would land in the sandbox's private tmpfs).
#pragma once
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "sandbox/sandbox.h"
#include "support/test_files.h"

namespace m1::sandbox::testing {
namespace fs = std::filesystem;

using m1::test::host_processes_with;
using m1::test::slurp;

inline void spit(const fs::path& p, const std::string& data) {
  std::ofstream f(p, std::ios::binary);
  f << data;
}

inline bool have(const char* prog) {
  for (const char* dir : {"/usr/local/bin/", "/usr/bin/", "/bin/"})
    if (access((std::string(dir) + prog).c_str(), X_OK) == 0) return true;
  return false;
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto st = check_available();
    ASSERT_TRUE(st.ok()) << st.error().message;
    // Never under /tmp: the sandbox's private /tmp would swallow the "outside" writes silently.
    fs::path root = fs::path(M1_BINARY_DIR) / "sandbox-test";
    if (root.string().rfind("/tmp/", 0) == 0) root = "/var/tmp/m1-sandbox-test";
    fs::create_directories(root);
    std::string tmpl = (root / "case-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    base = tmpl;
    ws = base / "ws";
    fs::create_directories(ws);
    const char* h = std::getenv("HOME");
    home = h ? h : "/root";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(base, ec);
  }

  Policy policy() const {
    Policy p;
    p.workspace = ws;
    p.env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"HOME", home.string()}, {"LANG", "C"}};
    p.timeout_s = 30;
    return p;
  }

  RunResult run_sh(const std::string& script, const Policy& p) {
    Command c;
    c.argv = {"/bin/sh", "-c", script};
    auto r = run(c, p);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? r.value() : RunResult{};
  }
  RunResult run_sh(const std::string& script) { return run_sh(script, policy()); }

  fs::path base, ws, home;
};

}  // namespace m1::sandbox::testing
