// agent/provider.h: one interface over the three model sources (local engine, OpenAI-compatible
// HTTP, scripted replay). The loop never knows which one it drives.
#pragma once
#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "agent/types.h"
#include "common/result.h"

namespace m1::agent {

struct StreamSink {
  std::function<void(std::string_view)> on_text;      // visible text as it streams
  std::function<void(std::string_view)> on_thinking;  // <think> / reasoning text
};

class Provider {
 public:
  virtual ~Provider() = default;
  // Short label for user-facing output: "local:DIR", "openai:MODEL", "script:FILE".
  virtual std::string label() const = 0;
  // Whether output comes from a real model (false for the scripted replay).
  virtual bool is_model() const { return true; }
  // One assistant turn for `conversation` (which ends with a user or tool message).
  // Cancelled (cancel turned true) -> an Error whose message starts with "cancelled".
  virtual Result<ModelTurn> complete(const std::vector<ChatMessage>& conversation,
                                     const std::vector<engine::ToolDef>& tools,
                                     const std::atomic<bool>* cancel, const StreamSink& sink) = 0;
  // Token count of a text (an estimate when the provider has no tokenizer).
  virtual size_t count_tokens(const std::string& text) const { return (text.size() + 3) / 4; }
  // The conversation was rewritten (compaction) or is being resumed after `turns_done` turns.
  virtual void on_rewrite() {}
  virtual void on_resume(int turns_done) { (void)turns_done; }
  // A file the provider may own to carry its state from one process of this task to the next
  // (`m1 resume`); sidecars go beside it as PATH.*. Given before on_resume; empty: keep nothing.
  // Providers without such state ignore it.
  virtual void set_state_path(const std::filesystem::path& path) { (void)path; }
  // The task ended for good (submitted, or its worktree removed): delete what set_state_path's
  // file and sidecars hold.
  virtual void discard_state() {}
};

struct ProviderOptions {
  std::string kind;        // local | openai | scripted
  std::string model;       // local: model folder; openai: model name
  std::string base_url;    // openai
  std::string api_key;     // openai
  std::string script;      // scripted: JSON/JSONL file of turns
  double request_timeout_s = 300;
  int retries = 2;         // openai: transport failures retried this often
  std::string chat_template = "pinned";
  double temperature = 0;
  uint64_t seed = 0;
  size_t max_output_tokens = 2048;
};

Result<std::unique_ptr<Provider>> make_provider(const ProviderOptions& o);
Result<std::unique_ptr<Provider>> make_scripted_provider(const std::string& path);
Result<std::unique_ptr<Provider>> make_openai_provider(const ProviderOptions& o);
Result<std::unique_ptr<Provider>> make_local_provider(const ProviderOptions& o);

// Parses the OpenAI-style arguments string of a call; errors name the call.
Result<nlohmann::json> parse_call_arguments(const std::string& name, const std::string& text);

}  // namespace m1::agent
