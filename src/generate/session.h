// What `resp generate` and `resp eval` share: the generation flags (plain data, registered on a
// CLI11 command by a template so this layer does not depend on CLI11) and a GenerationSession
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
  int tp = 1;
  int threads = 0;
  std::string device = "auto";  // cpu | cuda | auto (app::start_runtime)
  bool quiet = false;           // no progress output
};

// Adds the generation flags to a CLI11 command (`App` is CLI::App).
template <class App>
void add_generation_flags(App* cmd, GenerationFlags& f) {
  cmd->add_flag_function(
      "--chat,!--no-chat", [&f](int64_t n) { f.chat = n > 0; },
      "Render prompts through the model's chat template (--no-chat: plain text)");
  cmd->add_option("--thinking", f.thinking,
                  "Thinking mode of the chat template: auto (default: on when the template has "
                  "one) | on | off")
      ->check([](const std::string& s) {
        return (s == "auto" || s == "on" || s == "off") ? std::string()
                                                        : std::string("must be auto, on or off");
      });
  cmd->add_option("--system", f.system_prompt,
                  "System prompt: a leading system message in every chat prompt (default: none)");
  cmd->add_option("--chat-format", f.chat_format,
                  "Hand-written chat format instead of the model's own template (qwen3, qwen2.5, "
                  "deepseek-r1, llama3)");
  cmd->template add_option_function<int>(
      "--max-new-tokens", [&f](const int& v) { f.max_new_tokens = v; },
      "Maximum generated tokens per sequence");
  cmd->template add_option_function<double>(
      "--temperature", [&f](const double& v) { f.sampling.temperature = v; },
      "Sampling temperature (0 = greedy; default: generation_config.json)");
  cmd->template add_option_function<double>(
      "--top-p", [&f](const double& v) { f.sampling.top_p = v; },
      "Nucleus sampling mass in (0, 1] (default: generation_config.json)");
  cmd->template add_option_function<int>(
      "--top-k", [&f](const int& v) { f.sampling.top_k = v; },
      "Keep the k most likely tokens, 0 = off (default: generation_config.json)");
  // CLI11 reads "-1" into an unsigned seed as 2^64-1; a negative seed is a mistake, not a seed.
  cmd->add_option("--seed", f.seed, "Sampling seed (draws keyed by seed, prompt id, step)")
      ->check([](const std::string& s) {
        return s.find('-') == std::string::npos ? std::string()
                                                : std::string("must be a non-negative integer");
      });
  cmd->add_option("--batch-size", f.batch_size, "Sequences decoded together (KV-cache slots)");
  cmd->add_option("--stop", f.stop, "Stop string (repeatable)");
  cmd->add_option("--max-prefill-tokens", f.max_prefill_tokens,
                  "Prompt tokens prefilled per step (bounds activation memory)");
  cmd->add_option("--max-context", f.max_context,
                  "Context limit of prompt + output (default: max_position_embeddings)");
  cmd->add_option("--tp", f.tp, "Tensor-parallel ranks per replica (world = tp x dp)");
  cmd->add_option("--threads", f.threads, "CPU threads per rank (default: OMP_NUM_THREADS or all)");
  cmd->add_option("--device", f.device,
                  "cpu | cuda | auto (default auto: cuda when a GPU is visible)")
      ->check([](const std::string& s) {
        return (s == "cpu" || s == "cuda" || s == "auto")
                   ? std::string()
                   : std::string("must be cpu, cuda or auto");
      });
  cmd->add_flag("--quiet", f.quiet, "No progress output");
}

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
  void load(Backend& backend, Communicator& tp, int tp_size, int tp_rank);
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
