// Chat formatting. By default a model's own Jinja chat template (tokenizer_config.json
// `chat_template`, or chat_template.jinja) is rendered by the interpreter in jinja_template.h,
// with the variables transformers' apply_chat_template passes: messages, add_generation_prompt,
// bos_token / eos_token, tools = documents = None, enable_thinking only when thinking is set
// explicitly, date_string and a strftime_now() that formats that date (so renderings do not
// depend on today). The text is byte-identical to apply_chat_template's for messages with a
// role and a string content.
//
// Four families also exist as hand-written C++ formats, used only when named explicitly
// (--chat-format / chat_format:), e.g. for a model whose template is missing or broken:
//   qwen3        Qwen3 hybrid-thinking template (enable_thinking; <think> handling of history)
//   qwen2.5      Qwen2.5 template (default "You are Qwen, created by Alibaba Cloud..." system)
//   deepseek-r1  DeepSeek-R1 / R1-Distill template (<｜User｜>, <｜Assistant｜>, <think>\n prefill)
//   llama3       Llama-3.1 / 3.2 template (system header with Cutting Knowledge / Today Date)
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pystr.h"  // py_strip, for callers of this header

namespace resp {

class Tokenizer;
namespace jinja {
class Template;
}

enum class ChatFamily { Qwen3, Qwen25, DeepSeekR1, Llama3 };

// Thinking mode.
//   Default  the template's own default (apply_chat_template without enable_thinking)
//   Auto     on when the template has a thinking mode, otherwise off (RESP's default: it
//            generates in thinking mode whenever the model has one)
//   On / Off enable_thinking=True / False. On with a template that has no thinking mode and
//            Off with one that always thinks (DeepSeek-R1) are ConfigErrors.
enum class Thinking { Default, On, Off, Auto };

struct ChatMessage {
  std::string role;  // system, user, assistant, tool (llama3 also: ipython)
  std::string content;
};

struct ChatOptions {
  bool add_generation_prompt = true;
  Thinking thinking = Thinking::Default;
  // When not empty: a leading {"role": "system"} message with this text. resp never adds a
  // system prompt of its own (a template's own default, e.g. Qwen2.5's, is the template's).
  std::string system_prompt;
  // Llama-3's "Today Date": passed as date_string, and what strftime_now() formats, so that
  // renderings are reproducible (transformers would use today). "DD Mon YYYY" or "YYYY-MM-DD".
  std::string date_string = "26 Jul 2024";
};

class ChatFormat {
 public:
  // A hand-written format: "qwen3", "qwen2.5" (or "qwen2"), "deepseek-r1", "llama3"; UsageError
  // for anything else.
  static ChatFormat named(std::string_view name, std::string bos_token = "");
  // The model's own Jinja template. `origin` names it in errors ("chat template of <origin>");
  // a template that does not parse is a ConfigError (UnsupportedError for Jinja features the
  // interpreter lacks).
  static ChatFormat from_template(std::string_view chat_template, std::string bos_token = "",
                                  std::string eos_token = "", std::string origin = "");
  // The hand-written family whose template this is (ConfigError naming what was found when it
  // is none of them).
  static ChatFormat detect(std::string_view chat_template, std::string bos_token = "");
  // The format for a tokenizer: the hand-written `name` when not empty (its control tokens
  // must exist in the tokenizer), otherwise the tokenizer's own chat template (ConfigError when
  // it has none). `origin` (the model directory) names the template in errors.
  static ChatFormat for_tokenizer(const Tokenizer& tok, std::string_view name = {},
                                  std::string origin = {});

  // True when rendering the model's own template, false for a hand-written format.
  bool is_template() const { return template_ != nullptr; }
  // The hand-written family, or the family a template is recognised as (informational: the
  // template is what renders); nullopt for other templates.
  std::optional<ChatFamily> family() const { return family_; }
  // "template" for the model's own template, else the family's name.
  const char* name() const;
  // The template switches thinking with enable_thinking, or always thinks.
  bool has_thinking_mode() const { return has_thinking_mode_; }
  // The generation prompt opens a thinking block whatever the settings (DeepSeek-R1).
  bool always_thinks() const { return always_thinks_; }
  // Thinking::Auto resolved; ConfigError for On without a thinking mode and for Off with a
  // template that always thinks. Default stays Default.
  Thinking resolve(Thinking t) const;
  // Whether a generation prompted with thinking `t` starts in thinking mode (its output holds
  // the reasoning, then "</think>"). Resolves `t` (same errors).
  bool thinks(Thinking t) const;
  // The control tokens a hand-written format relies on (each must be an added token); empty
  // for a template.
  std::vector<std::string> control_tokens() const;

  std::string render(const std::vector<ChatMessage>& messages, const ChatOptions& opts) const;
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true,
                     Thinking thinking = Thinking::Default) const;

  static const char* family_name(ChatFamily f);

 private:
  ChatFormat() = default;
  std::string render_template(const std::vector<ChatMessage>& m, const ChatOptions& o,
                              Thinking t) const;
  // "chat template of <origin>" / "chat format <name>", for error messages.
  std::string describe() const;

  std::shared_ptr<const jinja::Template> template_;
  std::optional<ChatFamily> family_;
  std::string bos_, eos_, origin_;
  bool deepseek_think_prefill_ = true;  // older R1 templates end the prompt at <｜Assistant｜>
  bool has_thinking_mode_ = false;
  bool always_thinks_ = false;
  bool default_thinks_ = false;  // what the template does without enable_thinking
};

// "", "auto" -> Auto, "on" -> On, "off" -> Off (`what` names the setting in the UsageError).
Thinking parse_thinking_setting(const std::string& s, const std::string& what = "--thinking");

}  // namespace resp
