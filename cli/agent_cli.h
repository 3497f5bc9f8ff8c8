// cli/agent_cli.h: options shared by the agent subcommands (fix, resume): provider, budgets,
// sandbox and output flags, and the sinks they select. Owned with cmd_fix/cmd_resume.
#pragma once
#include <unistd.h>

#include <memory>
#include <optional>
#include <string>

#include "agent/config.h"
#include "agent/events.h"
#include "cli/command.h"

namespace m1::cli {

// The terminal view and/or JSON Lines, as --json asks: with --json, stdout carries only JSON
// Lines and the human view goes to stderr when that is a terminal.
struct OutputSinks {
  std::unique_ptr<agent::JsonLinesSink> json;
  std::unique_ptr<agent::HumanSink> human;
  agent::FanoutSink fan;
  explicit OutputSinks(bool as_json) {
    if (as_json) {
      json = std::make_unique<agent::JsonLinesSink>(stdout, "");
      fan.add(json.get());
      if (isatty(2)) human = std::make_unique<agent::HumanSink>(stderr, true);
    } else {
      human = std::make_unique<agent::HumanSink>(stdout, isatty(1));
    }
    if (human) fan.add(human.get());
  }
  void set_session(const std::string& id) {
    if (json) json->set_session(id);
  }
};

// "on"/"off" -> enforce flag; anything else is a usage error.
inline Result<bool> parse_sandbox_flag(const std::string& v) {
  if (v == "on") return true;
  if (v == "off") return false;
  return make_error("--sandbox must be 'on' or 'off', got '" + v + "'", 2);
}

}  // namespace m1::cli
