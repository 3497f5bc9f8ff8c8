// agent/types.h: plain protocol types of the agent loop (no I/O): stop reasons, usage, a model
// turn, events, budgets. Conversation messages are engine::ChatMessage so the local provider can
// render them in the M1 chat format without conversion.
//
// Decision: the model finishes by calling the `submit` tool (summary argument). A turn that ends
// with no tool call at all stops the run with `model_stopped` (not submitted). The system prompt
// says so.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/chat_format.h"

namespace m1::agent {

using engine::ChatMessage;
using engine::Role;

enum class StopReason { Submitted, StepLimit, TokenLimit, TimeLimit, Interrupted, Error, ModelStopped };
const char* stop_reason_name(StopReason r);
std::optional<StopReason> parse_stop_reason(const std::string& s);

struct Usage {
  uint64_t input_tokens = 0;
  uint64_t output_tokens = 0;
  uint64_t total() const { return input_tokens + output_tokens; }
  Usage& operator+=(const Usage& o) {
    input_tokens += o.input_tokens;
    output_tokens += o.output_tokens;
    return *this;
  }
};

// A tool call the provider could not parse (bad JSON, missing name): reported back to the model.
struct CallError {
  std::string name;   // when known
  std::string raw;    // the offending text
  std::string error;  // precise message
};

// What one model call produced. `message` is the assistant message (valid tool calls only).
struct ModelTurn {
  ChatMessage message = ChatMessage::assistant("");
  std::vector<CallError> call_errors;
  Usage usage;
  bool usage_estimated = true;  // false when the provider reported real counts
  std::string finish_reason;
  // Provider-specific counters for the turn_end event (local: full_prefill, appended_tokens,
  // prefill/decode seconds); an empty object for providers without any.
  nlohmann::json provider_stats = nlohmann::json::object();
  // A remark the user should see (the loop emits it as a `provider_note` event), e.g. why a
  // resumed local session prefilled the whole conversation instead of its saved state.
  std::string note;
};

// One event of a run, as written to the store and printed by --json.
struct Event {
  std::string type;  // session_start, turn_start, text_delta, thinking_delta, assistant,
                     // tool_call, tool_result, format_error, loop_nudge, elision, compaction,
                     // turn_end, provider_note, stop, patch, error, warning
  nlohmann::json data = nlohmann::json::object();
};

struct Budgets {
  int max_steps = 50;             // model turns
  uint64_t max_tokens = 0;        // input + output over the whole task; 0 = unlimited
  double max_seconds = 0;         // wall time of the task; 0 = unlimited
  int max_format_errors = 3;      // consecutive turns with only malformed calls before `error`
  int loop_nudge_after = 3;       // identical turn (calls + results) repeated this often: nudge
  int loop_stop_after = 5;        // ... this often: stop with `error`
  size_t context_tokens = 32768;  // the window the conversation must fit
  size_t tool_output_tokens = 4000;  // a single tool result is cut to this at ingestion
};
nlohmann::json to_json(const Budgets& b);
// Reads known fields from `j` over `b`; an error names the field and the expected type.
Status budgets_from_json(const nlohmann::json& j, Budgets& b);

// Progress of a run that survives a restart (kept in the session's meta).
struct RunState {
  int turns = 0;                  // model turns completed
  Usage usage;
  double seconds = 0;             // wall time spent in earlier runs of this task
  int generation = 0;             // bumps at each compaction (messages are re-recorded)
  nlohmann::json to_json() const;
  static RunState from_json(const nlohmann::json& j);
};

}  // namespace m1::agent
