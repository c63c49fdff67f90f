#include "tokenizer/chat.h"

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace resp {

namespace {

constexpr std::string_view kQwenDefaultSystem =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
constexpr std::string_view kDeepSeekBos = "<｜begin▁of▁sentence｜>";
constexpr std::string_view kLlama3Bos = "<|begin_of_text|>";

bool contains(std::string_view s, std::string_view needle) {
  return s.find(needle) != std::string_view::npos;
}

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
}

// Python's json.dumps(s, ensure_ascii=False) for a string (what transformers' tojson does).
std::string py_json_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          static const char* hex = "0123456789abcdef";
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

void check_roles(const std::vector<ChatMessage>& m, std::initializer_list<std::string_view> ok,
                 const char* fmt) {
  if (m.empty()) throw UsageError(cat("chat format ", fmt, ": no messages to render"));
  for (size_t i = 0; i < m.size(); ++i) {
    bool found = false;
    for (const auto r : ok) found = found || m[i].role == r;
    if (!found) {
      std::string list;
      for (const auto r : ok) list += (list.empty() ? "" : ", ") + std::string(r);
      throw UsageError(cat("chat format ", fmt, ": message ", i, " has role '", m[i].role,
                           "' (expected one of: ", list, ")"));
    }
  }
}

}  // namespace

// ---- Python string helpers ------------------------------------------------------------------

std::string py_strip(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e) {
    size_t len;
    const uint32_t cp = unicode::decode_utf8(s.data(), b, len);
    if (!(unicode::char_flags(cp) & unicode::kPythonSpace)) break;
    b += len;
  }
  while (e > b) {
    size_t p = e - 1;
    while (p > b && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
    size_t len;
    const uint32_t cp = unicode::decode_utf8(s.data(), p, len);
    if (!(unicode::char_flags(cp) & unicode::kPythonSpace)) break;
    e = p;
  }
  return std::string(s.substr(b, e - b));
}

std::string_view py_strip_char(std::string_view s, char c, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && s[b] == c) ++b;
  if (right)
    while (e > b && s[e - 1] == c) --e;
  return s.substr(b, e - b);
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
  return family_name(family_);
}

ChatFormat ChatFormat::named(std::string_view name, std::string bos_token) {
  if (name == "qwen3") return ChatFormat(ChatFamily::Qwen3, std::move(bos_token));
  if (name == "qwen2.5" || name == "qwen2")
    return ChatFormat(ChatFamily::Qwen25, std::move(bos_token));
  if (name == "deepseek-r1" || name == "deepseek-r1-distill")
    return ChatFormat(ChatFamily::DeepSeekR1,
                      bos_token.empty() ? std::string(kDeepSeekBos) : std::move(bos_token));
  if (name == "llama3" || name == "llama-3")
    return ChatFormat(ChatFamily::Llama3,
                      bos_token.empty() ? std::string(kLlama3Bos) : std::move(bos_token));
  throw UsageError(
      cat("unknown chat format '", name, "' (expected qwen3, qwen2.5, deepseek-r1 or llama3)"));
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
    ChatFormat f = named("deepseek-r1", std::move(bos_token));
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
                        "...\"): it is none of the supported qwen3, qwen2.5, deepseek-r1 and "
                        "llama3 templates; choose a format with --chat-format"));
}

ChatFormat ChatFormat::for_tokenizer(const Tokenizer& tok, std::string_view name) {
  ChatFormat f =
      name.empty() ? detect(tok.chat_template(), tok.bos_token()) : named(name, tok.bos_token());
  for (const std::string& t : f.control_tokens()) {
    if (!tok.token_id(t))
      throw ConfigError(cat("chat format ", f.name(), " needs the token '", t,
                            "', which this tokenizer does not have"));
  }
  return f;
}

std::vector<std::string> ChatFormat::control_tokens() const {
  switch (family_) {
    case ChatFamily::Qwen3:
      return {"<|im_start|>", "<|im_end|>", "<think>", "</think>"};
    case ChatFamily::Qwen25:
      return {"<|im_start|>", "<|im_end|>"};
    case ChatFamily::DeepSeekR1:
      return {bos_, "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"};
    case ChatFamily::Llama3:
      return {bos_, "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
  }
  return {};
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
  switch (family_) {
    case ChatFamily::Qwen3:
      return render_qwen3(m, o);
    case ChatFamily::Qwen25:
      if (o.thinking == Thinking::On)
        throw UsageError("chat format qwen2.5 has no thinking mode (--thinking on)");
      return render_qwen25(m, o);
    case ChatFamily::DeepSeekR1:
      if (o.thinking == Thinking::Off)
        throw UsageError("chat format deepseek-r1 always thinks; --thinking off is not supported");
      return render_deepseek(m, o);
    case ChatFamily::Llama3:
      if (o.thinking == Thinking::On)
        throw UsageError("chat format llama3 has no thinking mode (--thinking on)");
      return render_llama3(m, o);
  }
  return {};
}

// Qwen3's template (Qwen/Qwen3-*, tokenizer_config.json), without tools.
std::string ChatFormat::render_qwen3(const std::vector<ChatMessage>& m,
                                     const ChatOptions& o) const {
  check_roles(m, {"system", "user", "assistant", "tool"}, "qwen3");
  std::string out;
  const size_t n = m.size();
  if (m[0].role == "system") out += "<|im_start|>system\n" + m[0].content + "<|im_end|>\n";
  // The last user query that is not a tool response: assistant turns after it keep their
  // reasoning, earlier ones lose it.
  size_t last_query = n - 1;
  for (size_t k = n; k-- > 0;) {
    const std::string& c = m[k].content;
    if (m[k].role == "user" &&
        !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
      last_query = k;
      break;
    }
  }
  for (size_t i = 0; i < n; ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "user" || (msg.role == "system" && i != 0)) {
      out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
    } else if (msg.role == "assistant") {
      std::string_view content = msg.content;
      std::string_view reasoning;
      const size_t last_close = content.rfind("</think>");
      if (last_close != std::string_view::npos) {
        const std::string_view before = content.substr(0, content.find("</think>"));
        reasoning = py_strip_char(before, '\n', false, true);
        const size_t open = reasoning.rfind("<think>");
        if (open != std::string_view::npos) reasoning = reasoning.substr(open + 7);
        reasoning = py_strip_char(reasoning, '\n', true, false);
        content = py_strip_char(content.substr(last_close + 8), '\n', true, false);
      }
      out += "<|im_start|>assistant\n";
      if (i > last_query && (i == n - 1 || !reasoning.empty())) {
        out += "<think>\n";
        out += py_strip_char(reasoning, '\n', true, true);
        out += "\n</think>\n\n";
        out += py_strip_char(content, '\n', true, false);
      } else {
        out += content;
      }
      out += "<|im_end|>\n";
    } else if (msg.role == "tool") {
      if (i == 0 || m[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + msg.content + "\n</tool_response>";
      if (i == n - 1 || m[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (o.add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (o.thinking == Thinking::Off) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

// Qwen2.5's template (Qwen/Qwen2.5-*-Instruct), without tools.
std::string ChatFormat::render_qwen25(const std::vector<ChatMessage>& m,
                                      const ChatOptions& o) const {
  check_roles(m, {"system", "user", "assistant", "tool"}, "qwen2.5");
  std::string out;
  const size_t n = m.size();
  if (m[0].role == "system") {
    out += "<|im_start|>system\n" + m[0].content + "<|im_end|>\n";
  } else {
    out += "<|im_start|>system\n" + std::string(kQwenDefaultSystem) + "<|im_end|>\n";
  }
  for (size_t i = 0; i < n; ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "user" || msg.role == "assistant" || (msg.role == "system" && i != 0)) {
      out += "<|im_start|>" + msg.role + "\n" + msg.content + "<|im_end|>\n";
    } else if (msg.role == "tool") {
      if (i == 0 || m[i - 1].role != "tool") out += "<|im_start|>user";
      out += "\n<tool_response>\n" + msg.content + "\n</tool_response>";
      if (i == n - 1 || m[i + 1].role != "tool") out += "<|im_end|>\n";
    }
  }
  if (o.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

// DeepSeek-R1 / R1-Distill template (deepseek-ai/DeepSeek-R1-Distill-*), without tool calls.
std::string ChatFormat::render_deepseek(const std::vector<ChatMessage>& m,
                                        const ChatOptions& o) const {
  check_roles(m, {"system", "user", "assistant", "tool"}, "deepseek-r1");
  std::string system_prompt;
  for (const ChatMessage& msg : m)
    if (msg.role == "system") system_prompt = msg.content;
  std::string out = bos_ + system_prompt;
  bool is_tool = false, is_output_first = true;
  for (const ChatMessage& msg : m) {
    if (msg.role == "user") {
      is_tool = false;
      out += "<｜User｜>" + msg.content;
    } else if (msg.role == "assistant") {
      if (is_tool) {
        out += "<｜tool▁outputs▁end｜>" + msg.content + "<｜end▁of▁sentence｜>";
        is_tool = false;
      } else {
        std::string_view content = msg.content;
        const size_t close = content.rfind("</think>");
        if (close != std::string_view::npos) content = content.substr(close + 8);
        out += "<｜Assistant｜>";
        out += content;
        out += "<｜end▁of▁sentence｜>";
      }
    } else if (msg.role == "tool") {
      is_tool = true;
      if (is_output_first) {
        out += "<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>" + msg.content +
               "<｜tool▁output▁end｜>";
        is_output_first = false;
      } else {
        out += "\n<｜tool▁output▁begin｜>" + msg.content + "<｜tool▁output▁end｜>";
      }
    }
  }
  if (is_tool) out += "<｜tool▁outputs▁end｜>";
  if (o.add_generation_prompt && !is_tool) {
    out += "<｜Assistant｜>";
    if (deepseek_think_prefill_) out += "<think>\n";
  }
  return out;
}

// Llama-3.1 / 3.2 template (meta-llama/Llama-3.2-*-Instruct), without tools.
std::string ChatFormat::render_llama3(const std::vector<ChatMessage>& m,
                                      const ChatOptions& o) const {
  check_roles(m, {"system", "user", "assistant", "tool", "ipython"}, "llama3");
  std::string out = bos_;
  size_t first = 0;
  std::string system_message;
  if (m[0].role == "system") {
    system_message = py_strip(m[0].content);
    first = 1;
  }
  out += "<|start_header_id|>system<|end_header_id|>\n\n";
  out += "Cutting Knowledge Date: December 2023\n";
  out += "Today Date: " + o.date_string + "\n\n";
  out += system_message;
  out += "<|eot_id|>";
  for (size_t i = first; i < m.size(); ++i) {
    const ChatMessage& msg = m[i];
    if (msg.role == "tool" || msg.role == "ipython") {
      // A string is "iterable" in Jinja, so the template JSON-encodes tool output.
      out += "<|start_header_id|>ipython<|end_header_id|>\n\n" + py_json_string(msg.content) +
             "<|eot_id|>";
    } else {
      out += "<|start_header_id|>" + msg.role + "<|end_header_id|>\n\n" + py_strip(msg.content) +
             "<|eot_id|>";
    }
  }
  if (o.add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

}  // namespace resp
