// The hand-written chat formats behind ChatFormat::named(): C++ renderings of the Qwen3,
// Qwen2.5, DeepSeek-R1-Distill and Llama-3 templates (without tools), for models whose own
// template is missing or broken. `o.thinking` must be resolved (not Auto); the formats that
// cannot honour it are refused by ChatFormat::resolve() before these run.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/chat.h"

namespace resp::chat_named {

std::string render(ChatFamily family, const std::vector<ChatMessage>& m, const ChatOptions& o,
                   const std::string& bos, bool deepseek_think_prefill);

// The control tokens a format's text relies on (each must be an added token).
std::vector<std::string> control_tokens(ChatFamily family, const std::string& bos);

}  // namespace resp::chat_named
