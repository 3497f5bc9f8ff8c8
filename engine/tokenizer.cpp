// Encode/decode of a loaded Tokenizer. Order of work, as in the reference library: added tokens
// (non-normalized ones, then normalized ones in the gaps), then the pre-tokenizer steps per gap,
// then BPE per piece. BPE uses the reference library's merge order (a heap on (rank, position)
// whose stale entries are checked by the merged id) and a word cache keyed by the piece's bytes.
#include "engine/tokenizer.h"

#include <algorithm>
#include <deque>
#include <queue>

#include "engine/tokenizer_impl.h"
#include "engine/unicode.h"

namespace m1::engine {
namespace {

namespace uc = unicode;

constexpr size_t kMaxCacheEntries = 1 << 18;

struct Segment {
  std::string_view text;  // when id < 0
  int32_t id = -1;
};

bool ws_before(std::string_view s, size_t end, size_t* start) {
  // Steps back over one whitespace code point ending at `end`; sets *start to its first byte.
  if (end == 0) return false;
  size_t b = end - 1;
  while (b > 0 && (uint8_t(s[b]) & 0xC0) == 0x80 && end - b < 4) --b;
  size_t i = b;
  uint32_t cp = uc::decode_utf8(s, i);
  if (i != end || !uc::is_whitespace(cp)) return false;
  *start = b;
  return true;
}

bool word_before(std::string_view s, size_t end) {
  if (end == 0) return false;
  size_t b = end - 1;
  while (b > 0 && (uint8_t(s[b]) & 0xC0) == 0x80 && end - b < 4) --b;
  size_t i = b;
  return uc::is_word(uc::decode_utf8(s, i));
}

bool word_after(std::string_view s, size_t at) {
  if (at >= s.size()) return false;
  return uc::is_word(uc::decode_utf8(s, at));
}

// Splits `text` by the added tokens of `m` (leftmost-longest), appending to `out`. Special tokens
// are still found when !match_special, but then left in the text (as the reference library does).
void split_added(const TokenizerImpl& t, const AddedMatcher& m, std::string_view text,
                 bool match_special, std::vector<Segment>& out) {
  if (m.order.empty()) {
    if (!text.empty()) out.push_back({text});
    return;
  }
  size_t gap_start = 0, pos = 0;
  while (pos < text.size()) {
    if (!m.first_byte[uint8_t(text[pos])]) { ++pos; continue; }
    const AddedToken* hit = nullptr;
    for (size_t idx : m.order) {
      const AddedToken& a = t.added[idx];
      if (text.compare(pos, a.content.size(), a.content) != 0) continue;
      hit = &a;
      break;
    }
    if (!hit) { ++pos; continue; }
    size_t start = pos, stop = pos + hit->content.size();
    if (hit->special && !match_special) { pos = stop; continue; }
    if (hit->single_word && (word_before(text, start) || word_after(text, stop))) { pos = stop; continue; }
    if (hit->lstrip) {
      size_t b;
      while (start > gap_start && ws_before(text, start, &b)) start = std::max(b, gap_start);
    }
    if (hit->rstrip) {
      while (stop < text.size()) {
        size_t i = stop;
        if (!uc::is_whitespace(uc::decode_utf8(text, i))) break;
        stop = i;
      }
    }
    if (start > gap_start) out.push_back({text.substr(gap_start, start - gap_start)});
    out.push_back({{}, hit->id});
    gap_start = pos = stop;
  }
  if (gap_start < text.size()) out.push_back({text.substr(gap_start)});
}

// Runs the pre-tokenizer steps over one gap; pieces point into `text` or into `storage`.
void run_steps(const TokenizerImpl& t, std::string_view text, std::vector<std::string_view>& pieces,
               std::deque<std::string>& storage) {
  pieces.clear();
  pieces.push_back(text);
  std::vector<std::string_view> next;
  std::vector<uint32_t> cps, offs;
  for (const PreTokStep& step : t.steps) {
    next.clear();
    for (std::string_view p : pieces) {
      if (step.kind == PreTokStep::ByteLevel && step.add_prefix_space &&
          (p.empty() || p[0] != ' ')) {
        std::string& s = storage.emplace_back(1, ' ');
        s.append(p);
        p = storage.back();
      }
      if (!step.pattern) { next.push_back(p); continue; }
      uc::decode_utf8(p, cps, offs);
      auto matches = step.pattern->find_all(cps);
      SplitBehavior b = step.kind == PreTokStep::ByteLevel ? SplitBehavior::Isolated : step.behavior;
      apply_split(p, offs, matches, b, step.kind == PreTokStep::Split && step.invert, next);
    }
    pieces.swap(next);
  }
}

// BPE over the bytes of one piece (the reference library's Word::merge_all).
void bpe_word(const TokenizerImpl& t, std::string_view piece, std::vector<int32_t>& out) {
  struct Sym { int32_t id; int32_t prev, next; };
  std::vector<Sym> syms;
  syms.reserve(piece.size());
  for (char ch : piece) {
    int32_t id = t.byte_id[uint8_t(ch)];
    if (id < 0) {
      if (!t.unk_id) continue;  // no such byte token and no unk: dropped, as the reference does
      id = *t.unk_id;
    }
    int32_t n = int32_t(syms.size());
    syms.push_back({id, n - 1, n + 1});
  }
  if (syms.empty()) return;
  syms.back().next = -1;
  struct Cand {
    int32_t rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push_pair = [&](int32_t pos) {
    int32_t nx = syms[size_t(pos)].next;
    if (nx < 0) return;
    auto it = t.merges.find(TokenizerImpl::key(syms[size_t(pos)].id, syms[size_t(nx)].id));
    if (it != t.merges.end()) heap.push({it->second.rank, pos, it->second.id});
  };
  for (int32_t i = 0; i + 1 < int32_t(syms.size()); ++i) push_pair(i);
  std::vector<bool> dead(syms.size(), false);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    if (dead[size_t(c.pos)]) continue;
    int32_t nx = syms[size_t(c.pos)].next;
    if (nx < 0) continue;
    auto it = t.merges.find(TokenizerImpl::key(syms[size_t(c.pos)].id, syms[size_t(nx)].id));
    if (it == t.merges.end() || it->second.id != c.new_id) continue;
    syms[size_t(c.pos)].id = c.new_id;
    dead[size_t(nx)] = true;
    int32_t nn = syms[size_t(nx)].next;
    syms[size_t(c.pos)].next = nn;
    if (nn >= 0) syms[size_t(nn)].prev = c.pos;
    if (syms[size_t(c.pos)].prev >= 0) push_pair(syms[size_t(c.pos)].prev);
    push_pair(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = syms[size_t(i)].next) out.push_back(syms[size_t(i)].id);
}

void encode_piece(const TokenizerImpl& t, std::string_view piece, std::vector<int32_t>& out) {
  if (piece.size() == 1 && t.byte_id[uint8_t(piece[0])] >= 0) {
    out.push_back(t.byte_id[uint8_t(piece[0])]);
    return;
  }
  if (t.ignore_merges) {
    auto it = t.vocab.find(uc::bytes_to_byte_level(piece));
    if (it != t.vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(t.cache_mu);
    auto it = t.cache.find(piece);
    if (it != t.cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  size_t before = out.size();
  bpe_word(t, piece, out);
  std::vector<int32_t> ids(out.begin() + std::ptrdiff_t(before), out.end());
  std::lock_guard<std::mutex> lock(t.cache_mu);
  if (t.cache.size() >= kMaxCacheEntries) t.cache.clear();
  t.cache.emplace(std::string(piece), std::move(ids));
}

}  // namespace

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool match_special) const {
  const TokenizerImpl& t = *impl_;
  std::vector<Segment> raw, segs;
  split_added(t, t.raw_matcher, text, match_special, raw);
  for (const Segment& s : raw) {
    if (s.id >= 0) segs.push_back(s);
    else split_added(t, t.normalized_matcher, s.text, match_special, segs);
  }
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  std::vector<std::string_view> pieces;
  std::deque<std::string> storage;
  for (const Segment& s : segs) {
    if (s.id >= 0) { out.push_back(s.id); continue; }
    run_steps(t, s.text, pieces, storage);
    for (std::string_view p : pieces) encode_piece(t, p, out);
  }
  return out;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string_view> pieces;
  std::deque<std::string> storage;
  run_steps(*impl_, text, pieces, storage);
  return {pieces.begin(), pieces.end()};
}

std::string Tokenizer::token_bytes(int32_t id) const {
  const TokenizerImpl& t = *impl_;
  return id >= 0 && size_t(id) < t.id_bytes.size() ? t.id_bytes[size_t(id)] : std::string();
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special) const {
  const TokenizerImpl& t = *impl_;
  std::string bytes;
  bytes.reserve(ids.size() * 4);
  for (int32_t id : ids) {
    if (id < 0 || size_t(id) >= t.id_bytes.size()) continue;
    if (skip_special && is_special(id)) continue;
    bytes += t.id_bytes[size_t(id)];
  }
  return uc::to_valid_utf8(bytes);
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
  const TokenizerImpl& t = *impl_;
  auto a = t.added_by_content.find(token);
  if (a != t.added_by_content.end()) return t.added[a->second].id;
  auto v = t.vocab.find(token);
  if (v != t.vocab.end()) return v->second;
  return std::nullopt;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  const TokenizerImpl& t = *impl_;
  auto a = t.added_by_id.find(id);
  if (a != t.added_by_id.end()) return t.added[a->second].content;
  if (id >= 0 && size_t(id) < t.vocab_by_id.size()) return t.vocab_by_id[size_t(id)];
  return "";
}

int64_t Tokenizer::vocab_size() const { return impl_->vocab_size; }

bool Tokenizer::is_special(int32_t id) const {
  auto a = impl_->added_by_id.find(id);
  return a != impl_->added_by_id.end() && impl_->added[a->second].special;
}

std::vector<int32_t> Tokenizer::apply_template(std::span<const int32_t> ids) const {
  if (!impl_->has_template) return {ids.begin(), ids.end()};
  std::vector<int32_t> out;
  for (const auto& piece : impl_->template_single) {
    if (piece) out.insert(out.end(), piece->begin(), piece->end());
    else out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

void Tokenizer::disable_fast_paths() {
  for (PreTokStep& s : impl_->steps)
    if (s.pattern) s.pattern->disable_fast_path();
  std::lock_guard<std::mutex> lock(impl_->cache_mu);
  impl_->cache.clear();
}

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool skip_special)
    : tok_(tok), skip_special_(skip_special) {}

std::string StreamDecoder::push(int32_t id) {
  if (skip_special_ && tok_.is_special(id)) return "";
  pending_ += tok_.token_bytes(id);
  size_t n = uc::complete_utf8_prefix(pending_);
  std::string out = uc::to_valid_utf8(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out = uc::to_valid_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace m1::engine
