#include "generate/evaluator.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "generate/answer_extraction.h"

namespace resp {

Extractor parse_extractor(std::string_view name) {
  if (name == "resp") return Extractor::Resp;
  if (name == "lm-eval") return Extractor::LmEval;
  throw UsageError(cat("unknown extractor '", name, "' (expected resp or lm-eval)"));
}

const char* extractor_name(Extractor e) {
  return e == Extractor::Resp ? "resp" : "lm-eval";
}

Evaluator::Evaluator(Task task, bool thinking, Extractor extractor)
    : task_(task), thinking_(thinking), extractor_(extractor) {
  if (extractor_ == Extractor::LmEval && task_ != Task::Gsm8k)
    throw UsageError(
        cat("--extract lm-eval reproduces lm-evaluation-harness's gsm8k_cot filters "
            "and supports only --task gsm8k, not ",
            task_name(task_)));
}

ItemScore Evaluator::score(const nlohmann::json& row, std::string_view output) const {
  ItemScore s;
  if (extractor_ == Extractor::LmEval) {
    task_gold(task_, row);  // the row must have a "#### N" answer, as for the resp extractor
    s.gold = lm_eval_gsm8k_target(row.at("answer").get<std::string>());
    const std::string response = lm_eval_response(output, thinking_);
    const std::string strict = lm_eval_strict(response), flexible = lm_eval_flexible(response);
    s.correct_strict = lm_eval_exact_match(strict, s.gold);
    s.correct_flexible = lm_eval_exact_match(flexible, s.gold);
    if (strict != kLmEvalInvalid) s.strict = strict;
    if (flexible != kLmEvalInvalid) s.flexible = flexible;
    return s;
  }
  s.gold = task_gold(task_, row);
  // Strict reads the answer after "</think>" only; flexible also an output cut while thinking.
  const std::string_view region = answer_region(output, thinking_);
  const std::string_view loose = flexible_region(output);
  if (task_ == Task::Gsm8k) {
    s.strict = gsm8k_strict(region);
    s.flexible = gsm8k_flexible(loose);
  } else {
    const auto options = parse_mathqa_options(row.at("options").get<std::string>());
    if (auto l = mathqa_letter(region)) s.strict = std::string(1, *l);
    if (auto l = mathqa_flexible(loose, options)) s.flexible = std::string(1, *l);
  }
  s.correct_strict = s.strict && *s.strict == s.gold;
  s.correct_flexible = s.flexible && *s.flexible == s.gold;
  return s;
}

nlohmann::json Evaluator::add(size_t index, const nlohmann::json& id, const nlohmann::json& row,
                              const std::string& prompt, const std::string& output,
                              const GenerationResult& result) {
  const ItemScore s = score(row, output);
  ++n_;
  ok_strict_ += s.correct_strict;
  ok_flexible_ += s.correct_flexible;
  none_strict_ += !s.strict;
  none_flexible_ += !s.flexible;
  eos_ += result.finish == FinishReason::Eos;
  length_ += result.finish == FinishReason::Length;
  stop_ += result.finish == FinishReason::Stop;
  tokens_.push_back(static_cast<int64_t>(result.tokens.size()));
  auto opt = [](const std::optional<std::string>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  return {{"index", index},
          {"id", id},
          {"prompt", prompt},
          {"output", output},
          {"gold", s.gold},
          {"extracted", {{"strict", opt(s.strict)}, {"flexible", opt(s.flexible)}}},
          {"correct", {{"strict", s.correct_strict}, {"flexible", s.correct_flexible}}},
          {"n_output_tokens", result.tokens.size()},
          {"finish_reason", finish_reason_name(result.finish)}};
}

double Evaluator::percentile(std::vector<int64_t> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<size_t>(std::ceil(q / 100.0 * static_cast<double>(v.size())));
  return static_cast<double>(v[std::clamp<size_t>(rank, 1, v.size()) - 1]);
}

nlohmann::json Evaluator::summary() const {
  const double n = static_cast<double>(std::max<int64_t>(n_, 1));
  int64_t total = 0, mx = 0;
  for (const int64_t t : tokens_) {
    total += t;
    mx = std::max(mx, t);
  }
  return {{"n", n_},
          {"correct", {{"strict", ok_strict_}, {"flexible", ok_flexible_}}},
          {"accuracy",
           {{"strict", static_cast<double>(ok_strict_) / n},
            {"flexible", static_cast<double>(ok_flexible_) / n}}},
          {"no_answer", {{"strict", none_strict_}, {"flexible", none_flexible_}}},
          {"generated_tokens",
           {{"mean", static_cast<double>(total) / n},
            {"p95", percentile(tokens_, 95.0)},
            {"max", mx},
            {"total", total}}},
          {"truncation_rate", static_cast<double>(length_) / n},
          {"finish_reasons", {{"eos", eos_}, {"length", length_}, {"stop", stop_}}}};
}

}  // namespace resp
