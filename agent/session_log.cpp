// agent/session_log.cpp: StoreSink and conversation loading. Text deltas are not stored one by
// one (the assistant message that follows holds the whole text); every other event is.
#include "agent/session_log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <random>

namespace m1::agent {

void StoreSink::report(const Status& st) {
  if (st.ok() || warned_) return;
  warned_ = true;
  std::fprintf(stderr, "m1: warning: could not record to the session store: %s\n", st.error().message.c_str());
}

void StoreSink::event(const Event& e) {
  if (e.type == "text_delta" || e.type == "thinking_delta") return;
  report(log_.append_event(id_, e.type, e.data));
}

void StoreSink::message(const ChatMessage& m, int generation) {
  report(log_.append_message(id_, engine::role_name(m.role),
                             {{"generation", generation}, {"message", engine::to_json(m)}}));
}

void StoreSink::tool_call(const engine::ToolCall& c, const std::string& result, bool is_error, double s,
                          double f) {
  report(log_.record_tool_call(id_, c.id, c.name, c.arguments, result, is_error, s, f));
}

Result<std::vector<ChatMessage>> load_conversation(SessionLog& log, const std::string& id) {
  M1_ASSIGN_OR_RETURN(auto stored, log.messages(id));
  int gen = 0;
  for (const auto& m : stored) gen = std::max(gen, m.body.value("generation", 0));
  std::vector<ChatMessage> conv;
  for (const auto& m : stored) {
    if (m.body.value("generation", 0) != gen) continue;
    if (!m.body.contains("message"))
      return make_error("session " + id + ": a stored message has no 'message' field");
    auto msg = engine::chat_message_from_json(m.body["message"]);
    if (!msg.ok()) return make_error("session " + id + ": stored message: " + msg.error().message);
    conv.push_back(*msg);
  }
  return conv;
}

std::string new_session_id() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  int ms = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  static thread_local std::mt19937_64 rng(std::random_device{}());
  char rest[24];
  std::snprintf(rest, sizeof rest, "-%03d-%06x", ms, static_cast<unsigned>(rng() & 0xffffff));
  return std::string(buf) + rest;
}

}  // namespace m1::agent
