// agent/edit_constraint.h: keeps a str_replace call's old_str, while the local model writes it, inside
// text the conversation has shown from the files (view output, str_replace's edited lines and its
// closest-lines hints), by masking the tokens that would leave it.
//
// Why: str_replace needs old_str to be an exact copy of the file. A small model often knows the
// right fix but writes the old line as it remembers it (measured on the default model: 20 of 40
// held-out tasks had the right new_str and a miscopied old_str). The constraint only removes
// continuations that cannot match; among those that can, the model's own probabilities choose, and
// nothing is applied that the model did not write. Off with M1_CONSTRAIN_EDITS=0.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/chat_format.h"

namespace m1::agent {

class EditConstraint {
 public:
  // pieces[id]: the text token id decodes to (empty for special tokens, which are never allowed
  // inside the string).
  explicit EditConstraint(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {}

  // The file text the conversation shows: the numbered lines of tool results ("   12\tcode"), each
  // run of consecutive numbered lines one block. Blocks are joined with '\0' (never in old_str).
  void set_conversation(const std::vector<engine::ChatMessage>& conversation);
  const std::string& corpus() const { return corpus_; }

  // turn_text: what the model has written so far this turn. Empty when not inside the old_str of a
  // str_replace call (or nothing can be constrained); else allowed[id] = 1 for the tokens that keep
  // old_str a substring of the corpus (a token may also close the string after a non-empty match).
  std::vector<uint8_t> allowed(std::string_view turn_text) const;

  // The JSON string content of the old_str being written, when turn_text is inside one.
  static bool open_old_str(std::string_view turn_text, std::string* escaped);

 private:
  // [begin, end) in the corpus of the definition of the last backticked name in the turn's prose
  // that the corpus defines (`def name(`); {0, 0} when none.
  std::pair<size_t, size_t> named_function_span(std::string_view turn_text) const;

  std::vector<std::string> pieces_;
  std::string corpus_;
};

}  // namespace m1::agent
