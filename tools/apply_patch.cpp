// tools/apply_patch.cpp: the `apply_patch` tool: a multi-file unified diff applied all-or-nothing.
// Hunk line counts are ignored (models often get them wrong); a hunk is located by its old lines,
// first at the stated line, then at the nearest matching position, then ignoring trailing spaces.
// Every file is patched in memory first; nothing is written unless every hunk of every file fits.
#include <sstream>

#include "tools/builtin.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace m1::tools {

namespace {

struct Hunk {
  size_t old_start = 0;  // 1-based, 0 when unknown
  std::vector<std::string> old_lines, new_lines;
  std::string header;
};

struct FilePatch {
  std::string old_path, new_path;  // "" for /dev/null
  std::vector<Hunk> hunks;
};

std::string strip_path(std::string p) {
  auto tab = p.find('\t');
  if (tab != std::string::npos) p = p.substr(0, tab);
  while (!p.empty() && (p.back() == ' ' || p.back() == '\r')) p.pop_back();
  if (p == "/dev/null") return "";
  if (p.rfind("a/", 0) == 0 || p.rfind("b/", 0) == 0) p = p.substr(2);
  return p;
}

Result<std::vector<FilePatch>> parse_patch(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream is(text);
  for (std::string l; std::getline(is, l);) {
    if (!l.empty() && l.back() == '\r') l.pop_back();
    lines.push_back(l);
  }
  std::vector<FilePatch> files;
  for (size_t i = 0; i < lines.size();) {
    if (lines[i].rfind("--- ", 0) != 0 || i + 1 >= lines.size() || lines[i + 1].rfind("+++ ", 0) != 0) {
      ++i;  // "diff --git", "index ...", prose: skipped
      continue;
    }
    FilePatch fp{strip_path(lines[i].substr(4)), strip_path(lines[i + 1].substr(4)), {}};
    i += 2;
    while (i < lines.size() && lines[i].rfind("@@", 0) == 0) {
      Hunk h;
      h.header = lines[i];
      if (sscanf(lines[i].c_str(), "@@ -%zu", &h.old_start) != 1) h.old_start = 0;
      ++i;
      while (i < lines.size()) {
        const std::string& l = lines[i];
        if (l.rfind("@@", 0) == 0 || l.rfind("diff ", 0) == 0) break;
        if (l.rfind("--- ", 0) == 0 && i + 1 < lines.size() && lines[i + 1].rfind("+++ ", 0) == 0) break;
        if (l.empty()) { h.old_lines.push_back(""); h.new_lines.push_back(""); }
        else if (l[0] == ' ') { h.old_lines.push_back(l.substr(1)); h.new_lines.push_back(l.substr(1)); }
        else if (l[0] == '-') h.old_lines.push_back(l.substr(1));
        else if (l[0] == '+') h.new_lines.push_back(l.substr(1));
        else if (l[0] != '\\') break;
        ++i;
      }
      // Blank lines trailing a hunk are usually the patch's own padding, not context.
      while (!h.old_lines.empty() && !h.new_lines.empty() && h.old_lines.back().empty() &&
             h.new_lines.back().empty()) {
        h.old_lines.pop_back();
        h.new_lines.pop_back();
      }
      fp.hunks.push_back(std::move(h));
    }
    if (fp.hunks.empty())
      return make_error("file '" + (fp.new_path.empty() ? fp.old_path : fp.new_path) +
                        "' has a header but no @@ hunks");
    files.push_back(std::move(fp));
  }
  if (files.empty())
    return make_error("no file diffs found; expected a unified diff with '--- a/FILE', "
                      "'+++ b/FILE' and '@@ -l,n +l,n @@' hunks");
  return files;
}

std::string rstrip(const std::string& s) {
  size_t e = s.find_last_not_of(" \t");
  return e == std::string::npos ? "" : s.substr(0, e + 1);
}

bool block_at(const std::vector<std::string>& f, const std::vector<std::string>& b, size_t pos,
              bool loose) {
  if (pos + b.size() > f.size()) return false;
  for (size_t k = 0; k < b.size(); ++k)
    if (loose ? rstrip(f[pos + k]) != rstrip(b[k]) : f[pos + k] != b[k]) return false;
  return true;
}

// Position of the hunk's old lines nearest to `want` (at or after `min_pos`), or npos.
size_t locate(const std::vector<std::string>& f, const Hunk& h, size_t want, size_t min_pos) {
  for (bool loose : {false, true}) {
    for (size_t d = 0; d <= f.size(); ++d) {
      if (want + d >= min_pos && block_at(f, h.old_lines, want + d, loose)) return want + d;
      if (d && want >= d && want - d >= min_pos && block_at(f, h.old_lines, want - d, loose))
        return want - d;
      if (want + d > f.size() && (want < d || want - d < min_pos)) break;
    }
  }
  return std::string::npos;
}

Result<std::string> apply_hunks(const std::string& name, const std::string& original,
                                const std::vector<Hunk>& hunks) {
  std::vector<std::string> f;
  std::istringstream is(original);
  for (std::string l; std::getline(is, l);) f.push_back(l);
  bool final_newline = original.empty() || original.back() == '\n';
  long shift = 0;
  size_t min_pos = 0;
  for (size_t n = 0; n < hunks.size(); ++n) {
    const Hunk& h = hunks[n];
    size_t want = h.old_start ? static_cast<size_t>(std::max<long>(0, (long)h.old_start - 1 + shift)) : min_pos;
    want = std::min(want, f.size());  // a line number past the end: search from the end back
    size_t pos = h.old_lines.empty() ? want : locate(f, h, want, min_pos);
    if (pos == std::string::npos) {
      std::string first = h.old_lines.empty() ? "" : h.old_lines[0];
      return make_error("hunk " + std::to_string(n + 1) + " of '" + name + "' (" + h.header +
                        ") does not match the file: its old lines (starting '" + first +
                        "') were not found; view the file and rebuild the hunk from its current text");
    }
    f.erase(f.begin() + pos, f.begin() + pos + h.old_lines.size());
    f.insert(f.begin() + pos, h.new_lines.begin(), h.new_lines.end());
    shift += (long)h.new_lines.size() - (long)h.old_lines.size();
    min_pos = pos + h.new_lines.size();
  }
  std::string out;
  for (size_t k = 0; k < f.size(); ++k) {
    out += f[k];
    if (k + 1 < f.size() || final_newline) out += "\n";
  }
  return out;
}

ToolResult apply_patch(const BuiltinToolsOptions& o, const json& a, ToolContext& ctx) {
  auto files = parse_patch(a["patch"].get<std::string>());
  if (!files.ok()) return ToolResult::error_text("apply_patch: " + files.error().message);
  struct Change { fs::path path; std::string text; bool remove; std::string label; };
  std::vector<Change> changes;
  for (const auto& fp : *files) {
    const std::string& target = fp.new_path.empty() ? fp.old_path : fp.new_path;
    auto p = resolve_in_workspace(ctx.workspace, target);
    if (!p.ok()) return ToolResult::error_text("apply_patch: " + p.error().message);
    std::string original;
    std::error_code ec;
    if (!fp.old_path.empty()) {
      auto src = resolve_in_workspace(ctx.workspace, fp.old_path);
      if (!src.ok()) return ToolResult::error_text("apply_patch: " + src.error().message);
      auto t = read_text_file(*src, o.max_file_bytes);
      if (!t.ok()) return ToolResult::error_text("apply_patch: " + t.error().message);
      original = *t;
    } else if (fs::exists(*p, ec)) {
      return ToolResult::error_text("apply_patch: '" + target + "' already exists but the patch creates it (--- /dev/null)");
    }
    if (fp.new_path.empty()) {
      changes.push_back({*p, "", true, "deleted " + target});
      continue;
    }
    auto text = apply_hunks(target, original, fp.hunks);
    if (!text.ok()) return ToolResult::error_text("apply_patch: " + text.error().message +
                                                  " (nothing was changed)");
    changes.push_back({*p, *text, false,
                       (fp.old_path.empty() ? "created " : "patched ") + target + " (" +
                           std::to_string(fp.hunks.size()) + " hunk" + (fp.hunks.size() > 1 ? "s)" : ")")});
    if (!fp.old_path.empty() && fp.old_path != fp.new_path) {
      auto src = resolve_in_workspace(ctx.workspace, fp.old_path);
      changes.push_back({*src, "", true, "removed " + fp.old_path + " (renamed)"});
    }
  }
  std::string summary;
  for (const auto& c : changes) {
    std::error_code ec;
    if (c.remove) {
      fs::remove(c.path, ec);
    } else {
      auto st = write_text_file(c.path, c.text);
      if (!st.ok()) return ToolResult::error_text("apply_patch: " + st.error().message);
    }
    summary += c.label + "\n";
  }
  return ToolResult::ok_text(summary);
}

}  // namespace

std::shared_ptr<Tool> make_apply_patch_tool(const BuiltinToolsOptions& o) {
  ToolSpec s{"apply_patch", "Apply patch",
             "Apply a unified diff (one or more files, '--- a/F' '+++ b/F' '@@' hunks; /dev/null "
             "to create or delete). All-or-nothing: if any hunk does not fit, nothing changes.",
             {{"type", "object"},
              {"properties", {{"patch", {{"type", "string"}, {"minLength", 1}, {"description", "the unified diff"}}}}},
              {"required", {"patch"}},
              {"additionalProperties", false}}, std::nullopt};
  return make_tool(s, [o](const json& a, ToolContext& c) { return apply_patch(o, a, c); });
}

}  // namespace m1::tools
