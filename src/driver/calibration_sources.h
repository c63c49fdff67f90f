// Calibration data for `resp prune` and `resp importance`: RESP's calibration prompts from
// dataset rows, and samples for the gold (GISP) and text sources.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "generate/tasks.h"
#include "importance/calibration.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace resp {

struct DatasetRow {
  std::string id;  // the row's "id", else its 0-based index in the file
  nlohmann::json value;
  size_t line = 0;
};

// Reads a JSONL dataset (UsageError naming FILE:LINE on malformed lines), shuffles the rows
// with a counter-based Fisher-Yates keyed by `shuffle_seed`, and keeps the first `n`.
std::vector<DatasetRow> load_calibration_rows(const std::string& path, int n,
                                              uint64_t shuffle_seed);

// The prompt ids of a row: RESP's calibration prompt through the chat template (thinking as
// given, resolved by the template; `system_prompt` as a leading system message when not
// empty), or the raw user text with the tokenizer's special prefix when `chat` is null.
std::vector<int32_t> calibration_prompt_ids(Task task, const DatasetRow& row, const Tokenizer& tok,
                                            const ChatFormat* chat, Thinking thinking,
                                            const std::string& system_prompt = {});

// GISP: the calibration prompt with the dataset's rationale (GSM8K `answer`, MathQA
// `Rationale`) as the response, closed by the tokenizer's eos token.
CalibrationSample gold_sample(Task task, const DatasetRow& row, const Tokenizer& tok,
                              const ChatFormat* chat, Thinking thinking, const std::string& where,
                              const std::string& system_prompt = {});

// Plain text ({"text": ...}) for the full-sequence loss.
CalibrationSample text_sample(const DatasetRow& row, const Tokenizer& tok,
                              const std::string& where);

}  // namespace resp
