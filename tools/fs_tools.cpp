// tools/fs_tools.cpp: workspace path rules, file helpers, and the view / create / str_replace /
// list tools. Every error says which path and what to do instead, since the model reads it.
#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "tools/builtin.h"
#include "tools/process.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace m1::tools {

namespace {
class FnTool : public Tool {
 public:
  FnTool(ToolSpec s, std::function<ToolResult(const json&, ToolContext&)> f)
      : spec_(std::move(s)), fn_(std::move(f)) {}
  const ToolSpec& spec() const override { return spec_; }
  ToolResult call(const json& args, ToolContext& ctx) override { return fn_(args, ctx); }

 private:
  ToolSpec spec_;
  std::function<ToolResult(const json&, ToolContext&)> fn_;
};

bool is_within(const fs::path& p, const fs::path& root) {
  auto rel = p.lexically_relative(root);
  if (rel.empty()) return false;
  auto first = *rel.begin();
  return first != ".." && !rel.is_absolute();
}

std::string display(const fs::path& p, const fs::path& ws) {
  std::error_code ec;
  auto root = fs::weakly_canonical(ws, ec);
  auto rel = p.lexically_relative(root);
  if (!rel.empty() && *rel.begin() != "..") return rel.generic_string();
  return p.generic_string();
}
}  // namespace

std::shared_ptr<Tool> make_tool(ToolSpec spec,
                                std::function<ToolResult(const json&, ToolContext&)> fn) {
  return std::make_shared<FnTool>(std::move(spec), std::move(fn));
}

Result<fs::path> resolve_in_workspace(const fs::path& workspace, const std::string& rel,
                                      const std::vector<fs::path>& extra_roots) {
  if (rel.empty()) return make_error("path is empty; give a path relative to the repository root");
  if (rel.find('\0') != std::string::npos) return make_error("path contains a NUL byte");
  std::error_code ec;
  fs::path ws = fs::weakly_canonical(workspace, ec);
  fs::path candidate = fs::path(rel).is_absolute() ? fs::path(rel) : ws / rel;
  fs::path canon = fs::weakly_canonical(candidate, ec);
  if (ec) return make_error("cannot resolve path '" + rel + "': " + ec.message());
  if (canon == ws || is_within(canon, ws)) return canon;
  for (const auto& r : extra_roots) {
    fs::path rc = fs::weakly_canonical(r, ec);
    if (!ec && is_within(canon, rc)) return canon;
  }
  return make_error("path '" + rel + "' is outside the repository (" + ws.string() +
                    "); use a path inside it");
}

Result<std::string> read_text_file(const fs::path& p, size_t max_bytes) {
  std::error_code ec;
  if (!fs::exists(p, ec)) return make_error("file '" + p.string() + "' does not exist");
  if (fs::is_directory(p, ec)) return make_error("'" + p.string() + "' is a directory, not a file");
  auto size = fs::file_size(p, ec);
  if (ec) return make_error("cannot stat '" + p.string() + "': " + ec.message());
  if (size > max_bytes)
    return make_error("file '" + p.string() + "' is " + std::to_string(size) +
                      " bytes, more than the " + std::to_string(max_bytes) +
                      "-byte limit; use search or shell (head/sed) to look at parts of it");
  std::ifstream in(p, std::ios::binary);
  if (!in) return make_error("cannot open '" + p.string() + "' for reading");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.find('\0') != std::string::npos)
    return make_error("file '" + p.string() + "' looks binary (contains NUL bytes)");
  return text;
}

Status write_text_file(const fs::path& p, const std::string& text) {
  std::error_code ec;
  if (p.has_parent_path()) fs::create_directories(p.parent_path(), ec);
  // Write a sibling temp file and rename: a crash never leaves a half-written source file.
  fs::path tmp = p;
  tmp += ".m1tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return make_error("cannot open '" + p.string() + "' for writing");
    out << text;
    if (!out.flush()) return make_error("write to '" + p.string() + "' failed");
  }
  if (fs::exists(p, ec)) fs::permissions(tmp, fs::status(p).permissions(), ec);
  fs::rename(tmp, p, ec);
  if (ec) return make_error("cannot replace '" + p.string() + "': " + ec.message());
  return {};
}

std::vector<std::string> list_visible_files(const fs::path& dir, size_t limit) {
  std::vector<std::string> files;
  auto r = run_process(git_argv({"ls-files", "-co", "--exclude-standard", "-z", "--", "."}), dir);
  if (r.ok() && r->exit_code == 0) {
    std::string cur;
    for (char c : r->out) {
      if (c == '\0') {
        if (!cur.empty() && fs::exists(dir / cur)) files.push_back(cur);
        cur.clear();
        if (files.size() >= limit) break;
      } else {
        cur += c;
      }
    }
  } else {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) break;
      if (it->path().filename() == ".git") {
        it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec)) files.push_back(it->path().lexically_relative(dir).generic_string());
      if (files.size() >= limit) break;
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

namespace {

json path_prop(const std::string& what) {
  return {{"type", "string"}, {"description", what + " (relative to the repository root)"}};
}

std::string numbered(const std::vector<std::string>& lines, size_t from, size_t to) {
  std::ostringstream os;
  for (size_t i = from; i <= to && i <= lines.size(); ++i) {
    os.width(6);
    os << i << "\t" << lines[i - 1] << "\n";
  }
  return os.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string cur;
  std::istringstream is(text);
  while (std::getline(is, cur)) lines.push_back(cur);
  return lines;
}

size_t line_of(const std::string& text, size_t offset) {
  return 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + offset, '\n'));
}

ToolResult view_dir(const fs::path& p, const fs::path& ws, size_t limit) {
  auto files = list_visible_files(p, limit + 1);
  std::ostringstream os;
  os << "directory " << display(p, ws) << "/ (files not ignored by git, up to " << limit << "):\n";
  for (size_t i = 0; i < files.size() && i < limit; ++i) os << files[i] << "\n";
  if (files.size() > limit) os << "[... more files; use list or search with a narrower path ...]\n";
  if (files.empty()) os << "(empty)\n";
  return ToolResult::ok_text(os.str());
}

ToolResult view(const BuiltinToolsOptions& o, const json& a, ToolContext& ctx) {
  std::vector<fs::path> extra;
  if (!o.full_output_dir.empty()) extra.push_back(o.full_output_dir);
  auto p = resolve_in_workspace(ctx.workspace, a["path"].get<std::string>(), extra);
  if (!p.ok()) return ToolResult::error_text(p.error().message);
  std::error_code ec;
  if (fs::is_directory(*p, ec)) return view_dir(*p, ctx.workspace, o.view_max_lines);
  auto text = read_text_file(*p, o.max_file_bytes);
  if (!text.ok()) return ToolResult::error_text(text.error().message);
  auto lines = split_lines(*text);
  size_t n = lines.size();
  size_t start = a.contains("start_line") ? a["start_line"].get<size_t>() : 1;
  bool has_end = a.contains("end_line") && a["end_line"].get<long long>() != -1;
  size_t end = has_end ? a["end_line"].get<size_t>() : std::min(n, start + o.view_max_lines - 1);
  if (n == 0) return ToolResult::ok_text("(file " + display(*p, ctx.workspace) + " is empty)");
  if (start > n)
    return ToolResult::error_text("start_line " + std::to_string(start) + " is past the end of " +
                                  display(*p, ctx.workspace) + " (" + std::to_string(n) + " lines)");
  if (end < start)
    return ToolResult::error_text("end_line " + std::to_string(end) + " is before start_line " +
                                  std::to_string(start));
  end = std::min(end, n);
  std::string out = numbered(lines, start, end);
  if (start > 1 || end < n)
    out += "[showing lines " + std::to_string(start) + "-" + std::to_string(end) + " of " +
           std::to_string(n) + "; use start_line/end_line for others]\n";
  return ToolResult::ok_text(out);
}

ToolResult create(const BuiltinToolsOptions&, const json& a, ToolContext& ctx) {
  auto p = resolve_in_workspace(ctx.workspace, a["path"].get<std::string>());
  if (!p.ok()) return ToolResult::error_text(p.error().message);
  std::error_code ec;
  bool exists = fs::exists(*p, ec);
  if (exists && fs::is_directory(*p, ec))
    return ToolResult::error_text("'" + a["path"].get<std::string>() + "' is a directory");
  if (exists && !a.value("overwrite", false))
    return ToolResult::error_text("file '" + a["path"].get<std::string>() +
                                  "' already exists; use str_replace to edit it, or pass "
                                  "\"overwrite\": true to replace it entirely");
  auto st = write_text_file(*p, a["content"].get<std::string>());
  if (!st.ok()) return ToolResult::error_text(st.error().message);
  size_t lines = split_lines(a["content"].get<std::string>()).size();
  return ToolResult::ok_text((exists ? "overwrote " : "created ") +
                             display(*p, ctx.workspace) + " (" + std::to_string(lines) + " lines)");
}

// Edit distance of two short strings (one row of the table), for the "most similar lines" hint.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string not_found_hint(const std::string& text, const std::string& old) {
  // Most misses are indentation or trailing-space differences: find the first line of old_str
  // ignoring surrounding whitespace and point at it.
  auto trim = [](std::string s) {
    size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  auto old_lines = split_lines(old);
  std::string first;
  for (auto& l : old_lines)
    if (!trim(l).empty()) { first = trim(l); break; }
  if (first.empty()) return "";
  auto lines = split_lines(text);
  for (size_t i = 0; i < lines.size(); ++i)
    if (trim(lines[i]) == first)
      return "; a line matching its first line ignoring whitespace is at line " +
             std::to_string(i + 1) + " (check indentation and whitespace)";
  // Otherwise the text was misremembered (an operator, a name, a constant): show the lines of the
  // file closest to old_str, numbered as `view` prints them, so the exact text is one copy away.
  // Bounded work: skipped for large files or long old_str (the plain advice still applies).
  const std::string plain = "; view the file and copy the exact text, including indentation";
  const size_t k = std::max<size_t>(1, old_lines.size());
  if (lines.size() < k || lines.size() * old.size() * old.size() > 400'000'000ull / 4) return plain;
  size_t best = 0, best_d = std::string::npos;
  for (size_t i = 0; i + k <= lines.size(); ++i) {
    std::string window;
    for (size_t j = 0; j < k; ++j) window += (j ? "\n" : "") + lines[i + j];
    size_t d = edit_distance(window, old.back() == '\n' ? old.substr(0, old.size() - 1) : old);
    if (d < best_d) best = i, best_d = d;
  }
  // Only a near miss is worth showing: at most a third of old_str differs.
  if (best_d == std::string::npos || best_d * 3 > old.size()) return plain;
  return "; the closest text in the file is at line " + std::to_string(best + 1) + ":\n" +
         numbered(lines, best + 1, best + k) + "copy it exactly (including indentation) into old_str";
}

ToolResult str_replace(const BuiltinToolsOptions& o, const json& a, ToolContext& ctx) {
  const std::string rel = a["path"].get<std::string>();
  auto p = resolve_in_workspace(ctx.workspace, rel);
  if (!p.ok()) return ToolResult::error_text(p.error().message);
  auto text = read_text_file(*p, o.max_file_bytes);
  if (!text.ok()) return ToolResult::error_text(text.error().message);
  const std::string old = a["old_str"].get<std::string>();
  const std::string neu = a.value("new_str", std::string());
  if (old.empty()) return ToolResult::error_text("old_str is empty; give the exact text to replace");
  std::vector<size_t> hits;
  for (size_t pos = text->find(old); pos != std::string::npos; pos = text->find(old, pos + 1))
    hits.push_back(pos);
  if (hits.empty())
    return ToolResult::error_text("old_str was not found in " + rel + not_found_hint(*text, old));
  if (hits.size() > 1) {
    std::string where;
    for (size_t h : hits) where += (where.empty() ? "" : ", ") + std::to_string(line_of(*text, h));
    return ToolResult::error_text("old_str occurs " + std::to_string(hits.size()) + " times in " +
                                  rel + " (lines " + where +
                                  "); include more surrounding lines to make it unique");
  }
  std::string updated = text->substr(0, hits[0]) + neu + text->substr(hits[0] + old.size());
  auto st = write_text_file(*p, updated);
  if (!st.ok()) return ToolResult::error_text(st.error().message);
  auto lines = split_lines(updated);
  size_t first = line_of(updated, hits[0]);
  size_t last = first + static_cast<size_t>(std::count(neu.begin(), neu.end(), '\n'));
  size_t from = first > 3 ? first - 3 : 1;
  return ToolResult::ok_text("edited " + rel + "; lines " + std::to_string(from) + "-" +
                             std::to_string(std::min(lines.size(), last + 3)) + " now read:\n" +
                             numbered(lines, from, std::min(lines.size(), last + 3)));
}

ToolResult list(const BuiltinToolsOptions& o, const json& a, ToolContext& ctx) {
  auto p = resolve_in_workspace(ctx.workspace, a.value("path", std::string(".")));
  if (!p.ok()) return ToolResult::error_text(p.error().message);
  std::error_code ec;
  if (!fs::is_directory(*p, ec))
    return ToolResult::error_text("'" + a.value("path", std::string(".")) + "' is not a directory");
  size_t depth = a.value("depth", 2);
  auto files = list_visible_files(*p, 100000);
  std::set<std::string> entries;
  for (const auto& f : files) {
    fs::path rel(f);
    fs::path acc;
    size_t d = 0;
    for (auto it = rel.begin(); it != rel.end() && d < depth; ++it, ++d) {
      acc /= *it;
      bool is_dir = std::next(it) != rel.end();
      entries.insert(acc.generic_string() + (is_dir ? "/" : ""));
    }
  }
  std::ostringstream os;
  size_t shown = 0;
  for (const auto& e : entries) {
    if (shown++ >= o.search_max_results * 5) {
      os << "[... " << entries.size() - shown + 1 << " more entries; list a subfolder ...]\n";
      break;
    }
    os << e << "\n";
  }
  if (entries.empty()) os << "(no files)\n";
  return ToolResult::ok_text(os.str());
}

}  // namespace

std::shared_ptr<Tool> make_view_tool(const BuiltinToolsOptions& o) {
  ToolSpec s{"view", "View file or directory",
             "Show a text file with line numbers (optionally a line range), or list a directory.",
             {{"type", "object"},
              {"properties",
               {{"path", path_prop("file or directory")},
                {"start_line", {{"type", "integer"}, {"minimum", 1}, {"description", "first line (1-based)"}}},
                {"end_line", {{"type", "integer"}, {"minimum", -1}, {"description", "last line, -1 = end"}}}}},
              {"required", {"path"}},
              {"additionalProperties", false}}, std::nullopt};
  s.read_only = true;
  return make_tool(s, [o](const json& a, ToolContext& c) { return view(o, a, c); });
}

std::shared_ptr<Tool> make_create_tool(const BuiltinToolsOptions& o) {
  ToolSpec s{"create", "Create file", "Create a new file with the given content (parents are created).",
             {{"type", "object"},
              {"properties",
               {{"path", path_prop("file to create")},
                {"content", {{"type", "string"}, {"description", "the whole file content"}}},
                {"overwrite", {{"type", "boolean"}, {"description", "replace an existing file"}}}}},
              {"required", {"path", "content"}},
              {"additionalProperties", false}}, std::nullopt};
  return make_tool(s, [o](const json& a, ToolContext& c) { return create(o, a, c); });
}

std::shared_ptr<Tool> make_str_replace_tool(const BuiltinToolsOptions& o) {
  ToolSpec s{"str_replace", "Replace text",
             "Replace one exact, unique occurrence of old_str in a file with new_str.",
             {{"type", "object"},
              {"properties",
               {{"path", path_prop("file to edit")},
                {"old_str", {{"type", "string"}, {"minLength", 1}, {"description", "exact text to replace (must occur once)"}}},
                {"new_str", {{"type", "string"}, {"description", "replacement text"}}}}},
              {"required", {"path", "old_str", "new_str"}},
              {"additionalProperties", false}}, std::nullopt};
  return make_tool(s, [o](const json& a, ToolContext& c) { return str_replace(o, a, c); });
}

std::shared_ptr<Tool> make_list_tool(const BuiltinToolsOptions& o) {
  ToolSpec s{"list", "List files", "List files and folders (not ignored by git) up to a depth.",
             {{"type", "object"},
              {"properties",
               {{"path", path_prop("folder, default the root")},
                {"depth", {{"type", "integer"}, {"minimum", 1}, {"maximum", 10}, {"description", "levels shown (default 2)"}}}}},
              {"additionalProperties", false}}, std::nullopt};
  s.read_only = true;
  return make_tool(s, [o](const json& a, ToolContext& c) { return list(o, a, c); });
}

void register_builtin_tools(Registry& registry, const BuiltinToolsOptions& options) {
  registry.add(make_shell_tool(options));
  registry.add(make_view_tool(options));
  registry.add(make_str_replace_tool(options));
  registry.add(make_create_tool(options));
  registry.add(make_apply_patch_tool(options));
  registry.add(make_search_tool(options));
  registry.add(make_list_tool(options));
}

}  // namespace m1::tools
