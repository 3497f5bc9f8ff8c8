// `m1 generate`: open a model folder, prefill a prompt (--prompt text, or --chat a conversation
// rendered with the M1 chat format) and stream the sampled continuation.
// Decisions: with --chat the output goes through the incremental OutputParser, so thinking, text
// and tool calls print as they complete; --json prints one JSON object at the end and nothing while
// generating. Generation stops at the model's end-of-sentence id(s) besides --max-tokens/--stop.
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <iostream>

#include "cli/command.h"
#include "engine/chat_format.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/output_parser.h"

namespace m1::cli {
namespace {

struct GenerateArgs {
  std::string model, prompt, chat, device = "cpu";
  int64_t max_tokens = 256, top_k = 0, context = 0;
  float temperature = 1.0f, top_p = 0.95f, min_p = 0.f, repetition_penalty = 1.f;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  bool json = false;
};

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

Result<std::vector<int32_t>> chat_prompt(const engine::Tokenizer& tok, const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error("--chat: cannot open '" + path + "'", 2);
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) return make_error("--chat: '" + path + "' is not valid JSON", 2);
  nlohmann::json msgs = j, tools = nlohmann::json::array();
  if (j.is_object()) {
    if (!j.contains("messages")) return make_error("--chat: '" + path + "' has no \"messages\" array", 2);
    msgs = j["messages"];
    if (j.contains("tools")) tools = j["tools"];
  }
  auto m = engine::chat_messages_from_json(msgs);
  if (!m.ok()) return make_error("--chat: " + path + ": " + m.error().message, 2);
  auto t = engine::tool_defs_from_json(tools);
  if (!t.ok()) return make_error("--chat: " + path + ": " + t.error().message, 2);
  engine::ChatFormat fmt;
  return engine::encode_conversation(tok, fmt.render(m.value(), t.value(), true));
}

Status run_generate(const GenerateArgs& a) {
  engine::EngineOptions eo;
  eo.device = a.device;
  eo.context = a.context;
  M1_ASSIGN_OR_RETURN(auto eng, engine::Engine::open(a.model, eo));
  const engine::Tokenizer& tok = eng->tokenizer();
  std::vector<int32_t> ids;
  if (!a.chat.empty()) {
    M1_ASSIGN_OR_RETURN(ids, chat_prompt(tok, a.chat));
  } else {
    ids = tok.encode(a.prompt);
  }
  if (ids.empty()) return make_error("empty prompt: it encodes to no tokens (expected some text)", 2);
  engine::GenerateOptions go;
  go.sampling = {a.temperature, a.top_k, a.top_p, a.min_p, a.repetition_penalty, a.seed};
  M1_TRY(go.sampling.validate());
  go.max_tokens = a.max_tokens;
  go.stop_strings = a.stop;
  go.usable_vocab = eng->usable_vocab();
  go.allowed = eng->token_mask();
  for (int64_t e : eng->config().eos_token_ids) go.stop_ids.push_back(int32_t(e));
  if (eng->config().eos_token_id >= 0) go.stop_ids.push_back(int32_t(eng->config().eos_token_id));
  if (auto eos = tok.token_id("<end_of_sentence>")) go.stop_ids.push_back(*eos);

  M1_ASSIGN_OR_RETURN(auto session, eng->new_session());
  const auto t0 = Clock::now();
  M1_TRY(session->append(ids));
  const double prefill_ms = ms_since(t0);

  const bool chat = !a.chat.empty();
  engine::OutputParser parser;
  engine::ParsedOutput parsed;
  engine::ParseEvent::Kind last = engine::ParseEvent::Kind::Diagnostic;
  auto show = [&](const std::vector<engine::ParseEvent>& evs) {
    for (const auto& e : evs) {
      parsed.add(e);
      if (a.json) continue;
      using K = engine::ParseEvent::Kind;
      if (e.kind == K::ThinkingDelta) {
        if (last != K::ThinkingDelta) std::cout << "[thinking] ";
        std::cout << e.text;
      } else if (e.kind == K::TextDelta) {
        if (last == K::ThinkingDelta) std::cout << "\n[text] ";
        std::cout << e.text;
      } else if (e.kind == K::ToolCall) {
        std::cout << "\n[tool call] " << e.name << " " << e.arguments.dump();
      } else if (e.kind == K::ToolCallError) {
        std::cout << "\n[tool call error] " << e.text;
      }
      last = e.kind;
      std::cout.flush();
    }
  };
  auto on_text = [&](std::string_view d) {
    if (chat) {
      show(parser.feed(d));
    } else if (!a.json) {
      std::cout << d;
      std::cout.flush();
    }
    return true;
  };
  M1_ASSIGN_OR_RETURN(engine::GenerateResult r, engine::generate(*session, tok, go, on_text));
  if (chat) show(parser.finish());
  const double decode_ms = r.decode_seconds * 1e3;
  if (a.json) {
    nlohmann::json j = {{"prompt_tokens", ids.size()},
                        {"generated_tokens", r.tokens.size()},
                        {"tokens", r.tokens},
                        {"text", r.text},
                        {"stop_reason", engine::stop_reason_name(r.reason)},
                        {"prefill_ms", prefill_ms},
                        {"decode_ms", decode_ms},
                        {"decode_tokens_per_s", r.tokens.empty() ? 0.0 : r.tokens.size() / r.decode_seconds}};
    if (chat) {
      j["thinking"] = parsed.thinking;
      j["answer"] = parsed.text;
      j["tool_calls"] = nlohmann::json::array();
      for (const auto& c : parsed.calls) j["tool_calls"].push_back({{"name", c.name}, {"arguments", c.arguments}});
      j["tool_call_errors"] = nlohmann::json::array();
      for (const auto& c : parsed.errors) j["tool_call_errors"].push_back({{"raw", c.raw}, {"error", c.text}});
    }
    std::cout << j.dump() << "\n";
  } else {
    std::cout << "\n";
    std::cerr << "[" << ids.size() << " prompt tokens in " << int(prefill_ms) << " ms, " << r.tokens.size()
              << " tokens in " << int(decode_ms) << " ms, stop: " << engine::stop_reason_name(r.reason) << "]\n";
  }
  return {};
}

M1_REGISTER_COMMAND([](CLI::App& root) {
  auto a = std::make_shared<GenerateArgs>();
  auto* sub = root.add_subcommand("generate", "Generate text from a model folder (streams tokens)");
  sub->add_option("--model", a->model, "Model folder (config.json, safetensors, tokenizer.json)")->required();
  auto* prompt = sub->add_option("--prompt", a->prompt, "Prompt text");
  auto* chat = sub->add_option("--chat", a->chat, "Conversation JSON: [messages] or {messages, tools}");
  prompt->excludes(chat);
  chat->excludes(prompt);
  sub->add_option("--max-tokens", a->max_tokens, "Most tokens to generate")->check(CLI::Range(int64_t(1), int64_t(1) << 40));
  sub->add_option("--temperature", a->temperature, "0 = greedy (default 1.0)");
  sub->add_option("--top-p", a->top_p, "Nucleus mass (default 0.95)");
  sub->add_option("--top-k", a->top_k, "Keep the k most likely (0 = off)");
  sub->add_option("--min-p", a->min_p, "Keep p >= min-p * p_max (0 = off)");
  sub->add_option("--repetition-penalty", a->repetition_penalty, "1 = off");
  sub->add_option("--seed", a->seed, "Random seed (same seed, same tokens)");
  sub->add_option("--stop", a->stop, "Stop string (repeatable)");
  sub->add_option("--context", a->context, "Context limit in tokens (default: the model's)");
  sub->add_option("--device", a->device, "cpu (default), cuda, cuda:N");
  sub->add_flag("--json", a->json, "Print one JSON object at the end instead of streaming");
  sub->callback([a, prompt, chat] {
    if (prompt->count() == 0 && chat->count() == 0) {
      fail(make_error("generate: one of --prompt or --chat is required", 2));
      return;
    }
    auto st = run_generate(*a);
    if (!st.ok()) fail(st.error());
  });
});

}  // namespace
}  // namespace m1::cli
