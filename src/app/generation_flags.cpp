#include "app/generation_flags.h"

#include <CLI/CLI.hpp>
#include <string>

namespace resp::app {

void add_generation_flags(CLI::App& cmd, GenerationFlags& flags) {
  cmd.add_flag_function(
      "--chat,!--no-chat", [&flags](int64_t n) { flags.chat = n > 0; },
      "Render prompts through the model's chat template (--no-chat: plain text)");
  cmd.add_option("--thinking", flags.thinking,
                 "Thinking mode of the chat template: auto (default: on when the template has "
                 "one) | on | off")
      ->check([](const std::string& s) {
        return (s == "auto" || s == "on" || s == "off") ? std::string()
                                                        : std::string("must be auto, on or off");
      });
  cmd.add_option("--system", flags.system_prompt,
                 "System prompt: a leading system message in every chat prompt (default: none)");
  cmd.add_option("--chat-format", flags.chat_format,
                 "Hand-written chat format instead of the model's own template (qwen3, qwen2.5, "
                 "deepseek-r1, llama3)");
  cmd.add_option_function<int>(
      "--max-new-tokens", [&flags](const int& v) { flags.max_new_tokens = v; },
      "Maximum generated tokens per sequence");
  cmd.add_option_function<double>(
      "--temperature", [&flags](const double& v) { flags.sampling.temperature = v; },
      "Sampling temperature (0 = greedy; default: generation_config.json)");
  cmd.add_option_function<double>(
      "--top-p", [&flags](const double& v) { flags.sampling.top_p = v; },
      "Nucleus sampling mass in (0, 1] (default: generation_config.json)");
  cmd.add_option_function<int>(
      "--top-k", [&flags](const int& v) { flags.sampling.top_k = v; },
      "Keep the k most likely tokens, 0 = off (default: generation_config.json)");
  // CLI11 reads "-1" into an unsigned seed as 2^64-1; a negative seed is a mistake, not a seed.
  cmd.add_option("--seed", flags.seed, "Sampling seed (draws keyed by seed, prompt id, step)")
      ->check([](const std::string& s) {
        return s.find('-') == std::string::npos ? std::string()
                                                : std::string("must be a non-negative integer");
      });
  cmd.add_option("--batch-size", flags.batch_size, "Sequences decoded together (KV-cache slots)");
  cmd.add_option("--stop", flags.stop, "Stop string (repeatable)");
  cmd.add_option("--max-prefill-tokens", flags.max_prefill_tokens,
                 "Prompt tokens prefilled per step (bounds activation memory)");
  cmd.add_option("--max-context", flags.max_context,
                 "Context limit of prompt + output (default: max_position_embeddings)");
  cmd.add_flag("--quiet", flags.quiet, "No progress output");
}

}  // namespace resp::app
