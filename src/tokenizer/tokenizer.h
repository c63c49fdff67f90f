// Tokenizer: Hugging Face `tokenizer.json` (byte-level BPE) + `tokenizer_config.json`, matching
// the `tokenizers` library token for token. Supported components (anything else is refused with
// an UnsupportedError naming it; docs/tokenizer.md has the details):
//   model          BPE (merges as "a b" strings or ["a", "b"] pairs; ignore_merges, unk_token,
//                  fuse_unk, byte_fallback, continuing_subword_prefix, end_of_word_suffix;
//                  byte tokens may be missing: those bytes are dropped, as tokenizers does)
//   normalizer     null, NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace (String), Strip,
//                  Sequence
//   pre_tokenizer  one ByteLevel (add_prefix_space, use_regex), alone or in a Sequence with Split
//                  (Qwen2 / Llama-3 / GPT-2 regex or a String), Digits, Punctuation, Whitespace,
//                  WhitespaceSplit
//   post_processor null, ByteLevel, TemplateProcessing, RobertaProcessing, BertProcessing,
//                  Sequence of these
//   decoder        ByteLevel
//   added_tokens   special or not, lstrip / rstrip / single_word / normalized
// A Tokenizer is immutable after loading, cheap to copy (shared state) and safe to use from
// several threads at once.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace resp {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
  bool normalized = false;
};

struct EncodeOptions {
  // Add the special tokens of the post-processor (Llama-3's <|begin_of_text|>), as
  // `tokenizer(text)` does in transformers.
  bool add_special = false;
  // Treat special added tokens in the text as plain text (tokenizers' encode_special_tokens).
  // Non-special added tokens such as Qwen3's <think> are still matched.
  bool split_special = false;
};

class Tokenizer {
 public:
  // Reads `dir`/tokenizer.json and, when present, `dir`/tokenizer_config.json,
  // `dir`/generation_config.json (extra eos ids) and `dir`/chat_template.jinja.
  static Tokenizer load(const std::filesystem::path& dir);
  // Builds a tokenizer from parsed JSON (`config` may be null). `source` names the input in
  // error messages.
  static Tokenizer from_json(const nlohmann::json& tokenizer_json, const nlohmann::json& config,
                             const std::string& source = "tokenizer.json");

  // Text -> ids. `text` must be valid UTF-8 (FormatError otherwise).
  std::vector<int32_t> encode(std::string_view text, bool add_special = false) const;
  std::vector<int32_t> encode(std::string_view text, const EncodeOptions& opts) const;

  // Ids -> text, as tokenizers' decode(ids, skip_special_tokens): byte-level decoding, invalid
  // UTF-8 replaced by U+FFFD. An id outside the vocabulary is a UsageError.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // The raw bytes a token decodes to (may be an incomplete UTF-8 sequence).
  const std::string& token_bytes(int32_t id) const;
  // The token's string as in the vocab ("Ġhello", "<|im_end|>"); empty for an unused id.
  const std::string& token(int32_t id) const;
  // Id of a vocab or added token given by its string; nullopt when it does not exist.
  std::optional<int32_t> token_id(std::string_view token) const;
  bool is_special(int32_t id) const;

  // 1 + the largest id (vocab and added tokens).
  int32_t vocab_size() const;
  // tokenizer_config's bos / eos / pad tokens (nullopt / empty when not set).
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> pad_id() const;
  // The eos token of tokenizer_config.json, then any other ids listed as eos_token_id in
  // generation_config.json (deduplicated).
  const std::vector<int32_t>& eos_ids() const;
  const std::string& bos_token() const;
  const std::string& eos_token() const;
  // The special ids encode(text, add_special = true) puts before / after the text.
  const std::vector<int32_t>& special_prefix() const;
  const std::vector<int32_t>& special_suffix() const;

  // The Jinja chat template (empty when the model has none).
  const std::string& chat_template() const;
  const std::vector<AddedToken>& added_tokens() const;
  // Short description of the components, e.g. "BPE 151643 merges 151387, NFC, split qwen2".
  std::string describe() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

// Incremental detokenizer for streaming generation: push() returns the text that became
// complete, holding back the bytes of a UTF-8 sequence that a later token may finish; flush()
// returns what is left (an unfinished sequence becomes U+FFFD). The concatenation of all outputs
// equals Tokenizer::decode of all ids.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok, bool skip_special = false)
      : tok_(tok), skip_special_(skip_special) {}
  std::string push(int32_t id);
  std::string flush();
  // Bytes held back (0..3).
  size_t pending() const { return pending_.size(); }

 private:
  Tokenizer tok_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace resp
