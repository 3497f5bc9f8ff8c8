// Tokenizer: Hugging Face tokenizer.json byte-level BPE (and GPT-2 style vocab.json + merges.txt):
// added/special tokens matched first, then the pre-tokenizer pipeline (Split regexes, ByteLevel),
// then BPE merges by rank; decode maps byte-level chars back to bytes. StreamDecoder turns a token
// stream into text that never ends in half a UTF-8 character.
// Decision: encode() never adds template tokens (like the reference library's
// add_special_tokens=False); callers that want a TemplateProcessing post-processor's tokens call
// apply_template(). match_special=false treats special added tokens as plain text (non-special
// added tokens still match), as the reference library's encode_special_tokens does.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace m1::engine {

struct TokenizerImpl;

class Tokenizer {
 public:
  // model_dir holds tokenizer.json, or vocab.json + merges.txt; a path to a .json file also works.
  static Result<Tokenizer> load(const std::filesystem::path& model_dir);
  static Result<Tokenizer> from_json(std::string_view tokenizer_json, const std::string& source_name);
  // GPT-2 style files: vocab.json ({token: id}) and merges.txt ("a b" per line, "#version" allowed).
  static Result<Tokenizer> from_vocab_merges(std::string_view vocab_json, std::string_view merges_txt,
                                             const std::string& source_name);

  std::vector<int32_t> encode(std::string_view text, bool match_special = true) const;
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // Raw bytes of one token (added token content, or the byte-level token mapped back to bytes);
  // may be part of a UTF-8 character. Empty for an unknown id.
  std::string token_bytes(int32_t id) const;
  std::optional<int32_t> token_id(std::string_view token) const;  // exact vocab/added lookup
  std::string id_to_token(int32_t id) const;                      // "" for an unknown id
  int64_t vocab_size() const;  // max id + 1 over vocab and added tokens
  bool is_special(int32_t id) const;
  // Ids of a TemplateProcessing post-processor's single-sequence template around `ids` (as the
  // reference library's add_special_tokens=True); `ids` unchanged when there is none.
  std::vector<int32_t> apply_template(std::span<const int32_t> ids) const;
  // Pre-tokenizer pieces of `text` (no added-token matching), for tests and tools.
  std::vector<std::string> pre_tokenize(std::string_view text) const;
  // Tests/benchmarks: route Split patterns through the general regex engine.
  void disable_fast_paths();

 private:
  explicit Tokenizer(std::shared_ptr<TokenizerImpl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<TokenizerImpl> impl_;
  friend class StreamDecoder;
};

// Incremental decoding for streaming: feed ids, get text that never ends in half a UTF-8 char.
// The concatenation of push() results and flush() equals decode() of all ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false);
  std::string push(int32_t id);
  std::string flush();

 private:
  Tokenizer tok_;
  bool skip_special_;
  std::string pending_;
};

// The project's default tokenizer (byte-level BPE trained by `m1 tokenizer train` on
// engine/assets/tokenizer_corpus.txt, M1's special tokens at ids 200000..200025).
std::string default_tokenizer_json();
std::string default_tokenizer_config_json();
// Writes tokenizer.json + tokenizer_config.json into dir (used by `m1 model init`).
Status write_default_tokenizer(const std::filesystem::path& dir);

}  // namespace m1::engine
