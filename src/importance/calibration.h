// Calibration samples: a token sequence and where its response starts. The decode-only loss
// predicts only response tokens; the full loss predicts every token after the first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "importance/criterion.h"

namespace resp {

struct CalibrationSample {
  std::string id;
  std::vector<int32_t> tokens;
  int prompt_len = 0;  // tokens[0..prompt_len) are the prompt
};

// Per-position weights [T-1] of the loss L = sum_t w_t * -log p(tokens[t+1] | tokens[..t]):
// decode-only: 1/|R| where tokens[t+1] is a response token (t + 1 >= prompt_len), else 0;
// full: 1/(T-1) everywhere. Empty when the sample has nothing to predict.
std::vector<float> loss_weights(const CalibrationSample& s, LossMode mode);

}  // namespace resp
