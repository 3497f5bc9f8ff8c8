// OutputParser: incremental parser of MiniMax-M1's output text (m1-model.md §6): an optional
// leading <think>...</think>, then text and/or <tool_calls> blocks with one JSON call per line.
//
// Decisions the code can't show:
// - Every decision depends only on the bytes seen so far; when the bytes seen cannot decide (a tag
//   split across deltas, whitespace that may precede a closing tag, half a UTF-8 character) they
//   are held back. So any split of the same output yields the same events once adjacent deltas are
//   merged, and text/thinking deltas never end inside a UTF-8 character or a tag.
// - Whitespace around the structure is not content: it is trimmed at both ends of the thinking,
//   before/after <think>, </think>, <tool_calls>, </tool_calls>, and at the end of the output.
// - <think> counts only as the first non-whitespace text; later it is plain text. Inside <think>
//   only </think> is recognised, so <tool_calls> written while thinking is ignored.
// - Inside <tool_calls>, "</tool_calls>" is recognised only outside JSON strings, so a call whose
//   argument contains that text (say, a file being written) still parses. A line that is not valid
//   JSON but contains the tag is cut at the tag (error for the part before, block closed).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace m1::engine {

struct ParseEvent {
  enum class Kind { ThinkingDelta, TextDelta, ToolCall, ToolCallError, Diagnostic };
  Kind kind = Kind::TextDelta;
  std::string text;          // deltas: the text; ToolCallError/Diagnostic: the message
  int index = -1;            // ToolCall/ToolCallError: 0-based position among all call lines
  std::string name;          // ToolCall; ToolCallError when the line named a tool
  nlohmann::json arguments;  // ToolCall: always an object
  std::string raw;           // ToolCall/ToolCallError: the line as written, trimmed
  bool operator==(const ParseEvent&) const = default;
};
const char* kind_name(ParseEvent::Kind k);
nlohmann::json to_json(const ParseEvent& e);

// Everything one output produced, for callers that do not stream.
struct ParsedOutput {
  std::string thinking;
  std::string text;
  std::vector<ParseEvent> calls;   // Kind::ToolCall, in order
  std::vector<ParseEvent> errors;  // Kind::ToolCallError, in order
  std::vector<std::string> diagnostics;
  void add(const ParseEvent& e);
};

class OutputParser {
 public:
  // Appends the events this delta completes to `out`.
  void feed(std::string_view delta, std::vector<ParseEvent>& out);
  std::vector<ParseEvent> feed(std::string_view delta);
  // End of stream: flushes held-back text, parses a last unterminated call line, and reports
  // unclosed <think> / <tool_calls> as Diagnostic events. Later feeds are ignored until reset().
  void finish(std::vector<ParseEvent>& out);
  std::vector<ParseEvent> finish();
  void reset() { *this = OutputParser(); }
  bool finished() const { return mode_ == Mode::Finished; }
  int calls_seen() const { return next_index_; }  // call lines so far (valid or not)

  static ParsedOutput parse(std::string_view whole_output);

 private:
  enum class Mode { Start, Think, Text, Calls, Finished };
  bool step(std::vector<ParseEvent>& out);  // one decision; false when more input is needed
  bool step_think(std::vector<ParseEvent>& out);
  bool step_text(std::vector<ParseEvent>& out);
  bool step_calls(std::vector<ParseEvent>& out);
  void emit_delta(ParseEvent::Kind k, std::string_view s, std::vector<ParseEvent>& out);
  void handle_line(std::string_view line, std::vector<ParseEvent>& out);
  void end_line(std::vector<ParseEvent>& out);  // a '\n' ended line_ inside <tool_calls>

  Mode mode_ = Mode::Start;
  std::string buf_;            // undecided input
  bool strip_lead_ = false;    // drop whitespace at the start of buf_ (after a tag)
  std::string line_;           // current call line inside <tool_calls>
  bool in_string_ = false;     // JSON string state of line_
  bool escape_ = false;
  int next_index_ = 0;
};

}  // namespace m1::engine
