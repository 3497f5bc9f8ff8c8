// agent/edit_constraint.cpp: see edit_constraint.h.
#include "agent/edit_constraint.h"

#include <cctype>

namespace m1::agent {

namespace {

// A numbered line as `view` and str_replace print it: spaces, digits, a tab, the line's text.
bool numbered_line(std::string_view line, std::string_view* text) {
  size_t i = 0;
  while (i < line.size() && line[i] == ' ') ++i;
  size_t digits = i;
  while (i < line.size() && std::isdigit(static_cast<unsigned char>(line[i]))) ++i;
  if (i == digits || i >= line.size() || line[i] != '\t') return false;
  *text = line.substr(i + 1);
  return true;
}

// JSON string content -> text. A trailing incomplete escape is left out (pending: the next token
// completes it). False on an invalid escape.
bool unescape(std::string_view s, std::string* out, bool* pending = nullptr) {
  out->clear();
  if (pending) *pending = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    if (i + 1 >= s.size()) {  // pending
      if (pending) *pending = true;
      return true;
    }
    char e = s[++i];
    switch (e) {
      case 'n': out->push_back('\n'); break;
      case 't': out->push_back('\t'); break;
      case 'r': out->push_back('\r'); break;
      case 'b': out->push_back('\b'); break;
      case 'f': out->push_back('\f'); break;
      case '"': case '\\': case '/': out->push_back(e); break;
      case 'u': {
        if (i + 4 >= s.size()) {  // pending
          if (pending) *pending = true;
          return true;
        }
        unsigned v = 0;
        for (int k = 1; k <= 4; ++k) {
          char h = s[i + k];
          if (!std::isxdigit(static_cast<unsigned char>(h))) return false;
          v = v * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0'
                                                                                          : (std::tolower(h) - 'a' + 10));
        }
        i += 4;
        if (v < 0x80) {
          out->push_back(static_cast<char>(v));
        } else if (v < 0x800) {
          out->push_back(static_cast<char>(0xC0 | (v >> 6)));
          out->push_back(static_cast<char>(0x80 | (v & 0x3F)));
        } else {
          out->push_back(static_cast<char>(0xE0 | (v >> 12)));
          out->push_back(static_cast<char>(0x80 | ((v >> 6) & 0x3F)));
          out->push_back(static_cast<char>(0x80 | (v & 0x3F)));
        }
        break;
      }
      default: return false;
    }
  }
  return true;
}

// Position of the first unescaped '"' in s, or npos.
size_t closing_quote(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i;
    }
  }
  return std::string_view::npos;
}

}  // namespace

void EditConstraint::set_conversation(const std::vector<engine::ChatMessage>& conversation) {
  corpus_.clear();
  for (const auto& m : conversation) {
    for (const auto& r : m.tool_results) {
      std::string block;
      bool in_block = false;
      size_t start = 0;
      const std::string& c = r.content;
      while (start <= c.size()) {
        size_t end = c.find('\n', start);
        if (end == std::string::npos) end = c.size();
        std::string_view line(c.data() + start, end - start), text;
        if (numbered_line(line, &text)) {
          if (in_block) block.push_back('\n');
          block.append(text);
          in_block = true;
        } else if (in_block) {
          corpus_.append(block).push_back('\0');
          block.clear();
          in_block = false;
        }
        start = end + 1;
      }
      if (in_block) corpus_.append(block).push_back('\0');
    }
  }
}

std::pair<size_t, size_t> EditConstraint::named_function_span(std::string_view turn_text) const {
  size_t call = turn_text.rfind("<tool_calls>");
  std::string_view prose = turn_text.substr(0, call == std::string_view::npos ? turn_text.size() : call);
  // Backticked identifiers, last first.
  for (size_t close = prose.rfind('`'); close != std::string_view::npos && close > 0;) {
    size_t open = prose.rfind('`', close - 1);
    if (open == std::string_view::npos) break;
    std::string_view name = prose.substr(open + 1, close - open - 1);
    bool ident = !name.empty() && !std::isdigit(static_cast<unsigned char>(name[0]));
    for (char c : name) ident = ident && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
    if (ident) {
      std::string def = "def " + std::string(name) + "(";
      constexpr std::string_view kBreaks("\n\0", 2);
      for (size_t d = corpus_.find(def); d != std::string::npos; d = corpus_.find(def, d + 1)) {
        size_t line = d == 0 ? std::string::npos : corpus_.find_last_of(kBreaks, d - 1);
        line = line == std::string::npos ? 0 : line + 1;
        if (corpus_.find_first_not_of(' ', line) != d) continue;  // `def` must start its line
        const size_t indent = d - line;
        // The definition runs until a non-blank line indented no deeper than its `def`.
        size_t end = corpus_.find_first_of(kBreaks, d);
        if (end == std::string::npos) end = corpus_.size();
        while (end < corpus_.size() && corpus_[end] == '\n') {
          size_t next = end + 1, stop = corpus_.find_first_of(kBreaks, next);
          if (stop == std::string::npos) stop = corpus_.size();
          std::string_view ln(corpus_.data() + next, stop - next);
          size_t first = ln.find_first_not_of(' ');
          if (first != std::string_view::npos && first <= indent) break;
          end = stop;
        }
        return {line, end};
      }
    }
    close = open == 0 ? std::string_view::npos : prose.rfind('`', open - 1);
  }
  return {0, 0};
}

bool EditConstraint::open_old_str(std::string_view turn_text, std::string* escaped) {
  static constexpr std::string_view kCall = "{\"name\": \"str_replace\"";
  static constexpr std::string_view kKey = "\"old_str\": \"";
  size_t call = turn_text.rfind(kCall);
  if (call == std::string_view::npos) return false;
  size_t key = turn_text.rfind(kKey);
  if (key == std::string_view::npos || key < call) return false;
  std::string_view rest = turn_text.substr(key + kKey.size());
  if (closing_quote(rest) != std::string_view::npos) return false;
  // A key inside another string (new_str's text quoting `"old_str": "`) would need the call's JSON
  // to be parsed; the model's calls put new_str first and escape its quotes, so a raw `"old_str": "`
  // after the call start is the key.
  *escaped = std::string(rest);
  return true;
}

std::vector<uint8_t> EditConstraint::allowed(std::string_view turn_text) const {
  std::string escaped;
  if (corpus_.empty() || !open_old_str(turn_text, &escaped)) return {};
  std::string prefix;
  bool pending = false;
  if (!unescape(escaped, &prefix, &pending)) return {};
  // Where the text so far occurs, starting at the start of a line (the model's old_str is whole
  // lines); if nowhere, the model has already left the files: no constraint.
  std::vector<size_t> at;
  auto line_start = [&](size_t p) { return p == 0 || corpus_[p - 1] == '\n' || corpus_[p - 1] == '\0'; };
  if (prefix.empty()) {
    for (size_t p = 0; p < corpus_.size(); ++p)
      if (line_start(p) && corpus_[p] != '\0') at.push_back(p);
  } else {
    for (size_t p = corpus_.find(prefix); p != std::string::npos; p = corpus_.find(prefix, p + 1))
      if (line_start(p)) at.push_back(p);
  }
  if (at.empty()) return {};
  // The function the turn names ("The bug is in `name`"): when the files shown define it, old_str
  // stays inside its definition, so a line the model misremembers is not forced onto a look-alike
  // line of another function.
  size_t span_begin = 0, span_end = corpus_.size();
  if (auto span = named_function_span(turn_text); span.first < span.second) {
    std::vector<size_t> inside;
    for (size_t p : at)
      if (p >= span.first && p < span.second) inside.push_back(p);
    if (!inside.empty()) {
      at.swap(inside);
      span_begin = span.first;
      span_end = span.second;
    }
  }
  (void)span_begin;
  // ext continues the text at some occurrence; closing: and ends there at the end of a line.
  auto extends = [&](std::string_view ext, bool closing) {
    if (ext.find('\0') != std::string_view::npos) return false;
    for (size_t p : at) {
      size_t from = p + prefix.size(), end = from + ext.size();
      if (end > span_end || corpus_.compare(from, ext.size(), ext) != 0) continue;
      if (!closing || end == corpus_.size() || corpus_[end] == '\n' || corpus_[end] == '\0') return true;
    }
    return false;
  };
  std::vector<uint8_t> ok(pieces_.size(), 0);
  bool any = false;
  std::string text;
  for (size_t id = 0; id < pieces_.size(); ++id) {
    const std::string& piece = pieces_[id];
    if (piece.empty()) continue;
    std::string next = escaped + piece;
    size_t q = closing_quote(next);
    const bool closing = q != std::string::npos;
    std::string_view content = closing ? std::string_view(next).substr(0, q) : std::string_view(next);
    bool half = false;
    if (!unescape(content, &text, &half) || text.size() < prefix.size() ||
        text.compare(0, prefix.size(), prefix) != 0)
      continue;
    if (closing && (text.empty() || half)) continue;  // old_str may not be empty
    std::string_view ext = std::string_view(text).substr(prefix.size());
    bool good;
    if (half) {  // a backslash waiting for its escape: some completion must fit
      good = false;
      for (char c : {'\n', '\t', '"', '\\'})
        good = good || extends(std::string(ext) + c, false);
    } else {
      good = extends(ext, closing);
    }
    if (good) {
      ok[id] = 1;
      any = true;
    }
  }
  if (!any) return {};
  return ok;
}

}  // namespace m1::agent
