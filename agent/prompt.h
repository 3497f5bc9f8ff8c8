// agent/prompt.h: the system prompt, AGENTS.md instructions and the task message.
#pragma once
#include <filesystem>
#include <string>

namespace m1::agent {

// AGENTS.md files from `root` down to `cwd` (inclusive), outermost first, each headed by its path.
std::string collect_agents_md(const std::filesystem::path& root, const std::filesystem::path& cwd);

// The system prompt for a repository bug-fix task (tools are listed by the provider/template).
std::string fix_system_prompt(const std::string& agents_md);
std::string fix_task_message(const std::string& problem_statement);

}  // namespace m1::agent
