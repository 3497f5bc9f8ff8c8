// agent/loop.h: the agent loop (agent.md "Loop"): query the provider, parse, dispatch tool calls,
// append results, until a typed stop reason. Budgets are checked before every model call; the
// conversation is recorded through the EventSink as it grows, so a kill at any moment loses
// nothing already reported.
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include "agent/events.h"
#include "agent/provider.h"
#include "agent/types.h"
#include "tools/tool.h"

namespace m1::agent {

struct LoopResult {
  StopReason reason = StopReason::Error;
  std::string detail;   // why (error text, which budget)
  std::string summary;  // submit's summary when submitted
};

struct LoopDeps {
  Provider* provider = nullptr;
  tools::Registry* registry = nullptr;  // must hold `submit` (add_submit_tool)
  tools::ToolContext tool_ctx;          // workspace, cancel
  Budgets budgets;
  EventSink* sink = nullptr;
  const std::atomic<bool>* cancel = nullptr;
};

// Runs until a stop reason. `conv` holds at least the system and task messages; `state` carries
// turns/usage/time from earlier runs of the same task (resume).
LoopResult run_loop(LoopDeps& deps, std::vector<ChatMessage>& conv, RunState& state);

// The `submit` tool: how the model says it is done ({"summary": "..."}).
void add_submit_tool(tools::Registry& registry);

// --- pieces the loop uses (agent/dispatch.cpp, agent/context.cpp), public for tests ---

struct DispatchResult {
  ChatMessage tool_message = ChatMessage::tool({});
  bool submitted = false;
  std::string summary;
  int format_errors = 0;  // malformed, unknown-tool or invalid-argument calls
  int calls = 0;          // all calls of the turn, malformed included
  size_t signature = 0;   // hash of calls + results, for loop detection
};
DispatchResult dispatch_calls(LoopDeps& deps, const ModelTurn& turn);

// Cuts `text` to about `max_chars` keeping head and tail, with a marker saying how much was cut.
std::string cut_middle(const std::string& text, size_t max_chars);

size_t conversation_tokens(const Provider& p, const std::vector<ChatMessage>& conv,
                           const std::vector<engine::ToolDef>& tools);
// Makes `conv` fit the context budget: elides old tool outputs first, then compacts into a
// summary (goal, constraints, what was done, what is left). Emits `elision` / `compaction`.
// Returns true when messages were rewritten (so the provider must re-read them).
bool fit_context(LoopDeps& deps, std::vector<ChatMessage>& conv,
                 const std::vector<engine::ToolDef>& tools, RunState& state);
std::string compaction_summary(const std::vector<ChatMessage>& conv);

}  // namespace m1::agent
