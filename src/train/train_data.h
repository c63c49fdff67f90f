// Training examples: token sequences with the index where the response starts, built from JSONL
// rows in one of four formats, and the deterministic order in which steps consume them.
//
//   gsm8k-thinking     {"question", "answer": "...\n#### N"[, "thinking"]}: the question as one
//                      user turn through the chat template (thinking on), the response
//                      "<think>\n{reasoning}\n</think>\n\nThe answer is N." + the eos token;
//                      the reasoning is the row's "thinking" when present, else the answer's
//                      text before "####".
//   messages           {"messages": [...]} ending in an assistant turn, which is the response.
//   prompt-completion  {"prompt", "completion"} as plain text.
//   text               {"text"}: no prompt (the loss covers every token).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace resp {

struct TrainExample {
  std::vector<int32_t> tokens;
  int32_t prompt_len = 0;  // tokens[0, prompt_len) are the prompt
};

// The thinking-mode response for a GSM8K row (its "thinking", or the reasoning before "####",
// then the answer).
std::string gsm8k_thinking_response(const nlohmann::json& row);

struct TrainDataset {
  std::vector<TrainExample> examples;
  int64_t skipped_too_long = 0;
};

// Reads `path` (JSONL) in `format`. Errors name the file and line. Examples longer than
// `max_length` tokens are skipped and counted.
TrainDataset load_train_dataset(const std::string& path, const std::string& format,
                                const Tokenizer& tok, const ChatFormat* chat, int max_length);

// The loss weights of an example: 1 on every predicted position (t predicts tokens[t+1]) that
// counts, 0 elsewhere. Counted: response positions (t + 1 >= prompt_len), or all when
// `all_tokens`.
std::vector<float> loss_mask(const TrainExample& e, bool all_tokens);

// The order in which epoch `epoch` visits a dataset of `size` examples: a permutation keyed by
// (seed, epoch), so the batch of any step is a pure function of (seed, step) — what makes
// resume exact. Global sequence n of a run is example perm(n / size)[n % size].
std::vector<int64_t> epoch_permutation(int64_t size, uint64_t seed, int64_t epoch);

}  // namespace resp
