// UTF-8 handling, category lookup and the byte-level map. Category lookup is a flat table for the
// Basic Multilingual Plane (64 KiB, built once from the generated ranges) and a binary search over
// the ranges above it, so the hot path (ASCII and BMP text) is one array read.
#include "engine/unicode.h"

#include <algorithm>
#include <array>

namespace m1::engine::unicode {
namespace detail {
extern const char* const kUnicodeVersion;
extern const int kCategoryRangeCount;
extern const uint32_t kCategoryStarts[];
extern const uint8_t kCategoryOf[];
extern const int kAsciiFoldCount;
extern const uint32_t kAsciiFolds[][2];
}  // namespace detail

namespace {

struct BmpTable {
  std::array<uint8_t, 0x10000> cat{};
  BmpTable() {
    for (int r = 0; r < detail::kCategoryRangeCount; ++r) {
      uint32_t lo = detail::kCategoryStarts[r];
      if (lo >= 0x10000) break;
      uint32_t hi = r + 1 < detail::kCategoryRangeCount ? detail::kCategoryStarts[r + 1] : 0x110000;
      hi = std::min<uint32_t>(hi, 0x10000);
      for (uint32_t c = lo; c < hi; ++c) cat[c] = detail::kCategoryOf[r];
    }
  }
};

const BmpTable& bmp() {
  static const BmpTable t;
  return t;
}

struct ByteMap {
  std::array<uint32_t, 256> to_char{};
  std::array<int16_t, 324> to_byte{};  // every image is < 324
  ByteMap() {
    to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      to_char[b] = printable ? uint32_t(b) : uint32_t(256 + n++);
      to_byte[to_char[b]] = int16_t(b);
    }
  }
};

const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

}  // namespace

Category category(uint32_t cp) {
  if (cp < 0x10000) return Category(bmp().cat[cp]);
  if (cp > 0x10FFFF) return Cn;
  const uint32_t* begin = detail::kCategoryStarts;
  const uint32_t* end = begin + detail::kCategoryRangeCount;
  const uint32_t* it = std::upper_bound(begin, end, cp);
  return Category(detail::kCategoryOf[(it - begin) - 1]);
}

bool is_whitespace(uint32_t cp) {
  if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
         cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

bool is_word(uint32_t cp) {
  if (cp < 0x80) {
    return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9') ||
           cp == '_';
  }
  return in(cp, kLetter | kMark | bit(Nd) | bit(Nl) | bit(Pc)) || cp == 0x200C || cp == 0x200D;
}

CategoryMask mask_for_property(std::string_view n) {
  static const char* const kNames[] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd",
                                       "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm",
                                       "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"};
  for (int i = 0; i < kCategoryCount; ++i)
    if (n == kNames[i]) return bit(Category(i));
  if (n == "L" || n == "Letter") return kLetter;
  if (n == "LC" || n == "Cased_Letter") return bit(Lu) | bit(Ll) | bit(Lt);
  if (n == "M" || n == "Mark") return kMark;
  if (n == "N" || n == "Number") return kNumber;
  if (n == "P" || n == "Punctuation") return kPunct;
  if (n == "S" || n == "Symbol") return kSymbol;
  if (n == "Z" || n == "Separator") return kSeparator;
  if (n == "C" || n == "Other") return kOther;
  return 0;
}

std::vector<uint32_t> non_ascii_folds_to(uint32_t c) {
  std::vector<uint32_t> out;
  if (c >= 'A' && c <= 'Z') c += 32;
  for (int i = 0; i < detail::kAsciiFoldCount; ++i)
    if (detail::kAsciiFolds[i][1] == c) out.push_back(detail::kAsciiFolds[i][0]);
  return out;
}

const char* unicode_version() { return detail::kUnicodeVersion; }

namespace {
// Length of the valid UTF-8 sequence at s[i] (1..4), or -k where k >= 1 is the length of the
// maximal invalid subpart there (k == s.size() - i with a valid lead means "incomplete at end").
int sequence_at(std::string_view s, size_t i, uint32_t* cp_out) {
  auto b0 = uint8_t(s[i]);
  if (b0 < 0x80) {
    *cp_out = b0;
    return 1;
  }
  int need;
  uint32_t cp;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1; cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2; cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3; cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return -1;
  }
  size_t j = i + 1;
  for (int k = 0; k < need; ++k, ++j) {
    if (j >= s.size()) return -int(j - i);
    auto b = uint8_t(s[j]);
    if (b < lo || b > hi) return -int(j - i);
    lo = 0x80; hi = 0xBF;
    cp = (cp << 6) | (b & 0x3F);
  }
  *cp_out = cp;
  return need + 1;
}
}  // namespace

uint32_t decode_utf8(std::string_view s, size_t& i) {
  uint32_t cp = 0;
  int n = sequence_at(s, i, &cp);
  if (n > 0) {
    i += size_t(n);
    return cp;
  }
  i += 1;
  return 0xFFFD;
}

void decode_utf8(std::string_view s, std::vector<uint32_t>& cps, std::vector<uint32_t>& offsets) {
  cps.clear();
  offsets.clear();
  cps.reserve(s.size());
  offsets.reserve(s.size() + 1);
  size_t i = 0;
  while (i < s.size()) {
    offsets.push_back(uint32_t(i));
    auto b = uint8_t(s[i]);
    if (b < 0x80) {
      cps.push_back(b);
      ++i;
    } else {
      cps.push_back(decode_utf8(s, i));
    }
  }
  offsets.push_back(uint32_t(s.size()));
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

size_t complete_utf8_prefix(std::string_view s) {
  // Only the last 3 bytes can start an unfinished sequence.
  size_t start = s.size() > 3 ? s.size() - 3 : 0;
  for (size_t i = start; i < s.size(); ++i) {
    auto b = uint8_t(s[i]);
    if (b < 0xC2 || b > 0xF4) continue;
    uint32_t cp;
    int n = sequence_at(s, i, &cp);
    if (n < 0 && size_t(-n) == s.size() - i) return i;  // valid so far, cut off by the end
  }
  return s.size();
}

std::string to_valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    uint32_t cp;
    int n = sequence_at(s, i, &cp);
    if (n > 0) {
      out.append(s.substr(i, size_t(n)));
      i += size_t(n);
    } else {
      out.append("\xEF\xBF\xBD");
      i += size_t(-n);
    }
  }
  return out;
}

uint32_t byte_to_char(uint8_t b) { return byte_map().to_char[b]; }

int char_to_byte(uint32_t cp) { return cp < 324 ? byte_map().to_byte[cp] : -1; }

std::string bytes_to_byte_level(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  const auto& m = byte_map();
  for (char c : raw) append_utf8(out, m.to_char[uint8_t(c)]);
  return out;
}

bool byte_level_to_bytes(std::string_view bl, std::string& out) {
  bool ok = true;
  size_t i = 0;
  while (i < bl.size()) {
    size_t at = i;
    uint32_t cp = decode_utf8(bl, i);
    int b = char_to_byte(cp);
    if (b >= 0) {
      out.push_back(char(b));
    } else {
      out.append(bl.substr(at, i - at));
      ok = false;
    }
  }
  return ok;
}

}  // namespace m1::engine::unicode
