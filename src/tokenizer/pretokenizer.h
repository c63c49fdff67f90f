// Byte-level pre-tokenization: the Split regexes of the supported model families, matched by a
// hand-written matcher that follows Oniguruma's leftmost-alternative, backtracking semantics, and
// PreTokenizerChain, the steps of a tokenizer.json pre_tokenizer (a Sequence) in order.
//
//   Qwen2 (Qwen2/2.5/3, DeepSeek-R1-Distill-Qwen):
//     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//     \s*[\r\n]+|\s+(?!\S)|\s+
//   Llama3: the same with \p{N}{1,3} in place of \p{N}
//   Gpt2 (ByteLevel use_regex=true):
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resp {

enum class SplitPattern { Qwen2, Llama3, Gpt2 };

// The regex source text of each supported pattern, exactly as it appears in tokenizer.json.
std::string_view split_pattern_regex(SplitPattern p);
// Recognises a Split regex; nullopt when it is not one of the supported patterns.
std::optional<SplitPattern> recognise_split_pattern(std::string_view regex);
const char* split_pattern_name(SplitPattern p);

class PreTokenizer {
 public:
  explicit PreTokenizer(SplitPattern p);

  SplitPattern pattern() const { return pattern_; }

  // The end (exclusive byte offset) of the piece that starts at byte `i` of `s` (i < s.size()).
  // `s` must be valid UTF-8. Every position starts a match, so pieces tile the text.
  size_t piece_end(std::string_view s, size_t i) const;

  // Convenience: all pieces of `s`.
  std::vector<std::string_view> split(std::string_view s) const;

 private:
  SplitPattern pattern_;
  const unsigned char* flags_;
};

// tokenizers' SplitDelimiterBehavior: what becomes of the matches of a split pattern.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };
// Parses "Isolated", "MergedWithPrevious", ... (the spelling of tokenizer.json).
std::optional<SplitBehavior> parse_split_behavior(std::string_view name);

// One step of a pre-tokenizer. Each step refines every piece the steps before it produced, as
// tokenizers' PreTokenizedString::split does; empty pieces vanish. Steps after the ByteLevel one
// see the text as tokenizers does there: each byte is the character that stands for it in the
// byte alphabet (so Digits after ByteLevel also isolates byte 0xB2, which stands for '²').
struct PreTokStep {
  enum class Kind {
    Regex,            // Split with a recognised regex (`pattern`, `behavior`, `invert`)
    Literal,          // Split with a String pattern (`literal`, `behavior`, `invert`)
    Digits,           // Digits: \p{N} characters, Isolated (individual_digits) or Contiguous
    Punctuation,      // Punctuation(`behavior`): P* or ASCII punctuation characters
    Whitespace,       // Whitespace: runs of \w and of [^\w\s], whitespace dropped
    WhitespaceSplit,  // WhitespaceSplit: split on White_Space, which is dropped
    PrefixSpace,      // ByteLevel add_prefix_space: ' ' before a piece that lacks one
    ByteLevel         // the byte-level mapping itself
  };
  Kind kind = Kind::ByteLevel;
  SplitPattern pattern = SplitPattern::Gpt2;
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  std::string literal;
};

class PreTokenizerChain {
 public:
  // A Regex step after the ByteLevel one is a UsageError (the matchers read UTF-8).
  explicit PreTokenizerChain(std::vector<PreTokStep> steps);

  // Calls f on each final piece of `s` (valid UTF-8), in order. A piece may be a temporary (after
  // PrefixSpace), valid only during the call.
  void for_each(std::string_view s, const std::function<void(std::string_view)>& f) const;
  std::vector<std::string> split(std::string_view s) const;

  // The matcher when the chain is just one tiling regex before the byte-level mapping (the
  // common case, which the encoder runs without the general machinery); nullptr otherwise.
  const PreTokenizer* single_regex() const { return single_ ? &*single_ : nullptr; }
  const std::vector<PreTokStep>& steps() const { return steps_; }
  // "gpt2", "digits+bytelevel(gpt2)", ...
  std::string describe() const;

 private:
  void run(size_t step, std::string_view s, bool bytes,
           const std::function<void(std::string_view)>& f) const;

  std::vector<PreTokStep> steps_;
  std::vector<std::optional<PreTokenizer>> matchers_;  // per step, for Regex steps
  std::optional<PreTokenizer> single_;
  std::array<uint8_t, 256> byte_flags_{};  // character flags of the byte alphabet
};

}  // namespace resp
