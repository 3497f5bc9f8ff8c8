// tests/agent/test_util.h: a sink that keeps everything, temp dirs, script files.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "agent/events.h"

namespace m1::agent::test {

struct CollectSink : EventSink {
  std::mutex mu;
  std::vector<Event> events;
  std::vector<ChatMessage> messages;
  void event(const Event& e) override {
    std::lock_guard<std::mutex> l(mu);
    events.push_back(e);
  }
  void message(const ChatMessage& m, int) override {
    std::lock_guard<std::mutex> l(mu);
    messages.push_back(m);
  }
  std::vector<Event> of(const std::string& type) {
    std::vector<Event> out;
    for (const auto& e : events)
      if (e.type == type) out.push_back(e);
    return out;
  }
};

inline std::filesystem::path temp_dir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() /
           ("m1-agent-" + tag + "-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

inline std::string write_script(const std::filesystem::path& dir, const std::vector<nlohmann::json>& turns) {
  auto p = dir / "script.jsonl";
  std::ofstream out(p);
  for (const auto& t : turns) out << t.dump() << "\n";
  return p.string();
}

}  // namespace m1::agent::test
