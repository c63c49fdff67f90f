#include "tokenizer/pretokenizer.h"

#include <algorithm>
#include <cstdint>

#include "core/error.h"
#include "tokenizer/bpe.h"
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

// ---- PreTokenizerChain --------------------------------------------------------------------------

namespace {

// A stretch of a piece and whether the split pattern matched it (tokenizers' find_matches).
struct Span {
  size_t begin, end;
  bool is_match;
};

// tokenizers' NormalizedString::split: applies `behavior` to the matches, then keeps the
// non-removed, non-empty stretches.
void apply_behavior(const std::vector<Span>& spans, SplitBehavior behavior,
                    std::vector<std::pair<size_t, size_t>>& pieces) {
  pieces.clear();
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const Span& m : spans) pieces.emplace_back(m.begin, m.end);
      break;
    case SplitBehavior::Removed:
      for (const Span& m : spans)
        if (!m.is_match) pieces.emplace_back(m.begin, m.end);
      break;
    case SplitBehavior::Contiguous:
      for (const Span& m : spans) {
        if (m.is_match == previous_match && !pieces.empty()) {
          pieces.back().second = m.end;
        } else {
          pieces.emplace_back(m.begin, m.end);
        }
        previous_match = m.is_match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Span& m : spans) {
        if (m.is_match && !previous_match && !pieces.empty()) {
          pieces.back().second = m.end;
        } else {
          pieces.emplace_back(m.begin, m.end);
        }
        previous_match = m.is_match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (size_t k = spans.size(); k-- > 0;) {
        const Span& m = spans[k];
        if (m.is_match && !previous_match && !pieces.empty()) {
          pieces.back().first = m.begin;
        } else {
          pieces.emplace_back(m.begin, m.end);
        }
        previous_match = m.is_match;
      }
      std::reverse(pieces.begin(), pieces.end());
      break;
  }
  pieces.erase(std::remove_if(pieces.begin(), pieces.end(),
                              [](const auto& p) { return p.first == p.second; }),
               pieces.end());
}

// Each character with any of `mask` is a match of its own; the stretches between are not.
void char_matches(std::string_view s, bool bytes, uint8_t mask, const uint8_t* byte_flags,
                  std::vector<Span>& spans) {
  const uint8_t* table = unicode::flag_table();
  size_t i = 0, last = 0;
  while (i < s.size()) {
    size_t len = 1;
    uint8_t f;
    if (bytes) {
      f = byte_flags[static_cast<unsigned char>(s[i])];
    } else {
      f = table[unicode::decode_utf8(s.data(), i, len)];
    }
    if (f & mask) {
      if (last < i) spans.push_back({last, i, false});
      spans.push_back({i, i + len, true});
      last = i + len;
    }
    i += len;
  }
  if (last < s.size()) spans.push_back({last, s.size(), false});
}

}  // namespace

std::optional<SplitBehavior> parse_split_behavior(std::string_view name) {
  if (name == "Removed") return SplitBehavior::Removed;
  if (name == "Isolated") return SplitBehavior::Isolated;
  if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (name == "Contiguous") return SplitBehavior::Contiguous;
  return std::nullopt;
}

PreTokenizerChain::PreTokenizerChain(std::vector<PreTokStep> steps) : steps_(std::move(steps)) {
  bool byte_level = false;
  for (const PreTokStep& st : steps_) {
    if (st.kind == PreTokStep::Kind::Regex && byte_level)
      throw UsageError("PreTokenizerChain: a regex step after the byte-level mapping");
    byte_level = byte_level || st.kind == PreTokStep::Kind::ByteLevel;
    matchers_.emplace_back();
    if (st.kind == PreTokStep::Kind::Regex) matchers_.back().emplace(st.pattern);
  }
  // Every position of the text starts a match of the supported regexes, so the matches tile the
  // text and Isolated, MergedWithPrevious and MergedWithNext all keep each match as a piece.
  const bool tiles = steps_.size() == 2 && steps_[0].kind == PreTokStep::Kind::Regex &&
                     !steps_[0].invert && steps_[0].behavior != SplitBehavior::Removed &&
                     steps_[0].behavior != SplitBehavior::Contiguous &&
                     steps_[1].kind == PreTokStep::Kind::ByteLevel;
  if (tiles) single_.emplace(steps_[0].pattern);
  for (int b = 0; b < 256; ++b)
    byte_flags_[static_cast<size_t>(b)] =
        unicode::char_flags(byte_to_unicode(static_cast<uint8_t>(b)));
}

void PreTokenizerChain::for_each(std::string_view s,
                                 const std::function<void(std::string_view)>& f) const {
  if (!s.empty()) run(0, s, false, f);
}

std::vector<std::string> PreTokenizerChain::split(std::string_view s) const {
  std::vector<std::string> out;
  for_each(s, [&](std::string_view p) { out.emplace_back(p); });
  return out;
}

void PreTokenizerChain::run(size_t step, std::string_view s, bool bytes,
                            const std::function<void(std::string_view)>& f) const {
  if (step == steps_.size()) {
    f(s);
    return;
  }
  const PreTokStep& st = steps_[step];
  using K = PreTokStep::Kind;
  if (st.kind == K::ByteLevel) {
    run(step + 1, s, true, f);
    return;
  }
  if (st.kind == K::PrefixSpace) {
    if (s[0] == ' ') {
      run(step + 1, s, bytes, f);
    } else {
      std::string spaced;
      spaced.reserve(s.size() + 1);
      spaced.push_back(' ');
      spaced.append(s);
      run(step + 1, spaced, bytes, f);
    }
    return;
  }
  std::vector<Span> spans;
  SplitBehavior behavior = st.behavior;
  bool invert = st.invert;
  switch (st.kind) {
    case K::Regex: {
      const PreTokenizer& m = *matchers_[step];
      for (size_t i = 0; i < s.size();) {
        const size_t e = m.piece_end(s, i);
        spans.push_back({i, e, true});
        i = e;
      }
      break;
    }
    case K::Literal: {
      // The pattern is matched against the text as the step sees it: after the byte-level
      // mapping a literal made of alphabet characters stands for the bytes it encodes.
      std::string needle = st.literal;
      bool possible = !needle.empty();
      if (bytes && possible) possible = byte_level_decode(st.literal, needle);
      size_t last = 0;
      if (possible) {
        for (size_t at = s.find(needle); at != std::string_view::npos;
             at = s.find(needle, at + needle.size())) {
          if (last < at) spans.push_back({last, at, false});
          spans.push_back({at, at + needle.size(), true});
          last = at + needle.size();
        }
      }
      if (last < s.size()) spans.push_back({last, s.size(), false});
      break;
    }
    case K::Digits:
      char_matches(s, bytes, unicode::kNumber, byte_flags_.data(), spans);
      invert = false;
      break;
    case K::Punctuation:
      char_matches(s, bytes, unicode::kPunct, byte_flags_.data(), spans);
      invert = false;
      break;
    case K::WhitespaceSplit:
      char_matches(s, bytes, unicode::kSpace, byte_flags_.data(), spans);
      behavior = SplitBehavior::Removed;
      invert = false;
      break;
    case K::Whitespace: {
      // tokenizers: split(Invert(\w+|[^\w\s]+), Removed): runs of word characters and runs of
      // other non-space characters are kept, whitespace between them is dropped.
      const uint8_t* table = unicode::flag_table();
      auto cls = [&](size_t i, size_t& len) {
        len = 1;
        const uint8_t fl = bytes ? byte_flags_[static_cast<unsigned char>(s[i])]
                                 : table[unicode::decode_utf8(s.data(), i, len)];
        return (fl & unicode::kWord) ? 1 : (fl & unicode::kSpace) ? 0 : 2;
      };
      size_t i = 0;
      while (i < s.size()) {
        size_t len;
        const int c = cls(i, len);
        size_t e = i + len;
        while (e < s.size()) {
          size_t l2;
          if (cls(e, l2) != c) break;
          e += l2;
        }
        spans.push_back({i, e, c == 0});
        i = e;
      }
      behavior = SplitBehavior::Removed;
      invert = false;
      break;
    }
    case K::PrefixSpace:
    case K::ByteLevel:
      break;
  }
  if (invert)
    for (Span& m : spans) m.is_match = !m.is_match;
  std::vector<std::pair<size_t, size_t>> pieces;
  apply_behavior(spans, behavior, pieces);
  for (const auto& [b, e] : pieces) run(step + 1, s.substr(b, e - b), bytes, f);
}

std::string PreTokenizerChain::describe() const {
  std::string out;
  for (const PreTokStep& st : steps_) {
    if (!out.empty()) out += "+";
    switch (st.kind) {
      case PreTokStep::Kind::Regex:
        out += split_pattern_name(st.pattern);
        break;
      case PreTokStep::Kind::Literal:
        out += "split";
        break;
      case PreTokStep::Kind::Digits:
        out += "digits";
        break;
      case PreTokStep::Kind::Punctuation:
        out += "punctuation";
        break;
      case PreTokStep::Kind::Whitespace:
        out += "whitespace";
        break;
      case PreTokStep::Kind::WhitespaceSplit:
        out += "whitespace-split";
        break;
      case PreTokStep::Kind::PrefixSpace:
        out += "prefix-space";
        break;
      case PreTokStep::Kind::ByteLevel:
        out += "bytelevel";
        break;
    }
  }
  return out;
}

}  // namespace resp
