// agent/scripted_provider.cpp: replays a file of model turns (tests and demos). It is labelled
// "script:FILE" everywhere the user sees output, and is_model() is false, so nothing claims a model
// wrote these turns.
//
// File: a JSON array of turns or JSON Lines (one turn per line). A turn:
//   {"text": "...", "thinking": "...",
//    "tool_calls": [{"name": "shell", "arguments": {...}}          // a well-formed call
//                   {"name": "view", "arguments_raw": "{oops"}],   // arguments as raw text
//    "raw_tool_calls": ["not json at all"],                        // unparseable call lines
//    "sleep_s": 1.5, "error": "simulated failure", "usage": {"input_tokens": 10, "output_tokens": 5}}
// The turn played is the number of turns already completed in this task (kept across resume).
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "agent/provider.h"

using nlohmann::json;

namespace m1::agent {

Result<json> parse_call_arguments(const std::string& name, const std::string& text) {
  if (text.empty()) return json::object();
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded())
    return make_error("arguments of call to '" + name + "' are not valid JSON: " +
                      (text.size() > 200 ? text.substr(0, 200) + "..." : text));
  if (!j.is_object())
    return make_error("arguments of call to '" + name + "' must be a JSON object, got " + j.dump());
  return j;
}

namespace {

class ScriptedProvider : public Provider {
 public:
  ScriptedProvider(std::string path, std::vector<json> turns)
      : path_(std::move(path)), turns_(std::move(turns)) {}
  std::string label() const override { return "script:" + path_; }
  bool is_model() const override { return false; }
  void on_resume(int turns_done) override { next_ = static_cast<size_t>(turns_done); }

  Result<ModelTurn> complete(const std::vector<ChatMessage>& conv,
                             const std::vector<engine::ToolDef>&,
                             const std::atomic<bool>* cancel, const StreamSink& sink) override {
    if (next_ >= turns_.size())
      return make_error("script " + path_ + " has no turn " + std::to_string(next_ + 1) +
                        " (it holds " + std::to_string(turns_.size()) + ")");
    const json& t = turns_[next_];
    double sleep_s = t.value("sleep_s", 0.0);
    auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(sleep_s);
    while (std::chrono::steady_clock::now() < until) {
      if (cancel && cancel->load()) return make_error("cancelled while waiting for script turn");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ++next_;
    if (t.contains("error")) return make_error("script turn error: " + t["error"].get<std::string>());
    ModelTurn turn;
    std::string text = t.value("text", std::string());
    std::string thinking = t.value("thinking", std::string());
    if (!thinking.empty() && sink.on_thinking) sink.on_thinking(thinking);
    if (!text.empty() && sink.on_text) sink.on_text(text);
    std::vector<engine::ToolCall> calls;
    int n = 0;
    for (const auto& c : t.value("tool_calls", json::array())) {
      std::string id = "call_" + std::to_string(next_) + "_" + std::to_string(++n);
      std::string name = c.value("name", std::string());
      if (c.contains("arguments_raw")) {
        auto args = parse_call_arguments(name, c["arguments_raw"].get<std::string>());
        if (!args.ok()) {
          turn.call_errors.push_back({name, c["arguments_raw"].get<std::string>(), args.error().message});
          continue;
        }
        calls.push_back({id, name, *args});
      } else {
        calls.push_back({id, name, c.value("arguments", json::object())});
      }
    }
    for (const auto& raw : t.value("raw_tool_calls", json::array()))
      turn.call_errors.push_back({"", raw.get<std::string>(),
                                  "tool call line is not a JSON object {\"name\": ..., \"arguments\": {...}}: " +
                                      raw.get<std::string>()});
    turn.message = ChatMessage::assistant(text, thinking, calls);
    if (t.contains("usage")) {
      turn.usage.input_tokens = t["usage"].value("input_tokens", uint64_t{0});
      turn.usage.output_tokens = t["usage"].value("output_tokens", uint64_t{0});
      turn.usage_estimated = false;
    } else {
      size_t in = 0;
      for (const auto& m : conv) in += count_tokens(m.content) + count_tokens(m.thinking);
      turn.usage.input_tokens = in;
      turn.usage.output_tokens = count_tokens(text) + count_tokens(thinking) +
                                 count_tokens(t.value("tool_calls", json::array()).dump());
    }
    turn.finish_reason = calls.empty() && turn.call_errors.empty() ? "stop" : "tool_calls";
    return turn;
  }

 private:
  std::string path_;
  std::vector<json> turns_;
  size_t next_ = 0;
};

}  // namespace

Result<std::unique_ptr<Provider>> make_scripted_provider(const std::string& path) {
  if (path.empty()) return make_error("the scripted provider needs --script FILE", 2);
  std::ifstream in(path);
  if (!in) return make_error("cannot open script file '" + path + "'", 2);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  std::vector<json> turns;
  json whole = json::parse(text, nullptr, false);
  if (!whole.is_discarded() && whole.is_array()) {
    for (auto& t : whole) turns.push_back(t);
  } else {
    std::istringstream ls(text);
    std::string line;
    int n = 0;
    while (std::getline(ls, line)) {
      ++n;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded())
        return make_error("script '" + path + "' line " + std::to_string(n) +
                          ": not valid JSON (expected one turn object per line)", 2);
      turns.push_back(j);
    }
  }
  for (size_t i = 0; i < turns.size(); ++i) {
    const auto& t = turns[i];
    if (!t.is_object())
      return make_error("script '" + path + "' turn " + std::to_string(i + 1) + ": expected an object", 2);
    if (t.contains("tool_calls") && !t["tool_calls"].is_array())
      return make_error("script '" + path + "' turn " + std::to_string(i + 1) +
                        ": tool_calls must be an array", 2);
    for (const auto& c : t.value("tool_calls", json::array()))
      if (!c.is_object() || !c.contains("name") || !c["name"].is_string() ||
          (c.contains("arguments") && !c["arguments"].is_object()))
        return make_error("script '" + path + "' turn " + std::to_string(i + 1) +
                          ": each tool call needs a string name and an object arguments", 2);
  }
  if (turns.empty()) return make_error("script '" + path + "' holds no turns", 2);
  return std::unique_ptr<Provider>(new ScriptedProvider(path, std::move(turns)));
}

}  // namespace m1::agent
