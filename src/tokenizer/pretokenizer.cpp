#include "tokenizer/pretokenizer.h"

#include <cstdint>

#include "tokenizer/unicode.h"

namespace resp {

namespace {

constexpr std::string_view kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

constexpr uint8_t kLN = unicode::kLetter | unicode::kNumber;
constexpr uint8_t kLNS = unicode::kLetter | unicode::kNumber | unicode::kSpace;

struct Cp {
  uint32_t cp;
  uint32_t len;
  uint8_t f;
};

inline Cp at(const char* s, size_t i, const uint8_t* table) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return {c, 1, table[c]};
  size_t len;
  const uint32_t cp = unicode::decode_utf8(s, i, len);
  return {cp, static_cast<uint32_t>(len), table[cp]};
}

inline bool is_punct(uint8_t f) {
  return (f & kLNS) == 0;
}  // [^\s\p{L}\p{N}]
inline bool is_crlf(uint32_t cp) {
  return cp == '\r' || cp == '\n';
}

// End of the run of code points with any of `mask` starting at j.
inline size_t run_end(const char* s, size_t n, size_t j, uint8_t mask, const uint8_t* t) {
  while (j < n) {
    const Cp c = at(s, j, t);
    if (!(c.f & mask)) break;
    j += c.len;
  }
  return j;
}

inline size_t punct_end(const char* s, size_t n, size_t j, const uint8_t* t) {
  while (j < n) {
    const Cp c = at(s, j, t);
    if (!is_punct(c.f)) break;
    j += c.len;
  }
  return j;
}

// Matches s|t|re|ve|m|ll|d at s[k] (after an apostrophe); returns the end or 0 when none matches.
// Case-insensitive matching follows Unicode simple case folding: U+017F LATIN SMALL LETTER LONG S
// folds to 's' (no other code point folds onto these ASCII letters).
inline size_t contraction_end(const char* s, size_t n, size_t k, bool ci, const uint8_t* t) {
  if (k >= n) return 0;
  const Cp c = at(s, k, t);
  uint32_t a = c.cp;
  if (ci) {
    if (a == 0x17F) return k + c.len;
    if (a >= 'A' && a <= 'Z') a += 32;
  }
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return k + 1;
  uint32_t want;
  if (a == 'r' || a == 'v') {
    want = 'e';
  } else if (a == 'l') {
    want = 'l';
  } else {
    return 0;
  }
  if (k + 1 >= n) return 0;
  uint32_t b = static_cast<unsigned char>(s[k + 1]);
  if (ci && b >= 'A' && b <= 'Z') b += 32;
  return b == want ? k + 2 : 0;
}

// Whitespace run at i: returns the match of \s+(?!\S) | \s+, preceded (Qwen2/Llama3) by
// \s*[\r\n]+. `c0` is whitespace.
inline size_t whitespace_end(const char* s, size_t n, size_t i, bool newline_alt,
                             const uint8_t* t) {
  size_t w = i, last_start = i, last_nl = SIZE_MAX;
  while (w < n) {
    const Cp c = at(s, w, t);
    if (!(c.f & unicode::kSpace)) break;
    if (is_crlf(c.cp)) last_nl = w;
    last_start = w;
    w += c.len;
  }
  if (newline_alt && last_nl != SIZE_MAX) return last_nl + 1;  // \s*[\r\n]+
  if (w == n) return w;                                        // \s+(?!\S) at the end
  if (last_start > i) return last_start;                       // \s+(?!\S), backtracked
  return w;                                                    // \s+
}

size_t match_qwen(const char* s, size_t n, size_t i, bool llama, const uint8_t* t) {
  const Cp c0 = at(s, i, t);
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (c0.cp == '\'') {
    const size_t e = contraction_end(s, n, i + 1, true, t);
    if (e) return e;
  }
  const size_t j = i + c0.len;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c0.f & unicode::kLetter) return run_end(s, n, j, unicode::kLetter, t);
  if (!(c0.f & unicode::kNumber) && !is_crlf(c0.cp) && j < n) {
    const Cp c1 = at(s, j, t);
    if (c1.f & unicode::kLetter) return run_end(s, n, j + c1.len, unicode::kLetter, t);
  }
  // \p{N} or \p{N}{1,3}
  if (c0.f & unicode::kNumber) {
    if (!llama) return j;
    size_t e = j;
    for (int k = 1; k < 3 && e < n; ++k) {
      const Cp c = at(s, e, t);
      if (!(c.f & unicode::kNumber)) break;
      e += c.len;
    }
    return e;
  }
  // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
  size_t p = SIZE_MAX;
  if (is_punct(c0.f)) {
    p = j;
  } else if (c0.cp == ' ' && j < n) {
    const Cp c1 = at(s, j, t);
    if (is_punct(c1.f)) p = j + c1.len;
  }
  if (p != SIZE_MAX) {
    size_t e = punct_end(s, n, p, t);
    while (e < n && (s[e] == '\r' || s[e] == '\n')) ++e;
    return e;
  }
  // c0 is whitespace: \s*[\r\n]+ | \s+(?!\S) | \s+
  return whitespace_end(s, n, i, true, t);
}

size_t match_gpt2(const char* s, size_t n, size_t i, const uint8_t* t) {
  const Cp c0 = at(s, i, t);
  if (c0.cp == '\'') {
    const size_t e = contraction_end(s, n, i + 1, false, t);
    if (e) return e;
  }
  const size_t j = i + c0.len;
  // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: the class of the first non-prefix code point
  // decides which alternative matches.
  Cp c = c0;
  size_t start = i;
  if (c0.cp == ' ' && j < n) {
    const Cp c1 = at(s, j, t);
    if (!(c1.f & unicode::kSpace)) {
      c = c1;
      start = j;
    }
  }
  if (c.f & unicode::kLetter) return run_end(s, n, start + c.len, unicode::kLetter, t);
  if (c.f & unicode::kNumber) return run_end(s, n, start + c.len, unicode::kNumber, t);
  if (is_punct(c.f)) return punct_end(s, n, start + c.len, t);
  return whitespace_end(s, n, i, false, t);
}

}  // namespace

std::string_view split_pattern_regex(SplitPattern p) {
  switch (p) {
    case SplitPattern::Qwen2:
      return kQwen2Regex;
    case SplitPattern::Llama3:
      return kLlama3Regex;
    case SplitPattern::Gpt2:
      return kGpt2Regex;
  }
  return {};
}

std::optional<SplitPattern> recognise_split_pattern(std::string_view regex) {
  if (regex == kQwen2Regex) return SplitPattern::Qwen2;
  if (regex == kLlama3Regex) return SplitPattern::Llama3;
  if (regex == kGpt2Regex) return SplitPattern::Gpt2;
  return std::nullopt;
}

const char* split_pattern_name(SplitPattern p) {
  switch (p) {
    case SplitPattern::Qwen2:
      return "qwen2";
    case SplitPattern::Llama3:
      return "llama3";
    case SplitPattern::Gpt2:
      return "gpt2";
  }
  return "?";
}

PreTokenizer::PreTokenizer(SplitPattern p) : pattern_(p), flags_(unicode::flag_table()) {}

size_t PreTokenizer::piece_end(std::string_view s, size_t i) const {
  switch (pattern_) {
    case SplitPattern::Qwen2:
      return match_qwen(s.data(), s.size(), i, false, flags_);
    case SplitPattern::Llama3:
      return match_qwen(s.data(), s.size(), i, true, flags_);
    case SplitPattern::Gpt2:
      return match_gpt2(s.data(), s.size(), i, flags_);
  }
  return s.size();
}

std::vector<std::string_view> PreTokenizer::split(std::string_view s) const {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    const size_t e = piece_end(s, i);
    out.push_back(s.substr(i, e - i));
    i = e;
  }
  return out;
}

}  // namespace resp
