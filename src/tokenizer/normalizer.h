// The normalizer of a tokenizer.json: a list of steps applied in order to each stretch of text
// between added tokens (and to the content of `normalized` added tokens), as tokenizers does.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/unicode.h"

namespace resp {

struct NormStep {
  enum class Kind {
    Form,       // NFC / NFD / NFKC / NFKD (`form`)
    Lowercase,  // per-character full lowercase mapping
    Prepend,    // `text` before a non-empty input
    Replace,    // every non-overlapping occurrence of `pattern` becomes `text`
    Strip       // White_Space removed on the left (`left`) and/or right (`right`)
  };
  Kind kind = Kind::Form;
  unicode::NormalForm form = unicode::NormalForm::NFC;
  std::string pattern, text;
  bool left = false, right = false;
};

class Normalizer {
 public:
  Normalizer() = default;
  explicit Normalizer(std::vector<NormStep> steps) : steps_(std::move(steps)) {}

  bool empty() const { return steps_.empty(); }
  // Returns false and leaves `out` untouched when the text does not change.
  bool apply(std::string_view in, std::string& out) const;
  std::string apply_copy(std::string_view in) const;
  // "NFC", "NFKC+lowercase", "none".
  std::string describe() const;

 private:
  std::vector<NormStep> steps_;
};

}  // namespace resp
