// Sampler: picks the next token from one row of logits. The choice is a pure function of the
// logits, the sampling parameters and one uniform number u in [0, 1), which the generator keys
// by (seed, prompt id, step) so that results do not depend on batch size, slot order or ranks.
//
// Order of operations (as Hugging Face's logits warpers): temperature, then top-k, then top-p
// on the renormalised top-k distribution; the token is the inverse CDF of u over the kept tokens
// in sampling order: decreasing probability (ties: lower id first) when top-k or top-p cut the
// vocabulary, id order when every token is kept. Greedy (temperature <= 0 or top_k 1)
// is the argmax, lowest id on ties; NaN logits never win.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "generate/generation_config.h"

namespace resp {

class Sampler {
 public:
  explicit Sampler(SamplingParams params);

  const SamplingParams& params() const { return p_; }

  // The token for this row of logits and uniform draw u in [0, 1).
  int32_t sample(std::span<const float> logits, double u);

  // The distribution sample() draws from: (token, probability) in sampling order,
  // probabilities summing to 1. Greedy: {(argmax, 1)}.
  std::vector<std::pair<int32_t, double>> distribution(std::span<const float> logits);

  // Uniform double in [0, 1) with 53 random bits keyed by (seed, key, step).
  static double uniform(uint64_t seed, uint64_t key, uint64_t step);

 private:
  // Fills kept_ (ids) and prob_ (renormalised probabilities) in sampling order.
  void prepare(std::span<const float> logits);

  SamplingParams p_;
  std::vector<int32_t> order_;  // candidate ids
  std::vector<int32_t> kept_;
  std::vector<double> prob_;
};

// Argmax over a row (lowest id on ties; NaN ignored; 0 when every value is NaN).
int32_t argmax(std::span<const float> logits);

// 64-bit FNV-1a hash of a prompt id string: the RNG key of a prompt.
uint64_t prompt_key(std::string_view id);

}  // namespace resp
