#include "tokenizer/chat.h"

#include <ctime>

#include "core/error.h"
#include "tokenizer/chat_named.h"
#include "tokenizer/jinja_template.h"
#include "tokenizer/tokenizer.h"

namespace resp {

namespace {

constexpr std::string_view kQwenDefaultSystem =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
constexpr std::string_view kDeepSeekBos = "<｜begin▁of▁sentence｜>";
constexpr std::string_view kLlama3Bos = "<|begin_of_text|>";

bool contains(std::string_view s, std::string_view needle) {
  return s.find(needle) != std::string_view::npos;
}

// transformers' strftime_now(format), with `date` ("26 Jul 2024" or "2024-07-26") for now.
std::string format_date(const std::string& date, const std::string& format) {
  std::tm tm{};
  const char* end = strptime(date.c_str(), "%d %b %Y", &tm);
  if (!end || *end) {
    tm = {};
    end = strptime(date.c_str(), "%Y-%m-%d", &tm);
  }
  if (!end || *end)
    throw ConfigError(
        cat("the chat date '", date, "' is not a date like \"26 Jul 2024\" or \"2024-07-26\""));
  timegm(&tm);  // fills in the weekday and day of the year
  std::string buf(format.size() * 8 + 64, '\0');
  const size_t n = std::strftime(buf.data(), buf.size(), format.c_str(), &tm);
  buf.resize(n);
  return buf;
}

// The generation prompt a template renders for one user turn (empty when it cannot render one).
std::string probe(const jinja::Template& t, const std::string& bos, const std::string& eos,
                  std::optional<bool> enable_thinking) {
  using jinja::Value;
  std::vector<std::pair<std::string, Value>> vars = {
      {"messages", jinja::make_list({jinja::make_dict(
                       {{Value("role"), Value("user")}, {Value("content"), Value("x")}})})},
      {"tools", Value::none()},
      {"documents", Value::none()},
      {"add_generation_prompt", Value(true)},
      {"date_string", Value("26 Jul 2024")}};
  if (!bos.empty()) vars.emplace_back("bos_token", Value(bos));
  if (!eos.empty()) vars.emplace_back("eos_token", Value(eos));
  if (enable_thinking) vars.emplace_back("enable_thinking", Value(*enable_thinking));
  try {
    return t.render(vars);
  } catch (const Error&) {
    return {};
  }
}

}  // namespace

Thinking parse_thinking_setting(const std::string& s, const std::string& what) {
  if (s.empty() || s == "auto") return Thinking::Auto;
  if (s == "on") return Thinking::On;
  if (s == "off") return Thinking::Off;
  throw UsageError(cat(what, " must be auto, on or off, got '", s, "'"));
}

// ---- construction ---------------------------------------------------------------------------

const char* ChatFormat::family_name(ChatFamily f) {
  switch (f) {
    case ChatFamily::Qwen3:
      return "qwen3";
    case ChatFamily::Qwen25:
      return "qwen2.5";
    case ChatFamily::DeepSeekR1:
      return "deepseek-r1";
    case ChatFamily::Llama3:
      return "llama3";
  }
  return "?";
}

const char* ChatFormat::name() const {
  if (is_template()) return "template";
  return family_ ? family_name(*family_) : "?";
}

std::string ChatFormat::describe() const {
  if (is_template()) return origin_.empty() ? "the chat template" : "chat template of " + origin_;
  return cat("chat format ", name());
}

ChatFormat ChatFormat::named(std::string_view name, std::string bos_token) {
  ChatFormat f;
  if (name == "qwen3") {
    f.family_ = ChatFamily::Qwen3;
  } else if (name == "qwen2.5" || name == "qwen2") {
    f.family_ = ChatFamily::Qwen25;
  } else if (name == "deepseek-r1" || name == "deepseek-r1-distill") {
    f.family_ = ChatFamily::DeepSeekR1;
    if (bos_token.empty()) bos_token = kDeepSeekBos;
  } else if (name == "llama3" || name == "llama-3") {
    f.family_ = ChatFamily::Llama3;
    if (bos_token.empty()) bos_token = kLlama3Bos;
  } else {
    throw UsageError(
        cat("unknown chat format '", name, "' (expected qwen3, qwen2.5, deepseek-r1 or llama3)"));
  }
  f.bos_ = std::move(bos_token);
  f.has_thinking_mode_ = f.family_ == ChatFamily::Qwen3 || f.family_ == ChatFamily::DeepSeekR1;
  f.always_thinks_ = f.family_ == ChatFamily::DeepSeekR1;
  f.default_thinks_ = f.has_thinking_mode_;
  return f;
}

ChatFormat ChatFormat::from_template(std::string_view chat_template, std::string bos_token,
                                     std::string eos_token, std::string origin) {
  const std::string where = origin.empty() ? "chat template" : "chat template of " + origin;
  if (chat_template.empty()) throw ConfigError(cat(where, " is empty"));
  ChatFormat f;
  f.template_ = std::make_shared<const jinja::Template>(chat_template, where);
  f.bos_ = std::move(bos_token);
  f.eos_ = std::move(eos_token);
  f.origin_ = std::move(origin);
  try {
    f.family_ = detect(chat_template).family_;
  } catch (const ConfigError&) {
    // Not one of the hand-written families; the template renders itself all the same.
  }
  // What the template does with a one-turn conversation tells its thinking behaviour.
  const jinja::Template& t = *f.template_;
  const std::string plain = probe(t, f.bos_, f.eos_, std::nullopt);
  const std::string trimmed = pystr::strip(plain, std::nullopt, false, true);
  f.always_thinks_ = trimmed.size() >= 7 && trimmed.compare(trimmed.size() - 7, 7, "<think>") == 0;
  const bool switchable = t.references("enable_thinking");
  f.has_thinking_mode_ = switchable || f.always_thinks_;
  f.default_thinks_ = f.always_thinks_ || (switchable && plain != probe(t, f.bos_, f.eos_, false));
  return f;
}

ChatFormat ChatFormat::detect(std::string_view t, std::string bos_token) {
  if (t.empty())
    throw ConfigError(
        "the model has no chat_template; choose a format with --chat-format "
        "(qwen3, qwen2.5, deepseek-r1, llama3)");
  if (contains(t, "<|im_start|>")) {
    if (contains(t, "enable_thinking") && contains(t, "reasoning_content") &&
        contains(t, "<think>\\n\\n</think>\\n\\n"))
      return named("qwen3", std::move(bos_token));
    if (contains(t, kQwenDefaultSystem) && !contains(t, "<think>"))
      return named("qwen2.5", std::move(bos_token));
  }
  if (contains(t, "<｜User｜>") && contains(t, "<｜Assistant｜>")) {
    ChatFormat f =
        named("deepseek-r1", bos_token);  // a copy: the llama3 test below may still need it
    if (contains(t, "{{'<｜Assistant｜><think>\\n'}}")) {
      f.deepseek_think_prefill_ = true;
      return f;
    }
    if (contains(t, "{{'<｜Assistant｜>'}}{% endif %}")) {
      f.deepseek_think_prefill_ = false;
      return f;
    }
  }
  if (contains(t, "<|start_header_id|>") && contains(t, "<|eot_id|>") &&
      contains(t, "Cutting Knowledge Date: December 2023") && contains(t, "Today Date: "))
    return named("llama3", std::move(bos_token));
  std::string head(t.substr(0, 80));
  for (char& c : head)
    if (c == '\n') c = ' ';
  throw ConfigError(cat("unrecognised chat_template (starts with \"", head,
                        "...\"): it is none of the hand-written qwen3, qwen2.5, deepseek-r1 and "
                        "llama3 formats; choose a format with --chat-format"));
}

ChatFormat ChatFormat::for_tokenizer(const Tokenizer& tok, std::string_view name,
                                     std::string origin) {
  if (name.empty()) {
    if (tok.chat_template().empty())
      throw ConfigError(cat(origin.empty() ? "the model" : origin,
                            " has no chat template (tokenizer_config.json chat_template or "
                            "chat_template.jinja); name a format with --chat-format (qwen3, "
                            "qwen2.5, deepseek-r1, llama3) or use plain text (--no-chat)"));
    return from_template(tok.chat_template(), tok.bos_token(), tok.eos_token(), std::move(origin));
  }
  ChatFormat f = named(name, tok.bos_token());
  f.origin_ = std::move(origin);
  for (const std::string& t : f.control_tokens()) {
    if (!tok.token_id(t))
      throw ConfigError(cat("chat format ", f.name(), " needs the token '", t,
                            "', which this tokenizer does not have"));
  }
  return f;
}

std::vector<std::string> ChatFormat::control_tokens() const {
  if (is_template() || !family_) return {};
  return chat_named::control_tokens(*family_, bos_);
}

// ---- thinking -----------------------------------------------------------------------------------

Thinking ChatFormat::resolve(Thinking t) const {
  if (t == Thinking::Auto) return has_thinking_mode_ ? Thinking::On : Thinking::Off;
  if (t == Thinking::On && !has_thinking_mode_)
    throw ConfigError(
        cat(describe(), " has no thinking mode (thinking: on); use thinking: auto or off"));
  if (t == Thinking::Off && always_thinks_)
    throw ConfigError(cat(describe(), " always thinks (thinking: off); use thinking: auto or on"));
  return t;
}

bool ChatFormat::thinks(Thinking t) const {
  switch (resolve(t)) {
    case Thinking::On:
      return true;
    case Thinking::Off:
      return false;
    default:
      return default_thinks_;
  }
}

// ---- rendering --------------------------------------------------------------------------------

std::string ChatFormat::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                               Thinking thinking) const {
  ChatOptions o;
  o.add_generation_prompt = add_generation_prompt;
  o.thinking = thinking;
  return render(messages, o);
}

std::string ChatFormat::render(const std::vector<ChatMessage>& m, const ChatOptions& o) const {
  const Thinking t = resolve(o.thinking);
  std::vector<ChatMessage> with_system;
  const std::vector<ChatMessage>* msgs = &m;
  if (!o.system_prompt.empty()) {
    if (!m.empty() && m[0].role == "system")
      throw UsageError(
          "the conversation already starts with a system message; a system prompt would add a "
          "second one");
    with_system.reserve(m.size() + 1);
    with_system.push_back({"system", o.system_prompt});
    with_system.insert(with_system.end(), m.begin(), m.end());
    msgs = &with_system;
  }
  if (msgs->empty()) throw UsageError(cat(describe(), ": no messages to render"));
  if (is_template()) return render_template(*msgs, o, t);
  ChatOptions resolved = o;
  resolved.thinking = t;
  return chat_named::render(*family_, *msgs, resolved, bos_, deepseek_think_prefill_);
}

std::string ChatFormat::render_template(const std::vector<ChatMessage>& m, const ChatOptions& o,
                                        Thinking t) const {
  using jinja::Value;
  std::vector<Value> messages;
  messages.reserve(m.size());
  for (const ChatMessage& msg : m)
    messages.push_back(jinja::make_dict(
        {{Value("role"), Value(msg.role)}, {Value("content"), Value(msg.content)}}));
  // The variables apply_chat_template passes: the conversation, tools and documents (None),
  // the generation prompt switch, the tokenizer's special tokens, then the caller's kwargs.
  std::vector<std::pair<std::string, Value>> vars = {
      {"messages", jinja::make_list(std::move(messages))},
      {"tools", Value::none()},
      {"documents", Value::none()},
      {"add_generation_prompt", Value(o.add_generation_prompt)}};
  if (!bos_.empty()) vars.emplace_back("bos_token", Value(bos_));
  if (!eos_.empty()) vars.emplace_back("eos_token", Value(eos_));
  if (t == Thinking::On || t == Thinking::Off)
    vars.emplace_back("enable_thinking", Value(t == Thinking::On));
  vars.emplace_back("date_string", Value(o.date_string));
  const std::string date = o.date_string;
  vars.emplace_back("strftime_now",
                    jinja::make_function("strftime_now", [date](jinja::CallArgs& a) {
                      jinja::ArgReader r(a, "strftime_now", {"format"});
                      const auto fmt = r.get_str(0);
                      if (!fmt) jinja::fail("strftime_now() needs a format string");
                      return Value(format_date(date, *fmt));
                    }));
  return template_->render(vars);
}

}  // namespace resp
