// Byte-level pre-tokenization: the Split regexes of the supported model families, matched by a
// hand-written matcher that follows Oniguruma's leftmost-alternative, backtracking semantics.
//
//   Qwen2 (Qwen2/2.5/3, DeepSeek-R1-Distill-Qwen):
//     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
//     \s*[\r\n]+|\s+(?!\S)|\s+
//   Llama3: the same with \p{N}{1,3} in place of \p{N}
//   Gpt2 (ByteLevel use_regex=true):
//     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
#pragma once

#include <cstddef>
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

}  // namespace resp
