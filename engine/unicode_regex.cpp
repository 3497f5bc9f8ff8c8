// Parser (pattern -> AST), compiler (AST -> instructions) and backtracking VM of UnicodeRegex.
// Character classes precompute an ASCII bitmap so the common case is one bit test; non-ASCII
// code points go through the item list (ranges, category masks, \s/\d/\w).
#include "engine/unicode_regex.h"

#include <bitset>
#include <limits>

#include "engine/unicode.h"

namespace m1::engine {
namespace {

namespace uc = unicode;

struct ClassItem {
  enum Kind { Range, Cats, Space, Digit, Word } kind;
  uint32_t lo = 0, hi = 0;
  uc::CategoryMask mask = 0;
  bool neg = false;
  bool test(uint32_t c) const {
    bool r = false;
    switch (kind) {
      case Range: r = c >= lo && c <= hi; break;
      case Cats: r = uc::in(c, mask); break;
      case Space: r = uc::is_whitespace(c); break;
      case Digit: r = uc::category(c) == uc::Nd; break;
      case Word: r = uc::is_word(c); break;
    }
    return r != neg;
  }
};

struct CharClass {
  std::vector<ClassItem> items;
  bool negated = false;
  std::bitset<128> ascii;
  void finish() {
    for (uint32_t c = 0; c < 128; ++c) ascii[c] = slow(c);
  }
  bool slow(uint32_t c) const {
    bool in = false;
    for (const auto& it : items)
      if (it.test(c)) { in = true; break; }
    return in != negated;
  }
  bool test(uint32_t c) const { return c < 128 ? ascii[c] : slow(c); }
};

enum class Op : uint8_t { Char, Class, Any, Split, Jmp, Match, Look, Bol, Eol, WordB, NotWordB };

struct Inst {
  Op op;
  bool neg = false;   // Look: negative lookahead
  uint32_t a = 0;     // Char: code point; Class: class index; Split/Jmp: first target; Look: sub
  uint32_t b = 0;     // Split: second target
};

struct Node {
  enum Kind { Empty, Lit, Cls, Any, Cat, Alt, Rep, Look, Bol, Eol, WordB, NotWordB } kind = Empty;
  Node() = default;
  explicit Node(Kind k) : kind(k) {}
  uint32_t cp = 0;
  int cls = -1;
  std::vector<Node> kids;
  int min = 0, max = 0;  // max < 0: unbounded
  bool greedy = true, neg = false;
};

constexpr int kInf = -1;

}  // namespace

struct UnicodeRegex::Program {
  std::string pattern;
  std::vector<CharClass> classes;
  std::vector<std::vector<Inst>> subs;  // subs[0] is the main program; others are lookaheads
};

namespace {

class Parser {
 public:
  Parser(std::string_view pat, UnicodeRegex::Program& prog) : prog_(prog) {
    size_t i = 0;
    while (i < pat.size()) cps_.push_back(uc::decode_utf8(pat, i));
  }
  Result<Node> parse() {
    M1_ASSIGN_OR_RETURN(Node n, alt(false));
    if (pos_ < cps_.size()) return err("unbalanced ')'");
    return n;
  }

 private:
  Error err(const std::string& what) const {
    return make_error("regex /" + prog_.pattern + "/: " + what + " at character " +
                      std::to_string(pos_));
  }
  bool eof() const { return pos_ >= cps_.size(); }
  uint32_t peek(size_t k = 0) const { return pos_ + k < cps_.size() ? cps_[pos_ + k] : 0; }

  Result<Node> alt(bool icase) {
    Node a{Node::Alt};
    while (true) {
      M1_ASSIGN_OR_RETURN(Node c, concat(icase));
      a.kids.push_back(std::move(c));
      if (!eof() && peek() == '|') { ++pos_; continue; }
      break;
    }
    if (a.kids.size() == 1) return std::move(a.kids[0]);
    return a;
  }

  Result<Node> concat(bool icase) {
    Node c{Node::Cat};
    while (!eof() && peek() != '|' && peek() != ')') {
      // Inline flag group "(?i)" changes the case mode for the rest of this group.
      if (peek() == '(' && peek(1) == '?' && peek(2) == 'i' && peek(3) == ')') {
        pos_ += 4;
        icase = true;
        continue;
      }
      M1_ASSIGN_OR_RETURN(Node a, atom(icase));
      M1_ASSIGN_OR_RETURN(Node r, quant(std::move(a)));
      c.kids.push_back(std::move(r));
    }
    if (c.kids.size() == 1) return std::move(c.kids[0]);
    return c;
  }

  Result<int> number() {
    if (eof() || peek() < '0' || peek() > '9') return err("expected a number in {n,m}");
    int v = 0;
    while (!eof() && peek() >= '0' && peek() <= '9') {
      v = v * 10 + int(peek() - '0');
      if (v > 10000) return err("repetition count too large");
      ++pos_;
    }
    return v;
  }

  Result<Node> quant(Node a) {
    if (eof()) return a;
    int mn, mx;
    uint32_t c = peek();
    if (c == '*') { mn = 0; mx = kInf; ++pos_; }
    else if (c == '+') { mn = 1; mx = kInf; ++pos_; }
    else if (c == '?') { mn = 0; mx = 1; ++pos_; }
    else if (c == '{' && peek(1) >= '0' && peek(1) <= '9') {
      ++pos_;
      M1_ASSIGN_OR_RETURN(mn, number());
      mx = mn;
      if (peek() == ',') {
        ++pos_;
        if (peek() == '}') mx = kInf;
        else { M1_ASSIGN_OR_RETURN(mx, number()); }
      }
      if (peek() != '}') return err("expected '}'");
      ++pos_;
      if (mx != kInf && mx < mn) return err("{n,m} with m < n");
    } else {
      return a;
    }
    if (a.kind == Node::Look || a.kind == Node::Bol || a.kind == Node::Eol ||
        a.kind == Node::WordB || a.kind == Node::NotWordB)
      return err("quantifier after an assertion");
    Node r{Node::Rep};
    r.min = mn;
    r.max = mx;
    if (!eof() && peek() == '?') { r.greedy = false; ++pos_; }
    else if (!eof() && peek() == '+') return err("possessive quantifiers are unsupported");
    r.kids.push_back(std::move(a));
    return r;
  }

  Node lit(uint32_t cp, bool icase) {
    bool letter = (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    if (!icase || !letter) { Node n{Node::Lit}; n.cp = cp; return n; }
    CharClass cc;
    add_folded(cc, cp, cp);
    return cls_node(std::move(cc));
  }
  // Adds [lo, hi] plus, for ASCII letters inside it, their other case and non-ASCII folds.
  static void add_folded(CharClass& cc, uint32_t lo, uint32_t hi) {
    cc.items.push_back({ClassItem::Range, lo, hi});
    for (uint32_t c = std::max<uint32_t>(lo, 'A'); c <= std::min<uint32_t>(hi, 'z'); ++c) {
      bool up = c <= 'Z', low = c >= 'a';
      if (!up && !low) continue;
      uint32_t other = up ? c + 32 : c - 32;
      cc.items.push_back({ClassItem::Range, other, other});
      for (uint32_t f : uc::non_ascii_folds_to(c)) cc.items.push_back({ClassItem::Range, f, f});
    }
  }
  Node cls_node(CharClass cc) {
    cc.finish();
    prog_.classes.push_back(std::move(cc));
    Node n{Node::Cls};
    n.cls = int(prog_.classes.size() - 1);
    return n;
  }

  Result<uint32_t> hex(int digits_max, bool braced) {
    uint32_t v = 0;
    int n = 0;
    while (!eof() && n < digits_max) {
      uint32_t c = peek();
      int d = (c >= '0' && c <= '9') ? int(c - '0') : (c >= 'a' && c <= 'f') ? int(c - 'a' + 10)
            : (c >= 'A' && c <= 'F') ? int(c - 'A' + 10) : -1;
      if (d < 0) break;
      v = v * 16 + uint32_t(d);
      ++n; ++pos_;
    }
    if (n == 0 || (!braced && n != digits_max)) return err("bad hex escape");
    if (braced) {
      if (peek() != '}') return err("expected '}' after \\x{...");
      ++pos_;
    }
    return v;
  }

  // Parses an escape after '\'. Fills either `item` (class-like) or `cp` (a literal).
  Result<bool> escape(ClassItem* item, uint32_t* cp, [[maybe_unused]] bool in_class) {
    if (eof()) return err("pattern ends with '\\'");
    uint32_t c = cps_[pos_++];
    switch (c) {
      case 's': *item = {ClassItem::Space}; return true;
      case 'S': *item = {ClassItem::Space}; item->neg = true; return true;
      case 'd': *item = {ClassItem::Digit}; return true;
      case 'D': *item = {ClassItem::Digit}; item->neg = true; return true;
      case 'w': *item = {ClassItem::Word}; return true;
      case 'W': *item = {ClassItem::Word}; item->neg = true; return true;
      case 'p': case 'P': {
        std::string name;
        if (peek() == '{') {
          ++pos_;
          while (!eof() && peek() != '}') name.push_back(char(cps_[pos_++]));
          if (eof()) return err("unterminated \\p{");
          ++pos_;
        } else if (!eof()) {
          name.push_back(char(cps_[pos_++]));
        }
        if (name.rfind("gc=", 0) == 0) name = name.substr(3);
        uc::CategoryMask m = uc::mask_for_property(name);
        if (m == 0) return err("unsupported Unicode property \\p{" + name + "}");
        *item = {ClassItem::Cats};
        item->mask = m;
        item->neg = c == 'P';
        return true;
      }
      case 'n': *cp = '\n'; return false;
      case 'r': *cp = '\r'; return false;
      case 't': *cp = '\t'; return false;
      case 'f': *cp = '\f'; return false;
      case 'v': *cp = '\v'; return false;
      case 'a': *cp = 0x07; return false;
      case 'e': *cp = 0x1B; return false;
      case '0': *cp = 0; return false;
      case 'x': {
        if (peek() == '{') { ++pos_; M1_ASSIGN_OR_RETURN(*cp, hex(8, true)); }
        else { M1_ASSIGN_OR_RETURN(*cp, hex(2, false)); }
        return false;
      }
      case 'u': { M1_ASSIGN_OR_RETURN(*cp, hex(4, false)); return false; }
      default:
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
          std::string s;
          uc::append_utf8(s, c);
          return err("unsupported escape \\" + s);
        }
        *cp = c;
        return false;
    }
  }

  Result<Node> char_class(bool icase) {
    CharClass cc;
    if (peek() == '^') { cc.negated = true; ++pos_; }
    bool first = true;
    while (true) {
      if (eof()) return err("unterminated character class");
      uint32_t c = peek();
      if (c == ']' && !first) { ++pos_; break; }
      if (c == '[') return err("nested character classes are unsupported");
      first = false;
      ++pos_;
      uint32_t lo = c;
      if (c == '\\') {
        ClassItem item{ClassItem::Range};
        M1_ASSIGN_OR_RETURN(bool is_item, escape(&item, &lo, true));
        if (is_item) { cc.items.push_back(item); continue; }
      }
      uint32_t hi = lo;
      if (peek() == '-' && peek(1) != ']' && pos_ + 1 < cps_.size()) {
        ++pos_;
        hi = cps_[pos_++];
        if (hi == '\\') {
          ClassItem item{ClassItem::Range};
          M1_ASSIGN_OR_RETURN(bool is_item, escape(&item, &hi, true));
          if (is_item) return err("a class escape cannot end a range");
        }
        if (hi < lo) return err("character range out of order");
      }
      if (icase) add_folded(cc, lo, hi);
      else cc.items.push_back({ClassItem::Range, lo, hi});
    }
    return cls_node(std::move(cc));
  }

  Result<Node> atom(bool icase) {
    uint32_t c = cps_[pos_++];
    switch (c) {
      case '(': {
        Node::Kind look = Node::Empty;
        bool neg = false;
        bool inner_icase = icase;
        if (peek() == '?') {
          ++pos_;
          uint32_t k = eof() ? 0 : cps_[pos_++];
          if (k == ':') {
          } else if (k == '=') { look = Node::Look; }
          else if (k == '!') { look = Node::Look; neg = true; }
          else if (k == 'i' && peek() == ':') { ++pos_; inner_icase = true; }
          else if (k == '<') return err("lookbehind and named groups are unsupported");
          else return err("unsupported group syntax '(?'");
        }
        M1_ASSIGN_OR_RETURN(Node inner, alt(inner_icase));
        if (eof() || peek() != ')') return err("missing ')'");
        ++pos_;
        if (look == Node::Look) {
          Node l{Node::Look};
          l.neg = neg;
          l.kids.push_back(std::move(inner));
          return l;
        }
        return inner;
      }
      case '[': return char_class(icase);
      case '.': return Node{Node::Any};
      case '^': return Node{Node::Bol};
      case '$': return Node{Node::Eol};
      case '*': case '+': case '?': --pos_; return err("quantifier without a target");
      case ')': --pos_; return err("unbalanced ')'");
      case '\\': {
        uint32_t e = peek();
        if (e == 'b') { ++pos_; return Node{Node::WordB}; }
        if (e == 'B') { ++pos_; return Node{Node::NotWordB}; }
        if (e == 'A') { ++pos_; return Node{Node::Bol}; }
        if (e == 'z') { ++pos_; return Node{Node::Eol}; }
        ClassItem item{ClassItem::Range};
        uint32_t cp = 0;
        M1_ASSIGN_OR_RETURN(bool is_item, escape(&item, &cp, false));
        if (is_item) {
          CharClass cc;
          cc.items.push_back(item);
          return cls_node(std::move(cc));
        }
        return lit(cp, icase);
      }
      default: return lit(c, icase);
    }
  }

  UnicodeRegex::Program& prog_;
  std::vector<uint32_t> cps_;
  size_t pos_ = 0;
};

bool nullable(const Node& n) {
  switch (n.kind) {
    case Node::Lit: case Node::Cls: case Node::Any: return false;
    case Node::Cat:
      for (const auto& k : n.kids) if (!nullable(k)) return false;
      return true;
    case Node::Alt:
      for (const auto& k : n.kids) if (nullable(k)) return true;
      return false;
    case Node::Rep: return n.min == 0 || nullable(n.kids[0]);
    default: return true;
  }
}

class Compiler {
 public:
  explicit Compiler(UnicodeRegex::Program& p) : prog_(p) {}
  Status compile_sub(const Node& n, size_t sub) {
    M1_TRY(emit(n, sub));
    prog_.subs[sub].push_back({Op::Match});
    return {};
  }

 private:
  std::vector<Inst>& code(size_t sub) { return prog_.subs[sub]; }
  uint32_t here(size_t sub) { return uint32_t(code(sub).size()); }

  Status emit(const Node& n, size_t s) {
    switch (n.kind) {
      case Node::Empty: return {};
      case Node::Lit: code(s).push_back({Op::Char, false, n.cp}); return {};
      case Node::Cls: code(s).push_back({Op::Class, false, uint32_t(n.cls)}); return {};
      case Node::Any: code(s).push_back({Op::Any}); return {};
      case Node::Bol: code(s).push_back({Op::Bol}); return {};
      case Node::Eol: code(s).push_back({Op::Eol}); return {};
      case Node::WordB: code(s).push_back({Op::WordB}); return {};
      case Node::NotWordB: code(s).push_back({Op::NotWordB}); return {};
      case Node::Cat:
        for (const auto& k : n.kids) M1_TRY(emit(k, s));
        return {};
      case Node::Alt: {
        std::vector<uint32_t> jumps;
        for (size_t i = 0; i < n.kids.size(); ++i) {
          uint32_t split = here(s);
          bool last = i + 1 == n.kids.size();
          if (!last) code(s).push_back({Op::Split, false, split + 1, 0});
          M1_TRY(emit(n.kids[i], s));
          if (!last) {
            jumps.push_back(here(s));
            code(s).push_back({Op::Jmp});
            code(s)[split].b = here(s);
          }
        }
        for (uint32_t j : jumps) code(s)[j].a = here(s);
        return {};
      }
      case Node::Look: {
        size_t sub = prog_.subs.size();
        prog_.subs.emplace_back();
        M1_TRY(compile_sub(n.kids[0], sub));
        code(s).push_back({Op::Look, n.neg, uint32_t(sub)});
        return {};
      }
      case Node::Rep: return emit_rep(n, s);
    }
    return {};
  }

  // Split whose preferred branch is `next` (the body) when greedy.
  void split(size_t s, uint32_t at, uint32_t body, uint32_t out, bool greedy) {
    code(s)[at].a = greedy ? body : out;
    code(s)[at].b = greedy ? out : body;
  }

  Status emit_rep(const Node& n, size_t s) {
    const Node& body = n.kids[0];
    if (n.max == kInf && nullable(body))
      return make_error("regex /" + prog_.pattern +
                        "/: unbounded repetition of a sub-pattern that can match empty is unsupported");
    for (int i = 0; i < n.min; ++i) M1_TRY(emit(body, s));
    if (n.max == kInf) {
      uint32_t loop = here(s);
      code(s).push_back({Op::Split});
      M1_TRY(emit(body, s));
      code(s).push_back({Op::Jmp, false, loop});
      split(s, loop, loop + 1, here(s), n.greedy);
      return {};
    }
    std::vector<uint32_t> splits;
    for (int i = n.min; i < n.max; ++i) {
      splits.push_back(here(s));
      code(s).push_back({Op::Split});
      M1_TRY(emit(body, s));
    }
    for (uint32_t at : splits) split(s, at, at + 1, here(s), n.greedy);
    return {};
  }

  UnicodeRegex::Program& prog_;
};

bool word_at(std::span<const uint32_t> t, size_t i) { return i < t.size() && uc::is_word(t[i]); }

// Runs sub-program `sub` at `pos`; returns the end position or -1.
int64_t run(const UnicodeRegex::Program& p, size_t sub, std::span<const uint32_t> t, size_t pos) {
  const std::vector<Inst>& code = p.subs[sub];
  // The main program reuses one stack per thread; lookaheads (rarely pushing) get their own.
  static thread_local std::vector<std::pair<uint32_t, uint32_t>> main_stack;
  std::vector<std::pair<uint32_t, uint32_t>> local_stack;
  auto& stack = sub == 0 ? main_stack : local_stack;
  stack.clear();
  uint32_t pc = 0;
  size_t i = pos;
  while (true) {
    const Inst& in = code[pc];
    bool ok = true;
    switch (in.op) {
      case Op::Char: ok = i < t.size() && t[i] == in.a; if (ok) { ++i; ++pc; } break;
      case Op::Class: ok = i < t.size() && p.classes[in.a].test(t[i]); if (ok) { ++i; ++pc; } break;
      case Op::Any: ok = i < t.size() && t[i] != '\n'; if (ok) { ++i; ++pc; } break;
      case Op::Split: stack.emplace_back(in.b, uint32_t(i)); pc = in.a; break;
      case Op::Jmp: pc = in.a; break;
      case Op::Match: return int64_t(i);
      case Op::Look: ok = (run(p, in.a, t, i) >= 0) != in.neg; if (ok) ++pc; break;
      case Op::Bol: ok = i == 0; if (ok) ++pc; break;
      case Op::Eol: ok = i == t.size(); if (ok) ++pc; break;
      case Op::WordB: case Op::NotWordB: {
        bool b = (i > 0 && uc::is_word(t[i - 1])) != word_at(t, i);
        ok = b == (in.op == Op::WordB);
        if (ok) ++pc;
        break;
      }
    }
    if (!ok) {
      if (stack.empty()) return -1;
      pc = stack.back().first;
      i = stack.back().second;
      stack.pop_back();
    }
  }
}

}  // namespace

UnicodeRegex::UnicodeRegex(std::unique_ptr<Program> p) : prog_(std::move(p)) {}
UnicodeRegex::UnicodeRegex(UnicodeRegex&&) noexcept = default;
UnicodeRegex& UnicodeRegex::operator=(UnicodeRegex&&) noexcept = default;
UnicodeRegex::~UnicodeRegex() = default;

Result<UnicodeRegex> UnicodeRegex::compile(std::string_view pattern) {
  auto prog = std::make_unique<Program>();
  prog->pattern = std::string(pattern);
  Parser parser(pattern, *prog);
  M1_ASSIGN_OR_RETURN(Node root, parser.parse());
  prog->subs.emplace_back();
  Compiler c(*prog);
  M1_TRY(c.compile_sub(root, 0));
  return UnicodeRegex(std::move(prog));
}

int64_t UnicodeRegex::match_at(std::span<const uint32_t> text, size_t pos) const {
  int64_t end = run(*prog_, 0, text, pos);
  return end < 0 ? -1 : end - int64_t(pos);
}

std::vector<std::pair<uint32_t, uint32_t>> UnicodeRegex::find_all(
    std::span<const uint32_t> text) const {
  std::vector<std::pair<uint32_t, uint32_t>> out;
  size_t i = 0;
  while (i < text.size()) {
    int64_t end = run(*prog_, 0, text, i);
    if (end > int64_t(i)) {
      out.emplace_back(uint32_t(i), uint32_t(end));
      i = size_t(end);
    } else {
      ++i;
    }
  }
  return out;
}

const std::string& UnicodeRegex::pattern() const { return prog_->pattern; }

}  // namespace m1::engine
