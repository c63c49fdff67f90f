// Chat formatting for the model families users prune. Each family's Hugging Face chat template is
// re-implemented in C++ (no Jinja engine): the output string is byte-identical to what
// transformers' apply_chat_template renders for messages with a role and a string content
// (tool calls and tool definitions are not supported). The family is detected from
// distinctive markers in the model's chat_template, or named explicitly.
//
//   qwen3        Qwen3 hybrid-thinking template (enable_thinking; <think> handling of history)
//   qwen2.5      Qwen2.5 template (default "You are Qwen, created by Alibaba Cloud..." system)
//   deepseek-r1  DeepSeek-R1 / R1-Distill template (<｜User｜>, <｜Assistant｜>, <think>\n prefill)
//   llama3       Llama-3.1 / 3.2 template (system header with Cutting Knowledge / Today Date)
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace resp {

class Tokenizer;

enum class ChatFamily { Qwen3, Qwen25, DeepSeekR1, Llama3 };

// Thinking mode. Default follows the template's default (Qwen3: on). Qwen3 honours on and off;
// DeepSeek-R1 always thinks (off is an error); Qwen2.5 and Llama-3 never do (on is an error).
enum class Thinking { Default, On, Off };

struct ChatMessage {
  std::string role;  // system, user, assistant, tool (llama3 also: ipython)
  std::string content;
};

struct ChatOptions {
  bool add_generation_prompt = true;
  Thinking thinking = Thinking::Default;
  // Llama-3: the "Today Date" of the system header. The template's own fallback date is used so
  // that renderings are reproducible (transformers would insert today's date).
  std::string date_string = "26 Jul 2024";
};

class ChatFormat {
 public:
  // "qwen3", "qwen2.5" (or "qwen2"), "deepseek-r1", "llama3"; UsageError for anything else.
  static ChatFormat named(std::string_view name, std::string bos_token = "");
  // Detects the family from a chat_template; ConfigError naming what was found when the
  // template is not one of the supported ones.
  static ChatFormat detect(std::string_view chat_template, std::string bos_token = "");
  // The format for a tokenizer: `name` when not empty, otherwise detected from its
  // chat_template. Checks that the format's control tokens exist in the tokenizer.
  static ChatFormat for_tokenizer(const Tokenizer& tok, std::string_view name = {});

  ChatFamily family() const { return family_; }
  const char* name() const;
  // The control tokens the rendered text relies on (each must be an added token).
  std::vector<std::string> control_tokens() const;

  std::string render(const std::vector<ChatMessage>& messages, const ChatOptions& opts) const;
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true,
                     Thinking thinking = Thinking::Default) const;

  static const char* family_name(ChatFamily f);

 private:
  ChatFormat(ChatFamily f, std::string bos) : family_(f), bos_(std::move(bos)) {}
  std::string render_qwen3(const std::vector<ChatMessage>& m, const ChatOptions& o) const;
  std::string render_qwen25(const std::vector<ChatMessage>& m, const ChatOptions& o) const;
  std::string render_deepseek(const std::vector<ChatMessage>& m, const ChatOptions& o) const;
  std::string render_llama3(const std::vector<ChatMessage>& m, const ChatOptions& o) const;

  ChatFamily family_;
  std::string bos_;
  bool deepseek_think_prefill_ = true;  // older R1 templates end the prompt at <｜Assistant｜>
};

// Python's str.strip() / lstrip() / rstrip() with the default (whitespace) and with a character.
std::string py_strip(std::string_view s);
std::string_view py_strip_char(std::string_view s, char c, bool left, bool right);

}  // namespace resp
