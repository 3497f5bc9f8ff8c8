// Incremental parser of M1 output (see output_parser.h for the rules). A small state machine over
// an "undecided" buffer: each step either makes one decision from the bytes it has or waits.
#include "engine/output_parser.h"

#include <algorithm>

namespace m1::engine {

namespace {

using nlohmann::json;

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kCallsOpen = "<tool_calls>";
constexpr std::string_view kCallsClose = "</tool_calls>";

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ws(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}
std::string_view rtrim(std::string_view s) {
  while (!s.empty() && is_ws(s.back())) s.remove_suffix(1);
  return s;
}
std::size_t first_non_ws(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i)
    if (!is_ws(s[i])) return i;
  return std::string_view::npos;
}

// Bytes at the end of s that begin a UTF-8 character not yet complete.
std::size_t incomplete_utf8_tail(std::string_view s) {
  const std::size_t n = s.size();
  for (std::size_t k = 1; k <= 3 && k <= n; ++k) {
    unsigned char c = static_cast<unsigned char>(s[n - k]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    if (c < 0xC0) return 0;            // ASCII (or stray byte): nothing pending
    std::size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    return need > k ? k : 0;
  }
  return 0;
}

// How many trailing bytes of s cannot be emitted yet: whitespace that may precede `tag`, a
// partial `tag`, and half a UTF-8 character.
std::size_t undecided_tail(std::string_view s, std::string_view tag) {
  std::size_t k = std::min(tag.size() - 1, s.size());
  for (; k > 0; --k)
    if (s.ends_with(tag.substr(0, k))) break;
  std::size_t cut = s.size() - k;
  while (cut > 0 && is_ws(s[cut - 1])) --cut;
  cut -= incomplete_utf8_tail(s.substr(0, cut));
  return s.size() - cut;
}

std::string clean_json_error(const std::string& what) {
  // "[json.exception.parse_error.101] parse error at ..." -> "parse error at ..."
  auto p = what.find("] ");
  return p == std::string::npos ? what : what.substr(p + 2);
}

// Fills ev as a ToolCall or a ToolCallError for one trimmed line; returns false when the line is
// not even valid JSON.
bool classify_line(std::string_view line, ParseEvent& ev) {
  ev.raw = std::string(line);
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception& e) {
    ev.kind = ParseEvent::Kind::ToolCallError;
    ev.text = "invalid JSON: " + clean_json_error(e.what());
    return false;
  }
  ev.kind = ParseEvent::Kind::ToolCallError;
  if (!j.is_object()) {
    ev.text = std::string("expected a JSON object {\"name\": ..., \"arguments\": {...}}, got ") +
              j.type_name();
    return true;
  }
  auto n = j.find("name");
  if (n == j.end()) {
    ev.text = "missing \"name\": each line must be {\"name\": \"<tool>\", \"arguments\": {...}}";
    return true;
  }
  if (!n->is_string() || n->get_ref<const std::string&>().empty()) {
    ev.text = std::string("\"name\" must be a non-empty string, got ") +
              (n->is_string() ? "an empty string" : n->type_name());
    return true;
  }
  ev.name = n->get<std::string>();  // errors about the arguments still name the tool
  auto a = j.find("arguments");
  if (a == j.end()) {
    ev.text = "missing \"arguments\" (a JSON object; use {} for none)";
    return true;
  }
  if (!a->is_object()) {
    ev.text = std::string("\"arguments\" must be a JSON object, got ") + a->type_name();
    if (a->is_string()) {
      auto inner = json::parse(a->get_ref<const std::string&>(), nullptr, false);
      if (inner.is_object()) ev.text += " (write the object itself, not a string holding it)";
    }
    return true;
  }
  ev.kind = ParseEvent::Kind::ToolCall;
  ev.text.clear();
  ev.arguments = *a;
  return true;
}

}  // namespace

const char* kind_name(ParseEvent::Kind k) {
  switch (k) {
    case ParseEvent::Kind::ThinkingDelta: return "thinking_delta";
    case ParseEvent::Kind::TextDelta: return "text_delta";
    case ParseEvent::Kind::ToolCall: return "tool_call";
    case ParseEvent::Kind::ToolCallError: return "tool_call_error";
    case ParseEvent::Kind::Diagnostic: return "diagnostic";
  }
  return "?";
}

json to_json(const ParseEvent& e) {
  json j = {{"kind", kind_name(e.kind)}};
  switch (e.kind) {
    case ParseEvent::Kind::ThinkingDelta:
    case ParseEvent::Kind::TextDelta: j["text"] = e.text; break;
    case ParseEvent::Kind::ToolCall:
      j["index"] = e.index;
      j["name"] = e.name;
      j["arguments"] = e.arguments;
      j["raw"] = e.raw;
      break;
    case ParseEvent::Kind::ToolCallError:
      j["index"] = e.index;
      if (!e.name.empty()) j["name"] = e.name;
      j["message"] = e.text;
      j["raw"] = e.raw;
      break;
    case ParseEvent::Kind::Diagnostic: j["message"] = e.text; break;
  }
  return j;
}

void ParsedOutput::add(const ParseEvent& e) {
  switch (e.kind) {
    case ParseEvent::Kind::ThinkingDelta: thinking += e.text; break;
    case ParseEvent::Kind::TextDelta: text += e.text; break;
    case ParseEvent::Kind::ToolCall: calls.push_back(e); break;
    case ParseEvent::Kind::ToolCallError: errors.push_back(e); break;
    case ParseEvent::Kind::Diagnostic: diagnostics.push_back(e.text); break;
  }
}

void OutputParser::emit_delta(ParseEvent::Kind k, std::string_view s, std::vector<ParseEvent>& out) {
  if (s.empty()) return;
  ParseEvent e;
  e.kind = k;
  e.text = std::string(s);
  out.push_back(std::move(e));
}

void OutputParser::handle_line(std::string_view line, std::vector<ParseEvent>& out) {
  line = trim(line);
  if (line.empty()) return;
  ParseEvent ev;
  classify_line(line, ev);
  ev.index = next_index_++;
  out.push_back(std::move(ev));
}

void OutputParser::end_line(std::vector<ParseEvent>& out) {
  std::string line = std::move(line_);
  line_.clear();
  in_string_ = escape_ = false;
  std::string_view t = trim(line);
  if (t.empty()) return;
  ParseEvent probe;
  const bool valid_json = classify_line(t, probe);
  const std::size_t tag = valid_json ? std::string::npos : line.find(kCallsClose);
  if (tag == std::string::npos) {
    probe.index = next_index_++;
    out.push_back(std::move(probe));
    return;
  }
  // Broken line that holds the closing tag inside what looked like a string: cut there.
  handle_line(std::string_view(line).substr(0, tag), out);
  buf_.insert(0, line.substr(tag + kCallsClose.size()) + "\n");
  mode_ = Mode::Text;
  strip_lead_ = true;
}

bool OutputParser::step_think(std::vector<ParseEvent>& out) {
  auto p = buf_.find(kThinkClose);
  if (p != std::string::npos) {
    emit_delta(ParseEvent::Kind::ThinkingDelta, rtrim(std::string_view(buf_).substr(0, p)), out);
    buf_.erase(0, p + kThinkClose.size());
    mode_ = Mode::Text;
    strip_lead_ = true;
    return true;
  }
  std::size_t ready = buf_.size() - undecided_tail(buf_, kThinkClose);
  emit_delta(ParseEvent::Kind::ThinkingDelta, std::string_view(buf_).substr(0, ready), out);
  buf_.erase(0, ready);
  return false;
}

bool OutputParser::step_text(std::vector<ParseEvent>& out) {
  auto p = buf_.find(kCallsOpen);
  if (p != std::string::npos) {
    emit_delta(ParseEvent::Kind::TextDelta, rtrim(std::string_view(buf_).substr(0, p)), out);
    buf_.erase(0, p + kCallsOpen.size());
    mode_ = Mode::Calls;
    line_.clear();
    in_string_ = escape_ = false;
    return true;
  }
  std::size_t ready = buf_.size() - undecided_tail(buf_, kCallsOpen);
  emit_delta(ParseEvent::Kind::TextDelta, std::string_view(buf_).substr(0, ready), out);
  buf_.erase(0, ready);
  return false;
}

bool OutputParser::step_calls(std::vector<ParseEvent>& out) {
  for (std::size_t i = 0; i < buf_.size(); ++i) {
    const char c = buf_[i];
    if (c == '\n') {
      buf_.erase(0, i + 1);
      end_line(out);
      return true;
    }
    line_.push_back(c);
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
      }
    } else if (c == '"') {
      in_string_ = true;
    } else if (c == '>' && std::string_view(line_).ends_with(kCallsClose)) {
      buf_.erase(0, i + 1);
      handle_line(std::string_view(line_).substr(0, line_.size() - kCallsClose.size()), out);
      line_.clear();
      in_string_ = escape_ = false;
      mode_ = Mode::Text;
      strip_lead_ = true;
      return true;
    }
  }
  buf_.clear();
  return false;
}

bool OutputParser::step(std::vector<ParseEvent>& out) {
  if (buf_.empty()) return false;
  if (strip_lead_ && (mode_ == Mode::Think || mode_ == Mode::Text)) {
    std::size_t i = first_non_ws(buf_);
    if (i == std::string::npos) {
      buf_.clear();
      return false;
    }
    buf_.erase(0, i);
    strip_lead_ = false;
  }
  switch (mode_) {
    case Mode::Start: {
      std::size_t i = first_non_ws(buf_);
      if (i == std::string::npos) return false;
      std::string_view rest = std::string_view(buf_).substr(i);
      if (rest.starts_with(kThinkOpen)) {
        buf_.erase(0, i + kThinkOpen.size());
        mode_ = Mode::Think;
        strip_lead_ = true;
        return true;
      }
      if (kThinkOpen.starts_with(rest)) return false;  // maybe "<thi" of "<think>"
      buf_.erase(0, i);
      mode_ = Mode::Text;
      return true;
    }
    case Mode::Think: return step_think(out);
    case Mode::Text: return step_text(out);
    case Mode::Calls: return step_calls(out);
    case Mode::Finished: buf_.clear(); return false;
  }
  return false;
}

void OutputParser::feed(std::string_view delta, std::vector<ParseEvent>& out) {
  if (mode_ == Mode::Finished) return;
  buf_.append(delta);
  while (step(out)) {
  }
}

std::vector<ParseEvent> OutputParser::feed(std::string_view delta) {
  std::vector<ParseEvent> out;
  feed(delta, out);
  return out;
}

void OutputParser::finish(std::vector<ParseEvent>& out) {
  if (mode_ == Mode::Finished) return;
  if (mode_ == Mode::Calls && !trim(line_).empty()) {
    end_line(out);  // may close the block and hand text back to buf_
    while (step(out)) {
    }
  }
  std::string_view rest = buf_;
  if (mode_ == Mode::Start || strip_lead_) {
    std::size_t i = first_non_ws(rest);
    rest = i == std::string_view::npos ? std::string_view() : rest.substr(i);
  }
  rest = rtrim(rest);
  switch (mode_) {
    case Mode::Start:
    case Mode::Text: emit_delta(ParseEvent::Kind::TextDelta, rest, out); break;
    case Mode::Think:
      emit_delta(ParseEvent::Kind::ThinkingDelta, rest, out);
      out.push_back(ParseEvent{ParseEvent::Kind::Diagnostic,
                               "unclosed <think>: the output ended before </think>", -1, {}, {}, {}});
      break;
    case Mode::Calls:
      out.push_back(ParseEvent{ParseEvent::Kind::Diagnostic,
                               "unclosed <tool_calls>: the output ended before </tool_calls>", -1,
                               {}, {}, {}});
      break;
    case Mode::Finished: break;
  }
  buf_.clear();
  line_.clear();
  mode_ = Mode::Finished;
}

std::vector<ParseEvent> OutputParser::finish() {
  std::vector<ParseEvent> out;
  finish(out);
  return out;
}

ParsedOutput OutputParser::parse(std::string_view whole_output) {
  OutputParser p;
  std::vector<ParseEvent> events;
  p.feed(whole_output, events);
  p.finish(events);
  ParsedOutput r;
  for (const auto& e : events) r.add(e);
  return r;
}

}  // namespace m1::engine
