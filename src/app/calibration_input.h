// Reading calibration data for importance scoring and pruning: traces from `resp generate`
// (self), dataset rows turned into prompt + gold rationale (gold), or plain text (text).
#pragma once

#include <string>
#include <vector>

#include "importance/calibration.h"
#include "model/model_config.h"

namespace resp::app {

struct CalibrationInput {
  std::string path;
  std::string source = "self";  // self | gold | text
  std::string task;             // gsm8k | mathqa (gold)
  std::string model_dir;        // tokenizer location (gold, text)
  std::string chat_format;      // override for gold prompts
  std::string thinking;         // gold prompts: auto (default) | on | off
  std::string system_prompt;    // gold prompts: a leading system message when not empty
  int64_t limit = 0;            // 0 = all records
};

// Throws UsageError naming FILE:LINE for malformed records or token ids outside the vocabulary.
std::vector<CalibrationSample> load_calibration(const CalibrationInput& in,
                                                const ModelConfig& config);

}  // namespace resp::app
