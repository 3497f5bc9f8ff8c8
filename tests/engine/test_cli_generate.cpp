// `m1 generate` as a user runs it (the built binary, M1_BINARY_DIR/m1): a tiny model streams
// tokens, and the bad inputs of issue 3 each end with a non-zero exit status, nothing on stdout
// and one error line on stderr that names the problem: a prompt longer than the configured
// context, an empty prompt, a model folder that does not exist, a tokenizer larger than the
// model's vocabulary. Engine-level tests (test_session, test_model_engine) check the same errors
// as values; this checks they reach the user. Skips, saying why, in a build without `m1` (the
// engine-only build without CLI11).
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "engine/model_init.h"
#include "engine/tokenizer.h"
#include "tests/engine/test_util.h"
#include "support/test_files.h"

using namespace m1::engine;
using m1::test::has;
using m1::test::TempDir;
namespace fs = std::filesystem;

namespace {

const fs::path kM1 = fs::path(M1_BINARY_DIR) / "m1";
const fs::path kFix = fs::path(M1_SOURCE_DIR) / "tests/fixtures/parity";

using m1::test::slurp;
std::string q(const std::string& s) { return m1::test::shell_quote(s); }

struct Outcome {
  int code = -1;
  std::string out, err;
};

class CliGenerate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fs::exists(kM1)) return;
    tmp_ = new TempDir("m1_test_cli_generate");
    InitOptions io;
    io.out = tmp_->path / "tiny";
    io.sync = false;
    ASSERT_TRUE(init_model(io).ok());
  }
  static void TearDownTestSuite() {
    delete tmp_;
    tmp_ = nullptr;
  }
  void SetUp() override {
    if (!fs::exists(kM1)) GTEST_SKIP() << kM1 << " is not built (engine-only build without CLI11)";
  }
  static fs::path tiny() { return tmp_->path / "tiny"; }

  // `m1 generate ARGS` with stdout and stderr in files.
  static Outcome generate(const std::string& args) {
    const fs::path o = tmp_->path / "stdout", e = tmp_->path / "stderr";
    const std::string cmd = q(kM1.string()) + " generate " + args + " >" + q(o.string()) + " 2>" + q(e.string());
    const int st = std::system(cmd.c_str());
    Outcome r;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = slurp(o), r.err = slurp(e);
    return r;
  }

  static TempDir* tmp_;
};
TempDir* CliGenerate::tmp_ = nullptr;

TEST_F(CliGenerate, TinyModelStreamsTokens) {
  Outcome r = generate("--model " + q(tiny().string()) + " --prompt 'Hello, world' --max-tokens 8 --seed 3 --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["generated_tokens"].get<int>(), 8) << r.out;
}

TEST_F(CliGenerate, PromptLongerThanTheContextIsRefused) {
  Outcome r = generate("--model " + q(tiny().string()) + " --context 4 --prompt 'one two three four five six seven'");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(has(r.err, "exceeds the context of 4 tokens")) << r.err;
}

TEST_F(CliGenerate, EmptyPromptIsRefused) {
  Outcome r = generate("--model " + q(tiny().string()) + " --prompt ''");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(has(r.err, "empty prompt")) << r.err;
  r = generate("--model " + q(tiny().string()));  // neither --prompt nor --chat
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has(r.err, "one of --prompt or --chat is required")) << r.err;
}

TEST_F(CliGenerate, UnknownModelFolderIsRefused) {
  const fs::path missing = tmp_->path / "no-such-model";
  Outcome r = generate("--model " + q(missing.string()) + " --prompt hi");
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(has(r.err, "model folder '" + missing.string() + "' does not exist")) << r.err;
  // A folder that exists but holds no model.
  r = generate("--model " + q(tmp_->path.string()) + " --prompt hi");
  EXPECT_NE(r.code, 0);
  EXPECT_TRUE(has(r.err, "has no config.json")) << r.err;
}

TEST_F(CliGenerate, TokenizerLargerThanTheModelVocabularyIsRefused) {
  // A 256-id model with the default tokenizer (200026 ids) beside it.
  const fs::path dir = tmp_->path / "mismatch";
  fs::copy(kFix / "gqa1_hd16/hf", dir, fs::copy_options::recursive);
  ASSERT_TRUE(write_default_tokenizer(dir).ok());
  Outcome r = generate("--model " + q(dir.string()) + " --prompt hi");
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(has(r.err, "has 200026 ids but the model's vocab_size is 256")) << r.err;
}

}  // namespace
