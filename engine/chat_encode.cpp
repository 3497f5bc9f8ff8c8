// encode_conversation(): rendered chat segments -> token ids.
// Decision: special tokens are looked for only in trusted (template) segments, and only as
// "<...>" spans the tokenizer marks special (all of M1's are). The plain text between two special
// tokens is encoded as ONE piece with special matching off, whatever mix of trusted and untrusted
// segments it spans, so benign conversations get the ids the reference tokenizer gives the joined
// prompt, and segment boundaries never change the pre-tokenizer's splits.
#include "engine/chat_format.h"
#include "engine/tokenizer.h"

namespace m1::engine {

std::vector<int32_t> encode_conversation(const Tokenizer& tok, const std::vector<Segment>& segs) {
  std::vector<int32_t> ids;
  std::string pending;
  auto flush = [&] {
    if (pending.empty()) return;
    auto piece = tok.encode(pending, /*match_special=*/false);
    ids.insert(ids.end(), piece.begin(), piece.end());
    pending.clear();
  };
  for (const auto& seg : segs) {
    if (!seg.trusted) {
      pending += seg.text;
      continue;
    }
    const std::string& t = seg.text;
    std::size_t done = 0;  // bytes of t already moved to pending/ids
    std::size_t p = t.find('<');
    while (p != std::string::npos) {
      std::size_t q = t.find('>', p + 1);
      if (q == std::string::npos) break;
      auto id = tok.token_id(std::string_view(t).substr(p, q - p + 1));
      if (id && tok.is_special(*id)) {
        pending.append(t, done, p - done);
        flush();
        ids.push_back(*id);
        done = q + 1;
        p = t.find('<', done);
      } else {
        p = t.find('<', p + 1);
      }
    }
    pending.append(t, done, std::string::npos);
  }
  flush();
  return ids;
}

}  // namespace m1::engine
