// agent/local_provider.cpp: the `local` provider (see local_provider.h for the token layout).
// One complete(): append the new part of the conversation to the kept session (or prefill all of
// it into a fresh one), then sample until <end_of_sentence>, max_output_tokens or a full context,
// streaming text through StreamDecoder -> OutputParser -> StreamSink; malformed call lines become
// per-call errors for the loop.
// Decision: any failure or cancellation mid-turn drops the session (it may hold half a prefill or
// half a reply the conversation will never contain); the next call starts over with a full
// prefill rather than continue from a state that matches no conversation.
#include "agent/local_provider.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "engine/output_parser.h"

namespace m1::agent {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr size_t kPrefillChunk = 1024;  // tokens per append; cancel is checked between chunks

Error cancelled(const char* where) { return make_error(std::string("cancelled ") + where); }

}  // namespace

LocalProvider::LocalProvider(ProviderOptions o, std::unique_ptr<engine::Engine> e,
                             engine::TemplateVariant v, int32_t eos)
    : o_(std::move(o)),
      engine_(std::move(e)),
      fmt_(v),
      eos_(eos),
      sampler_([&] {
        engine::SamplingParams p;
        p.temperature = static_cast<float>(o_.temperature);
        p.top_p = o_.temperature > 0 ? 0.95f : 1.0f;
        p.seed = o_.seed;
        return p;
      }()) {
  sampler_.set_mask(engine_->token_mask());
  const char* env = std::getenv("M1_CONSTRAIN_EDITS");
  if (!(env && std::string(env) == "0")) {
    const auto& tok = engine_->tokenizer();
    std::vector<std::string> pieces(static_cast<size_t>(engine_->usable_vocab()));
    const auto& mask = engine_->token_mask();
    for (size_t id = 0; id < pieces.size(); ++id) {
      if (!mask.empty() && (id >= mask.size() || !mask[id])) continue;
      int32_t one = static_cast<int32_t>(id);
      pieces[id] = tok.decode(std::span<const int32_t>(&one, 1), /*skip_special=*/true);
    }
    edit_constraint_ = std::make_unique<EditConstraint>(std::move(pieces));
  }
}

void LocalProvider::narrow_mask(std::string_view turn_text) {
  std::vector<uint8_t> allowed = edit_constraint_ ? edit_constraint_->allowed(turn_text) : std::vector<uint8_t>{};
  if (allowed.empty()) {
    if (mask_narrowed_) sampler_.set_mask(engine_->token_mask());
    mask_narrowed_ = false;
    return;
  }
  const auto& base = engine_->token_mask();
  allowed.resize(std::max(allowed.size(), base.size()), 0);
  for (size_t i = 0; i < base.size(); ++i) allowed[i] = allowed[i] && base[i];
  sampler_.set_mask(std::move(allowed));
  mask_narrowed_ = true;
  ++constrained_tokens_;
}

// The embedded default model (issue 7): models/m1-small beside the build or install folder of the
// running binary (build/m1 -> models/m1-small; PREFIX/bin/m1 -> PREFIX/share/m1/models/m1-small).
static std::filesystem::path default_model_dir() {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  for (const fs::path& p : {exe.parent_path() / ".." / "models" / "m1-small",
                            exe.parent_path() / ".." / "share" / "m1" / "models" / "m1-small"})
    if (fs::exists(p / "config.json", ec)) return fs::weakly_canonical(p, ec);
  return {};
}

Result<std::unique_ptr<LocalProvider>> LocalProvider::open(const ProviderOptions& given) {
  ProviderOptions o = given;
  if (o.model.empty()) o.model = default_model_dir().string();
  if (o.model.empty())
    return make_error("the local provider needs a model folder: --model DIR (or config 'model' / M1_MODEL), "
                      "and the default model (models/m1-small beside this build) is not there; "
                      "`m1 model init --preset tiny --out DIR` makes a random one", 2);
  auto variant = engine::parse_template_variant(o.chat_template);
  if (!variant)
    return make_error("chat_template must be 'pinned' or 'vllm', got '" + o.chat_template + "'", 2);
  if (o.temperature < 0)
    return make_error("temperature must be >= 0 (0 = greedy), got " + std::to_string(o.temperature), 2);
  if (o.max_output_tokens == 0) return make_error("max_output_tokens must be at least 1", 2);
  auto eng = engine::Engine::open(o.model);
  if (!eng.ok())
    return make_error("cannot open model folder '" + o.model + "': " + eng.error().message, eng.error().code);
  auto eos = (*eng)->tokenizer().token_id("<end_of_sentence>");
  if (!eos)
    return make_error("the tokenizer of model folder '" + o.model +
                      "' has no <end_of_sentence> token, so a reply could never end", 2);
  std::unique_ptr<LocalProvider> p(new LocalProvider(o, std::move(*eng), *variant, *eos));
  M1_TRY(p->sampler_.params().validate());
  return p;
}

size_t LocalProvider::count_tokens(const std::string& text) const {
  // Conversation text is untrusted: special-token text in it is encoded as plain text.
  return engine_->tokenizer().encode(text, /*match_special=*/false).size();
}

void LocalProvider::drop_session() {
  session_.reset();
  held_.clear();
  held_tools_.clear();
  held_ends_with_eos_ = false;
}

bool LocalProvider::extends_held(const std::vector<ChatMessage>& conv,
                                 const std::vector<engine::ToolDef>& tools) const {
  if (!session_ || held_.empty() || conv.size() <= held_.size() || tools != held_tools_) return false;
  return std::equal(held_.begin(), held_.end(), conv.begin());
}

Status LocalProvider::prefill(const std::vector<int32_t>& ids, const std::atomic<bool>* cancel) {
  for (size_t at = 0; at < ids.size(); at += kPrefillChunk) {
    if (cancel && cancel->load()) return cancelled("during the prompt prefill");
    size_t n = std::min(kPrefillChunk, ids.size() - at);
    M1_TRY(session_->append(std::span<const int32_t>(ids.data() + at, n)));
  }
  return {};
}

Result<ModelTurn> LocalProvider::complete(const std::vector<ChatMessage>& conv,
                                          const std::vector<engine::ToolDef>& tools,
                                          const std::atomic<bool>* cancel, const StreamSink& sink) {
  if (conv.empty()) return make_error("local provider: the conversation is empty", 2);
  if (conv.back().role == Role::Assistant)
    return make_error("local provider: the conversation ends with an assistant message; expected it "
                      "to end with a user or tool message", 2);
  if (cancel && cancel->load()) return cancelled("before the model turn");
  stats_ = {};
  std::string note;
  if (restore_pending_) {
    restore_pending_ = false;
    note = restore(conv, tools);
  }
  const auto& tok = engine_->tokenizer();
  std::vector<int32_t> ids;
  if (extends_held(conv, tools)) {
    auto rest = fmt_.render_append(conv, held_.size() - 1, engine::PrefixEnd::GeneratedReply, true);
    if (!rest.ok()) return make_error("local provider: " + rest.error().message);
    ids = engine::encode_conversation(tok, *rest);
    if (ids.empty() || ids[0] != eos_)
      return make_error("local provider: the rendered end of the previous reply does not start with "
                        "<end_of_sentence> (chat format and session disagree)");
    // The sampled <end_of_sentence> is already in the session; a reply cut at max tokens has none.
    if (held_ends_with_eos_) ids.erase(ids.begin());
  } else {
    drop_session();
    auto s = engine_->new_session();
    if (!s.ok()) return make_error("local provider: cannot start an engine session: " + s.error().message);
    session_ = std::move(*s);
    ids = engine::encode_conversation(tok, fmt_.render(conv, tools, true));
    held_tools_ = tools;
    stats_.full_prefill = true;
  }
  if (session_->length() + static_cast<int64_t>(ids.size()) >= session_->context()) {
    int64_t need = session_->length() + static_cast<int64_t>(ids.size());
    drop_session();
    return make_error("the conversation (" + std::to_string(need) + " tokens) does not fit the model's context of " +
                      std::to_string(engine_->context()) +
                      " tokens; lower budgets.context_tokens so compaction happens earlier");
  }
  auto t0 = Clock::now();
  if (auto st = prefill(ids, cancel); !st.ok()) {
    drop_session();
    if (st.error().message.rfind("cancelled", 0) == 0) return st.error();
    return make_error("local provider: prefill of " + std::to_string(ids.size()) + " tokens failed: " +
                      st.error().message);
  }
  stats_.appended_tokens = ids.size();
  stats_.prefill_seconds = since(t0);
  if (edit_constraint_) edit_constraint_->set_conversation(conv);
  auto turn = generate(cancel, sink);
  if (!turn.ok()) {
    drop_session();
    return turn;
  }
  turn->usage.input_tokens = ids.size();
  held_ = conv;
  held_.push_back(turn->message);
  if (!state_path_.empty()) {
    auto ts = Clock::now();
    if (auto st = save_state(); !st.ok())
      note += std::string(note.empty() ? "" : "; ") + "could not save the engine state (a resume will prefill "
              "the whole conversation): " + st.error().message;
    stats_.save_seconds = since(ts);
  }
  turn->note = std::move(note);
  turn->provider_stats = stats_.to_json();
  return turn;
}

void LocalProvider::on_resume(int turns_done) {
  drop_session();
  turn_no_ = std::max(turn_no_, turns_done);  // call ids stay unique if the state file is not used
  restore_pending_ = true;
}

nlohmann::json LocalTurnStats::to_json() const {
  return {{"full_prefill", full_prefill}, {"restored", restored}, {"appended_tokens", appended_tokens},
          {"sampled_tokens", sampled_tokens}, {"stopped_on_eos", stopped_on_eos},
          {"prefill_seconds", prefill_seconds}, {"decode_seconds", decode_seconds},
          {"save_seconds", save_seconds}, {"constrained_tokens", constrained_tokens}};
}

Result<ModelTurn> LocalProvider::generate(const std::atomic<bool>* cancel, const StreamSink& sink) {
  ++turn_no_;
  auto t0 = Clock::now();
  const auto& tok = engine_->tokenizer();
  engine::StreamDecoder dec(tok);
  engine::OutputParser parser;
  std::vector<engine::ParseEvent> events;
  ModelTurn turn;
  std::string text, thinking;
  std::vector<engine::ToolCall> calls;
  std::vector<std::string> diagnostics;
  auto handle = [&] {
    for (auto& e : events) {
      switch (e.kind) {
        case engine::ParseEvent::Kind::TextDelta:
          text += e.text;
          if (sink.on_text) sink.on_text(e.text);
          break;
        case engine::ParseEvent::Kind::ThinkingDelta:
          thinking += e.text;
          if (sink.on_thinking) sink.on_thinking(e.text);
          break;
        case engine::ParseEvent::Kind::ToolCall:
          calls.push_back({"local_" + std::to_string(turn_no_) + "_" + std::to_string(e.index), e.name,
                           std::move(e.arguments)});
          break;
        case engine::ParseEvent::Kind::ToolCallError:
          turn.call_errors.push_back({e.name, e.raw, e.text});
          break;
        case engine::ParseEvent::Kind::Diagnostic: diagnostics.push_back(e.text); break;
      }
    }
    events.clear();
  };
  size_t sampled = 0;
  std::string finish = "length";
  std::string raw;  // this turn's text so far, for the edit constraint
  constrained_tokens_ = 0;
  const int64_t usable = engine_->usable_vocab();
  while (sampled < o_.max_output_tokens) {
    if (cancel && cancel->load()) return cancelled("during the model turn");
    if (session_->length() >= session_->context()) {
      finish = "context_full";
      break;
    }
    if (edit_constraint_) narrow_mask(raw);
    auto id = session_->decode(sampler_, usable);
    if (!id.ok()) return make_error("local provider: decode failed: " + id.error().message);
    ++sampled;
    if (*id == eos_) {
      finish = "stop";
      break;
    }
    if (std::string d = dec.push(*id); !d.empty()) {
      raw += d;
      parser.feed(d, events);
      handle();
    }
  }
  if (std::string d = dec.flush(); !d.empty()) parser.feed(d, events);
  parser.finish(events);
  handle();
  // A reply cut short (max tokens, full context) can leave a call line, <tool_calls> or <think>
  // open: tell the model, as a malformed call, instead of dropping it silently. On a clean stop an
  // unclosed <tool_calls> is still a format error worth reporting; an unclosed <think> is not a call.
  for (const auto& d : diagnostics) {
    if (finish != "stop")
      turn.call_errors.push_back({"", "", "the reply was cut off (" + finish + " after " + std::to_string(sampled) +
                                              " tokens, max_output_tokens=" + std::to_string(o_.max_output_tokens) +
                                              "): " + d});
    else if (d.find("<tool_calls>") != std::string::npos)
      turn.call_errors.push_back({"", "", d});
  }
  turn.message = ChatMessage::assistant(std::move(text), std::move(thinking), std::move(calls));
  turn.finish_reason = finish;
  turn.usage.output_tokens = sampled;
  turn.usage_estimated = false;
  held_ends_with_eos_ = finish == "stop";
  if (mask_narrowed_) sampler_.set_mask(engine_->token_mask());
  mask_narrowed_ = false;
  stats_.constrained_tokens = constrained_tokens_;
  stats_.sampled_tokens = sampled;
  stats_.stopped_on_eos = held_ends_with_eos_;
  stats_.decode_seconds = since(t0);
  return turn;
}

Result<std::unique_ptr<Provider>> make_local_provider(const ProviderOptions& o) {
  auto p = LocalProvider::open(o);
  if (!p.ok()) return p.error();
  return std::unique_ptr<Provider>(std::move(*p));
}

}  // namespace m1::agent
