#include "tokenizer/chat_named.h"

#include "core/error.h"

namespace resp::chat_named {

namespace {

constexpr std::string_view kQwenDefaultSystem =
    "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

bool starts_with(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}
bool ends_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && s.substr(s.size() - p.size()) == p;
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

// Qwen3's template (Qwen/Qwen3-*, tokenizer_config.json), without tools.
std::string render_qwen3(const std::vector<ChatMessage>& m, const ChatOptions& o) {
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
std::string render_qwen25(const std::vector<ChatMessage>& m, const ChatOptions& o) {
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
std::string render_deepseek(const std::vector<ChatMessage>& m, const ChatOptions& o,
                            const std::string& bos, bool think_prefill) {
  check_roles(m, {"system", "user", "assistant", "tool"}, "deepseek-r1");
  std::string system_prompt;
  for (const ChatMessage& msg : m)
    if (msg.role == "system") system_prompt = msg.content;
  std::string out = bos + system_prompt;
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
    if (think_prefill) out += "<think>\n";
  }
  return out;
}

// Llama-3.1 / 3.2 template (meta-llama/Llama-3.2-*-Instruct), without tools.
std::string render_llama3(const std::vector<ChatMessage>& m, const ChatOptions& o,
                          const std::string& bos) {
  check_roles(m, {"system", "user", "assistant", "tool", "ipython"}, "llama3");
  std::string out = bos;
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
      out += "<|start_header_id|>ipython<|end_header_id|>\n\n" +
             pystr::json_string(msg.content, false) + "<|eot_id|>";
    } else {
      out += "<|start_header_id|>" + msg.role + "<|end_header_id|>\n\n" + py_strip(msg.content) +
             "<|eot_id|>";
    }
  }
  if (o.add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

}  // namespace

std::string render(ChatFamily family, const std::vector<ChatMessage>& m, const ChatOptions& o,
                   const std::string& bos, bool deepseek_think_prefill) {
  switch (family) {
    case ChatFamily::Qwen3:
      return render_qwen3(m, o);
    case ChatFamily::Qwen25:
      return render_qwen25(m, o);
    case ChatFamily::DeepSeekR1:
      return render_deepseek(m, o, bos, deepseek_think_prefill);
    case ChatFamily::Llama3:
      return render_llama3(m, o, bos);
  }
  return {};
}

std::vector<std::string> control_tokens(ChatFamily family, const std::string& bos) {
  switch (family) {
    case ChatFamily::Qwen3:
      return {"<|im_start|>", "<|im_end|>", "<think>", "</think>"};
    case ChatFamily::Qwen25:
      return {"<|im_start|>", "<|im_end|>"};
    case ChatFamily::DeepSeekR1:
      return {bos, "<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>"};
    case ChatFamily::Llama3:
      return {bos, "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
  }
  return {};
}

}  // namespace resp::chat_named
