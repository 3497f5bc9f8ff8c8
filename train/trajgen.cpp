// m1-trajgen: makes the training data of the small default model (issue 7) with the runtime itself.
//
//   m1-trajgen render --conversations FILE... --out FILE   (text corpus for the tokenizer)
//   m1-trajgen tokenizer --corpus FILE... --vocab-size N --out DIR
//       trains the small model's byte-level BPE; M1's added tokens follow the learned vocabulary
//       (compact ids: a 200k-row embedding would dwarf a model of a few tens of millions of params).
//   m1-trajgen trajectories --tasks tasks.jsonl --out DIR [--seed S] [--variants N] [--sandbox off]
//       for each task of train/gen_repos.py, an oracle that knows the gold patch drives the REAL
//       agent loop (agent::run_loop) with the REAL built-in tools, so every tool result in the data
//       is what the runtime really returns (DIR/conversations.jsonl).
//   m1-trajgen encode --conversations FILE... --tokenizer DIR --out DIR
//       tokenizes recorded conversations exactly as the local
//       provider feeds the engine (prompt, then per turn: the model's body + <end_of_sentence>, then
//       the appended tool block + generation prompt), with loss only on the model's own tokens.
//
// Why an oracle in the loop rather than templated transcripts: the model must see at training time
// the very bytes the runtime shows it at inference (system prompt, tool list, result formats,
// truncation markers, error texts), and the only way to guarantee that is to run the runtime.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/loop.h"
#include "agent/prompt.h"
#include "engine/bpe_trainer.h"
#include "engine/chat_format.h"
#include "engine/tokenizer.h"
#include "tools/builtin.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace m1;

namespace {

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// What the oracle knows about a task (from gen_repos.py's record and its gold patch).
struct Task {
  json record;
  fs::path repo;
  std::string file, function, old_text, new_text;
  std::vector<std::string> before;  // unchanged lines just above the bug, nearest last
  std::string bug, fix;             // just the changed lines (old_text/new_text may hold context)
};

// The gold patch goes from the buggy base to the clean code: '-' lines are the bug, '+' the fix.
bool parse_gold(Task& t) {
  std::istringstream in(t.record.value("patch", std::string()));
  std::string line, olds, news;
  while (std::getline(in, line)) {
    if (line.rfind("---", 0) == 0 || line.rfind("+++", 0) == 0 || line.rfind("@@", 0) == 0) continue;
    if (!line.empty() && line[0] == '-') olds += line.substr(1) + "\n";
    if (!line.empty() && line[0] == '+') news += line.substr(1) + "\n";
    if (!line.empty() && line[0] == ' ' && olds.empty()) t.before.push_back(line.substr(1));
  }
  if (olds.empty() || olds == news) return false;
  olds.pop_back();
  news.pop_back();
  t.old_text = t.bug = olds;
  t.new_text = t.fix = news;
  return true;
}

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// str_replace needs a unique old_str: widen the snippet upwards with the patch's context lines,
// as a careful engineer copies surrounding lines from the view.
bool make_unique(Task& t) {
  std::string text = read_file(t.repo / t.file);
  size_t i = t.before.size();
  while (count_of(text, t.old_text) > 1 && i > 0) {
    --i;
    t.old_text = t.before[i] + "\n" + t.old_text;
    t.new_text = t.before[i] + "\n" + t.new_text;
  }
  return count_of(text, t.old_text) == 1;
}

// The oracle: a plan of tool calls with short texts, played one turn at a time. Variety: how the
// file is found (search or list), a wrong file looked at first, a whole-file or ranged view, a first
// str_replace whose old_str misses (the tool's error is real) followed by the correct one.
class OracleProvider : public agent::Provider {
 public:
  OracleProvider(const Task& t, uint64_t seed) : t_(t), rng_(seed) { plan(); }
  std::string label() const override { return "oracle"; }
  bool is_model() const override { return false; }
  const std::vector<engine::ToolDef>& tools() const { return tools_; }

  Result<agent::ModelTurn> complete(const std::vector<engine::ChatMessage>& conv,
                                    const std::vector<engine::ToolDef>& tools,
                                    const std::atomic<bool>*, const agent::StreamSink&) override {
    tools_ = tools;
    (void)conv;
    if (next_ >= steps_.size()) return make_error("oracle plan exhausted");
    const Step& s = steps_[next_++];
    agent::ModelTurn turn;
    turn.message = engine::ChatMessage::assistant(
        s.text, {}, {engine::ToolCall{"call_" + std::to_string(next_), s.tool, s.args}});
    return turn;
  }

 private:
  struct Step {
    std::string text, tool;
    json args;
  };
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  void plan() {
    const std::string& fn = t_.function;
    const std::string test_cmd = t_.record.value("test_cmd", std::string("python3 -m unittest"));
    steps_.push_back({"Let me run the tests first.", "shell", {{"command", test_cmd}}});
    std::string where = "`" + fn + "` fails its tests.";
    bool searched = chance(0.8);
    if (searched) {
      steps_.push_back({where + " Let me find where it is defined.", "search",
                        {{"pattern", "def " + fn + "\\("}}});
    } else {
      steps_.push_back({where + " Let me look at the files.", "list", {{"path", "."}}});
    }
    std::string dir = fs::path(t_.file).parent_path().string();
    if (chance(0.12)) {
      // A wrong first look: another module of the package, then the right one.
      for (const auto& e : fs::directory_iterator(t_.repo / dir)) {
        std::string name = e.path().filename().string();
        if (name != fs::path(t_.file).filename().string() && name != "__init__.py" &&
            e.path().extension() == ".py") {
          steps_.push_back({"Let me look at " + dir + "/" + name + ".", "view",
                            {{"path", dir + "/" + name}}});
          steps_.push_back({"`" + fn + "` is not in that file; it is in " + t_.file + ".", "view",
                            {{"path", t_.file}}});
          goto viewed;
        }
      }
    }
    {
      // Whole file, or (after a search that printed the line) just the function.
      json args = {{"path", t_.file}};
      int def_line = line_of(read_file(t_.repo / t_.file), "def " + fn + "(");
      if (searched && def_line > 0 && chance(0.35)) {
        args["start_line"] = def_line;
        args["end_line"] = def_line + 14;
      }
      steps_.push_back({"`" + fn + "` is defined in " + t_.file + ".", "view", args});
    }
  viewed:
    if (chance(0.1)) {
      // A first edit whose old_str misses (stripped indentation on a multi-space line is not
      // unique or absent): the tool's real error comes back and the next call gets it right.
      std::string wrong = t_.old_text;
      size_t p = wrong.find_first_not_of(' ');
      wrong = p == std::string::npos ? wrong : "  " + wrong.substr(p);
      if (wrong != t_.old_text && read_file(t_.repo / t_.file).find(wrong) == std::string::npos)
        steps_.push_back({"The bug is in `" + fn + "`. Let me fix it.", "str_replace",
                          {{"path", t_.file}, {"old_str", wrong}, {"new_str", t_.new_text}}});
    }
    std::string fix_text = "The bug is in `" + fn + "`: `" + trim(t_.bug) + "` should be `" + trim(t_.fix) + "`.";
    if (std::string guess = misremembered(); !guess.empty() && chance(0.35)) {
      // A first edit that quotes the line from memory, not from the view (the mistake a small
      // model makes on code it has seen with other bugs): str_replace answers with the closest
      // lines of the file, and the next call copies them exactly.
      steps_.push_back({"The bug is in `" + fn + "`: `" + trim(guess) + "` should be `" + trim(t_.fix) + "`.",
                        "str_replace", {{"path", t_.file}, {"old_str", guess}, {"new_str", t_.new_text}}});
      int n = line_of(read_file(t_.repo / t_.file), t_.old_text) +
              static_cast<int>(std::count(t_.old_text.begin(), t_.old_text.end(), '\n') -
                               std::count(t_.bug.begin(), t_.bug.end(), '\n'));
      fix_text = "Line " + std::to_string(n) + " actually reads `" + trim(t_.bug) + "`; it should be `" +
                 trim(t_.fix) + "`.";
    }
    steps_.push_back({fix_text, "str_replace",
                      {{"path", t_.file}, {"old_str", t_.old_text}, {"new_str", t_.new_text}}});
    steps_.push_back({"Let me run the tests again.", "shell", {{"command", test_cmd}}});
    steps_.push_back({"All tests pass.", "submit",
                      {{"summary", "Fixed `" + fn + "` in " + t_.file + ": `" + trim(t_.bug) +
                                       "` -> `" + trim(t_.fix) + "`."}}});
  }
  // old_str as a model might misremember it: the fixed code itself, or the buggy text with one
  // operator, constant or index changed. Empty when no variant differs from the file's text.
  std::string misremembered() {
    const std::string file = read_file(t_.repo / t_.file);
    std::vector<std::string> cands;
    if (t_.new_text != t_.old_text) cands.push_back(t_.new_text);
    static const std::pair<const char*, const char*> subs[] = {
        {" <= ", " < "}, {" < ", " <= "}, {" >= ", " > "}, {" > ", " >= "}, {" < ", " > "},
        {" > ", " < "}, {" == ", " != "}, {" != ", " == "}, {" + ", " - "}, {" - ", " + "},
        {" * ", " + "}, {" // ", " / "}, {" / ", " // "}, {" % ", " // "}, {" and ", " or "},
        {" or ", " and "}, {"[0]", "[1]"}, {"[1]", "[0]"}, {"(0, ", "(1, "}, {" 0", " 1"},
        {" 1", " 0"}, {" 1)", " 2)"}, {" 2", " 1"}, {"- 1", "+ 1"}, {"+ 1", "- 1"}, {" in ", " not in "},
        {"not ", ""}, {"max(", "min("}, {"min(", "max("}};
    for (const auto& [from, to] : subs) {
      size_t p = t_.old_text.find(from);
      if (p == std::string::npos) continue;
      std::string g = t_.old_text;
      g.replace(p, std::string(from).size(), to);
      cands.push_back(g);
    }
    std::vector<std::string> ok;
    for (const auto& c : cands)
      if (c != t_.old_text && file.find(c) == std::string::npos) ok.push_back(c);
    if (ok.empty()) return "";
    return ok[rng_() % ok.size()];
  }
  static int line_of(const std::string& text, const std::string& needle) {
    size_t p = text.find(needle);
    if (p == std::string::npos) return 0;
    return 1 + static_cast<int>(std::count(text.begin(), text.begin() + p, '\n'));
  }
  static std::string trim(const std::string& s) {
    std::string out;
    std::istringstream in(s);
    std::string line;
    while (std::getline(in, line)) {
      size_t p = line.find_first_not_of(' ');
      if (p == std::string::npos) continue;
      if (!out.empty()) out += " / ";
      out += line.substr(p);
    }
    return out;
  }

  const Task& t_;
  std::mt19937_64 rng_;
  std::vector<Step> steps_;
  size_t next_ = 0;
  std::vector<engine::ToolDef> tools_;
};

// Tokens of a finished conversation as the local provider feeds them to the engine, and which of
// them are the model's own (trained on).
struct Sequence {
  std::vector<int32_t> ids;
  std::vector<uint8_t> mask;
};

Result<Sequence> training_sequence(const std::vector<engine::ChatMessage>& conv,
                                   const std::vector<engine::ToolDef>& tools,
                                   const engine::Tokenizer& tok, const engine::ChatFormat& fmt) {
  Sequence s;
  auto add = [&](const std::vector<int32_t>& ids, uint8_t m) {
    s.ids.insert(s.ids.end(), ids.begin(), ids.end());
    s.mask.insert(s.mask.end(), ids.size(), m);
  };
  auto eos = tok.token_id("<end_of_sentence>");
  if (!eos) return make_error("tokenizer has no <end_of_sentence>");
  std::vector<size_t> asst;
  for (size_t i = 0; i < conv.size(); ++i)
    if (conv[i].role == engine::Role::Assistant) asst.push_back(i);
  if (asst.empty()) return make_error("conversation has no assistant turn");
  std::vector<engine::ChatMessage> prefix(conv.begin(), conv.begin() + asst[0]);
  add(engine::encode_conversation(tok, fmt.render(prefix, tools, true)), 0);
  for (size_t k = 0; k < asst.size(); ++k) {
    add(engine::encode_conversation(tok, fmt.assistant_body(conv[asst[k]])), 1);
    size_t end = k + 1 < asst.size() ? asst[k + 1] : asst[k] + 1;
    std::vector<engine::ChatMessage> upto(conv.begin(), conv.begin() + end);
    auto rest = fmt.render_append(upto, asst[k], engine::PrefixEnd::GeneratedReply, k + 1 < asst.size());
    if (!rest.ok()) return rest.error();
    auto ids = engine::encode_conversation(tok, *rest);
    if (ids.empty() || ids[0] != *eos) return make_error("reply end does not start with <end_of_sentence>");
    add({ids[0]}, 1);  // the model must learn to stop
    add(std::vector<int32_t>(ids.begin() + 1, ids.end()), 0);
  }
  return s;
}

int cmd_tokenizer(const std::vector<std::string>& corpus, int vocab_size, const fs::path& out) {
  std::vector<std::string> texts;
  for (const auto& f : corpus) texts.push_back(read_file(f));
  engine::BpeTrainerOptions opt;
  opt.vocab_size = vocab_size;
  auto bpe = engine::train_bpe(texts, opt);
  if (!bpe.ok()) {
    std::cerr << "m1-trajgen: " << bpe.error().message << "\n";
    return 1;
  }
  auto added = engine::m1_added_tokens();
  int32_t next = static_cast<int32_t>(bpe->vocab.size());
  for (auto& a : added) a.id = next++;
  fs::create_directories(out);
  std::ofstream(out / "tokenizer.json") << engine::bpe_tokenizer_json(*bpe, added);
  json cfg = {{"bos_token", "<beginning_of_sentence>"}, {"eos_token", "<end_of_sentence>"},
              {"pad_token", "<pad>"}, {"model_max_length", 1 << 20},
              {"tokenizer_class", "GPT2Tokenizer"}};
  std::ofstream(out / "tokenizer_config.json") << cfg.dump(1);
  std::cout << json{{"vocab", bpe->vocab.size()}, {"added", added.size()}, {"total", next}}.dump() << "\n";
  return 0;
}

std::vector<json> read_jsonl(const std::vector<std::string>& files) {
  std::vector<json> out;
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty()) out.push_back(json::parse(line));
  }
  return out;
}

Result<std::pair<std::vector<engine::ChatMessage>, std::vector<engine::ToolDef>>> conversation_of(const json& rec) {
  auto msgs = engine::chat_messages_from_json(rec.at("messages"));
  if (!msgs.ok()) return msgs.error();
  auto tools = engine::tool_defs_from_json(rec.at("tools"));
  if (!tools.ok()) return tools.error();
  return std::make_pair(std::move(*msgs), std::move(*tools));
}

// Tokens of recorded conversations, as the local provider would feed them, with the loss mask.
int cmd_encode(const std::vector<std::string>& files, const fs::path& tok_dir, const fs::path& out) {
  auto tok = engine::Tokenizer::load(tok_dir);
  if (!tok.ok()) {
    std::cerr << "m1-trajgen: " << tok.error().message << "\n";
    return 1;
  }
  engine::ChatFormat fmt;
  fs::create_directories(out);
  std::ofstream tokens(out / "tokens.bin", std::ios::binary), mask(out / "mask.bin", std::ios::binary);
  json index = {{"sequences", json::array()}, {"vocab_size", tok->vocab_size()},
                {"eos_id", *tok->token_id("<end_of_sentence>")},
                {"bos_id", *tok->token_id("<beginning_of_sentence>")}};
  const bool narrow = tok->vocab_size() <= 65536;
  index["dtype"] = narrow ? "uint16" : "int32";
  int64_t offset = 0, max_len = 0, trained = 0;
  for (const auto& rec : read_jsonl(files)) {
    auto c = conversation_of(rec);
    if (!c.ok()) {
      std::cerr << "m1-trajgen: " << c.error().message << "\n";
      return 1;
    }
    auto seq = training_sequence(c->first, c->second, *tok, fmt);
    if (!seq.ok()) {
      std::cerr << "m1-trajgen: " << seq.error().message << "\n";
      return 1;
    }
    // uint16 when the vocabulary allows (it travels to the GPU machine: half the bytes).
    if (narrow) {
      std::vector<uint16_t> v(seq->ids.begin(), seq->ids.end());
      tokens.write(reinterpret_cast<const char*>(v.data()), v.size() * 2);
    } else {
      tokens.write(reinterpret_cast<const char*>(seq->ids.data()), seq->ids.size() * 4);
    }
    mask.write(reinterpret_cast<const char*>(seq->mask.data()), seq->mask.size());
    index["sequences"].push_back({offset, static_cast<int64_t>(seq->ids.size())});
    offset += static_cast<int64_t>(seq->ids.size());
    max_len = std::max<int64_t>(max_len, seq->ids.size());
    for (uint8_t m : seq->mask) trained += m;
  }
  std::ofstream(out / "index.json") << index.dump();
  std::cout << json{{"sequences", index["sequences"].size()}, {"tokens", offset}, {"trained_tokens", trained},
                    {"max_len", max_len}, {"vocab_size", tok->vocab_size()}}.dump() << "\n";
  return 0;
}

// The rendered text of recorded conversations (a tokenizer-training corpus).
int cmd_render(const std::vector<std::string>& files, const fs::path& out) {
  engine::ChatFormat fmt;
  std::ofstream o(out);
  for (const auto& rec : read_jsonl(files)) {
    auto c = conversation_of(rec);
    if (!c.ok()) {
      std::cerr << "m1-trajgen: " << c.error().message << "\n";
      return 1;
    }
    o << fmt.render_text(c->first, c->second, false) << "\n";
  }
  return 0;
}

int cmd_trajectories(const fs::path& tasks_path, const fs::path& out, uint64_t seed, bool sandbox_on,
                     int variants) {
  fs::create_directories(out);
  std::ofstream convs(out / "conversations.jsonl");
  std::ifstream in(tasks_path);
  std::string line;
  int64_t n_ok = 0, n_bad = 0;
  uint64_t k = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    Task t;
    t.record = json::parse(line);
    t.repo = tasks_path.parent_path() / t.record["repo"].get<std::string>();
    t.file = t.record["meta"]["file"];
    t.function = t.record["meta"]["function"];
    if (!parse_gold(t)) { ++n_bad; continue; }
    const Task original = t;
    for (int variant = 0; variant < variants; ++variant) {
    t = original;
    tools::Registry reg;
    tools::BuiltinToolsOptions topt;
    topt.policy.mode = sandbox_on ? sandbox::Mode::Enforce : sandbox::Mode::Off;
    topt.policy.env = {{"PATH", "/usr/local/bin:/usr/bin:/bin"}, {"HOME", "/tmp"}, {"LANG", "C.UTF-8"},
                       {"PYTHONDONTWRITEBYTECODE", "1"}};
    tools::register_builtin_tools(reg, topt);
    agent::add_submit_tool(reg);
    // Run in a copy at a path shaped like `m1 fix`'s worktrees (STATE/worktrees/<session id>), with
    // varied prefixes, so the paths in tracebacks look like those the model meets at inference.
    std::mt19937_64 prng(seed * 7919 + k);
    auto hex = [&](int n) {
      std::string s;
      for (int i = 0; i < n; ++i) s += "0123456789abcdef"[prng() % 16];
      return s;
    };
    const char* prefixes[] = {"/tmp/tmp.", "/tmp/m1-state-", "/var/tmp/m1."};
    fs::path work = fs::path(prefixes[prng() % 3] + hex(8)) / "worktrees" /
                    ("20261" + std::to_string(100 + prng() % 30) + "-" + std::to_string(100000 + prng() % 130000) +
                     "-" + std::to_string(100 + prng() % 900) + "-" + hex(6));
    fs::create_directories(work.parent_path());
    fs::copy(t.repo, work, fs::copy_options::recursive);
    struct Cleanup {
      fs::path root;
      ~Cleanup() { std::error_code ec; fs::remove_all(root, ec); }
    } cleanup{work.parent_path().parent_path()};
    t.repo = work;
    if (!make_unique(t)) { ++n_bad; continue; }
    OracleProvider oracle(t, seed * 1000003 + k++);
    agent::FanoutSink no_events;  // nothing to show or store: the conversation is the product
    agent::LoopDeps deps;
    deps.sink = &no_events;
    deps.provider = &oracle;
    deps.registry = &reg;
    deps.tool_ctx.workspace = fs::canonical(t.repo);
    std::vector<engine::ChatMessage> conv = {
        engine::ChatMessage::system(agent::fix_system_prompt(agent::collect_agents_md(t.repo, t.repo))),
        engine::ChatMessage::user(agent::fix_task_message(t.record["problem_statement"]))};
    agent::RunState st;
    auto res = agent::run_loop(deps, conv, st);
    // Keep only runs that submitted with the tests passing in the last test run.
    std::string first_tests, last_tests;
    for (const auto& m : conv)
      for (const auto& r : m.tool_results)
        if (r.name == "shell") (first_tests.empty() ? first_tests : last_tests) = r.content;
    bool passed = first_tests.find("FAILED") != std::string::npos &&
                  last_tests.find("\nOK") != std::string::npos;
    if (res.reason != agent::StopReason::Submitted || !passed) {
      ++n_bad;
      json dj = json::array();
      for (const auto& m : conv) dj.push_back(engine::to_json(m));
      std::ofstream(out / "dropped.jsonl", std::ios::app)
          << json{{"instance_id", t.record["instance_id"]}, {"messages", dj}}.dump() << "\n";
      std::cerr << "m1-trajgen: " << t.record["instance_id"] << " not used: "
                << agent::stop_reason_name(res.reason) << " " << res.detail << "; first test run: "
                << first_tests.substr(0, 200) << "; last: " << last_tests.substr(0, 300) << "\n";
      continue;
    }
    json cj = json::array(), tj = json::array();
    for (const auto& m : conv) cj.push_back(engine::to_json(m));
    for (const auto& d : oracle.tools()) tj.push_back(engine::to_json(d));
    convs << json{{"instance_id", t.record["instance_id"]}, {"meta", t.record["meta"]}, {"tools", tj},
                  {"messages", cj}}.dump() << "\n";
    ++n_ok;
    }  // variants
  }
  std::cout << json{{"trajectories", n_ok}, {"dropped", n_bad}}.dump() << "\n";
  return n_ok > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  auto flag = [&](const std::string& name, const std::string& def) {
    for (size_t i = 0; i + 1 < a.size(); ++i)
      if (a[i] == name) return a[i + 1];
    return def;
  };
  if (!a.empty() && a[0] == "tokenizer") {
    std::vector<std::string> corpus;
    for (size_t i = 1; i + 1 < a.size(); ++i)
      if (a[i] == "--corpus")
        for (size_t j = i + 1; j < a.size() && a[j].rfind("--", 0) != 0; ++j) corpus.push_back(a[j]);
    std::string out = flag("--out", "");
    if (corpus.empty() || out.empty()) {
      std::cerr << "usage: m1-trajgen tokenizer --corpus FILE... --vocab-size N --out DIR\n";
      return 2;
    }
    return cmd_tokenizer(corpus, std::stoi(flag("--vocab-size", "4096")), out);
  }
  auto list_after = [&](const std::string& name) {
    std::vector<std::string> v;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i] == name)
        for (size_t j = i + 1; j < a.size() && a[j].rfind("--", 0) != 0; ++j) v.push_back(a[j]);
    return v;
  };
  if (!a.empty() && a[0] == "trajectories") {
    std::string tasks = flag("--tasks", ""), out = flag("--out", "");
    if (tasks.empty() || out.empty()) {
      std::cerr << "usage: m1-trajgen trajectories --tasks tasks.jsonl --out DIR [--seed S] [--variants N] [--sandbox on|off]\n";
      return 2;
    }
    return cmd_trajectories(tasks, out, std::stoull(flag("--seed", "0")), flag("--sandbox", "on") != "off",
                            std::stoi(flag("--variants", "1")));
  }
  if (!a.empty() && a[0] == "encode") {
    auto files = list_after("--conversations");
    std::string tok = flag("--tokenizer", ""), out = flag("--out", "");
    if (files.empty() || tok.empty() || out.empty()) {
      std::cerr << "usage: m1-trajgen encode --conversations FILE... --tokenizer DIR --out DIR\n";
      return 2;
    }
    return cmd_encode(files, tok, out);
  }
  if (!a.empty() && a[0] == "render") {
    auto files = list_after("--conversations");
    std::string out = flag("--out", "");
    if (files.empty() || out.empty()) {
      std::cerr << "usage: m1-trajgen render --conversations FILE... --out FILE\n";
      return 2;
    }
    return cmd_render(files, out);
  }
  std::cerr << "usage: m1-trajgen (tokenizer|trajectories|encode|render) ... (see the file header)\n";
  return 2;
}
