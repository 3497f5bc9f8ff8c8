// agent/context.cpp: the context budget. Tokens are counted per message with the provider's
// counter; when the conversation would pass ~85% of the window (the rest is room for the reply),
// old tool outputs are elided first (oldest first, the last two tool messages kept), then the
// conversation is compacted into a runtime-written summary. The summary is built from the
// transcript itself (goal, constraints, calls made and their outcome, files changed, the last
// note), not by asking the model, so it cannot drift or fail, and works with every provider.
#include <set>
#include <sstream>

#include "agent/loop.h"

namespace m1::agent {

namespace {

size_t message_tokens(const Provider& p, const ChatMessage& m) {
  size_t n = 8 + p.count_tokens(m.content) + p.count_tokens(m.thinking);
  for (const auto& c : m.tool_calls) n += 8 + p.count_tokens(c.name + c.arguments.dump());
  for (const auto& r : m.tool_results) n += 8 + p.count_tokens(r.content);
  return n;
}

std::string first_line(const std::string& s, size_t max) {
  std::string l = s.substr(0, s.find('\n'));
  return l.size() > max ? l.substr(0, max) + "..." : l;
}

}  // namespace

size_t conversation_tokens(const Provider& p, const std::vector<ChatMessage>& conv,
                           const std::vector<engine::ToolDef>& tools) {
  size_t n = 0;
  for (const auto& m : conv) n += message_tokens(p, m);
  for (const auto& t : tools) n += 8 + p.count_tokens(t.name + t.description + t.parameters.dump());
  return n;
}

std::string compaction_summary(const std::vector<ChatMessage>& conv) {
  std::ostringstream os;
  os << "[Context compacted by the runtime: earlier turns were replaced by this summary to fit the "
        "context window.]\n";
  std::string goal;
  for (const auto& m : conv)
    if (m.role == Role::User) { goal = m.content; break; }
  os << "Goal (the original task):\n" << (goal.size() > 3000 ? goal.substr(0, 3000) + "..." : goal) << "\n";
  os << "Constraints: follow the system instructions; work only through the tools; finish by "
        "calling submit with a summary.\n";
  os << "Done so far:\n";
  std::set<std::string> changed;
  std::string last_note;
  int turn = 0;
  for (size_t i = 0; i < conv.size(); ++i) {
    const auto& m = conv[i];
    if (m.role != Role::Assistant) continue;
    ++turn;
    if (!m.content.empty()) last_note = m.content;
    const ChatMessage* results = i + 1 < conv.size() && conv[i + 1].role == Role::Tool ? &conv[i + 1] : nullptr;
    for (size_t k = 0; k < m.tool_calls.size(); ++k) {
      const auto& c = m.tool_calls[k];
      std::string what = c.name;
      if (c.arguments.contains("command")) what += " `" + first_line(c.arguments.value("command", ""), 120) + "`";
      if (c.arguments.contains("path")) what += " " + c.arguments.value("path", "");
      if (c.arguments.contains("pattern")) what += " /" + c.arguments.value("pattern", "") + "/";
      std::string outcome;
      if (results)
        for (const auto& r : results->tool_results)
          if (r.call_id == c.id) outcome = (r.is_error ? "failed: " : "") + first_line(r.content, 160);
      os << "- turn " << turn << ": " << what << (outcome.empty() ? "" : " -> " + outcome) << "\n";
      if ((c.name == "str_replace" || c.name == "create") && c.arguments.contains("path"))
        changed.insert(c.arguments.value("path", ""));
      if (c.name == "apply_patch") changed.insert("(files in an apply_patch call)");
    }
  }
  if (!changed.empty()) {
    os << "Files edited:";
    for (const auto& f : changed) os << " " << f;
    os << "\n";
  }
  if (!last_note.empty()) os << "Last note written: " << first_line(last_note, 500) << "\n";
  os << "Left to do: continue from the current state of the files (re-check them with view; earlier "
        "outputs are gone), verify the fix by running the tests, then call submit.\n";
  return os.str();
}

bool fit_context(LoopDeps& d, std::vector<ChatMessage>& conv,
                 const std::vector<engine::ToolDef>& tools, RunState& state) {
  const size_t limit = d.budgets.context_tokens * 85 / 100;
  size_t before = conversation_tokens(*d.provider, conv, tools);
  if (before <= limit) return false;
  // 1) elide old tool outputs, oldest first; the last two tool messages stay whole.
  std::vector<size_t> tool_msgs;
  for (size_t i = 0; i < conv.size(); ++i)
    if (conv[i].role == Role::Tool) tool_msgs.push_back(i);
  size_t now = before;
  int elided = 0;
  for (size_t k = 0; k + 2 < tool_msgs.size() && now > limit; ++k) {
    for (auto& r : conv[tool_msgs[k]].tool_results) {
      if (r.content.size() <= 200 || r.content.rfind("[elided", 0) == 0) continue;
      size_t toks = d.provider->count_tokens(r.content);
      r.content = "[elided: " + std::to_string(toks) + " tokens of earlier " + r.name +
                  " output, removed to fit the context; run the call again if needed]";
      ++elided;
    }
    now = conversation_tokens(*d.provider, conv, tools);
  }
  if (elided)
    d.sink->event({"elision", {{"message", "elided " + std::to_string(elided) +
                                               " old tool outputs to fit the context (" +
                                               std::to_string(before) + " -> " + std::to_string(now) + " tokens)"},
                               {"outputs", elided}, {"tokens_before", before}, {"tokens_after", now}}});
  if (now <= limit) return elided > 0;
  // 2) compact: system messages + the task + the summary.
  std::vector<ChatMessage> kept;
  for (const auto& m : conv)
    if (m.role == Role::System) kept.push_back(m);
  for (const auto& m : conv)
    if (m.role == Role::User) { kept.push_back(m); break; }
  std::string summary = compaction_summary(conv);
  kept.push_back(ChatMessage::user(cut_middle(summary, limit * 2)));
  conv = std::move(kept);
  ++state.generation;
  for (const auto& m : conv) d.sink->message(m, state.generation);
  size_t after = conversation_tokens(*d.provider, conv, tools);
  d.sink->event({"compaction", {{"message", "compacted the conversation (" + std::to_string(now) + " -> " +
                                                std::to_string(after) + " tokens); the summary keeps the goal, "
                                                "what was done and what is left"},
                                {"tokens_before", now}, {"tokens_after", after}, {"summary", summary},
                                {"generation", state.generation}}});
  return true;
}

}  // namespace m1::agent
