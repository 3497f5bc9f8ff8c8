// The decode loop (see generate.h).
#include "engine/generate.h"

#include <algorithm>
#include <chrono>

namespace m1::engine {

const char* stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::MaxTokens: return "max_tokens";
    case StopReason::StopToken: return "stop_token";
    case StopReason::StopString: return "stop_string";
    case StopReason::ContextFull: return "context_full";
    case StopReason::Callback: return "callback";
  }
  return "?";
}

namespace {

// Length of the longest suffix of s that is a proper prefix of some stop string.
size_t held_suffix(const std::string& s, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const auto& st : stops)
    for (size_t n = std::min(st.size() - 1, s.size()); n > best; --n)
      if (s.compare(s.size() - n, n, st, 0, n) == 0) {
        best = n;
        break;
      }
  return best;
}

}  // namespace

Result<GenerateResult> generate(Session& session, const Tokenizer& tok, const GenerateOptions& opt,
                                const StreamCallback& on_text) {
  M1_TRY(opt.sampling.validate());
  if (session.length() == 0) return make_error("generate: the session is empty; append a prompt first", 2);
  for (const auto& s : opt.stop_strings)
    if (s.empty()) return make_error("stop strings must not be empty", 2);
  Sampler sampler(opt.sampling);
  sampler.set_mask(opt.allowed);
  const int64_t usable = opt.usable_vocab > 0 ? opt.usable_vocab : session.model().usable_vocab();
  GenerateResult res;
  StreamDecoder dec(tok);
  std::string pending;  // decoded text not yet given to the callback
  auto emit = [&](size_t n) -> bool {
    if (n == 0) return true;
    std::string d = pending.substr(0, n);
    pending.erase(0, n);
    res.text += d;
    return !on_text || on_text(d);
  };
  const auto t0 = std::chrono::steady_clock::now();
  bool stopped = false;
  for (int64_t i = 0; i < opt.max_tokens && !stopped; ++i) {
    if (session.length() >= session.context()) {
      res.reason = StopReason::ContextFull;
      stopped = true;
      break;
    }
    M1_ASSIGN_OR_RETURN(int32_t id, session.decode(sampler, usable));
    res.tokens.push_back(id);
    if (std::find(opt.stop_ids.begin(), opt.stop_ids.end(), id) != opt.stop_ids.end()) {
      res.reason = StopReason::StopToken;
      stopped = true;
      break;
    }
    pending += dec.push(id);
    size_t cut = std::string::npos;
    for (const auto& s : opt.stop_strings) cut = std::min(cut, pending.find(s));
    if (cut != std::string::npos) {
      pending.resize(cut);
      emit(pending.size());
      res.reason = StopReason::StopString;
      stopped = true;
      break;
    }
    if (!emit(pending.size() - held_suffix(pending, opt.stop_strings))) {
      res.reason = StopReason::Callback;
      stopped = true;
    }
  }
  if (res.reason != StopReason::StopString) {
    pending += dec.flush();
    emit(pending.size());
  }
  res.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace m1::engine
