// agent/loop.cpp: the loop itself. Every exit goes through stop(), which records the reason.
// Control flow: limits -> context fit -> model call -> record -> dispatch -> record -> checks.
#include "agent/loop.h"

#include <chrono>

namespace m1::agent {

namespace {

using Clock = std::chrono::steady_clock;

std::vector<engine::ToolDef> tool_defs(const tools::Registry& reg) {
  std::vector<engine::ToolDef> defs;
  for (const auto& s : reg.list()) defs.push_back({s.name, s.description, s.input_schema});
  return defs;
}

nlohmann::json calls_json(const ChatMessage& m) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& c : m.tool_calls) a.push_back(engine::to_json(c));
  return a;
}

class Loop {
 public:
  Loop(LoopDeps& d, std::vector<ChatMessage>& conv, RunState& st)
      : d_(d), conv_(conv), st_(st), t0_(Clock::now()), defs_(tool_defs(*d.registry)) {}

  LoopResult run() {
    for (;;) {
      if (cancelled()) return stop(StopReason::Interrupted, "interrupted by the user");
      if (st_.turns >= d_.budgets.max_steps)
        return stop(StopReason::StepLimit, "reached max_steps=" + std::to_string(d_.budgets.max_steps));
      if (d_.budgets.max_tokens && st_.usage.total() >= d_.budgets.max_tokens)
        return stop(StopReason::TokenLimit, "used " + std::to_string(st_.usage.total()) +
                                                " tokens of max_tokens=" + std::to_string(d_.budgets.max_tokens));
      if (d_.budgets.max_seconds > 0 && elapsed() >= d_.budgets.max_seconds)
        return stop(StopReason::TimeLimit, "ran " + std::to_string(static_cast<int>(elapsed())) +
                                               "s of max_seconds=" + std::to_string(d_.budgets.max_seconds));
      if (auto r = step()) return *r;
    }
  }

 private:
  std::optional<LoopResult> step() {
    if (fit_context(d_, conv_, defs_, st_)) d_.provider->on_rewrite();
    emit("turn_start", {{"turn", st_.turns + 1}, {"scripted", !d_.provider->is_model()},
                        {"provider", d_.provider->label()}});
    auto tm = Clock::now();
    StreamSink stream{[&](std::string_view t) { emit("text_delta", {{"text", std::string(t)}}); },
                      [&](std::string_view t) { emit("thinking_delta", {{"text", std::string(t)}}); }};
    auto r = d_.provider->complete(conv_, defs_, d_.cancel, stream);
    double model_s = secs(tm);
    if (!r.ok()) {
      if (cancelled()) return stop(StopReason::Interrupted, "interrupted during the model turn");
      return stop(StopReason::Error, "provider failed: " + r.error().message);
    }
    ModelTurn& turn = *r;
    if (!turn.note.empty()) emit("provider_note", {{"message", turn.note}});
    ++st_.turns;
    st_.usage += turn.usage;
    conv_.push_back(turn.message);
    d_.sink->message(turn.message, st_.generation);
    emit("assistant", {{"turn", st_.turns}, {"text", turn.message.content},
                       {"thinking", turn.message.thinking}, {"tool_calls", calls_json(turn.message)},
                       {"malformed_calls", turn.call_errors.size()}, {"finish_reason", turn.finish_reason}});
    if (turn.message.tool_calls.empty() && turn.call_errors.empty()) {
      turn_end(turn, model_s, 0);
      return stop(StopReason::ModelStopped, "the turn ended without a tool call (no submit)");
    }
    auto tt = Clock::now();
    DispatchResult dr = dispatch_calls(d_, turn);
    conv_.push_back(dr.tool_message);
    d_.sink->message(dr.tool_message, st_.generation);
    turn_end(turn, model_s, secs(tt));
    if (cancelled()) return stop(StopReason::Interrupted, "interrupted during a tool call");
    if (dr.submitted) {
      summary_ = dr.summary;
      return stop(StopReason::Submitted, "");
    }
    return after_dispatch(dr);
  }

  // Format-error streak and loop detection.
  std::optional<LoopResult> after_dispatch(const DispatchResult& dr) {
    if (dr.format_errors == dr.calls) {
      ++format_streak_;
      emit("format_error", {{"message", "turn " + std::to_string(st_.turns) + ": " +
                                            std::to_string(dr.format_errors) + " malformed call(s), " +
                                            std::to_string(format_streak_) + " turn(s) in a row"}});
      if (format_streak_ >= d_.budgets.max_format_errors)
        return stop(StopReason::Error, std::to_string(format_streak_) +
                                           " consecutive turns with only malformed tool calls");
    } else {
      format_streak_ = 0;
    }
    repeats_ = dr.signature == last_sig_ ? repeats_ + 1 : 1;
    last_sig_ = dr.signature;
    if (repeats_ >= d_.budgets.loop_stop_after)
      return stop(StopReason::Error, "loop detected: the same calls with the same results " +
                                         std::to_string(repeats_) + " times in a row");
    if (repeats_ >= d_.budgets.loop_nudge_after) {
      std::string nudge = "You have made the same tool call(s) with the same result " +
                          std::to_string(repeats_) + " times in a row. Repeating it will not help: "
                          "try a different approach, or call submit if the task is done.";
      conv_.push_back(ChatMessage::user(nudge));
      d_.sink->message(conv_.back(), st_.generation);
      emit("loop_nudge", {{"message", nudge}, {"repeats", repeats_}});
    }
    return std::nullopt;
  }

  void turn_end(const ModelTurn& t, double model_s, double tool_s) {
    nlohmann::json e = {{"turn", st_.turns}, {"input_tokens", t.usage.input_tokens},
                        {"output_tokens", t.usage.output_tokens}, {"estimated", t.usage_estimated},
                        {"model_seconds", model_s}, {"tool_seconds", tool_s},
                        {"total_input_tokens", st_.usage.input_tokens},
                        {"total_output_tokens", st_.usage.output_tokens}, {"state", st_.to_json()}};
    if (!t.provider_stats.empty()) e["provider"] = t.provider_stats;
    emit("turn_end", std::move(e));
  }

  LoopResult stop(StopReason reason, std::string detail) {
    st_.seconds += secs(t0_);
    t0_ = Clock::now();
    emit("stop", {{"reason", stop_reason_name(reason)}, {"detail", detail}, {"summary", summary_},
                  {"turns", st_.turns}, {"input_tokens", st_.usage.input_tokens},
                  {"output_tokens", st_.usage.output_tokens}, {"seconds", st_.seconds},
                  {"state", st_.to_json()}});
    return {reason, std::move(detail), summary_};
  }

  void emit(const char* type, nlohmann::json data) { d_.sink->event({type, std::move(data)}); }
  bool cancelled() const { return d_.cancel && d_.cancel->load(); }
  double elapsed() const { return st_.seconds + secs(t0_); }
  static double secs(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
  }

  LoopDeps& d_;
  std::vector<ChatMessage>& conv_;
  RunState& st_;
  Clock::time_point t0_;
  std::vector<engine::ToolDef> defs_;
  std::string summary_;
  int format_streak_ = 0;
  int repeats_ = 0;
  size_t last_sig_ = 0;
};

}  // namespace

LoopResult run_loop(LoopDeps& deps, std::vector<ChatMessage>& conv, RunState& state) {
  Loop loop(deps, conv, state);
  return loop.run();
}

}  // namespace m1::agent
