// tests/tools/test_builtin.cpp: the built-in tools on a temp workspace, through the Registry
// (so schemas are exercised too). Shell runs through the real sandbox: unconfined (mode Off,
// as `--sandbox off`) always, and confined when sandbox::check_available() says it can.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "tools/builtin.h"
#include "tools/process.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace m1::tools;

namespace {

class Tools : public ::testing::Test {
 protected:
  void SetUp() override {
    ws = fs::temp_directory_path() / ("m1-tools-" + std::to_string(getpid()) + "-" +
                                      ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(ws);
    fs::create_directories(ws / "src");
    write("src/a.py", "def f(x):\n    return x + 1\n\n\ndef g(x):\n    return x + 1\n");
    write("README.md", "hello\n");
    opts.policy.mode = m1::sandbox::Mode::Off;
    opts.policy.env = {{"PATH", "/usr/bin:/bin"}};
    opts.output_cap_bytes = 1024;
    opts.full_output_dir = ws.string() + "-out";
    register_builtin_tools(reg, opts);
    ctx.workspace = ws;
  }
  void TearDown() override {
    fs::remove_all(ws);
    fs::remove_all(ws.string() + "-out");
  }
  void write(const std::string& rel, const std::string& text) {
    fs::create_directories((ws / rel).parent_path());
    std::ofstream(ws / rel) << text;
  }
  std::string read(const std::string& rel) {
    std::ifstream in(ws / rel);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  ToolResult call(const std::string& name, const json& args) { return reg.call(name, args, ctx); }

  fs::path ws;
  BuiltinToolsOptions opts;
  Registry reg;
  ToolContext ctx;
};

}  // namespace

TEST_F(Tools, ViewShowsNumberedRange) {
  auto r = call("view", {{"path", "src/a.py"}, {"start_line", 2}, {"end_line", 3}});
  ASSERT_FALSE(r.is_error) << r.text();
  EXPECT_EQ(r.text(), "     2\t    return x + 1\n     3\t\n[showing lines 2-3 of 6; use start_line/end_line for others]\n");
  r = call("view", {{"path", "src/a.py"}, {"start_line", 50}});
  EXPECT_TRUE(r.is_error);
  EXPECT_EQ(r.text(), "start_line 50 is past the end of src/a.py (6 lines)");
}

TEST_F(Tools, ViewListsDirectoryAndRefusesEscapes) {
  auto r = call("view", {{"path", "."}});
  ASSERT_FALSE(r.is_error);
  EXPECT_NE(r.text().find("README.md\nsrc/a.py\n"), std::string::npos) << r.text();
  r = call("view", {{"path", "../../etc/passwd"}});
  EXPECT_TRUE(r.is_error);
  EXPECT_NE(r.text().find("is outside the repository"), std::string::npos);
  fs::create_symlink("/etc", ws / "evil");
  r = call("view", {{"path", "evil/passwd"}});
  EXPECT_TRUE(r.is_error) << r.text();
  EXPECT_NE(r.text().find("is outside the repository"), std::string::npos);
  r = call("view", {{"path", "/etc/passwd"}});
  EXPECT_TRUE(r.is_error);
}

TEST_F(Tools, StrReplaceUniqueMissingAmbiguous) {
  auto r = call("str_replace", {{"path", "src/a.py"}, {"old_str", "    return x + 1\n"}, {"new_str", "    return x + 2\n"}});
  EXPECT_TRUE(r.is_error);
  EXPECT_EQ(r.text(), "old_str occurs 2 times in src/a.py (lines 2, 6); include more surrounding lines to make it unique");
  r = call("str_replace", {{"path", "src/a.py"}, {"old_str", "return y"}, {"new_str", ""}});
  EXPECT_TRUE(r.is_error);
  EXPECT_EQ(r.text(), "old_str was not found in src/a.py; view the file and copy the exact text, including indentation");
  // A misremembered operator: the closest lines come back numbered as `view` prints them.
  r = call("str_replace", {{"path", "src/a.py"}, {"old_str", "    return x - 1"}, {"new_str", "    return x + 2"}});
  EXPECT_TRUE(r.is_error);
  EXPECT_EQ(r.text(), "old_str was not found in src/a.py; the closest text in the file is at line 2:\n"
                      "     2\t    return x + 1\ncopy it exactly (including indentation) into old_str");
  r = call("str_replace", {{"path", "src/a.py"}, {"old_str", "def g(y):\n    return y + 1\n"}, {"new_str", ""}});
  EXPECT_TRUE(r.is_error);
  EXPECT_NE(r.text().find("at line 5:\n     5\tdef g(x):\n     6\t    return x + 1\n"), std::string::npos) << r.text();
  r = call("str_replace", {{"path", "src/a.py"}, {"old_str", "return x + 1\n\n\ndef g(x):\n  return x + 1"}, {"new_str", ""}});
  EXPECT_TRUE(r.is_error);
  EXPECT_NE(r.text().find("ignoring whitespace is at line 2"), std::string::npos) << r.text();
  r = call("str_replace", {{"path", "src/a.py"}, {"old_str", "def g(x):\n    return x + 1"}, {"new_str", "def g(x):\n    return x * 2"}});
  ASSERT_FALSE(r.is_error) << r.text();
  EXPECT_EQ(read("src/a.py"), "def f(x):\n    return x + 1\n\n\ndef g(x):\n    return x * 2\n");
  r = call("str_replace", {{"path", "src/a.py"}, {"old_str", "x"}});
  EXPECT_TRUE(r.is_error);
  EXPECT_EQ(r.text(), "invalid arguments for tool 'str_replace': arguments: missing required property 'new_str'");
}

TEST_F(Tools, CreateRefusesOverwriteUnlessAsked) {
  auto r = call("create", {{"path", "new/dir/b.txt"}, {"content", "x\ny\n"}});
  ASSERT_FALSE(r.is_error) << r.text();
  EXPECT_EQ(r.text(), "created new/dir/b.txt (2 lines)");
  r = call("create", {{"path", "new/dir/b.txt"}, {"content", "z"}});
  EXPECT_TRUE(r.is_error);
  EXPECT_EQ(read("new/dir/b.txt"), "x\ny\n");
  r = call("create", {{"path", "new/dir/b.txt"}, {"content", "z"}, {"overwrite", true}});
  EXPECT_FALSE(r.is_error);
  EXPECT_EQ(read("new/dir/b.txt"), "z");
  r = call("create", {{"path", "../outside.txt"}, {"content", "z"}});
  EXPECT_TRUE(r.is_error);
  EXPECT_FALSE(fs::exists(ws.parent_path() / "outside.txt"));
}

TEST_F(Tools, ApplyPatchMultiFileWithOffsetAndCreate) {
  std::string patch =
      "diff --git a/src/a.py b/src/a.py\n--- a/src/a.py\n+++ b/src/a.py\n"
      "@@ -1,2 +1,2 @@\n def f(x):\n-    return x + 1\n+    return x - 1\n"
      "@@ -40,3 +40,3 @@\n \n def g(x):\n-    return x + 1\n+    return x * 3\n"  // wrong line number
      "--- /dev/null\n+++ b/docs/new.md\n@@ -0,0 +1,2 @@\n+# New\n+text\n";
  auto r = call("apply_patch", {{"patch", patch}});
  ASSERT_FALSE(r.is_error) << r.text();
  EXPECT_EQ(r.text(), "patched src/a.py (2 hunks)\ncreated docs/new.md (1 hunk)\n");
  EXPECT_EQ(read("src/a.py"), "def f(x):\n    return x - 1\n\n\ndef g(x):\n    return x * 3\n");
  EXPECT_EQ(read("docs/new.md"), "# New\ntext\n");
}

TEST_F(Tools, ApplyPatchIsAllOrNothing) {
  std::string patch =
      "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-hello\n+bye\n"
      "--- a/src/a.py\n+++ b/src/a.py\n@@ -1,2 +1,2 @@\n def f(x):\n-    return 42\n+    return 0\n";
  auto r = call("apply_patch", {{"patch", patch}});
  EXPECT_TRUE(r.is_error);
  EXPECT_NE(r.text().find("hunk 1 of 'src/a.py'"), std::string::npos) << r.text();
  EXPECT_NE(r.text().find("nothing was changed"), std::string::npos);
  EXPECT_EQ(read("README.md"), "hello\n");
  r = call("apply_patch", {{"patch", "just prose"}});
  EXPECT_TRUE(r.is_error);
  EXPECT_NE(r.text().find("no file diffs found"), std::string::npos);
}

TEST_F(Tools, SearchHonoursGitignoreAndReportsBadRegex) {
  write(".gitignore", "build/\n");
  write("build/gen.py", "def f(x): pass\n");
  auto g = run_process(git_argv({"init", "-q"}), ws);
  ASSERT_TRUE(g.ok() && g->exit_code == 0);
  auto r = call("search", {{"pattern", "def [fg]\\("}});
  ASSERT_FALSE(r.is_error) << r.text();
  EXPECT_EQ(r.text(), "src/a.py:1: def f(x):\nsrc/a.py:5: def g(x):\n");
  r = call("search", {{"pattern", "hello"}, {"glob", "*.py"}});
  EXPECT_EQ(r.text().rfind("no matches in", 0), 0u) << r.text();
  r = call("search", {{"pattern", "(unclosed"}});
  EXPECT_TRUE(r.is_error);
  EXPECT_NE(r.text().find("not a valid regular expression"), std::string::npos);
  r = call("list", {{"depth", 1}});
  EXPECT_EQ(r.text(), ".gitignore\nREADME.md\nsrc/\n");
}

TEST_F(Tools, ShellUnconfinedCapsOutputAndKeepsFullOutput) {
  auto r = call("shell", {{"command", "echo hi; exit 3"}});
  EXPECT_TRUE(r.is_error);
  EXPECT_EQ(r.text(), "exit code 3\nhi\n");
  r = call("shell", {{"command", "seq 1 20000"}});
  ASSERT_FALSE(r.is_error) << r.text();
  EXPECT_LT(r.text().size(), 1500u);
  EXPECT_NE(r.text().find("elided"), std::string::npos) << r.text();
  auto pos = r.text().find("saved to ");
  ASSERT_NE(pos, std::string::npos) << r.text();
  std::string path = r.text().substr(pos + 9, r.text().find(';', pos) - pos - 9);
  auto v = call("view", {{"path", path}, {"start_line", 20000}, {"end_line", 20000}});
  ASSERT_FALSE(v.is_error) << v.text();
  EXPECT_EQ(v.text().substr(0, 13), " 20000\t20000\n");
  r = call("shell", {{"command", "sleep 30"}, {"timeout_s", 1}});
  EXPECT_TRUE(r.is_error);
  EXPECT_EQ(r.text().rfind("timed out after", 0), 0u) << r.text();
  r = call("shell", {{"command", "true"}, {"sandbox", "off"}});
  EXPECT_TRUE(r.is_error);  // the model cannot pass sandbox settings
  EXPECT_NE(r.text().find("unexpected property 'sandbox'"), std::string::npos);
}

TEST_F(Tools, ShellConfinedCannotWriteOutsideWorkspace) {
  auto avail = m1::sandbox::check_available();
  if (!avail.ok()) GTEST_SKIP() << "sandbox unavailable here: " << avail.error().message;
  Registry confined;
  BuiltinToolsOptions o = opts;
  o.policy.mode = m1::sandbox::Mode::Enforce;
  register_builtin_tools(confined, o);
  // /tmp is private inside the sandbox, so "outside" is a real folder of the host.
  fs::path outside = fs::path("/var/tmp") / ("m1-outside-" + std::to_string(getpid()));
  auto r = confined.call("shell", {{"command", "echo ok > inside.txt && echo bad > " + outside.string()}}, ctx);
  EXPECT_TRUE(r.is_error) << r.text();
  EXPECT_FALSE(fs::exists(outside));
  EXPECT_EQ(read("inside.txt"), "ok\n");
}

// Python run by the shell tool writes no bytecode by default: stale __pycache__ files in a
// worktree made tests run old code (and would end up in the patch). A caller may still set it.
TEST_F(Tools, ShellKeepsPythonFromWritingBytecodeByDefault) {
  EXPECT_EQ(BuiltinToolsOptions().policy.env.at("PYTHONDONTWRITEBYTECODE"), "1");
  EXPECT_EQ(default_command_env().at("PYTHONDONTWRITEBYTECODE"), "1");
  // This fixture's env only sets PATH: the shell tool adds the default.
  auto r = call("shell", {{"command", "echo \"[$PYTHONDONTWRITEBYTECODE]\""}});
  ASSERT_FALSE(r.is_error) << r.text();
  EXPECT_EQ(r.text(), "exit code 0\n[1]\n");
  bool python = access("/usr/bin/python3", X_OK) == 0;
  if (python) {
    write("mod.py", "X = 1\n");
    r = call("shell", {{"command", "python3 -c 'import mod; print(mod.X)'"}});
    ASSERT_FALSE(r.is_error) << r.text();
    EXPECT_EQ(r.text(), "exit code 0\n1\n");
    EXPECT_FALSE(fs::exists(ws / "__pycache__"));
  }
  // An explicit value from the caller wins (empty: Python writes bytecode again).
  Registry reg2;
  BuiltinToolsOptions o = opts;
  o.policy.env["PYTHONDONTWRITEBYTECODE"] = "";
  register_builtin_tools(reg2, o);
  r = reg2.call("shell", {{"command", "echo \"[$PYTHONDONTWRITEBYTECODE]\""}}, ctx);
  EXPECT_EQ(r.text(), "exit code 0\n[]\n");
  if (python) {
    r = reg2.call("shell", {{"command", "python3 -c 'import mod'"}}, ctx);
    EXPECT_TRUE(fs::exists(ws / "__pycache__")) << r.text();  // the control: the check can fail
  }
}
