// agent/events.h: where a run's events go. The loop emits each event once to an EventSink; sinks
// fan out to the SQLite store (crash-safe record), JSON Lines on stdout (--json) and the human view.
#pragma once
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

#include "agent/types.h"

namespace m1::agent {

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void event(const Event& e) = 0;
  // A conversation message, recorded in order; `generation` bumps when compaction rewrites them.
  virtual void message(const ChatMessage& m, int generation) { (void)m; (void)generation; }
  // One finished tool call with its timings (unix seconds).
  virtual void tool_call(const engine::ToolCall& call, const std::string& result, bool is_error,
                         double started, double finished) {
    (void)call; (void)result; (void)is_error; (void)started; (void)finished;
  }
};

// Sends everything to several sinks (not owned).
class FanoutSink : public EventSink {
 public:
  void add(EventSink* s) { sinks_.push_back(s); }
  void event(const Event& e) override;
  void message(const ChatMessage& m, int generation) override;
  void tool_call(const engine::ToolCall& c, const std::string& r, bool err, double s, double f) override;

 private:
  std::vector<EventSink*> sinks_;
  std::mutex mu_;
};

// One JSON object per line: {"type":..., "session":..., "ts":..., ...data}; flushed per line.
class JsonLinesSink : public EventSink {
 public:
  JsonLinesSink(std::FILE* out, std::string session_id) : out_(out), session_(std::move(session_id)) {}
  void set_session(std::string id) { session_ = std::move(id); }
  void event(const Event& e) override;

 private:
  std::FILE* out_;
  std::string session_;
  std::mutex mu_;
};

// The terminal view: streamed text, one line per tool call, the first lines of each result.
class HumanSink : public EventSink {
 public:
  HumanSink(std::FILE* out, bool color) : out_(out), color_(color) {}
  void event(const Event& e) override;

 private:
  std::FILE* out_;
  bool color_;
  bool mid_line_ = false;
  std::mutex mu_;
};

double unix_now();

}  // namespace m1::agent
