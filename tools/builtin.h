// tools/builtin.h: the built-in tools (shell, view, str_replace, create, apply_patch, search, list).
// File tools work on the workspace given in ToolContext and refuse paths that leave it (also via
// symlinks); `shell` always goes through sandbox::run with the policy the *user* chose here —
// nothing a model sends can change the mode, network or limits.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "sandbox/sandbox.h"
#include "tools/tool.h"

namespace m1::tools {

// The environment commands of the built-in tools see unless a caller gives its own: a fixed
// PATH, HOME=/tmp, C.UTF-8, no pagers or colour, and PYTHONDONTWRITEBYTECODE=1 (stale
// __pycache__ files in a worktree made tests run old code, and they would end up in the patch).
std::map<std::string, std::string> default_command_env();

struct BuiltinToolsOptions {
  // workspace is filled from ToolContext per call. `shell` adds PYTHONDONTWRITEBYTECODE=1 to an
  // env that does not set it (set it to "" to let Python write bytecode).
  sandbox::Policy policy = [] {
    sandbox::Policy p;
    p.env = default_command_env();
    return p;
  }();
  double default_timeout_s = 120;         // shell, when the model gives none
  double max_timeout_s = 900;             // shell: upper bound a model may ask for
  size_t output_cap_bytes = 16 * 1024;    // shell output kept for the model (head + tail)
  std::filesystem::path full_output_dir;  // full shell outputs land here (empty: not kept)
  size_t view_max_lines = 400;            // view without a range shows at most this many lines
  size_t max_file_bytes = 4 << 20;        // view/str_replace refuse larger files
  size_t search_max_results = 200;
};

// Adds the seven built-in tools to `registry` (replacing any of the same names).
void register_builtin_tools(Registry& registry, const BuiltinToolsOptions& options);

// Helpers shared by the tool implementations (and tests).
// Resolves `rel` inside `workspace`; an error names the path and why it is refused.
Result<std::filesystem::path> resolve_in_workspace(const std::filesystem::path& workspace,
                                                   const std::string& rel,
                                                   const std::vector<std::filesystem::path>&
                                                       extra_roots = {});
Result<std::string> read_text_file(const std::filesystem::path& p, size_t max_bytes);
Status write_text_file(const std::filesystem::path& p, const std::string& text);
// Files under `dir` that git does not ignore (falls back to a walk skipping .git when `dir`
// is not in a git work tree). Paths are relative to `dir`, sorted.
std::vector<std::string> list_visible_files(const std::filesystem::path& dir, size_t limit);

// Tool factories (one per file).
std::shared_ptr<Tool> make_shell_tool(const BuiltinToolsOptions& o);
std::shared_ptr<Tool> make_view_tool(const BuiltinToolsOptions& o);
std::shared_ptr<Tool> make_str_replace_tool(const BuiltinToolsOptions& o);
std::shared_ptr<Tool> make_create_tool(const BuiltinToolsOptions& o);
std::shared_ptr<Tool> make_apply_patch_tool(const BuiltinToolsOptions& o);
std::shared_ptr<Tool> make_search_tool(const BuiltinToolsOptions& o);
std::shared_ptr<Tool> make_list_tool(const BuiltinToolsOptions& o);

}  // namespace m1::tools

namespace m1::tools {
// A Tool from a spec and a function (how every built-in is made; MCP adapters may use it too).
std::shared_ptr<Tool> make_tool(ToolSpec spec,
                                std::function<ToolResult(const nlohmann::json&, ToolContext&)> fn);
}  // namespace m1::tools
