// agent/events.cpp: the fan-out, JSON Lines and human sinks.
#include "agent/events.h"

#include <chrono>
#include <sstream>

namespace m1::agent {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void FanoutSink::event(const Event& e) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto* s : sinks_) s->event(e);
}
void FanoutSink::message(const ChatMessage& m, int generation) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto* s : sinks_) s->message(m, generation);
}
void FanoutSink::tool_call(const engine::ToolCall& c, const std::string& r, bool err, double s, double f) {
  std::lock_guard<std::mutex> l(mu_);
  for (auto* x : sinks_) x->tool_call(c, r, err, s, f);
}

void JsonLinesSink::event(const Event& e) {
  nlohmann::json j = {{"type", e.type}, {"session", session_}, {"ts", unix_now()}};
  for (auto it = e.data.begin(); it != e.data.end(); ++it) j[it.key()] = it.value();
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::lock_guard<std::mutex> l(mu_);
  std::fwrite(line.data(), 1, line.size(), out_);
  std::fflush(out_);
}

namespace {
std::string first_lines(const std::string& s, int n, size_t max_chars) {
  std::istringstream is(s);
  std::string line, out;
  int k = 0, total = 0;
  while (std::getline(is, line)) {
    ++total;
    if (k < n) {
      if (line.size() > max_chars) line = line.substr(0, max_chars) + "...";
      out += "    " + line + "\n";
      ++k;
    }
  }
  if (total > n) out += "    [" + std::to_string(total - n) + " more lines]\n";
  return out;
}
}  // namespace

void HumanSink::event(const Event& e) {
  std::lock_guard<std::mutex> l(mu_);
  auto c = [&](const char* code) { return color_ ? code : ""; };
  const char* reset = color_ ? "\033[0m" : "";
  const auto& d = e.data;
  auto endline = [&] {
    if (mid_line_) std::fputc('\n', out_);
    mid_line_ = false;
  };
  if (e.type == "session_start" || e.type == "session_resume") {
    std::fprintf(out_, "%s== session %s%s: %s in %s (driven by %s)%s\n", c("\033[1m"),
                 d.value("session", "").c_str(), e.type == "session_resume" ? " (resumed)" : "",
                 d.value("kind", "task").c_str(),
                 d.value("workspace", "").c_str(), d.value("provider", "").c_str(), reset);
  } else if (e.type == "turn_start") {
    endline();
    std::fprintf(out_, "%s-- %s %d%s\n", c("\033[2m"), d.value("scripted", false) ? "script turn" : "turn",
                 d.value("turn", 0), reset);
  } else if (e.type == "text_delta" || e.type == "thinking_delta") {
    std::string t = d.value("text", "");
    std::fprintf(out_, "%s%s%s", e.type == "thinking_delta" ? c("\033[2m") : "", t.c_str(), reset);
    mid_line_ = !t.empty() && t.back() != '\n';
  } else if (e.type == "tool_call") {
    endline();
    std::string args = d.contains("arguments") ? d["arguments"].dump() : "{}";
    if (args.size() > 160) args = args.substr(0, 160) + "...";
    std::fprintf(out_, "%s> %s %s%s\n", c("\033[36m"), d.value("name", "").c_str(), args.c_str(), reset);
  } else if (e.type == "tool_result") {
    std::fprintf(out_, "%s%s", d.value("is_error", false) ? c("\033[31m") : c("\033[2m"),
                 first_lines(d.value("content", ""), 6, 160).c_str());
    std::fprintf(out_, "%s", reset);
  } else if (e.type == "format_error" || e.type == "loop_nudge" || e.type == "elision" ||
             e.type == "compaction" || e.type == "error" || e.type == "warning" ||
             e.type == "provider_note") {
    endline();
    std::fprintf(out_, "%s[%s] %s%s\n", c("\033[33m"), e.type.c_str(),
                 d.value("message", d.dump()).c_str(), reset);
  } else if (e.type == "stop") {
    endline();
    std::fprintf(out_, "%s== stopped: %s%s%s after %d turns, %llu tokens in / %llu out, %.1fs%s\n",
                 c("\033[1m"), d.value("reason", "").c_str(),
                 d.value("detail", "").empty() ? "" : (" (" + d.value("detail", "") + ")").c_str(),
                 "", d.value("turns", 0), (unsigned long long)d.value("input_tokens", uint64_t{0}),
                 (unsigned long long)d.value("output_tokens", uint64_t{0}), d.value("seconds", 0.0), reset);
  }
  std::fflush(out_);
}

}  // namespace m1::agent
