// Internal state of a loaded Tokenizer, shared by tokenizer_load.cpp (building it from JSON) and
// tokenizer.cpp (encode/decode). Not a public header: callers use engine/tokenizer.h.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer_pretokenize.h"

namespace m1::engine {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

struct PreTokStep {
  enum Kind { Split, ByteLevel } kind = Split;
  std::shared_ptr<SplitPattern> pattern;  // Split, or ByteLevel with use_regex (GPT-2 pattern)
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
};

struct MergeInfo {
  int32_t rank;
  int32_t id;  // id of the merged token
};

// Added tokens that one matching pass may match, longest first, with a first-byte filter.
struct AddedMatcher {
  std::vector<size_t> order;  // indices into TokenizerImpl::added
  bool first_byte[256] = {};
};

struct TokenizerImpl {
  std::string source;
  StringMap<int32_t> vocab;               // byte-level token text -> id
  std::vector<std::string> vocab_by_id;   // id -> byte-level token text ("" if none)
  std::vector<std::string> id_bytes;      // id -> raw bytes decode() emits (added tokens: content)
  int32_t byte_id[256];                   // id of each single-byte token, -1 if absent
  std::unordered_map<uint64_t, MergeInfo> merges;  // (left id << 32 | right id)
  bool ignore_merges = false;
  std::optional<int32_t> unk_id;
  std::vector<AddedToken> added;
  StringMap<size_t> added_by_content;
  std::unordered_map<int32_t, size_t> added_by_id;
  AddedMatcher raw_matcher, normalized_matcher;  // normalized=false / normalized=true tokens
  std::vector<PreTokStep> steps;
  bool has_template = false;
  std::vector<std::optional<std::vector<int32_t>>> template_single;  // nullopt = the sequence
  int64_t vocab_size = 0;

  mutable std::mutex cache_mu;
  mutable StringMap<std::vector<int32_t>> cache;  // raw piece bytes -> ids

  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  // Fills byte_id, added maps/matchers and vocab_size after vocab/merges/added are set.
  void finish();
};

}  // namespace m1::engine
