// SplitPattern fast paths and the Split behaviors. The fast paths restate the alternations of the
// GPT-2 and cl100k patterns as straight-line scans (each alternative in pattern order, with the
// backtracking outcomes worked out by hand in the comments), over a per-code-point class byte.
#include "engine/tokenizer_pretokenize.h"

#include <algorithm>
#include <array>

#include "engine/unicode.h"

namespace m1::engine {
namespace {

namespace uc = unicode;

enum : uint8_t { kL = 1, kN = 2, kWS = 4, kCRLF = 8 };

struct AsciiClasses {
  std::array<uint8_t, 128> f{};
  AsciiClasses() {
    for (uint32_t c = 0; c < 128; ++c) {
      uint8_t v = 0;
      if (uc::in(c, uc::kLetter)) v |= kL;
      if (uc::in(c, uc::kNumber)) v |= kN;
      if (uc::is_whitespace(c)) v |= kWS;
      if (c == '\r' || c == '\n') v |= kCRLF;
      f[c] = v;
    }
  }
};

inline uint8_t cls(uint32_t c) {
  static const AsciiClasses t;
  if (c < 128) return t.f[c];
  uint8_t v = 0;
  auto cat = uc::category(c);
  if ((uc::kLetter >> cat) & 1u) v |= kL;
  else if ((uc::kNumber >> cat) & 1u) v |= kN;
  if (uc::is_whitespace(c)) v |= kWS;
  return v;
}
inline bool is_l(uint32_t c) { return cls(c) & kL; }
inline bool is_n(uint32_t c) { return cls(c) & kN; }
inline bool is_ws(uint32_t c) { return cls(c) & kWS; }
inline bool is_other(uint32_t c) { return (cls(c) & (kL | kN | kWS)) == 0; }  // [^\s\p{L}\p{N}]
inline bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }

// Case fold for the contraction letters: ASCII lower case, plus U+017F -> s and U+212A -> k.
inline uint32_t fold(uint32_t c) {
  if (c >= 'A' && c <= 'Z') return c + 32;
  if (c == 0x17F) return 's';
  if (c == 0x212A) return 'k';
  return c;
}

// 's|'t|'re|'ve|'m|'ll|'d at i (t[i] == '\''); returns the end or 0.
size_t contraction(std::span<const uint32_t> t, size_t i, bool icase) {
  size_t n = t.size();
  if (i + 1 >= n) return 0;
  uint32_t a = icase ? fold(t[i + 1]) : t[i + 1];
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  if (i + 2 >= n) return 0;
  uint32_t b = icase ? fold(t[i + 2]) : t[i + 2];
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  return 0;
}

// Whitespace tail shared by both patterns: [\s*[\r\n]+ |] \s+(?!\S) | \s+, with t[i] whitespace.
size_t whitespace_run(std::span<const uint32_t> t, size_t i, bool crlf_alt) {
  size_t n = t.size(), k = i;
  while (k < n && is_ws(t[k])) ++k;
  if (crlf_alt) {
    // \s*[\r\n]+: \s* backs off until [\r\n]+ can start; that is the run's last CR/LF.
    for (size_t p = k; p > i; --p)
      if (is_crlf(t[p - 1])) return p;
  }
  if (k == n) return k;      // \s+(?!\S) at the end of the text
  if (k - 1 > i) return k - 1;  // \s+ backs off one so the lookahead sees whitespace
  return k;                  // \s+
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
size_t gpt2_at(std::span<const uint32_t> t, size_t i) {
  size_t n = t.size();
  uint32_t c = t[i];
  if (c == '\'') {
    if (size_t e = contraction(t, i, false)) return e;
  }
  size_t s = (c == ' ' && i + 1 < n) ? i + 1 : i;
  if (is_l(t[s])) { size_t j = s + 1; while (j < n && is_l(t[j])) ++j; return j; }
  if (is_n(t[s])) { size_t j = s + 1; while (j < n && is_n(t[j])) ++j; return j; }
  if (is_other(t[s])) { size_t j = s + 1; while (j < n && is_other(t[j])) ++j; return j; }
  return whitespace_run(t, i, false);
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|
// \s*[\r\n]+|\s+(?!\S)|\s+
size_t cl100k_at(std::span<const uint32_t> t, size_t i, int max_digits) {
  size_t n = t.size();
  uint32_t c = t[i];
  if (c == '\'') {
    if (size_t e = contraction(t, i, true)) return e;
  }
  uint8_t f = cls(c);
  if (!(f & (kL | kN)) && !is_crlf(c) && i + 1 < n && is_l(t[i + 1])) {
    size_t j = i + 2;
    while (j < n && is_l(t[j])) ++j;
    return j;
  }
  if (f & kL) { size_t j = i + 1; while (j < n && is_l(t[j])) ++j; return j; }
  if (f & kN) {
    size_t j = i + 1;
    while (j < n && j - i < size_t(max_digits) && is_n(t[j])) ++j;
    return j;
  }
  size_t s = (c == ' ' && i + 1 < n && is_other(t[i + 1])) ? i + 1 : i;
  if (is_other(t[s])) {
    size_t j = s + 1;
    while (j < n && is_other(t[j])) ++j;
    while (j < n && is_crlf(t[j])) ++j;
    return j;
  }
  return whitespace_run(t, i, true);
}

std::string regex_escape(std::string_view lit) {
  std::string out;
  for (char ch : lit) {
    bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
    if (!alnum && uint8_t(ch) < 0x80) out.push_back('\\');
    out.push_back(ch);
  }
  return out;
}

}  // namespace

Result<SplitBehavior> parse_split_behavior(std::string_view name) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  return make_error("unknown Split behavior '" + std::string(name) +
                    "' (expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous)");
}

Result<SplitPattern> SplitPattern::compile(std::string_view pattern, bool literal) {
  std::string re = literal ? regex_escape(pattern) : std::string(pattern);
  M1_ASSIGN_OR_RETURN(UnicodeRegex rx, UnicodeRegex::compile(re));
  SplitPattern p;
  p.regex_ = std::make_shared<const UnicodeRegex>(std::move(rx));
  if (!literal) {
    static const std::string kQwen = [] {
      std::string s(kCl100kSplitPattern);
      s.replace(s.find(R"(\p{N}{1,3})"), 10, R"(\p{N})");
      return s;
    }();
    if (pattern == kGpt2SplitPattern) {
      p.fast_ = Fast::Gpt2;
    } else if (pattern == kCl100kSplitPattern) {
      p.fast_ = Fast::Cl100k;
      p.max_digits_ = 3;
    } else if (pattern == kQwen) {
      p.fast_ = Fast::Cl100k;
      p.max_digits_ = 1;
    }
  }
  return p;
}

std::vector<std::pair<uint32_t, uint32_t>> SplitPattern::find_all(
    std::span<const uint32_t> t) const {
  if (fast_ == Fast::None) return regex_->find_all(t);
  std::vector<std::pair<uint32_t, uint32_t>> out;
  size_t i = 0;
  while (i < t.size()) {
    size_t e = fast_ == Fast::Gpt2 ? gpt2_at(t, i) : cl100k_at(t, i, max_digits_);
    out.emplace_back(uint32_t(i), uint32_t(e));
    i = e;
  }
  return out;
}

std::vector<std::pair<uint32_t, uint32_t>> SplitPattern::find_all_general(
    std::span<const uint32_t> t) const {
  return regex_->find_all(t);
}

void apply_split(std::string_view piece, std::span<const uint32_t> off,
                 const std::vector<std::pair<uint32_t, uint32_t>>& matches,
                 SplitBehavior behavior, bool invert, std::vector<std::string_view>& out) {
  // Segments covering the piece, each flagged "delimiter" (a match, or a gap when inverted).
  struct Seg { uint32_t b, e; bool delim; };
  std::vector<Seg> segs;
  uint32_t prev = 0;
  for (auto [b, e] : matches) {
    if (b > prev) segs.push_back({prev, b, invert});
    segs.push_back({b, e, !invert});
    prev = e;
  }
  uint32_t n = uint32_t(off.size() - 1);
  if (prev < n) segs.push_back({prev, n, invert});

  std::vector<std::pair<uint32_t, uint32_t>> parts;
  switch (behavior) {
    case SplitBehavior::Removed:
      for (const auto& s : segs) if (!s.delim) parts.emplace_back(s.b, s.e);
      break;
    case SplitBehavior::Isolated:
      for (const auto& s : segs) parts.emplace_back(s.b, s.e);
      break;
    case SplitBehavior::MergedWithPrevious: {
      bool prev_delim = false;
      for (const auto& s : segs) {
        if (s.delim && !prev_delim && !parts.empty()) parts.back().second = s.e;
        else parts.emplace_back(s.b, s.e);
        prev_delim = s.delim;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool prev_delim = false;
      for (size_t k = segs.size(); k-- > 0;) {
        const auto& s = segs[k];
        if (s.delim && !prev_delim && !parts.empty()) parts.back().first = s.b;
        else parts.emplace_back(s.b, s.e);
        prev_delim = s.delim;
      }
      std::reverse(parts.begin(), parts.end());
      break;
    }
    case SplitBehavior::Contiguous: {
      bool prev_delim = false;
      for (const auto& s : segs) {
        if (s.delim == prev_delim && !parts.empty()) parts.back().second = s.e;
        else parts.emplace_back(s.b, s.e);
        prev_delim = s.delim;
      }
      break;
    }
  }
  for (auto [b, e] : parts)
    if (e > b) out.push_back(piece.substr(off[b], off[e] - off[b]));
}

}  // namespace m1::engine
