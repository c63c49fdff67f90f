// Task prompts for GSM8K and MathQA (see shared/docs/resp-method.md).
//
//  - RESP calibration prompt: the raw question (GSM8K `question`; MathQA
//    "Question: {Problem}\nOptions: {options}\nAnswer:") as one user turn through the model's
//    chat template, thinking on (when the template has a thinking mode), generation prompt
//    added; no system prompt unless one is configured, no examples.
//  - Evaluation: GSM8K k-shot chain of thought with the standard 8 exemplars of Wei et al.
//    (2022) ("Q: ...\nA: ... The answer is N.\n\n" each, then "Q: {question}\nA:"), or 0-shot;
//    through a chat template the exemplars are by default separate user ("Q: ...\nA:") and
//    assistant ("... The answer is N.") turns, as lm-evaluation-harness renders gsm8k_cot with
//    apply_chat_template and fewshot_as_multiturn. MathQA 0-shot with the calibration user text.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/chat.h"

namespace resp {

enum class Task { Gsm8k, MathQA };

// "gsm8k" | "mathqa" (case-insensitive); UsageError naming the choices otherwise.
Task parse_task(std::string_view name);
const char* task_name(Task t);

struct CotExemplar {
  const char* question;
  const char* answer;  // reasoning ending in "The answer is N."
};
// The 8 GSM8K chain-of-thought exemplars of Wei et al. (2022), Table 20.
const std::vector<CotExemplar>& gsm8k_cot_exemplars();

// The user text of a dataset row. Throws UsageError naming the missing or non-string field.
std::string task_user_text(Task t, const nlohmann::json& row);

// The gold answer of a row: GSM8K the number after "####" (normalised, commas stripped);
// MathQA the `correct` letter (lower case). UsageError when the row has none.
std::string task_gold(Task t, const nlohmann::json& row);

// GSM8K few-shot text: the first `shots` exemplars (0..8) then "Q: {question}\nA:".
std::string gsm8k_fewshot_text(std::string_view question, int shots);
// GSM8K few-shot chat turns. `multiturn`: per exemplar a user turn "Q: {question}\nA:" and an
// assistant turn "{answer}" (lm-eval's doc_to_text and target; the target delimiter " " and the
// fewshot delimiter "\n\n" only join plain text), then the user turn "Q: {question}\nA:".
// Otherwise one user turn holding gsm8k_fewshot_text().
std::vector<ChatMessage> gsm8k_fewshot_messages(std::string_view question, int shots,
                                                bool multiturn);

// RESP's calibration prompt for a row, rendered through `chat`. Thinking::Default is taken as
// Auto: RESP generates in thinking mode whenever the template has one. A non-empty
// `system_prompt` becomes a leading system message.
std::string calibration_prompt(Task t, const nlohmann::json& row, const ChatFormat& chat,
                               Thinking thinking = Thinking::Auto,
                               const std::string& system_prompt = {});

struct EvalPromptOptions {
  Task task = Task::Gsm8k;
  int shots = 8;                          // GSM8K only; MathQA must be 0
  const ChatFormat* chat = nullptr;       // null: plain text prompt (base models)
  Thinking thinking = Thinking::Default;  // with a chat format
  std::string system_prompt;              // with a chat format: a leading system message
  // With a chat format and GSM8K shots > 0: exemplars as separate user/assistant turns
  // (`resp eval` default) instead of one user turn.
  bool fewshot_as_multiturn = true;
};
// The evaluation prompt text of a row: plain text (the few-shot text, or the user text), or
// through the chat template when `chat` is set (gsm8k_fewshot_messages() for GSM8K shots > 0,
// else the user text as one user turn).
std::string eval_prompt(const EvalPromptOptions& o, const nlohmann::json& row);

}  // namespace resp
