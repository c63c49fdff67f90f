// Evaluator: scores model outputs on GSM8K / MathQA rows and aggregates the results the way the
// `resp eval` report needs them (accuracy strict and flexible, generated-token statistics,
// truncation rate, finish reasons).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "generate/generator.h"
#include "generate/tasks.h"

namespace resp {

// Which answer extractor scores the outputs (`resp eval --extract`).
//   Resp    this project's extractor (generate/answer_extraction.h), GSM8K and MathQA;
//   LmEval  lm-evaluation-harness's gsm8k_cot filters and exact_match, GSM8K only.
enum class Extractor { Resp, LmEval };
// "resp" | "lm-eval"; UsageError naming the choices otherwise.
Extractor parse_extractor(std::string_view name);
const char* extractor_name(Extractor e);

struct ItemScore {
  std::string gold;  // Resp: canonical number or letter; LmEval: doc_to_target (text after ####)
  // Extracted answers (nullopt: none found; with LmEval, the filter's "[invalid]").
  std::optional<std::string> strict, flexible;
  bool correct_strict = false, correct_flexible = false;
};

class Evaluator {
 public:
  // `thinking`: the outputs come from thinking mode, so the answer is read after "</think>"
  // (LmEval: lm-eval's think_end_token "</think>"). LmEval with MathQA is a UsageError.
  Evaluator(Task task, bool thinking, Extractor extractor = Extractor::Resp);

  Task task() const { return task_; }
  bool thinking() const { return thinking_; }
  Extractor extractor() const { return extractor_; }

  // Scores one output against its dataset row.
  ItemScore score(const nlohmann::json& row, std::string_view output) const;

  // Scores an item, adds it to the totals and returns its per-item record: index, id, prompt,
  // output, gold, extracted {strict, flexible}, correct {strict, flexible}, n_output_tokens,
  // finish_reason.
  nlohmann::json add(size_t index, const nlohmann::json& id, const nlohmann::json& row,
                     const std::string& prompt, const std::string& output,
                     const GenerationResult& result);

  // n, correct and accuracy {strict, flexible}, generated_tokens {mean, p95, max, total},
  // truncation_rate, finish_reasons, no_answer {strict, flexible}.
  nlohmann::json summary() const;

  // The nearest-rank percentile q (0..100] of `v` (0 for an empty vector).
  static double percentile(std::vector<int64_t> v, double q);

 private:
  Task task_;
  bool thinking_;
  Extractor extractor_;
  int64_t n_ = 0, ok_strict_ = 0, ok_flexible_ = 0, none_strict_ = 0, none_flexible_ = 0;
  int64_t eos_ = 0, length_ = 0, stop_ = 0;
  std::vector<int64_t> tokens_;
};

}  // namespace resp
