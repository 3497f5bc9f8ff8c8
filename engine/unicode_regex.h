// A small backtracking regex engine over Unicode code points, for the split patterns that
// tokenizer.json pre-tokenizers use (std::regex has no \p{L}). Supported: alternation, groups
// ((...), (?:...), (?i:...), (?i)), classes with ranges, negation, \p{..}/\P{..}, \s \d \w and
// their negations, quantifiers ? * + {n} {n,} {n,m} (greedy and lazy), lookahead (?=...) (?!...),
// anchors ^ $ \A \z \b \B, and the usual escapes. Anything else is rejected at compile time with
// an error naming the construct. Decision: leftmost-first backtracking (Perl/Oniguruma semantics,
// which the reference library uses), compiled to a tiny instruction list run with an explicit
// stack; a repetition of a sub-pattern that can match empty is rejected rather than guarded.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace m1::engine {

class UnicodeRegex {
 public:
  static Result<UnicodeRegex> compile(std::string_view pattern);
  UnicodeRegex(UnicodeRegex&&) noexcept;
  UnicodeRegex& operator=(UnicodeRegex&&) noexcept;
  ~UnicodeRegex();

  // Length in code points of the match starting exactly at `pos`, or -1 if none.
  int64_t match_at(std::span<const uint32_t> text, size_t pos) const;
  // All non-overlapping, non-empty leftmost-first matches as [begin, end) code point indices.
  std::vector<std::pair<uint32_t, uint32_t>> find_all(std::span<const uint32_t> text) const;
  const std::string& pattern() const;

  struct Program;

 private:
  explicit UnicodeRegex(std::unique_ptr<Program> p);
  std::unique_ptr<Program> prog_;
};

}  // namespace m1::engine
