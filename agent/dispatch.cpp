// agent/dispatch.cpp: runs one turn's tool calls. Consecutive read-only calls run in parallel;
// mutating calls run alone, in order. Malformed calls (from the provider), unknown tools and
// invalid arguments become error results naming the problem, and count as format errors.
// Each result is cut at ingestion (head + tail) to the budget's tool_output_tokens.
#include <chrono>
#include <functional>
#include <future>

#include "agent/loop.h"
#include "tools/builtin.h"

namespace m1::agent {

std::string cut_middle(const std::string& text, size_t max_chars) {
  if (text.size() <= max_chars) return text;
  size_t head = max_chars / 2, tail = max_chars - head;
  // Keep UTF-8 sequences whole at both cut points.
  while (head > 0 && (static_cast<unsigned char>(text[head]) & 0xC0) == 0x80) --head;
  size_t tail_start = text.size() - tail;
  while (tail_start < text.size() && (static_cast<unsigned char>(text[tail_start]) & 0xC0) == 0x80)
    ++tail_start;
  return text.substr(0, head) + "\n[... " + std::to_string(tail_start - head) +
         " characters cut to fit the context ...]\n" + text.substr(tail_start);
}

void add_submit_tool(tools::Registry& registry) {
  tools::ToolSpec s{"submit", "Submit",
                    "Call when the task is done: ends the task. Give a short summary of the change.",
                    {{"type", "object"},
                     {"properties", {{"summary", {{"type", "string"}, {"description", "what was changed and why"}}}}},
                     {"required", {"summary"}},
                     {"additionalProperties", false}},
                    std::nullopt};
  registry.add(tools::make_tool(s, [](const nlohmann::json&, tools::ToolContext&) {
    return tools::ToolResult::ok_text("submitted");
  }));
}

namespace {

struct Slot {
  engine::ToolCall call;
  bool format_error = false;
  bool read_only = false;
  tools::ToolResult result;
  double started = 0, finished = 0;
};

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void run_slot(LoopDeps& d, Slot& s) {
  s.started = now_unix();
  if (d.cancel && d.cancel->load()) {
    s.result = tools::ToolResult::error_text("not run: the user interrupted the task");
  } else {
    tools::ToolContext ctx = d.tool_ctx;
    ctx.cancel = d.cancel;
    s.result = d.registry->call(s.call.name, s.call.arguments, ctx);
  }
  s.finished = now_unix();
}

}  // namespace

DispatchResult dispatch_calls(LoopDeps& d, const ModelTurn& turn) {
  DispatchResult out;
  std::vector<Slot> slots;
  for (const auto& c : turn.message.tool_calls) {
    Slot s;
    s.call = c;
    auto tool = d.registry->find(c.name);
    if (!tool) {
      s.format_error = true;
    } else {
      s.read_only = tool->spec().read_only;
      s.format_error = !tools::validate_json_schema(tool->spec().input_schema, c.arguments).empty();
    }
    slots.push_back(std::move(s));
  }
  // Run: groups of consecutive read-only calls in parallel, others one by one.
  for (size_t i = 0; i < slots.size();) {
    if (slots[i].format_error || slots[i].call.name == "submit" || !slots[i].read_only) {
      d.sink->event({"tool_call", {{"id", slots[i].call.id}, {"name", slots[i].call.name},
                                   {"arguments", slots[i].call.arguments}}});
      run_slot(d, slots[i]);
      ++i;
      continue;
    }
    size_t j = i;
    while (j < slots.size() && slots[j].read_only && !slots[j].format_error) ++j;
    std::vector<std::future<void>> fs;
    for (size_t k = i; k < j; ++k) {
      d.sink->event({"tool_call", {{"id", slots[k].call.id}, {"name", slots[k].call.name},
                                   {"arguments", slots[k].call.arguments}, {"parallel", j - i > 1}}});
      fs.push_back(std::async(std::launch::async, [&d, &s = slots[k]] { run_slot(d, s); }));
    }
    for (auto& f : fs) f.get();
    i = j;
  }
  std::vector<engine::ToolResult> results;
  size_t max_chars = d.budgets.tool_output_tokens * 4;
  std::string sig;
  for (auto& s : slots) {
    std::string text = cut_middle(s.result.text(), max_chars);
    if (s.result.is_error && text.rfind("error", 0) != 0) text = "error: " + text;
    results.push_back({s.call.id, s.call.name, text, s.result.is_error});
    d.sink->tool_call(s.call, s.result.text(), s.result.is_error, s.started, s.finished);
    d.sink->event({"tool_result", {{"id", s.call.id}, {"name", s.call.name}, {"is_error", s.result.is_error},
                                   {"content", text}, {"seconds", s.finished - s.started}}});
    sig += s.call.name + "\x1f" + s.call.arguments.dump() + "\x1f" + text + "\x1e";
    if (s.format_error) ++out.format_errors;
    if (s.call.name == "submit" && !s.format_error && !s.result.is_error) {
      out.submitted = true;
      out.summary = s.call.arguments.value("summary", "");
    }
  }
  int n = 0;
  for (const auto& e : turn.call_errors) {
    std::string id = "malformed_" + std::to_string(++n);
    std::string text = "error: malformed tool call: " + e.error +
                       " — write each call as one JSON object {\"name\": TOOL, \"arguments\": {...}}";
    results.push_back({id, e.name.empty() ? "invalid" : e.name, text, true});
    d.sink->event({"tool_result", {{"id", id}, {"name", e.name}, {"is_error", true}, {"content", text},
                                   {"malformed", true}, {"raw", e.raw}}});
    sig += "malformed\x1f" + e.raw + "\x1e";
    ++out.format_errors;
  }
  out.calls = static_cast<int>(slots.size() + turn.call_errors.size());
  out.signature = std::hash<std::string>{}(sig);
  out.tool_message = ChatMessage::tool(std::move(results));
  return out;
}

}  // namespace m1::agent
