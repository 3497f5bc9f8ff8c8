// agent/prompt.cpp: what the model is told. The finishing rule (call `submit`; a turn without a
// tool call ends the task unsubmitted) is stated here because the loop enforces exactly that.
#include "agent/prompt.h"

#include <fstream>
#include <sstream>
#include <vector>

namespace fs = std::filesystem;

namespace m1::agent {

std::string collect_agents_md(const fs::path& root, const fs::path& cwd) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(root, ec), c = fs::weakly_canonical(cwd, ec);
  std::vector<fs::path> dirs;
  fs::path rel = c.lexically_relative(r);
  dirs.push_back(r);
  if (!rel.empty() && *rel.begin() != ".." && rel != ".") {
    fs::path acc = r;
    for (const auto& part : rel) dirs.push_back(acc /= part);
  }
  std::string out;
  for (const auto& d : dirs) {
    std::ifstream in(d / "AGENTS.md");
    if (!in) continue;
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    if (text.size() > 16384) text = text.substr(0, 16384) + "\n[... AGENTS.md cut at 16 KiB ...]";
    fs::path shown = (d / "AGENTS.md").lexically_relative(r);
    out += "--- " + shown.generic_string() + " ---\n" + text + (text.empty() || text.back() == '\n' ? "" : "\n");
  }
  return out;
}

std::string fix_system_prompt(const std::string& agents_md) {
  std::string p =
      "You are a careful software engineer fixing an issue in a git repository. The current "
      "directory of every tool is the repository root.\n"
      "Work step by step: run the tests to see the failure, find the cause (search, view), make "
      "the smallest correct change (str_replace, apply_patch or create), and run the tests again.\n"
      "Each turn, call one or more tools. Commands run in a sandbox without network access.\n"
      "When the fix is done and verified, call the `submit` tool with a short summary of the "
      "change: that is the only way to finish. A reply without any tool call ends the task "
      "without submitting it.\n";
  if (!agents_md.empty())
    p += "\nInstructions from the repository's AGENTS.md files (outermost first):\n" + agents_md;
  return p;
}

std::string fix_task_message(const std::string& problem_statement) {
  return "Fix this issue in the repository:\n\n" + problem_statement;
}

}  // namespace m1::agent
