// Byte-level BPE trainer: learns merges from a text corpus, pre-tokenized with the same split
// pattern the resulting tokenizer will use. Base tokens are the 256 bytes (id = byte value);
// merge k creates the next new id. Decision: ties between equally frequent pairs go to the pair
// with the smaller (left id, right id), so training is deterministic across runs and platforms.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace m1::engine {

struct BpeTrainerOptions {
  int vocab_size = 4096;       // 256 byte tokens + learned merges
  int min_frequency = 2;       // stop when the best pair is rarer than this
  std::string split_pattern;   // empty: the cl100k-style pattern (kCl100kSplitPattern)
};

struct TrainedBpe {
  std::vector<std::string> vocab;  // byte-level token text; id = index
  std::vector<std::pair<std::string, std::string>> merges;  // byte-level texts, by rank
  std::string split_pattern;
};

Result<TrainedBpe> train_bpe(std::span<const std::string> texts, const BpeTrainerOptions& opts);

// A special/added token to put into a tokenizer.json.
struct AddedTokenSpec {
  int32_t id;
  std::string content;
  bool special = true;
};

// MiniMax-M1's added tokens at ids 200000..200025 (all special), as the default tokenizer has them.
std::vector<AddedTokenSpec> m1_added_tokens();

// tokenizer.json text (Split + ByteLevel pre-tokenizer, BPE model, ByteLevel decoder).
std::string bpe_tokenizer_json(const TrainedBpe& bpe, std::span<const AddedTokenSpec> added);
// Rebuilds a TrainedBpe from merges alone ("a b" per line, byte-level texts): the vocab is the
// 256 byte tokens then each merge's result in order (an existing text keeps its first id).
Result<TrainedBpe> bpe_from_merges(std::string_view merges_lines, const std::string& split_pattern);

}  // namespace m1::engine
