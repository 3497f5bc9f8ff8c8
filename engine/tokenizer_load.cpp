// Building a Tokenizer from tokenizer.json (or vocab.json + merges.txt). Every component type is
// checked: anything this engine does not implement is refused with an error naming the file, the
// component and the type, rather than silently tokenizing differently from the reference library.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "engine/tokenizer.h"
#include "engine/tokenizer_impl.h"
#include "engine/unicode.h"

namespace m1::engine {
namespace {

using nlohmann::json;

struct Ctx {
  const std::string& src;
  Error err(const std::string& what) const { return make_error(src + ": " + what); }
};

std::string type_of(const json& j) {
  if (j.is_object() && j.contains("type") && j["type"].is_string()) return j["type"];
  return "";
}

bool get_bool(const json& j, const char* k, bool dflt) {
  auto it = j.find(k);
  return it != j.end() && it->is_boolean() ? it->get<bool>() : dflt;
}

Status parse_normalizer(const Ctx& c, const json& n) {
  if (n.is_null()) return {};
  std::string t = type_of(n);
  if (t == "Sequence" && n.contains("normalizers") && n["normalizers"].is_array()) {
    for (const auto& sub : n["normalizers"]) M1_TRY(parse_normalizer(c, sub));
    return {};
  }
  return c.err("unsupported normalizer " + (t.empty() ? n.dump() : t) +
               " (only null is supported: byte-level BPE files normally have none)");
}

Result<PreTokStep> parse_split(const Ctx& c, const json& p) {
  PreTokStep s;
  s.kind = PreTokStep::Split;
  if (!p.contains("pattern") || !p["pattern"].is_object())
    return c.err("pre_tokenizer Split: missing \"pattern\" object");
  const json& pat = p["pattern"];
  bool literal;
  std::string text;
  if (pat.contains("Regex") && pat["Regex"].is_string()) {
    literal = false;
    text = pat["Regex"];
  } else if (pat.contains("String") && pat["String"].is_string()) {
    literal = true;
    text = pat["String"];
  } else {
    return c.err("pre_tokenizer Split: pattern must be {\"Regex\": ...} or {\"String\": ...}");
  }
  auto compiled = SplitPattern::compile(text, literal);
  if (!compiled.ok()) return c.err("pre_tokenizer Split: " + compiled.error().message);
  s.pattern = std::make_shared<SplitPattern>(std::move(compiled).value());
  std::string behavior = p.value("behavior", std::string("Isolated"));
  auto b = parse_split_behavior(behavior);
  if (!b.ok()) return c.err("pre_tokenizer Split: " + b.error().message);
  s.behavior = b.value();
  s.invert = get_bool(p, "invert", false);
  return s;
}

Status parse_pretokenizer(const Ctx& c, const json& p, std::vector<PreTokStep>& steps) {
  std::string t = type_of(p);
  if (t == "Sequence") {
    if (!p.contains("pretokenizers") || !p["pretokenizers"].is_array())
      return c.err("pre_tokenizer Sequence: missing \"pretokenizers\" array");
    for (const auto& sub : p["pretokenizers"]) M1_TRY(parse_pretokenizer(c, sub, steps));
    return {};
  }
  if (t == "Split") {
    M1_ASSIGN_OR_RETURN(PreTokStep s, parse_split(c, p));
    steps.push_back(std::move(s));
    return {};
  }
  if (t == "ByteLevel") {
    PreTokStep s;
    s.kind = PreTokStep::ByteLevel;
    s.add_prefix_space = get_bool(p, "add_prefix_space", true);
    if (get_bool(p, "use_regex", true)) {
      auto compiled = SplitPattern::compile(kGpt2SplitPattern);
      if (!compiled.ok()) return c.err(compiled.error().message);
      s.pattern = std::make_shared<SplitPattern>(std::move(compiled).value());
    }
    steps.push_back(std::move(s));
    return {};
  }
  return c.err("unsupported pre_tokenizer type " + (t.empty() ? p.dump() : t) +
               " (supported: Sequence, Split, ByteLevel)");
}

Status parse_decoder(const Ctx& c, const json& d) {
  std::string t = type_of(d);
  if (t == "ByteLevel") return {};
  if (t == "Sequence" && d.contains("decoders") && d["decoders"].is_array()) {
    bool byte_level = false;
    for (const auto& sub : d["decoders"]) {
      M1_TRY(parse_decoder(c, sub));
      byte_level = true;
    }
    if (byte_level) return {};
  }
  return c.err("unsupported decoder " + (d.is_null() ? std::string("null") : t.empty() ? d.dump() : t) +
               " (byte-level BPE needs the ByteLevel decoder)");
}

Status parse_post_processor(const Ctx& c, const json& p, TokenizerImpl& impl) {
  if (p.is_null()) return {};
  std::string t = type_of(p);
  if (t == "ByteLevel") return {};  // only adjusts offsets
  if (t == "Sequence" && p.contains("processors") && p["processors"].is_array()) {
    for (const auto& sub : p["processors"]) M1_TRY(parse_post_processor(c, sub, impl));
    return {};
  }
  if (t == "TemplateProcessing") {
    if (!p.contains("single") || !p["single"].is_array())
      return c.err("post_processor TemplateProcessing: missing \"single\" template");
    const json specials = p.value("special_tokens", json::object());
    impl.has_template = true;
    impl.template_single.clear();
    for (const auto& piece : p["single"]) {
      if (piece.contains("Sequence")) {
        impl.template_single.push_back(std::nullopt);
      } else if (piece.contains("SpecialToken") && piece["SpecialToken"].contains("id")) {
        std::string name = piece["SpecialToken"]["id"];
        if (!specials.contains(name) || !specials[name].contains("ids"))
          return c.err("post_processor TemplateProcessing: special token '" + name +
                       "' is not in special_tokens");
        impl.template_single.push_back(specials[name]["ids"].get<std::vector<int32_t>>());
      } else {
        return c.err("post_processor TemplateProcessing: bad template piece " + piece.dump());
      }
    }
    return {};
  }
  return c.err("unsupported post_processor type " + (t.empty() ? p.dump() : t) +
               " (supported: null, ByteLevel, TemplateProcessing, Sequence)");
}

Status add_merge(const Ctx& c, TokenizerImpl& impl, const std::string& a, const std::string& b,
                 int32_t rank) {
  auto ia = impl.vocab.find(a), ib = impl.vocab.find(b), im = impl.vocab.find(a + b);
  if (ia == impl.vocab.end() || ib == impl.vocab.end() || im == impl.vocab.end())
    return c.err("merge " + std::to_string(rank) + " \"" + a + " " + b +
                 "\" uses a token that is not in the vocab");
  impl.merges.emplace(TokenizerImpl::key(ia->second, ib->second), MergeInfo{rank, im->second});
  return {};
}

Status parse_model(const Ctx& c, const json& m, TokenizerImpl& impl) {
  std::string t = type_of(m);
  if (!t.empty() && t != "BPE")
    return c.err("unsupported model type " + t + " (only BPE is supported)");
  if (!m.contains("vocab") || !m["vocab"].is_object())
    return c.err("model: missing \"vocab\" object");
  if (!m.contains("merges") || !m["merges"].is_array())
    return c.err("model: missing \"merges\" array");
  if (get_bool(m, "byte_fallback", false))
    return c.err("model: byte_fallback is unsupported (byte-level BPE does not need it)");
  if (!m.value("continuing_subword_prefix", json()).is_null() &&
      m["continuing_subword_prefix"] != "")
    return c.err("model: continuing_subword_prefix is unsupported");
  if (!m.value("end_of_word_suffix", json()).is_null() && m["end_of_word_suffix"] != "")
    return c.err("model: end_of_word_suffix is unsupported");
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0)
    return c.err("model: BPE dropout is unsupported");
  impl.ignore_merges = get_bool(m, "ignore_merges", false);
  for (const auto& [tok, id] : m["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX)
      return c.err("model.vocab: token \"" + tok + "\" has an invalid id " + id.dump());
    int32_t i = id.get<int32_t>();
    impl.vocab[tok] = i;
    if (size_t(i) >= impl.vocab_by_id.size()) impl.vocab_by_id.resize(size_t(i) + 1);
    impl.vocab_by_id[size_t(i)] = tok;
  }
  int32_t rank = 0;
  for (const auto& mg : m["merges"]) {
    if (mg.is_string()) {
      const std::string& s = mg.get_ref<const std::string&>();
      size_t sp = s.find(' ', 1);
      if (sp == std::string::npos)
        return c.err("merge " + std::to_string(rank) + " \"" + s + "\" is not \"a b\"");
      M1_TRY(add_merge(c, impl, s.substr(0, sp), s.substr(sp + 1), rank));
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      M1_TRY(add_merge(c, impl, mg[0], mg[1], rank));
    } else {
      return c.err("merge " + std::to_string(rank) + " must be \"a b\" or [\"a\", \"b\"], got " +
                   mg.dump());
    }
    ++rank;
  }
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    auto it = impl.vocab.find(m["unk_token"].get<std::string>());
    if (it != impl.vocab.end()) impl.unk_id = it->second;
  }
  return {};
}

// Ids follow what the reference library (tokenizers 0.23) assigns, not the file's "id" field: a
// token already in the model vocab keeps that id; any other gets the model's vocab size (entry
// count), or 1 + the largest id so given once that is at or above it (checked against fixtures
// from that library). A differing "id" is warned about.
Status parse_added(const Ctx& c, const json& list, TokenizerImpl& impl) {
  if (list.is_null()) return {};
  if (!list.is_array()) return c.err("\"added_tokens\" must be an array");
  const int64_t model_size = int64_t(impl.vocab.size());
  std::optional<int64_t> max_added;
  StringMap<int32_t> seen;
  for (const auto& a : list) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() ||
        !a.contains("content") || !a["content"].is_string())
      return c.err("added_tokens: each entry needs an integer \"id\" and a string \"content\", got " +
                   a.dump());
    AddedToken t;
    t.id = a["id"].get<int32_t>();
    t.content = a["content"];
    if (t.content.empty()) return c.err("added_tokens: token " + std::to_string(t.id) + " is empty");
    t.special = get_bool(a, "special", false);
    t.lstrip = get_bool(a, "lstrip", false);
    t.rstrip = get_bool(a, "rstrip", false);
    t.single_word = get_bool(a, "single_word", false);
    t.normalized = get_bool(a, "normalized", !t.special);
    if (seen.count(t.content)) continue;
    int64_t id;
    if (auto v = impl.vocab.find(t.content); v != impl.vocab.end()) {
      id = v->second;
    } else {
      id = (max_added && (*max_added >= model_size || model_size == 0)) ? *max_added + 1 : model_size;
      max_added = std::max(max_added.value_or(id), id);
    }
    if (id != t.id)
      spdlog::warn("{}: added token '{}' has id {} in the file but gets id {} (as in the reference "
                   "library: it is not in the model vocab)", c.src, t.content, t.id, id);
    t.id = int32_t(id);
    seen[t.content] = t.id;
    impl.added.push_back(std::move(t));
  }
  return {};
}

Result<std::string> read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return make_error(p.string() + ": cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

void TokenizerImpl::finish() {
  for (int b = 0; b < 256; ++b) {
    std::string s;
    unicode::append_utf8(s, unicode::byte_to_char(uint8_t(b)));
    auto it = vocab.find(s);
    byte_id[b] = it == vocab.end() ? -1 : it->second;
  }
  vocab_size = int64_t(vocab_by_id.size());
  for (size_t i = 0; i < added.size(); ++i) {
    added_by_content[added[i].content] = i;
    added_by_id[added[i].id] = i;
    vocab_size = std::max<int64_t>(vocab_size, int64_t(added[i].id) + 1);
    AddedMatcher& m = added[i].normalized ? normalized_matcher : raw_matcher;
    m.order.push_back(i);
    m.first_byte[uint8_t(added[i].content[0])] = true;
  }
  id_bytes.assign(size_t(vocab_size), std::string());
  for (size_t id = 0; id < vocab_by_id.size(); ++id)
    unicode::byte_level_to_bytes(vocab_by_id[id], id_bytes[id]);
  for (const AddedToken& a : added) id_bytes[size_t(a.id)] = a.content;
  for (AddedMatcher* m : {&raw_matcher, &normalized_matcher}) {
    std::stable_sort(m->order.begin(), m->order.end(), [&](size_t a, size_t b) {
      return added[a].content.size() > added[b].content.size();
    });
  }
}

Result<Tokenizer> Tokenizer::from_json(std::string_view text, const std::string& source_name) {
  Ctx c{source_name};
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    return c.err(std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) return c.err("expected a JSON object (a Hugging Face tokenizer.json)");
  if (!j.contains("model") || !j["model"].is_object())
    return c.err("missing \"model\" object (is this a Hugging Face tokenizer.json?)");
  auto impl = std::make_shared<TokenizerImpl>();
  impl->source = source_name;
  try {
    M1_TRY(parse_model(c, j["model"], *impl));
    M1_TRY(parse_normalizer(c, j.value("normalizer", json())));
    const json pre = j.value("pre_tokenizer", json());
    if (pre.is_null())
      return c.err("pre_tokenizer is null; byte-level BPE needs a ByteLevel pre-tokenizer");
    M1_TRY(parse_pretokenizer(c, pre, impl->steps));
    if (std::none_of(impl->steps.begin(), impl->steps.end(),
                     [](const PreTokStep& s) { return s.kind == PreTokStep::ByteLevel; }))
      return c.err("pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
    M1_TRY(parse_decoder(c, j.value("decoder", json())));
    M1_TRY(parse_post_processor(c, j.value("post_processor", json()), *impl));
    if (!j.value("truncation", json()).is_null())
      return c.err("truncation is set; truncating tokenizers are unsupported");
    M1_TRY(parse_added(c, j.value("added_tokens", json()), *impl));
  } catch (const json::exception& e) {
    return c.err(std::string("unexpected JSON structure: ") + e.what());
  }
  impl->finish();
  return Tokenizer(std::move(impl));
}

Result<Tokenizer> Tokenizer::from_vocab_merges(std::string_view vocab_json,
                                               std::string_view merges_txt,
                                               const std::string& source_name) {
  json vocab;
  try {
    vocab = json::parse(vocab_json);
  } catch (const json::parse_error& e) {
    return make_error(source_name + "/vocab.json: invalid JSON: " + e.what());
  }
  if (!vocab.is_object()) return make_error(source_name + "/vocab.json: expected {token: id}");
  json merges = json::array();
  std::istringstream in{std::string(merges_txt)};
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (lineno == 1 && line.rfind("#version", 0) == 0)) continue;
    merges.push_back(line);
  }
  json tok = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
  };
  return from_json(tok.dump(), source_name + "/{vocab.json,merges.txt}");
}

Result<Tokenizer> Tokenizer::load(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_regular_file(path, ec)) {
    M1_ASSIGN_OR_RETURN(std::string text, read_file(path));
    return from_json(text, path.string());
  }
  if (!std::filesystem::is_directory(path, ec))
    return make_error(path.string() + ": no such tokenizer file or model directory");
  auto tj = path / "tokenizer.json";
  if (std::filesystem::exists(tj, ec)) {
    M1_ASSIGN_OR_RETURN(std::string text, read_file(tj));
    return from_json(text, tj.string());
  }
  auto vj = path / "vocab.json", mt = path / "merges.txt";
  if (std::filesystem::exists(vj, ec) && std::filesystem::exists(mt, ec)) {
    M1_ASSIGN_OR_RETURN(std::string v, read_file(vj));
    M1_ASSIGN_OR_RETURN(std::string m, read_file(mt));
    return from_vocab_merges(v, m, path.string());
  }
  return make_error(path.string() +
                    ": no tokenizer.json (nor vocab.json + merges.txt) in this directory");
}

}  // namespace m1::engine
