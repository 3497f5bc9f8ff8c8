// Pre-tokenization pieces of a tokenizer.json pipeline: a Split pattern (general regex engine plus
// hand-written fast paths for the GPT-2 and cl100k/Llama-3/Qwen split patterns, selected by exact
// pattern text) and the reference library's five Split behaviors. Decision: the fast paths are an
// optimization only; tests check they return exactly what the general engine returns.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "engine/unicode_regex.h"

namespace m1::engine {

// GPT-2's pattern: what a ByteLevel pre-tokenizer with use_regex=true splits with.
inline constexpr std::string_view kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// cl100k-style pattern (also Llama-3's); the project's default tokenizer uses it.
inline constexpr std::string_view kCl100kSplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
Result<SplitBehavior> parse_split_behavior(std::string_view name);

class SplitPattern {
 public:
  // `literal`: the pattern is a plain string (tokenizer.json's {"String": ...}), not a regex.
  static Result<SplitPattern> compile(std::string_view pattern, bool literal = false);
  // Non-empty leftmost-first matches [begin, end) in code point indices.
  std::vector<std::pair<uint32_t, uint32_t>> find_all(std::span<const uint32_t> text) const;
  // Always through the general regex engine (tests compare it with the fast path).
  std::vector<std::pair<uint32_t, uint32_t>> find_all_general(std::span<const uint32_t> text) const;
  bool has_fast_path() const { return fast_ != Fast::None; }
  void disable_fast_path() { fast_ = Fast::None; }

 private:
  enum class Fast { None, Gpt2, Cl100k };
  std::shared_ptr<const UnicodeRegex> regex_;
  Fast fast_ = Fast::None;
  int max_digits_ = 0;  // Cl100k: \p{N}{1,max_digits_}
};

// Splits `piece` (whose code points start at byte offsets `offsets`, offsets.back() ==
// piece.size()) by `matches` under `behavior`/`invert`, appending non-empty sub-pieces to `out`.
void apply_split(std::string_view piece, std::span<const uint32_t> offsets,
                 const std::vector<std::pair<uint32_t, uint32_t>>& matches, SplitBehavior behavior,
                 bool invert, std::vector<std::string_view>& out);

}  // namespace m1::engine
