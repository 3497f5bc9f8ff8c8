// Byte-level BPE training: count pre-tokenized words, then repeatedly merge the most frequent
// adjacent pair. Pair counts are updated incrementally from an index pair -> words that hold it,
// and the best pair comes from a lazy max-heap (stale entries re-pushed with their current count),
// so a few thousand merges over a ~1 MB corpus take about a second.
#include "engine/bpe_trainer.h"

#include <nlohmann/json.hpp>

#include <queue>
#include <sstream>
#include <unordered_map>

#include "engine/tokenizer_pretokenize.h"
#include "engine/unicode.h"

namespace m1::engine {
namespace {

uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

struct Word {
  std::vector<int32_t> syms;
  int64_t count;
};

void base_vocab(TrainedBpe& out, std::unordered_map<std::string, int32_t>& ids) {
  for (int b = 0; b < 256; ++b) {
    std::string s;
    unicode::append_utf8(s, unicode::byte_to_char(uint8_t(b)));
    ids[s] = int32_t(out.vocab.size());
    out.vocab.push_back(s);
  }
}

}  // namespace

Result<TrainedBpe> train_bpe(std::span<const std::string> texts, const BpeTrainerOptions& opts) {
  if (opts.vocab_size < 256)
    return make_error("BPE trainer: vocab size " + std::to_string(opts.vocab_size) +
                      " is below the 256 byte tokens");
  TrainedBpe out;
  out.split_pattern = opts.split_pattern.empty() ? std::string(kCl100kSplitPattern) : opts.split_pattern;
  M1_ASSIGN_OR_RETURN(SplitPattern split, SplitPattern::compile(out.split_pattern));

  std::unordered_map<std::string, int64_t> counts;
  std::vector<uint32_t> cps, offs;
  for (const std::string& text : texts) {
    unicode::decode_utf8(text, cps, offs);
    for (auto [b, e] : split.find_all(cps)) counts[text.substr(offs[b], offs[e] - offs[b])]++;
  }
  std::vector<std::pair<std::string, int64_t>> sorted(counts.begin(), counts.end());
  std::sort(sorted.begin(), sorted.end());  // word order must not depend on hashing
  std::vector<Word> words;
  for (auto& [w, c] : sorted) {
    Word word{{}, c};
    for (char ch : w) word.syms.push_back(int32_t(uint8_t(ch)));
    words.push_back(std::move(word));
  }

  std::unordered_map<std::string, int32_t> ids;
  base_vocab(out, ids);
  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> where;
  for (int32_t wi = 0; wi < int32_t(words.size()); ++wi) {
    const auto& s = words[size_t(wi)].syms;
    for (size_t i = 0; i + 1 < s.size(); ++i) {
      uint64_t k = key(s[i], s[i + 1]);
      pair_count[k] += words[size_t(wi)].count;
      where[k].push_back(wi);
    }
  }
  struct Entry {
    int64_t count;
    uint64_t pair;
    bool operator<(const Entry& o) const { return count != o.count ? count < o.count : pair > o.pair; }
  };
  std::priority_queue<Entry> heap;
  for (auto [k, c] : pair_count) heap.push({c, k});

  std::vector<int32_t> seen(words.size(), -1);
  int merge_no = 0;
  while (int(out.vocab.size()) < opts.vocab_size && !heap.empty()) {
    Entry top = heap.top();
    heap.pop();
    auto pc = pair_count.find(top.pair);
    int64_t current = pc == pair_count.end() ? 0 : pc->second;
    if (current != top.count) {
      if (current > 0) heap.push({current, top.pair});
      continue;
    }
    if (current < opts.min_frequency) break;
    int32_t a = int32_t(top.pair >> 32), b = int32_t(top.pair & 0xFFFFFFFFu);
    std::string merged = out.vocab[size_t(a)] + out.vocab[size_t(b)];
    int32_t new_id;
    if (auto it = ids.find(merged); it != ids.end()) {
      new_id = it->second;
    } else {
      new_id = int32_t(out.vocab.size());
      ids[merged] = new_id;
      out.vocab.push_back(merged);
    }
    out.merges.emplace_back(out.vocab[size_t(a)], out.vocab[size_t(b)]);
    std::vector<int32_t> holders = std::move(where[top.pair]);
    where.erase(top.pair);
    std::unordered_map<uint64_t, int64_t> delta;
    for (int32_t wi : holders) {
      if (seen[size_t(wi)] == merge_no) continue;
      seen[size_t(wi)] = merge_no;
      Word& w = words[size_t(wi)];
      auto& s = w.syms;
      bool has = false;
      for (size_t i = 0; i + 1 < s.size(); ++i)
        if (s[i] == a && s[i + 1] == b) { has = true; break; }
      if (!has) continue;
      for (size_t i = 0; i + 1 < s.size(); ++i) delta[key(s[i], s[i + 1])] -= w.count;
      std::vector<int32_t> ns;
      ns.reserve(s.size());
      for (size_t i = 0; i < s.size(); ++i) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) { ns.push_back(new_id); ++i; }
        else ns.push_back(s[i]);
      }
      s.swap(ns);
      for (size_t i = 0; i + 1 < s.size(); ++i) {
        uint64_t k = key(s[i], s[i + 1]);
        delta[k] += w.count;
        if (s[i] == new_id || s[i + 1] == new_id) where[k].push_back(wi);
      }
    }
    for (auto [k, d] : delta) {
      if (d == 0) continue;
      int64_t& c = pair_count[k];
      c += d;
      if (c <= 0) pair_count.erase(k);
      else if (d > 0) heap.push({c, k});
    }
    ++merge_no;
  }
  return out;
}

std::string bpe_tokenizer_json(const TrainedBpe& bpe, std::span<const AddedTokenSpec> added) {
  using nlohmann::json;
  json vocab = json::object();
  for (size_t i = 0; i < bpe.vocab.size(); ++i) vocab[bpe.vocab[i]] = int32_t(i);
  // Added tokens are model vocab entries too (as in GPT-2's files): the reference library keeps a
  // vocab entry's id, but would renumber an added token missing from the vocab to the vocab size.
  for (const auto& t : added) vocab[t.content] = t.id;
  json merges = json::array();
  for (const auto& [l, r] : bpe.merges) merges.push_back(l + " " + r);
  json added_json = json::array();
  for (const auto& t : added) {
    added_json.push_back({{"id", t.id}, {"content", t.content}, {"single_word", false},
                          {"lstrip", false}, {"rstrip", false}, {"normalized", false},
                          {"special", t.special}});
  }
  json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added_json},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", bpe.split_pattern}}},
           {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
           {"use_regex", false}}}}}},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false},
        {"use_regex", false}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
        {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", merges}}},
  };
  return j.dump(1) + "\n";
}

Result<TrainedBpe> bpe_from_merges(std::string_view lines, const std::string& split_pattern) {
  TrainedBpe out;
  out.split_pattern = split_pattern;
  std::unordered_map<std::string, int32_t> ids;
  base_vocab(out, ids);
  std::istringstream in{std::string(lines)};
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == line.size())
      return make_error("merges line " + std::to_string(n) + ": expected \"a b\", got \"" + line + "\"");
    std::string l = line.substr(0, sp), r = line.substr(sp + 1);
    if (!ids.count(l) || !ids.count(r))
      return make_error("merges line " + std::to_string(n) + ": \"" + line +
                        "\" uses a token no earlier merge made");
    std::string m = l + r;
    if (!ids.count(m)) {
      ids[m] = int32_t(out.vocab.size());
      out.vocab.push_back(m);
    }
    out.merges.emplace_back(std::move(l), std::move(r));
  }
  return out;
}

}  // namespace m1::engine
