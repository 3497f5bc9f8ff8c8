// agent/types.cpp: names of stop reasons and JSON for budgets and run state.
#include "agent/types.h"

namespace m1::agent {

namespace {
constexpr const char* kStopNames[] = {"submitted", "step_limit", "token_limit", "time_limit",
                                      "interrupted", "error", "model_stopped"};
}

const char* stop_reason_name(StopReason r) { return kStopNames[static_cast<int>(r)]; }

std::optional<StopReason> parse_stop_reason(const std::string& s) {
  for (int i = 0; i < 7; ++i)
    if (s == kStopNames[i]) return static_cast<StopReason>(i);
  return std::nullopt;
}

nlohmann::json to_json(const Budgets& b) {
  return {{"max_steps", b.max_steps},          {"max_tokens", b.max_tokens},
          {"max_seconds", b.max_seconds},      {"max_format_errors", b.max_format_errors},
          {"loop_nudge_after", b.loop_nudge_after}, {"loop_stop_after", b.loop_stop_after},
          {"context_tokens", b.context_tokens}, {"tool_output_tokens", b.tool_output_tokens}};
}

namespace {
template <class T>
Status read_num(const nlohmann::json& j, const char* key, T& out, double min) {
  if (!j.contains(key)) return {};
  const auto& v = j[key];
  if (!v.is_number() || v.get<double>() < min)
    return make_error(std::string("budget '") + key + "' must be a number >= " +
                          std::to_string(static_cast<long long>(min)) + ", got " + v.dump(), 2);
  out = v.get<T>();
  return {};
}
}  // namespace

Status budgets_from_json(const nlohmann::json& j, Budgets& b) {
  if (!j.is_object()) return make_error("budgets must be a JSON object, got " + j.dump(), 2);
  M1_TRY(read_num(j, "max_steps", b.max_steps, 1));
  M1_TRY(read_num(j, "max_tokens", b.max_tokens, 0));
  M1_TRY(read_num(j, "max_seconds", b.max_seconds, 0));
  M1_TRY(read_num(j, "max_format_errors", b.max_format_errors, 1));
  M1_TRY(read_num(j, "loop_nudge_after", b.loop_nudge_after, 2));
  M1_TRY(read_num(j, "loop_stop_after", b.loop_stop_after, 2));
  M1_TRY(read_num(j, "context_tokens", b.context_tokens, 512));
  M1_TRY(read_num(j, "tool_output_tokens", b.tool_output_tokens, 64));
  return {};
}

nlohmann::json RunState::to_json() const {
  return {{"turns", turns}, {"input_tokens", usage.input_tokens},
          {"output_tokens", usage.output_tokens}, {"seconds", seconds}, {"generation", generation}};
}

RunState RunState::from_json(const nlohmann::json& j) {
  RunState s;
  if (!j.is_object()) return s;
  s.turns = j.value("turns", 0);
  s.usage.input_tokens = j.value("input_tokens", uint64_t{0});
  s.usage.output_tokens = j.value("output_tokens", uint64_t{0});
  s.seconds = j.value("seconds", 0.0);
  s.generation = j.value("generation", 0);
  return s;
}

}  // namespace m1::agent
