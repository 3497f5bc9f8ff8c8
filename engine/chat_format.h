// Chat format: renders a conversation (+ tool list) into MiniMax-M1's prompt text (m1-model.md §6)
// and encodes it to token ids.
//
// Decision the code can't show: rendering yields *segments* tagged trusted/untrusted instead of one
// string. Only the template's own literal text is trusted; everything that came from a message or a
// tool definition (user text, tool results, file contents, the model's own earlier output, system
// text, tool schemas) is untrusted and is tokenized with special-token matching OFF, so a file that
// contains "<end_of_sentence>" can never end a turn or forge a role. encode_conversation() splits
// only at the special tokens found in trusted segments and encodes the plain text in between as one
// piece, which gives the same ids as the reference tokenizer on the joined text whenever the
// untrusted parts hold no special-token text.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace m1::engine {

class Tokenizer;

enum class Role { System, User, Assistant, Tool };
const char* role_name(Role r);
std::optional<Role> parse_role(std::string_view s);

// One call the assistant made. `id` is the agent's bookkeeping (not rendered).
struct ToolCall {
  std::string id;
  std::string name;
  nlohmann::json arguments = nlohmann::json::object();
  bool operator==(const ToolCall&) const = default;
};

// One result inside a tool block. `call_id`/`is_error` are bookkeeping (not rendered).
struct ToolResult {
  std::string call_id;
  std::string name;
  std::string content;
  bool is_error = false;
  bool operator==(const ToolResult&) const = default;
};

struct ChatMessage {
  Role role = Role::User;
  std::string content;                   // system/user/assistant text
  std::string thinking;                  // assistant only; rendered as <think>\n...\n</think>\n
  std::vector<ToolCall> tool_calls;      // assistant only
  std::vector<ToolResult> tool_results;  // tool only (several results share one block)
  bool operator==(const ChatMessage&) const = default;

  static ChatMessage system(std::string text);
  static ChatMessage user(std::string text);
  static ChatMessage assistant(std::string text, std::string thinking = {},
                               std::vector<ToolCall> calls = {});
  static ChatMessage tool(std::vector<ToolResult> results);
};

struct ToolDef {
  std::string name;
  std::string description;
  nlohmann::json parameters = nlohmann::json::object();  // JSON Schema
  bool operator==(const ToolDef&) const = default;
};

// JSON conversion. Shapes:
//   {"role":"assistant","content":"..","thinking":"..","tool_calls":[{"id":"..","name":"..","arguments":{}}]}
//   {"role":"tool","tool_results":[{"call_id":"..","name":"..","content":"..","is_error":false}]}
//   {"name":"..","description":"..","parameters":{...}}
// The *_from_json functions validate and name the offending field; to_json never fails.
nlohmann::json to_json(const ChatMessage& m);
nlohmann::json to_json(const ToolDef& t);
nlohmann::json to_json(const ToolCall& c);
Result<ChatMessage> chat_message_from_json(const nlohmann::json& j);
Result<std::vector<ChatMessage>> chat_messages_from_json(const nlohmann::json& j);
Result<ToolDef> tool_def_from_json(const nlohmann::json& j);
Result<std::vector<ToolDef>> tool_defs_from_json(const nlohmann::json& j);

// JSON text exactly as Python's json.dumps(x, ensure_ascii=False) writes it (the reference
// template's `tojson`): ", " and ": " separators, non-ASCII bytes verbatim, object keys in the
// order the json value iterates them.
std::string python_json_dumps(const nlohmann::json& j);

struct Segment {
  std::string text;
  bool trusted = false;  // true: template text, special tokens are matched in it
  bool operator==(const Segment&) const = default;
};
std::string join_segments(const std::vector<Segment>& segs);

enum class TemplateVariant {
  Pinned,  // the checkpoint's tokenizer_config.json template, m1-model.md §6 (default)
  VLLM,    // vLLM's M1 template: "ai name=MiniMax AI", a default system prompt, trimmed text
};
std::optional<TemplateVariant> parse_template_variant(std::string_view s);  // "pinned" | "vllm"

// Where an earlier render stopped, for render_append().
enum class PrefixEnd {
  Complete,          // render(messages[0, from), tools, false)
  GenerationPrompt,  // render(messages[0, from), tools, true); messages[from] must be the assistant
  GeneratedReply,    // as GenerationPrompt, plus the model's reply body for messages[from] already
                     // in the engine session (it stopped at <end_of_sentence>, not yet fed): only
                     // the end marker of messages[from] is rendered, then messages after it
};

class ChatFormat {
 public:
  explicit ChatFormat(TemplateVariant v = TemplateVariant::Pinned) : variant_(v) {}
  TemplateVariant variant() const { return variant_; }

  // The whole prompt. Leading system messages are joined into one system block (as the reference
  // template does); a system message after other messages renders in place as its own system block
  // (the template would hoist it, but the prefix is already in the engine's state).
  std::vector<Segment> render(const std::vector<ChatMessage>& messages,
                              const std::vector<ToolDef>& tools,
                              bool add_generation_prompt) const;
  std::string render_text(const std::vector<ChatMessage>& messages,
                          const std::vector<ToolDef>& tools, bool add_generation_prompt) const;

  // Only what messages[from, end) add to an earlier render of messages[0, from) (see PrefixEnd).
  // Invariant (tested): render(m[0,from), g0) + render_append(m, from, end(g0), g1) == render(m, g1).
  // The tool list and the leading system block belong to the first render: from must be past the
  // leading system messages when from > 0. Errors say which message broke the precondition.
  Result<std::vector<Segment>> render_append(const std::vector<ChatMessage>& messages,
                                             std::size_t from, PrefixEnd prefix_end,
                                             bool add_generation_prompt) const;

  // The body of an assistant turn as the model writes it (thinking, text, tool-call lines).
  std::vector<Segment> assistant_body(const ChatMessage& m) const;
  // "<beginning_of_sentence>ai name=...\n": what generation continues from.
  std::string generation_prompt() const;

 private:
  void render_message(const ChatMessage& m, bool with_header, std::vector<Segment>& out) const;
  void render_system_block(const std::string& text, std::vector<Segment>& out) const;
  void render_tools_block(const std::vector<ToolDef>& tools, std::vector<Segment>& out) const;
  std::string body_text(const std::string& s) const;  // VLLM trims ASCII whitespace, Pinned keeps bytes

  TemplateVariant variant_;
};

// Token ids of rendered segments: special tokens (as the tokenizer defines them) are matched only
// inside trusted segments; text between them, trusted or not, is encoded with matching off.
std::vector<int32_t> encode_conversation(const Tokenizer& tok, const std::vector<Segment>& segs);

}  // namespace m1::engine
