// tests/agent/test_local_provider.cpp: the `local` provider over real (random) model folders.
// Two folders, made once per run: the `tiny` preset with the default tokenizer (as `m1 model
// init` writes it), and a tiny model with a small trained BPE tokenizer laid out as
// train/trajgen.cpp makes one (vocabulary then M1's added tokens). With ~300 ids a random model
// at temperature 1 ends a reply on <end_of_sentence> within a few hundred tokens, so both joins
// (the sampled <end_of_sentence> held, or a reply cut at max tokens) are exercised for real.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "agent/local_provider.h"
#include "agent/loop.h"
#include "agent/prompt.h"
#include "engine/bpe_trainer.h"
#include "engine/model_init.h"
#include "test_util.h"
#include "tools/builtin.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace m1::agent {
namespace {

// The model folders live for the whole test binary and are removed at its exit.
struct ModelsRoot {
  fs::path path = fs::temp_directory_path() / ("m1-local-provider-" + std::to_string(getpid()));
  ModelsRoot() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ModelsRoot() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

fs::path models_root() {
  static ModelsRoot root;
  return root.path;
}

// `m1 model init --preset tiny`: 200k-id default tokenizer.
const fs::path& default_model() {
  static fs::path dir = [] {
    engine::InitOptions io;
    io.out = models_root() / "tiny";
    io.sync = false;
    auto r = engine::init_model(io);
    EXPECT_TRUE(r.ok()) << r.error().message;
    return io.out;
  }();
  return dir;
}

// tiny shape, vocabulary = a small BPE + M1's added tokens (as trajgen's `tokenizer` command).
const fs::path& small_vocab_model() {
  static fs::path dir = [] {
    std::string corpus;
    for (int i = 0; i < 20; ++i)
      corpus += "def median(xs):\n    xs = sorted(xs)\n    return xs[len(xs) // 2]\n"
                "{\"name\": \"shell\", \"arguments\": {\"command\": \"pytest -q\"}}\n";
    engine::BpeTrainerOptions bo;
    bo.vocab_size = 300;
    std::vector<std::string> texts{corpus};
    auto bpe = engine::train_bpe(texts, bo);
    EXPECT_TRUE(bpe.ok());
    auto added = engine::m1_added_tokens();
    int32_t next = static_cast<int32_t>(bpe->vocab.size());
    int32_t bos = -1, eos = -1;
    for (auto& a : added) {
      a.id = next++;
      if (a.content == "<beginning_of_sentence>") bos = a.id;
      if (a.content == "<end_of_sentence>") eos = a.id;
    }
    auto cfg = engine::preset_config("tiny");
    EXPECT_TRUE(cfg.ok());
    cfg->vocab_size = next;
    cfg->bos_token_id = bos;
    cfg->eos_token_id = eos;
    cfg->eos_token_ids = {eos};
    engine::InitOptions io;
    io.config = *cfg;
    io.out = models_root() / "small";
    io.sync = false;
    auto r = engine::init_model(io);
    EXPECT_TRUE(r.ok()) << r.error().message;
    std::ofstream(io.out / "tokenizer.json") << engine::bpe_tokenizer_json(*bpe, added);
    std::ofstream(io.out / "tokenizer_config.json")
        << json{{"bos_token", "<beginning_of_sentence>"}, {"eos_token", "<end_of_sentence>"}}.dump();
    return io.out;
  }();
  return dir;
}

std::unique_ptr<LocalProvider> open(const fs::path& model, double temperature, size_t max_out, uint64_t seed = 1) {
  ProviderOptions o;
  o.kind = "local";
  o.model = model.string();
  o.temperature = temperature;
  o.seed = seed;
  o.max_output_tokens = max_out;
  auto p = LocalProvider::open(o);
  EXPECT_TRUE(p.ok()) << p.error().message;
  return p.ok() ? std::move(*p) : nullptr;
}

std::vector<engine::ToolDef> small_tools() {
  return {{"shell", "Run a command.", {{"type", "object"}, {"properties", {{"command", {{"type", "string"}}}}}}},
          {"submit", "Finish.", {{"type", "object"}, {"properties", {{"summary", {{"type", "string"}}}}}}}};
}

std::vector<ChatMessage> task() {
  return {ChatMessage::system("You fix bugs."), ChatMessage::user("median is wrong for even lengths")};
}

ChatMessage tool_reply(const std::string& text) { return ChatMessage::tool({{"c1", "shell", text, false}}); }

std::vector<int32_t> ids_of(const LocalProvider& p, const std::vector<engine::Segment>& segs) {
  return engine::encode_conversation(p.tokenizer(), segs);
}

// Runs complete() on fresh conversations until a reply ends on <end_of_sentence> (a few tries at
// most with ~300 ids); the conversation that produced it is left in `conv`.
ModelTurn turn_ending_on_eos(LocalProvider& p, std::vector<ChatMessage>& conv) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    conv = task();
    conv[1].content += " (attempt " + std::to_string(attempt) + ")";
    auto t = p.complete(conv, small_tools(), nullptr, {});
    EXPECT_TRUE(t.ok()) << t.error().message;
    if (t.ok() && p.last_stats().stopped_on_eos) return *t;
  }
  ADD_FAILURE() << "no reply ended on <end_of_sentence> in 8 tries";
  return {};
}

TEST(LocalProvider, WithoutAModelUsesTheEmbeddedDefault) {
  // The test binary sits in the build folder, so the default models/m1-small beside it is found.
  ProviderOptions o;
  o.kind = "local";
  auto r = make_provider(o);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE((*r)->label().find("m1-small"), std::string::npos) << (*r)->label();
}

TEST(LocalProvider, RefusesBadOptionsWithOneClearError) {
  ProviderOptions o;
  o.kind = "local";
  o.model = (models_root() / "no-such-model").string();
  auto r = make_provider(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no-such-model"), std::string::npos) << r.error().message;
  o.model = small_vocab_model().string();
  o.chat_template = "jinja";
  r = make_provider(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("must be 'pinned' or 'vllm'"), std::string::npos) << r.error().message;
  o.chat_template = "pinned";
  o.temperature = -1;
  r = make_provider(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("temperature"), std::string::npos) << r.error().message;
}

TEST(LocalProvider, StreamsAndReturnsATurnWithRealCounts) {
  auto p = open(small_vocab_model(), 0, 24);
  ASSERT_TRUE(p);
  std::string streamed, streamed_thinking;
  StreamSink sink{[&](std::string_view t) { streamed += t; }, [&](std::string_view t) { streamed_thinking += t; }};
  auto conv = task();
  auto t = p->complete(conv, small_tools(), nullptr, sink);
  ASSERT_TRUE(t.ok()) << t.error().message;
  auto prompt = ids_of(*p, engine::ChatFormat().render(conv, small_tools(), true));
  EXPECT_FALSE(t->usage_estimated);
  EXPECT_EQ(t->usage.input_tokens, prompt.size());
  EXPECT_TRUE(p->last_stats().full_prefill);
  ASSERT_GE(t->usage.output_tokens, 1u);
  EXPECT_LE(t->usage.output_tokens, 24u);
  EXPECT_EQ(t->finish_reason, p->last_stats().stopped_on_eos ? "stop" : "length");
  // The session holds exactly the prompt then the sampled tokens.
  const auto& held = p->session()->tokens();
  ASSERT_EQ(held.size(), prompt.size() + t->usage.output_tokens);
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), held.begin()));
  // What streamed is what the turn says, and it came from the sampled tokens.
  EXPECT_EQ(streamed, t->message.content);
  EXPECT_EQ(streamed_thinking, t->message.thinking);
  EXPECT_FALSE(streamed.empty() && streamed_thinking.empty() && t->message.tool_calls.empty() &&
               t->call_errors.empty());
  std::string sampled_text = p->engine().tokenizer().decode(
      std::vector<int32_t>(held.begin() + static_cast<long>(prompt.size()), held.end()));
  if (!streamed.empty()) {
    std::string probe = streamed.substr(0, std::min<size_t>(streamed.size(), 8));
    EXPECT_NE(sampled_text.find(probe), std::string::npos) << "streamed '" << streamed << "' vs sampled '" << sampled_text << "'";
  }
  // count_tokens is the tokenizer's count, not the 4-chars estimate.
  std::string s = "def median(xs): return sorted(xs)";
  EXPECT_EQ(p->count_tokens(s), p->engine().tokenizer().encode(s, false).size());
}

// Turn 1 ends on a sampled <end_of_sentence>; turn 2 appends only the tool message (its render
// minus the held <end_of_sentence>). The session then holds the trajgen layout token for token, and
// its state equals one prefill of those tokens.
TEST(LocalProvider, NextTurnAppendsOnlyTheNewPartAndJoinsLikeTraining) {
  auto p = open(small_vocab_model(), 1.0, 1500, 7);
  ASSERT_TRUE(p);
  std::vector<ChatMessage> conv;
  ModelTurn t1 = turn_ending_on_eos(*p, conv);
  ASSERT_TRUE(p->last_stats().stopped_on_eos);
  EXPECT_EQ(t1.finish_reason, "stop");
  const size_t len1 = p->session()->tokens().size();
  const std::vector<int32_t> body1(p->session()->tokens().end() - static_cast<long>(t1.usage.output_tokens),
                                   p->session()->tokens().end());
  ASSERT_EQ(body1.back(), p->eos_id());
  conv.push_back(t1.message);
  conv.push_back(tool_reply("1 failed, 3 passed"));
  engine::ChatFormat fmt;
  auto rest = fmt.render_append(conv, conv.size() - 2, engine::PrefixEnd::GeneratedReply, true);
  ASSERT_TRUE(rest.ok());
  auto rest_ids = ids_of(*p, *rest);
  ASSERT_EQ(rest_ids.front(), p->eos_id());

  auto t2 = p->complete(conv, small_tools(), nullptr, {});
  ASSERT_TRUE(t2.ok()) << t2.error().message;
  EXPECT_FALSE(p->last_stats().full_prefill);
  EXPECT_EQ(t2->usage.input_tokens, rest_ids.size() - 1);
  EXPECT_EQ(p->session()->tokens().size(), len1 + rest_ids.size() - 1 + t2->usage.output_tokens);

  // trajgen's training_sequence layout: prompt | reply as sampled (its eos included) | rest minus eos | reply 2.
  std::vector<ChatMessage> prefix(conv.begin(), conv.begin() + 2);
  std::vector<int32_t> expect = ids_of(*p, fmt.render(prefix, small_tools(), true));
  expect.insert(expect.end(), body1.begin(), body1.end());
  expect.insert(expect.end(), rest_ids.begin() + 1, rest_ids.end());
  const auto& held = p->session()->tokens();
  ASSERT_EQ(held.size(), expect.size() + t2->usage.output_tokens);
  EXPECT_TRUE(std::equal(expect.begin(), expect.end(), held.begin()));
  // The text of the joins: the prompt part decodes to the rendered text.
  EXPECT_EQ(p->engine().tokenizer().decode(std::vector<int32_t>(held.begin(), held.begin() + static_cast<long>(len1 - body1.size()))),
            fmt.render_text(prefix, small_tools(), true));

  // No token lost or duplicated in the state either: one fresh prefill of the same tokens gives the
  // same next-token logits as the turn-by-turn session.
  auto fresh = p->engine().new_session();
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE((*fresh)->append(held).ok());
  const auto& a = p->session()->logits();
  const auto& b = (*fresh)->logits();
  ASSERT_EQ(a.size(), b.size());
  double max_diff = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    max_diff = std::max(max_diff, double(std::fabs(a[i] - b[i])));
    max_abs = std::max(max_abs, double(std::fabs(b[i])));
  }
  EXPECT_LE(max_diff, 1e-3 * std::max(1.0, max_abs));

  // A conversation that no longer extends the held one (as after compaction) is prefilled whole.
  std::vector<ChatMessage> rewritten = {conv[0], ChatMessage::user("summary of earlier work: ...")};
  auto t3 = p->complete(rewritten, small_tools(), nullptr, {});
  ASSERT_TRUE(t3.ok());
  EXPECT_TRUE(p->last_stats().full_prefill);
  EXPECT_EQ(t3->usage.input_tokens, ids_of(*p, fmt.render(rewritten, small_tools(), true)).size());
}

// A reply cut at max_output_tokens has no <end_of_sentence> in the session: the next turn feeds it.
TEST(LocalProvider, MaxOutputTokensStopsAndTheNextTurnFeedsTheEnd) {
  auto p = open(default_model(), 0, 5);
  ASSERT_TRUE(p);
  auto conv = task();
  auto t1 = p->complete(conv, small_tools(), nullptr, {});
  ASSERT_TRUE(t1.ok()) << t1.error().message;
  if (p->last_stats().stopped_on_eos) GTEST_SKIP() << "the random model chose <end_of_sentence> greedily";
  EXPECT_EQ(t1->finish_reason, "length");
  EXPECT_EQ(t1->usage.output_tokens, 5u);
  const size_t len1 = p->session()->tokens().size();
  EXPECT_NE(p->session()->tokens().back(), p->eos_id());
  conv.push_back(t1->message);
  conv.push_back(tool_reply("ok"));
  auto rest = engine::ChatFormat().render_append(conv, 2, engine::PrefixEnd::GeneratedReply, true);
  ASSERT_TRUE(rest.ok());
  auto rest_ids = ids_of(*p, *rest);
  auto t2 = p->complete(conv, small_tools(), nullptr, {});
  ASSERT_TRUE(t2.ok()) << t2.error().message;
  EXPECT_FALSE(p->last_stats().full_prefill);
  EXPECT_EQ(t2->usage.input_tokens, rest_ids.size());
  EXPECT_EQ(p->session()->tokens().at(len1), p->eos_id());
  EXPECT_EQ(p->session()->tokens().size(), len1 + rest_ids.size() + t2->usage.output_tokens);
}

TEST(LocalProvider, CancelStopsBetweenTokensAndTheNextCallStartsOver) {
  auto p = open(small_vocab_model(), 0, 100000);
  ASSERT_TRUE(p);
  std::atomic<bool> cancel{true};
  auto r = p->complete(task(), small_tools(), &cancel, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind("cancelled", 0), 0u) << r.error().message;

  cancel = false;
  int deltas = 0;
  auto stop = [&](std::string_view) {
    ++deltas;
    cancel = true;
  };
  r = p->complete(task(), small_tools(), &cancel, StreamSink{stop, stop});
  if (deltas == 0 && r.ok()) GTEST_SKIP() << "the random model ended before streaming any text";
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message.rfind("cancelled", 0), 0u) << r.error().message;
  EXPECT_EQ(deltas, 1);  // checked before the very next token
  EXPECT_EQ(p->session(), nullptr);  // half a reply is never kept

  cancel = false;
  p = open(small_vocab_model(), 0, 8);
  auto ok = p->complete(task(), small_tools(), &cancel, {});
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_TRUE(p->last_stats().full_prefill);
}

TEST(LocalProvider, ConversationEndingWithTheAssistantIsRefused) {
  auto p = open(small_vocab_model(), 0, 4);
  ASSERT_TRUE(p);
  auto conv = task();
  conv.push_back(ChatMessage::assistant("hi"));
  auto r = p->complete(conv, small_tools(), nullptr, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("ends with an assistant message"), std::string::npos);
}

// --- the state file (`m1 resume` without a re-prefill) ------------------------------------------

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

// A provider in a "new process" (a fresh object) that is told to resume from `state`.
std::unique_ptr<LocalProvider> resumed(const fs::path& model, const fs::path& state, int turns_done,
                                       double temperature = 0, size_t max_out = 16) {
  auto p = open(model, temperature, max_out);
  if (!p) return nullptr;
  p->set_state_path(state);
  p->on_resume(turns_done);
  return p;
}

// Turn 1 in one provider (saving its state), turn 2 in another that loads it: the second appends
// only the tool message and, greedy, produces exactly what the first produces uninterrupted.
TEST(LocalProviderState, ANewProviderContinuesTheSavedSessionWithoutAPrefill) {
  auto dir = test::temp_dir("state");
  const fs::path state = dir / "engine" / "s1.m1s";
  auto a = open(small_vocab_model(), 0, 16);
  ASSERT_TRUE(a);
  a->set_state_path(state);
  auto conv = task();
  auto t1 = a->complete(conv, small_tools(), nullptr, {});
  ASSERT_TRUE(t1.ok()) << t1.error().message;
  EXPECT_TRUE(t1->note.empty()) << t1->note;
  EXPECT_EQ(t1->provider_stats["full_prefill"], true);
  // The session and its sidecar, and no temporary file left behind.
  EXPECT_EQ(files_in(dir / "engine"), (std::vector<fs::path>{"s1.m1s", "s1.m1s.json"}));
  conv.push_back(t1->message);
  conv.push_back(tool_reply("1 failed, 3 passed"));

  auto b = resumed(small_vocab_model(), state, 1);
  ASSERT_TRUE(b);
  auto t2b = b->complete(conv, small_tools(), nullptr, {});
  ASSERT_TRUE(t2b.ok()) << t2b.error().message;
  EXPECT_FALSE(b->last_stats().full_prefill);
  EXPECT_TRUE(b->last_stats().restored);
  EXPECT_NE(t2b->note.find("continuing the saved engine state"), std::string::npos) << t2b->note;
  auto rest = engine::ChatFormat().render_append(conv, 2, engine::PrefixEnd::GeneratedReply, true);
  ASSERT_TRUE(rest.ok());
  size_t expect_appended = ids_of(*b, *rest).size() - (a->last_stats().stopped_on_eos ? 1 : 0);
  EXPECT_EQ(b->last_stats().appended_tokens, expect_appended);
  EXPECT_EQ(t2b->usage.input_tokens, expect_appended);
  EXPECT_EQ(t2b->provider_stats["appended_tokens"], expect_appended);

  // The uninterrupted provider's turn 2: same reply, same call ids, same tokens, same logits.
  auto t2a = a->complete(conv, small_tools(), nullptr, {});
  ASSERT_TRUE(t2a.ok()) << t2a.error().message;
  EXPECT_FALSE(a->last_stats().full_prefill);
  EXPECT_EQ(t2b->message, t2a->message);
  EXPECT_EQ(t2b->finish_reason, t2a->finish_reason);
  EXPECT_EQ(t2b->usage.output_tokens, t2a->usage.output_tokens);
  EXPECT_EQ(b->session()->tokens(), a->session()->tokens());
  EXPECT_EQ(b->session()->logits(), a->session()->logits());
  fs::remove_all(dir);
}

// The <end_of_sentence> join: a reply that stopped on it is held in the saved session, so the
// resumed turn skips the rendered one, as the in-process path does.
TEST(LocalProviderState, ASampledEndOfSentenceIsHeldAcrossTheFile) {
  auto dir = test::temp_dir("state-eos");
  const fs::path state = dir / "s.m1s";
  auto a = open(small_vocab_model(), 1.0, 1500, 7);
  ASSERT_TRUE(a);
  a->set_state_path(state);
  std::vector<ChatMessage> conv;
  ModelTurn t1 = turn_ending_on_eos(*a, conv);
  ASSERT_TRUE(a->last_stats().stopped_on_eos);
  conv.push_back(t1.message);
  conv.push_back(tool_reply("ok"));
  auto b = resumed(small_vocab_model(), state, 1, 0, 4);
  ASSERT_TRUE(b);
  auto t2 = b->complete(conv, small_tools(), nullptr, {});
  ASSERT_TRUE(t2.ok()) << t2.error().message;
  ASSERT_TRUE(b->last_stats().restored) << t2->note;
  auto rest = engine::ChatFormat().render_append(conv, conv.size() - 2, engine::PrefixEnd::GeneratedReply, true);
  ASSERT_TRUE(rest.ok());
  auto rest_ids = ids_of(*b, *rest);
  EXPECT_EQ(b->last_stats().appended_tokens, rest_ids.size() - 1);
  const auto& held = b->session()->tokens();
  const auto& before = a->session()->tokens();
  ASSERT_GE(held.size(), before.size() + rest_ids.size() - 1);
  EXPECT_TRUE(std::equal(before.begin(), before.end(), held.begin()));
  EXPECT_TRUE(std::equal(rest_ids.begin() + 1, rest_ids.end(), held.begin() + static_cast<long>(before.size())));
  fs::remove_all(dir);
}

// Every way the state can be unusable ends in a full prefill whose note names the reason; none
// crashes or continues from a state that does not match.
TEST(LocalProviderState, AnUnusableStateFileMeansAFullPrefillAndSaysWhy) {
  auto dir = test::temp_dir("state-bad");
  const fs::path state = dir / "s.m1s";
  auto a = open(small_vocab_model(), 0, 8);
  ASSERT_TRUE(a);
  a->set_state_path(state);
  auto conv = task();
  auto t1 = a->complete(conv, small_tools(), nullptr, {});
  ASSERT_TRUE(t1.ok()) << t1.error().message;
  conv.push_back(t1->message);
  conv.push_back(tool_reply("ok"));
  const std::string good_bin = [&] { std::ifstream in(state, std::ios::binary); return std::string(std::istreambuf_iterator<char>(in), {}); }();
  const std::string good_side = [&] { std::ifstream in(state.string() + ".json"); return std::string(std::istreambuf_iterator<char>(in), {}); }();
  auto restore_files = [&] {
    std::ofstream(state, std::ios::binary | std::ios::trunc) << good_bin;
    std::ofstream(state.string() + ".json", std::ios::trunc) << good_side;
  };
  const size_t full = ids_of(*a, engine::ChatFormat().render(conv, small_tools(), true)).size();
  auto expect_full_prefill = [&](const fs::path& model, const std::string& why, const std::vector<ChatMessage>& c) {
    auto b = resumed(model, state, 1, 0, 4);
    ASSERT_TRUE(b);
    auto t = b->complete(c, small_tools(), nullptr, {});
    ASSERT_TRUE(t.ok()) << why << ": " << t.error().message;
    EXPECT_TRUE(b->last_stats().full_prefill) << why;
    EXPECT_FALSE(b->last_stats().restored) << why;
    if (&c == &conv && model == small_vocab_model()) EXPECT_EQ(b->last_stats().appended_tokens, full) << why;
    EXPECT_NE(t->note.find("the whole conversation is prefilled"), std::string::npos) << why << ": " << t->note;
    EXPECT_NE(t->note.find(why), std::string::npos) << t->note;
  };

  // A flipped byte in the K/V data, a cut file, a sidecar that is not JSON, or of the wrong types.
  std::string bin = good_bin;
  bin[bin.size() / 2] ^= 0x5a;
  std::ofstream(state, std::ios::binary | std::ios::trunc) << bin;
  expect_full_prefill(small_vocab_model(), "corrupt", conv);
  restore_files();
  std::ofstream(state, std::ios::binary | std::ios::trunc) << good_bin.substr(0, good_bin.size() - 100);
  expect_full_prefill(small_vocab_model(), "truncated", conv);
  restore_files();
  std::ofstream(state.string() + ".json", std::ios::trunc) << "{\"format\": ";
  expect_full_prefill(small_vocab_model(), "is not a local provider state file", conv);
  restore_files();
  json side = json::parse(good_side);
  side["tokens"] = "many";
  std::ofstream(state.string() + ".json", std::ios::trunc) << side.dump();
  expect_full_prefill(small_vocab_model(), "lacks tokens", conv);
  side = json::parse(good_side);
  side["messages"] = 5;
  std::ofstream(state.string() + ".json", std::ios::trunc) << side.dump();
  expect_full_prefill(small_vocab_model(), "messages", conv);
  // A session from another model (same shapes, other weights and vocabulary).
  restore_files();
  expect_full_prefill(default_model(), "another model", conv);
  // A kill between the two renames: a newer session beside the older sidecar.
  restore_files();
  {
    auto c = a->complete(conv, small_tools(), nullptr, {});  // saves turn 2's session and sidecar
    ASSERT_TRUE(c.ok());
    std::ofstream(state.string() + ".json", std::ios::trunc) << good_side;
  }
  expect_full_prefill(small_vocab_model(), "interrupted between the two writes", conv);
  // A resumed conversation that does not extend what was saved (e.g. compacted since).
  restore_files();
  std::vector<ChatMessage> other = {conv[0], ChatMessage::user("summary of earlier work: ...")};
  expect_full_prefill(small_vocab_model(), "is not a prefix of the resumed conversation", other);
  // No file at all.
  fs::remove(state);
  fs::remove(state.string() + ".json");
  expect_full_prefill(small_vocab_model(), "there is none", conv);
  fs::remove_all(dir);
}

TEST(LocalProviderState, DiscardRemovesTheFilesAndLeftoversButNothingElse) {
  auto dir = test::temp_dir("state-discard");
  auto a = open(small_vocab_model(), 0, 4);
  ASSERT_TRUE(a);
  a->set_state_path(dir / "s1.m1s");
  ASSERT_TRUE(a->complete(task(), small_tools(), nullptr, {}).ok());
  std::ofstream(dir / "s1.m1s.tmp.12345") << "half";  // a write a kill interrupted
  std::ofstream(dir / "s10.m1s") << "another session";
  a->discard_state();
  EXPECT_EQ(files_in(dir), (std::vector<fs::path>{"s10.m1s"}));
  fs::remove_all(dir);
}

// The whole agent loop over the default random model and the real tools: garbage output must end
// the run with a typed stop reason, with real (not estimated) token counts per turn.
TEST(LocalProvider, AgentLoopOverARandomModelStopsWithATypedReason) {
  auto dir = test::temp_dir("local-loop");
  std::ofstream(dir / "stats.py") << "def median(xs):\n    return sorted(xs)[len(xs) // 2]\n";
  tools::Registry reg;
  tools::BuiltinToolsOptions o;
  o.policy.mode = sandbox::Mode::Off;
  o.policy.env = {{"PATH", "/usr/bin:/bin"}};
  tools::register_builtin_tools(reg, o);
  add_submit_tool(reg);
  auto p = open(default_model(), 0.7, 24, 3);
  ASSERT_TRUE(p);
  test::CollectSink sink;
  LoopDeps d;
  d.provider = p.get();
  d.registry = &reg;
  d.tool_ctx.workspace = dir;
  d.budgets.max_steps = 3;
  d.sink = &sink;
  std::vector<ChatMessage> conv = {ChatMessage::system(fix_system_prompt("")),
                                   ChatMessage::user(fix_task_message("median is wrong"))};
  RunState st;
  LoopResult res = run_loop(d, conv, st);
  EXPECT_TRUE(res.reason == StopReason::ModelStopped || res.reason == StopReason::StepLimit ||
              res.reason == StopReason::Error)
      << stop_reason_name(res.reason) << ": " << res.detail;
  EXPECT_EQ(sink.of("stop").size(), 1u);
  auto ends = sink.of("turn_end");
  ASSERT_GE(ends.size(), 1u);
  EXPECT_FALSE(ends[0].data["estimated"].get<bool>());
  EXPECT_GT(ends[0].data["input_tokens"].get<uint64_t>(), 500u);  // system prompt + tool schemas
  for (size_t i = 1; i < ends.size(); ++i)  // later turns add only their new messages
    EXPECT_LT(ends[i].data["input_tokens"].get<uint64_t>(), ends[0].data["input_tokens"].get<uint64_t>());
  fs::remove_all(dir);
}

// The edit constraint on the shipped default model, on a recorded held-out task (its conversation up
// to the view of the buggy file, tests/fixtures/m1-small/miscopy.json): alone, the model quotes the
// buggy line as it remembers similar code (`a[0] < b[1] ...`), which the file does not contain;
// with the constraint its old_str is a copy of the file's line. If a retrained model copies
// correctly on its own, the second half needs another recorded miscopy.
TEST(LocalProvider, EditConstraintKeepsOldStrACopyOfTheViewedFile) {
  const fs::path model = fs::path(M1_SOURCE_DIR) / "models/m1-small";
  std::ifstream in(fs::path(M1_SOURCE_DIR) / "tests/fixtures/m1-small/miscopy.json");
  const json fx = json::parse(in);
  auto msgs = engine::chat_messages_from_json(fx.at("messages"));
  auto tools = engine::tool_defs_from_json(fx.at("tools"));
  ASSERT_TRUE(msgs.ok() && tools.ok());
  const std::string file = fx.at("file");
  auto first_old_str = [&](LocalProvider& p) {
    auto t = p.complete(*msgs, *tools, nullptr, {});
    EXPECT_TRUE(t.ok()) << t.error().message;
    for (const auto& c : t.ok() ? t->message.tool_calls : std::vector<engine::ToolCall>{})
      if (c.name == "str_replace") return c.arguments.value("old_str", std::string("<none>"));
    return std::string("<no str_replace call>");
  };
  unsetenv("M1_CONSTRAIN_EDITS");
  auto constrained = open(model, 0, 400);
  ASSERT_TRUE(constrained);
  const std::string with = first_old_str(*constrained);
  EXPECT_NE(file.find(with), std::string::npos) << with;
  EXPECT_NE(with.find("a[1] < b[1]"), std::string::npos) << with;  // the line as viewed
  EXPECT_GT(constrained->last_stats().constrained_tokens, 0u);

  setenv("M1_CONSTRAIN_EDITS", "0", 1);
  auto alone = open(model, 0, 400);
  unsetenv("M1_CONSTRAIN_EDITS");
  ASSERT_TRUE(alone);
  const std::string without = first_old_str(*alone);
  EXPECT_EQ(file.find(without), std::string::npos) << without;
  EXPECT_EQ(alone->last_stats().constrained_tokens, 0u);
}

}  // namespace
}  // namespace m1::agent
