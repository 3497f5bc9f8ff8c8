// Rendering of the M1 chat format (m1-model.md §6) and the JSON shapes of chat messages.
// The template's literal strings live in one table per variant below; everything else is
// message or tool-definition text, emitted as untrusted segments.
#include "engine/chat_format.h"

#include <cstdio>

namespace m1::engine {

namespace {

using nlohmann::json;

constexpr const char* kBeginDocument = "<begin_of_document>";
constexpr const char* kBos = "<beginning_of_sentence>";
constexpr const char* kEosNl = "<end_of_sentence>\n";

struct Markers {
  const char* system_header;  // after <beginning_of_sentence>
  const char* ai_header;
  const char* user_header;
  const char* tool_header;
  const char* tools_intro;
  const char* tools_outro;
  const char* default_system;  // nullptr: no system block unless the conversation has one
};

constexpr const char* kToolsIntro =
    "system tool_setting=tools\nYou are provided with these tools:\n<tools>\n";

const Markers kPinned = {
    "system ai_setting=assistant\n",
    "ai name=assistant\n",
    "user name=user\n",
    "tool name=tools\n",
    kToolsIntro,
    "</tools>\n\nIf you need to call tools, please respond with <tool_calls></tool_calls> XML tags, "
    "and provide tool-name and json-object of arguments, following the format below:\n<tool_calls>\n"
    "{\"name\": <tool-name-1>, \"arguments\": <args-json-object-1>}\n...\n</tool_calls>",
    nullptr,
};

const Markers kVllm = {
    "system ai_setting=MiniMax AI\n",
    "ai name=MiniMax AI\n",
    "user name=user\n",
    "tool name=tools\n",
    kToolsIntro,
    "</tools>\n\nIf you need to call tools, please respond with <tool_calls></tool_calls> XML tags, "
    "and provide tool-name and json-object of arguments, following the format below:\n<tool_calls>\n"
    "{\"name\": <tool-name>, \"arguments\": <args-json-object>}\n...\n</tool_calls>",
    "You are a helpful assistant created by Minimax based on MiniMax-M1 model.",
};

const Markers& markers(TemplateVariant v) { return v == TemplateVariant::VLLM ? kVllm : kPinned; }

// Appends, merging with the previous segment when the trust level is the same.
void emit(std::vector<Segment>& out, std::string_view text, bool trusted) {
  if (text.empty()) return;
  if (!out.empty() && out.back().trusted == trusted) {
    out.back().text.append(text);
  } else {
    out.push_back(Segment{std::string(text), trusted});
  }
}

// Python's str.strip() on ASCII whitespace (Jinja's |trim).
std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return {};
  auto e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

void dump_string(const std::string& s, std::string& out) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

void dump(const json& j, std::string& out) {
  switch (j.type()) {
    case json::value_t::object: {
      out.push_back('{');
      bool first = true;
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (!first) out += ", ";
        first = false;
        dump_string(it.key(), out);
        out += ": ";
        dump(it.value(), out);
      }
      out.push_back('}');
      break;
    }
    case json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& v : j) {
        if (!first) out += ", ";
        first = false;
        dump(v, out);
      }
      out.push_back(']');
      break;
    }
    case json::value_t::string: dump_string(j.get_ref<const std::string&>(), out); break;
    case json::value_t::discarded: out += "null"; break;
    default: out += j.dump(); break;  // numbers, booleans, null: same text as Python
  }
}

Error field_error(const std::string& where, const std::string& what) {
  return make_error("chat message JSON: " + where + ": " + what);
}

Result<std::string> get_string(const json& j, const char* key, const std::string& where,
                               bool required) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return field_error(where, std::string("missing \"") + key + "\" (a string)");
    return std::string();
  }
  if (!it->is_string()) {
    return field_error(where, std::string("\"") + key + "\" must be a string, got " +
                                  it->type_name());
  }
  return it->get<std::string>();
}

}  // namespace

const char* role_name(Role r) {
  switch (r) {
    case Role::System: return "system";
    case Role::User: return "user";
    case Role::Assistant: return "assistant";
    case Role::Tool: return "tool";
  }
  return "?";
}

std::optional<Role> parse_role(std::string_view s) {
  if (s == "system") return Role::System;
  if (s == "user") return Role::User;
  if (s == "assistant") return Role::Assistant;
  if (s == "tool") return Role::Tool;
  return std::nullopt;
}

ChatMessage ChatMessage::system(std::string text) {
  ChatMessage m;
  m.role = Role::System;
  m.content = std::move(text);
  return m;
}
ChatMessage ChatMessage::user(std::string text) {
  ChatMessage m;
  m.role = Role::User;
  m.content = std::move(text);
  return m;
}
ChatMessage ChatMessage::assistant(std::string text, std::string thinking,
                                   std::vector<ToolCall> calls) {
  ChatMessage m;
  m.role = Role::Assistant;
  m.content = std::move(text);
  m.thinking = std::move(thinking);
  m.tool_calls = std::move(calls);
  return m;
}
ChatMessage ChatMessage::tool(std::vector<ToolResult> results) {
  ChatMessage m;
  m.role = Role::Tool;
  m.tool_results = std::move(results);
  return m;
}

std::string python_json_dumps(const json& j) {
  std::string out;
  dump(j, out);
  return out;
}

std::string join_segments(const std::vector<Segment>& segs) {
  std::string s;
  for (const auto& g : segs) s += g.text;
  return s;
}

std::optional<TemplateVariant> parse_template_variant(std::string_view s) {
  if (s == "pinned" || s == "default") return TemplateVariant::Pinned;
  if (s == "vllm") return TemplateVariant::VLLM;
  return std::nullopt;
}

// ---- JSON conversion ----

json to_json(const ToolCall& c) {
  json j = {{"name", c.name}, {"arguments", c.arguments}};
  if (!c.id.empty()) j["id"] = c.id;
  return j;
}

json to_json(const ToolDef& t) {
  return {{"name", t.name}, {"description", t.description}, {"parameters", t.parameters}};
}

json to_json(const ChatMessage& m) {
  json j = {{"role", role_name(m.role)}};
  if (m.role != Role::Tool || !m.content.empty()) j["content"] = m.content;
  if (!m.thinking.empty()) j["thinking"] = m.thinking;
  if (!m.tool_calls.empty()) {
    json calls = json::array();
    for (const auto& c : m.tool_calls) calls.push_back(to_json(c));
    j["tool_calls"] = std::move(calls);
  }
  if (!m.tool_results.empty()) {
    json rs = json::array();
    for (const auto& r : m.tool_results) {
      json rj = {{"name", r.name}, {"content", r.content}};
      if (!r.call_id.empty()) rj["call_id"] = r.call_id;
      if (r.is_error) rj["is_error"] = true;
      rs.push_back(std::move(rj));
    }
    j["tool_results"] = std::move(rs);
  }
  return j;
}

Result<ChatMessage> chat_message_from_json(const json& j) {
  if (!j.is_object()) return field_error("message", std::string("expected an object, got ") + j.type_name());
  ChatMessage m;
  M1_ASSIGN_OR_RETURN(std::string role, get_string(j, "role", "message", true));
  auto r = parse_role(role);
  if (!r) return field_error("message", "\"role\" must be system, user, assistant or tool, got \"" + role + "\"");
  m.role = *r;
  M1_ASSIGN_OR_RETURN(m.content, get_string(j, "content", role + " message", false));
  M1_ASSIGN_OR_RETURN(m.thinking, get_string(j, "thinking", role + " message", false));
  if (!m.thinking.empty() && m.role != Role::Assistant) {
    return field_error(role + " message", "\"thinking\" is only allowed on assistant messages");
  }
  if (auto it = j.find("tool_calls"); it != j.end() && !it->is_null()) {
    if (m.role != Role::Assistant) return field_error(role + " message", "\"tool_calls\" is only allowed on assistant messages");
    if (!it->is_array()) return field_error("assistant message", "\"tool_calls\" must be an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& cj = (*it)[i];
      std::string where = "tool_calls[" + std::to_string(i) + "]";
      if (!cj.is_object()) return field_error(where, "expected an object");
      ToolCall c;
      M1_ASSIGN_OR_RETURN(c.name, get_string(cj, "name", where, true));
      M1_ASSIGN_OR_RETURN(c.id, get_string(cj, "id", where, false));
      auto a = cj.find("arguments");
      if (a == cj.end() || !a->is_object()) return field_error(where, "\"arguments\" must be a JSON object");
      c.arguments = *a;
      m.tool_calls.push_back(std::move(c));
    }
  }
  if (auto it = j.find("tool_results"); it != j.end() && !it->is_null()) {
    if (m.role != Role::Tool) return field_error(role + " message", "\"tool_results\" is only allowed on tool messages");
    if (!it->is_array()) return field_error("tool message", "\"tool_results\" must be an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& rj = (*it)[i];
      std::string where = "tool_results[" + std::to_string(i) + "]";
      if (!rj.is_object()) return field_error(where, "expected an object");
      ToolResult r;
      M1_ASSIGN_OR_RETURN(r.name, get_string(rj, "name", where, true));
      M1_ASSIGN_OR_RETURN(r.content, get_string(rj, "content", where, true));
      M1_ASSIGN_OR_RETURN(r.call_id, get_string(rj, "call_id", where, false));
      if (auto e = rj.find("is_error"); e != rj.end() && !e->is_null()) {
        if (!e->is_boolean()) return field_error(where, "\"is_error\" must be a boolean");
        r.is_error = e->get<bool>();
      }
      m.tool_results.push_back(std::move(r));
    }
  }
  if (m.role == Role::Tool && m.tool_results.empty()) {
    return field_error("tool message", "needs a non-empty \"tool_results\" array");
  }
  return m;
}

Result<std::vector<ChatMessage>> chat_messages_from_json(const json& j) {
  if (!j.is_array()) return field_error("messages", std::string("expected an array, got ") + j.type_name());
  std::vector<ChatMessage> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    auto m = chat_message_from_json(j[i]);
    if (!m.ok()) return make_error("messages[" + std::to_string(i) + "]: " + m.error().message);
    out.push_back(std::move(m).value());
  }
  return out;
}

Result<ToolDef> tool_def_from_json(const json& j) {
  if (!j.is_object()) return make_error(std::string("tool definition: expected an object, got ") + j.type_name());
  ToolDef t;
  auto name = get_string(j, "name", "tool definition", true);
  if (!name.ok()) return name.error();
  t.name = name.value();
  if (t.name.empty()) return make_error("tool definition: \"name\" must not be empty");
  auto desc = get_string(j, "description", "tool \"" + t.name + "\"", false);
  if (!desc.ok()) return desc.error();
  t.description = desc.value();
  if (auto p = j.find("parameters"); p != j.end() && !p->is_null()) {
    if (!p->is_object()) return make_error("tool \"" + t.name + "\": \"parameters\" must be a JSON Schema object");
    t.parameters = *p;
  }
  return t;
}

Result<std::vector<ToolDef>> tool_defs_from_json(const json& j) {
  if (!j.is_array()) return make_error(std::string("tools: expected an array, got ") + j.type_name());
  std::vector<ToolDef> out;
  for (std::size_t i = 0; i < j.size(); ++i) {
    auto t = tool_def_from_json(j[i]);
    if (!t.ok()) return make_error("tools[" + std::to_string(i) + "]: " + t.error().message);
    out.push_back(std::move(t).value());
  }
  return out;
}

// ---- rendering ----

std::string ChatFormat::body_text(const std::string& s) const {
  return variant_ == TemplateVariant::VLLM ? strip(s) : s;
}

std::string ChatFormat::generation_prompt() const {
  return std::string(kBos) + markers(variant_).ai_header;
}

void ChatFormat::render_system_block(const std::string& text, std::vector<Segment>& out) const {
  emit(out, std::string(kBos) + markers(variant_).system_header, true);
  emit(out, text, false);
  emit(out, kEosNl, true);
}

void ChatFormat::render_tools_block(const std::vector<ToolDef>& tools,
                                    std::vector<Segment>& out) const {
  const Markers& mk = markers(variant_);
  emit(out, std::string(kBos) + mk.tools_intro, true);
  for (const auto& t : tools) {
    // Key order name, description, parameters: the order of the published examples.
    std::string line = "{\"name\": ";
    dump_string(t.name, line);
    line += ", \"description\": ";
    dump_string(t.description, line);
    line += ", \"parameters\": ";
    dump(t.parameters, line);
    line += "}";
    emit(out, line, false);
    emit(out, "\n", true);
  }
  emit(out, mk.tools_outro, true);
  emit(out, kEosNl, true);
}

std::vector<Segment> ChatFormat::assistant_body(const ChatMessage& m) const {
  // The model's own output form; all of it is untrusted text.
  std::string body;
  if (!m.thinking.empty()) body += "<think>\n" + m.thinking + "\n</think>\n";
  body += body_text(m.content);
  if (!m.tool_calls.empty()) {
    if (!body.empty() && body.back() != '\n') body.push_back('\n');
    body += "<tool_calls>\n";
    for (const auto& c : m.tool_calls) {
      body += "{\"name\": ";
      dump_string(c.name, body);
      body += ", \"arguments\": ";
      dump(c.arguments, body);
      body += "}\n";
    }
    body += "</tool_calls>";
  }
  std::vector<Segment> out;
  emit(out, body, false);
  return out;
}

void ChatFormat::render_message(const ChatMessage& m, bool with_header,
                                std::vector<Segment>& out) const {
  const Markers& mk = markers(variant_);
  switch (m.role) {
    case Role::System:
      render_system_block(body_text(m.content), out);
      return;
    case Role::User:
      emit(out, std::string(kBos) + mk.user_header, true);
      emit(out, body_text(m.content), false);
      emit(out, kEosNl, true);
      return;
    case Role::Assistant:
      if (with_header) emit(out, std::string(kBos) + mk.ai_header, true);
      for (auto& s : assistant_body(m)) emit(out, s.text, s.trusted);
      emit(out, kEosNl, true);
      return;
    case Role::Tool:
      emit(out, std::string(kBos) + mk.tool_header, true);
      for (const auto& r : m.tool_results) {
        if (!r.name.empty() || variant_ == TemplateVariant::Pinned) {
          emit(out, "tool name: ", true);
          emit(out, r.name, false);
          emit(out, "\n", true);
        }
        emit(out, "tool result: ", true);
        emit(out, r.content, false);
        emit(out, "\n\n", true);
      }
      emit(out, kEosNl, true);
      return;
  }
}

namespace {
std::size_t leading_system_count(const std::vector<ChatMessage>& ms) {
  std::size_t n = 0;
  while (n < ms.size() && ms[n].role == Role::System) ++n;
  return n;
}
}  // namespace

std::vector<Segment> ChatFormat::render(const std::vector<ChatMessage>& messages,
                                        const std::vector<ToolDef>& tools,
                                        bool add_generation_prompt) const {
  std::vector<Segment> out;
  emit(out, kBeginDocument, true);
  const std::size_t nsys = leading_system_count(messages);
  std::string system;
  for (std::size_t i = 0; i < nsys; ++i) system += body_text(messages[i].content);
  if (nsys == 0 && markers(variant_).default_system) system = markers(variant_).default_system;
  if (!system.empty()) render_system_block(system, out);
  if (!tools.empty()) render_tools_block(tools, out);
  for (std::size_t i = nsys; i < messages.size(); ++i) render_message(messages[i], true, out);
  if (add_generation_prompt) emit(out, generation_prompt(), true);
  return out;
}

std::string ChatFormat::render_text(const std::vector<ChatMessage>& messages,
                                    const std::vector<ToolDef>& tools,
                                    bool add_generation_prompt) const {
  return join_segments(render(messages, tools, add_generation_prompt));
}

Result<std::vector<Segment>> ChatFormat::render_append(const std::vector<ChatMessage>& messages,
                                                       std::size_t from, PrefixEnd prefix_end,
                                                       bool add_generation_prompt) const {
  if (from > messages.size()) {
    return make_error("render_append: start message " + std::to_string(from) +
                      " is past the end of the conversation (" + std::to_string(messages.size()) +
                      " messages)");
  }
  const std::size_t nsys = leading_system_count(messages);
  if (from < nsys) {
    return make_error("render_append: message " + std::to_string(from) +
                      " belongs to the leading system block, which only a full render() emits");
  }
  std::vector<Segment> out;
  std::size_t i = from;
  if (prefix_end != PrefixEnd::Complete) {
    if (i >= messages.size() || messages[i].role != Role::Assistant) {
      return make_error(
          "render_append: the earlier render ended with the generation prompt, so message " +
          std::to_string(i) + " must be the assistant's reply, got " +
          (i >= messages.size() ? std::string("no message")
                                : std::string("a ") + role_name(messages[i].role) + " message"));
    }
    if (prefix_end == PrefixEnd::GeneratedReply) {
      emit(out, kEosNl, true);
    } else {
      render_message(messages[i], /*with_header=*/false, out);
    }
    ++i;
  }
  for (; i < messages.size(); ++i) render_message(messages[i], true, out);
  if (add_generation_prompt) emit(out, generation_prompt(), true);
  return out;
}

}  // namespace m1::engine
