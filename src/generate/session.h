// What `resp generate` and `resp eval` share: the generation flags (plain data; the app layer
// registers them on its commands, app/generation_flags.h) and a GenerationSession
// that loads a model directory's config, tokenizer, chat format and generation defaults, then
// the rank's weight shard, decoder and generator.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "generate/generation_config.h"
#include "generate/generator.h"
#include "model/decoder.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace resp {

struct GenerationFlags {
  SamplingOverrides sampling;
  std::optional<int> max_new_tokens;
  uint64_t seed = 0;
  int batch_size = 8;
  std::vector<std::string> stop;
  std::string thinking;       // "" (= auto), "auto", "on", "off"
  std::optional<bool> chat;   // --chat / --no-chat (unset: the command's default)
  std::string chat_format;    // a hand-written format's name (default: the model's own template)
  std::string system_prompt;  // --system: a leading system message (default: none)
  int max_prefill_tokens = 2048;
  int max_context = 0;  // 0: the model's max_position_embeddings
  bool quiet = false;   // no progress output
};

// "" or "auto" -> Auto, "on" -> On, "off" -> Off.
Thinking parse_thinking(const std::string& s);

class GenerationSession {
 public:
  // Reads config.json, generation_config.json and the tokenizer, and applies `flags`.
  // `default_max_new_tokens` is used when the flags do not set it.
  GenerationSession(const std::filesystem::path& model_dir, const GenerationFlags& flags,
                    int default_max_new_tokens);

  const std::filesystem::path& model_dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return tokenizer_; }
  GenerationConfig& generation_config() { return gen_; }
  const GenerationFlags& flags() const { return flags_; }
  // Context limit of prompt + output.
  int context() const;
  // The chat format (ConfigError when the model has no usable chat template).
  const ChatFormat& chat() const;
  bool has_chat_template() const { return !tokenizer_.chat_template().empty(); }
  // The flags' thinking setting and system prompt as chat options (thinking unresolved: the
  // chat format resolves auto and refuses what its template cannot do).
  ChatOptions chat_options() const;
  // Whether outputs of `chat` mode with the flags' thinking setting contain a thinking block.
  bool thinking_output(bool chat) const;

  // Text -> ids; `raw` (not chat-rendered) text gets the tokenizer's special prefix/suffix.
  std::vector<int32_t> encode(const std::string& text, bool raw) const;
  // Ids -> text without special tokens; ids outside the tokenizer's vocabulary are skipped.
  std::string decode(const std::vector<int32_t>& ids) const;
  // Checks a prompt (non-empty, fits the context); UsageError starting with `where`.
  void check_prompt(const std::vector<int32_t>& ids, const std::string& where) const;

  // Loads this rank's weight shard and builds the decoder and generator (call after the
  // prompts are validated, so bad input fails before the expensive part).
  // The shard is placed by `tp`'s size and rank.
  void load(Backend& backend, Communicator& tp);
  Generator& generator();

 private:
  std::filesystem::path dir_;
  GenerationFlags flags_;
  ModelConfig config_;
  Tokenizer tokenizer_;
  GenerationConfig gen_;
  mutable std::optional<ChatFormat> chat_;
  std::unique_ptr<ModelWeights> weights_;
  std::unique_ptr<Decoder> decoder_;
  std::unique_ptr<Generator> generator_;
};

}  // namespace resp
