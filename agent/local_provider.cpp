// agent/local_provider.cpp: the embedded engine as a Provider. One engine Session per agent run:
// the first call renders the whole conversation (M1 chat format, tools block included) and
// prefills it; every later call renders only what was added since (ChatFormat::render_append from
// the reply the model generated, which is already in the session) — earlier turns are never
// re-prefilled. Output is streamed through engine::OutputParser, so <think> text, visible text and
// tool calls arrive incrementally; malformed call lines become per-call errors for the loop.
// The session restarts (full prefill) only when the loop rewrote the conversation (compaction)
// or after a process restart (resume).
#include <chrono>

#include "agent/provider.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/output_parser.h"

namespace m1::agent {

namespace {

class LocalProvider : public Provider {
 public:
  LocalProvider(ProviderOptions o, std::unique_ptr<engine::Engine> e, engine::TemplateVariant v)
      : o_(std::move(o)), engine_(std::move(e)), format_(v) {}
  std::string label() const override { return "local:" + o_.model; }
  size_t count_tokens(const std::string& text) const override {
    return engine_->tokenizer().encode(text, false).size();
  }
  void on_rewrite() override { session_.reset(); }

  Result<ModelTurn> complete(const std::vector<ChatMessage>& conv, const std::vector<engine::ToolDef>& tools,
                             const std::atomic<bool>* cancel, const StreamSink& sink) override {
    std::vector<engine::Segment> segs;
    if (!session_ || fed_ > conv.size() || conv.size() < 1) {
      M1_ASSIGN_OR_RETURN(session_, engine_->new_session());
      segs = format_.render(conv, tools, true);
    } else {
      M1_ASSIGN_OR_RETURN(segs, format_.render_append(conv, fed_, engine::PrefixEnd::GeneratedReply, true));
      // The end-of-sentence token that stopped generation is already in the session.
      if (ended_with_eos_ && !segs.empty() && segs[0].text.rfind("<end_of_sentence>", 0) == 0)
        segs[0].text.erase(0, std::string("<end_of_sentence>").size());
    }
    std::vector<int32_t> ids = engine::encode_conversation(engine_->tokenizer(), segs);
    if (session_->length() + static_cast<int64_t>(ids.size()) + 16 >= session_->context())
      return make_error("the conversation (" + std::to_string(session_->length() + ids.size()) +
                        " tokens) does not fit the model's context of " + std::to_string(session_->context()) +
                        " tokens; lower budgets.context_tokens so compaction happens earlier");
    M1_TRY(session_->append(ids));
    ModelTurn turn;
    turn.usage.input_tokens = ids.size();
    turn.usage_estimated = false;
    engine::GenerateOptions g;
    g.sampling.temperature = static_cast<float>(o_.temperature);
    g.sampling.seed = o_.seed;
    g.max_tokens = static_cast<int64_t>(o_.max_output_tokens);
    if (auto eos = engine_->tokenizer().token_id("<end_of_sentence>")) g.stop_ids.push_back(*eos);
    g.allowed = engine_->token_mask();
    engine::OutputParser parser;
    engine::ParsedOutput parsed;
    auto handle = [&](const std::vector<engine::ParseEvent>& evs) {
      for (const auto& e : evs) {
        if (e.kind == engine::ParseEvent::Kind::TextDelta && sink.on_text) sink.on_text(e.text);
        if (e.kind == engine::ParseEvent::Kind::ThinkingDelta && sink.on_thinking) sink.on_thinking(e.text);
        parsed.add(e);
      }
    };
    auto res = engine::generate(*session_, engine_->tokenizer(), g, [&](std::string_view delta) {
      handle(parser.feed(delta));
      return !(cancel && cancel->load());
    });
    if (!res.ok()) return res.error();
    handle(parser.finish());
    if (cancel && cancel->load()) {
      session_.reset();  // a half turn is in the state: start clean next time
      return make_error("cancelled during the model turn");
    }
    ended_with_eos_ = res->reason == engine::StopReason::StopToken;
    fed_ = conv.size();  // the reply becomes conv[fed_] once the loop appends it
    turn.usage.output_tokens = res->tokens.size();
    std::vector<engine::ToolCall> calls;
    for (const auto& c : parsed.calls)
      calls.push_back({"call_" + std::to_string(++call_counter_), c.name, c.arguments});
    for (const auto& e : parsed.errors) turn.call_errors.push_back({e.name, e.raw, e.text});
    turn.message = ChatMessage::assistant(parsed.text, parsed.thinking, calls);
    turn.finish_reason = engine::stop_reason_name(res->reason);
    return turn;
  }

 private:
  ProviderOptions o_;
  std::unique_ptr<engine::Engine> engine_;
  engine::ChatFormat format_;
  std::unique_ptr<engine::Session> session_;
  size_t fed_ = 0;
  bool ended_with_eos_ = false;
  int call_counter_ = 0;
};

}  // namespace

Result<std::unique_ptr<Provider>> make_local_provider(const ProviderOptions& o) {
  if (o.model.empty())
    return make_error("the local provider needs a model folder: --model DIR (or config 'model' / M1_MODEL)", 2);
  auto variant = engine::parse_template_variant(o.chat_template);
  if (!variant) return make_error("chat_template must be 'pinned' or 'vllm', got '" + o.chat_template + "'", 2);
  auto eng = engine::Engine::open(o.model);
  if (!eng.ok()) return make_error("cannot open model folder '" + o.model + "': " + eng.error().message, eng.error().code);
  return std::unique_ptr<Provider>(new LocalProvider(o, std::move(eng).value(), *variant));
}

}  // namespace m1::agent
