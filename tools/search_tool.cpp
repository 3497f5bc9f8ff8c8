// tools/search_tool.cpp: the `search` tool (regex over files git does not ignore) and the
// `shell` tool (one command through sandbox::run under the user's policy).
#include <fnmatch.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <regex>
#include <sstream>

#include "tools/builtin.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace m1::tools {

namespace {

constexpr size_t kMaxLineScan = 4000;  // longer lines (minified files) are cut before matching

ToolResult search(const BuiltinToolsOptions& o, const json& a, ToolContext& ctx) {
  auto root = resolve_in_workspace(ctx.workspace, a.value("path", std::string(".")));
  if (!root.ok()) return ToolResult::error_text(root.error().message);
  std::regex re;
  try {
    auto flags = std::regex::ECMAScript;
    if (a.value("case_insensitive", false)) flags |= std::regex::icase;
    re = std::regex(a["pattern"].get<std::string>(), flags);
  } catch (const std::regex_error& e) {
    return ToolResult::error_text("pattern is not a valid regular expression (ECMAScript): " +
                                  std::string(e.what()));
  }
  const std::string glob = a.value("glob", std::string());
  size_t max = a.value("max_results", o.search_max_results);
  std::error_code ec;
  std::vector<std::string> files;
  if (fs::is_regular_file(*root, ec)) {
    files.push_back(root->filename().string());
    *root = root->parent_path();
  } else {
    files = list_visible_files(*root, 200000);
  }
  std::ostringstream os;
  size_t hits = 0, scanned = 0;
  bool truncated = false;
  for (const auto& f : files) {
    if (!glob.empty() && fnmatch(glob.c_str(), f.c_str(), 0) != 0 &&
        fnmatch(glob.c_str(), fs::path(f).filename().c_str(), 0) != 0)
      continue;
    if (ctx.cancel && ctx.cancel->load()) return ToolResult::error_text("search cancelled");
    auto size = fs::file_size(*root / f, ec);
    if (ec || size > o.max_file_bytes) continue;
    std::ifstream in(*root / f, std::ios::binary);
    std::string line;
    size_t n = 0;
    ++scanned;
    while (std::getline(in, line)) {
      ++n;
      if (line.find('\0') != std::string::npos) break;  // binary file
      if (line.size() > kMaxLineScan) line.resize(kMaxLineScan);
      if (std::regex_search(line, re)) {
        if (hits >= max) { truncated = true; break; }
        ++hits;
        os << f << ":" << n << ": " << (line.size() > 300 ? line.substr(0, 300) + "..." : line)
           << "\n";
      }
    }
    if (truncated) break;
  }
  std::string out = os.str();
  if (hits == 0) out = "no matches in " + std::to_string(scanned) + " files\n";
  if (truncated) out += "[stopped at " + std::to_string(max) + " matches; narrow the pattern, path or glob]\n";
  return ToolResult::ok_text(out);
}

std::string describe_exit(const sandbox::RunResult& r) {
  if (r.cancelled) return "cancelled (the command's process group was killed)";
  if (r.timed_out)
    return "timed out after " + std::to_string(static_cast<int>(r.wall_seconds)) +
           "s (the command's process group was killed)";
  if (r.term_signal) return "killed by signal " + std::to_string(r.term_signal);
  return "exit code " + std::to_string(r.exit_code);
}

ToolResult shell(const BuiltinToolsOptions& o, const json& a, ToolContext& ctx) {
  static std::atomic<uint64_t> counter{0};
  sandbox::Policy policy = o.policy;  // the user's policy; nothing in `a` can loosen it
  policy.workspace = ctx.workspace;
  policy.env.emplace("PYTHONDONTWRITEBYTECODE", "1");  // unless the caller set it (see builtin.h)
  policy.timeout_s = std::min(a.value("timeout_s", o.default_timeout_s), o.max_timeout_s);
  policy.output_cap_bytes = o.output_cap_bytes;
  sandbox::Command cmd;
  cmd.argv = {"/bin/bash", "-c", a["command"].get<std::string>()};
  cmd.cwd = ctx.workspace;
  if (!o.full_output_dir.empty()) {
    std::error_code ec;
    fs::create_directories(o.full_output_dir, ec);
    cmd.full_output_path = o.full_output_dir /
        ("shell-" + std::to_string(getpid()) + "-" + std::to_string(++counter) + ".log");
  }
  auto r = sandbox::run(cmd, policy, ctx.cancel);
  if (!r.ok()) return ToolResult::error_text("shell: " + r.error().message);
  std::string text = describe_exit(*r) + "\n" + r->output;
  if (!text.empty() && text.back() != '\n') text += "\n";
  if (r->output_bytes > r->output.size() && !cmd.full_output_path.empty())
    text += "[full output (" + std::to_string(r->output_bytes) + " bytes) saved to " +
            cmd.full_output_path.string() + "; view it with a line range]\n";
  ToolResult res = ToolResult::ok_text(text);
  res.is_error = r->exit_code != 0 || r->timed_out || r->cancelled;
  res.structured = json{{"exit_code", r->exit_code}, {"timed_out", r->timed_out},
                        {"cancelled", r->cancelled}, {"output_bytes", r->output_bytes},
                        {"wall_seconds", r->wall_seconds}};
  return res;
}

}  // namespace

std::map<std::string, std::string> default_command_env() {
  return {{"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
          {"HOME", "/tmp"}, {"LANG", "C.UTF-8"}, {"TERM", "dumb"}, {"NO_COLOR", "1"},
          {"PAGER", "cat"}, {"GIT_PAGER", "cat"}, {"PYTHONDONTWRITEBYTECODE", "1"}};
}

std::shared_ptr<Tool> make_search_tool(const BuiltinToolsOptions& o) {
  ToolSpec s{"search", "Search files",
             "Search files (not ignored by git) for a regular expression; prints file:line: text.",
             {{"type", "object"},
              {"properties",
               {{"pattern", {{"type", "string"}, {"minLength", 1}, {"description", "ECMAScript regular expression"}}},
                {"path", {{"type", "string"}, {"description", "file or folder to search (default: the root)"}}},
                {"glob", {{"type", "string"}, {"description", "only files matching this glob, e.g. *.py"}}},
                {"case_insensitive", {{"type", "boolean"}}},
                {"max_results", {{"type", "integer"}, {"minimum", 1}, {"maximum", 2000}}}}},
              {"required", {"pattern"}},
              {"additionalProperties", false}}, std::nullopt};
  s.read_only = true;
  return make_tool(s, [o](const json& a, ToolContext& c) { return search(o, a, c); });
}

std::shared_ptr<Tool> make_shell_tool(const BuiltinToolsOptions& o) {
  ToolSpec s{"shell", "Run shell command",
             "Run a bash command in the repository (sandboxed: no network, writes only inside the "
             "repository and /tmp, stdin closed). Output is capped: head and tail are kept.",
             {{"type", "object"},
              {"properties",
               {{"command", {{"type", "string"}, {"minLength", 1}, {"description", "bash command line"}}},
                {"timeout_s", {{"type", "number"}, {"minimum", 1}, {"maximum", o.max_timeout_s},
                               {"description", "wall-clock limit in seconds"}}}}},
              {"required", {"command"}},
              {"additionalProperties", false}}, std::nullopt};
  return make_tool(s, [o](const json& a, ToolContext& c) { return shell(o, a, c); });
}

}  // namespace m1::tools
