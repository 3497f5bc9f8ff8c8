// generate(): the decode loop over a Session — sample, append, stream text deltas, stop.
// Decision: text is streamed through the tokenizer's StreamDecoder (never half a UTF-8 character)
// and held back while its tail could still be the start of a stop string, so a stop string never
// reaches the callback, and the callback's deltas concatenate to GenerateResult::text.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/tokenizer.h"

namespace m1::engine {

struct GenerateOptions {
  SamplingParams sampling;
  int64_t max_tokens = 256;
  std::vector<int32_t> stop_ids;        // generation ends after sampling one (not included in text)
  std::vector<std::string> stop_strings;  // generation ends when the text contains one (cut before it)
  int64_t usable_vocab = 0;             // ids >= this are never sampled; 0: the model's usable vocab
  std::vector<uint8_t> allowed;         // optional per-id mask (Engine::token_mask()); empty: all
};

enum class StopReason { MaxTokens, StopToken, StopString, ContextFull, Callback };
const char* stop_reason_name(StopReason r);

struct GenerateResult {
  std::vector<int32_t> tokens;  // sampled ids (a stop id included)
  std::string text;             // streamed text (stop string and stop ids excluded)
  StopReason reason = StopReason::MaxTokens;
  double decode_seconds = 0;
};

// Called with each text delta; return false to stop.
using StreamCallback = std::function<bool(std::string_view delta)>;

// Requires a session holding at least one token (its logits pick the first new token).
Result<GenerateResult> generate(Session& session, const Tokenizer& tok, const GenerateOptions& opt,
                                const StreamCallback& on_text = {});

}  // namespace m1::engine
