// GenerationConfig: how to sample and when to stop. Defaults come from the model directory
// (config.json's eos ids, generation_config.json's sampling settings and extra eos ids) and are
// overridden by the command line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "model/model_config.h"

namespace resp {

struct SamplingParams {
  // Softmax temperature; <= 0 means greedy (argmax, lowest id on ties).
  double temperature = 1.0;
  // Nucleus sampling: keep the smallest set of most likely tokens whose probability reaches
  // top_p (Hugging Face semantics); 1 disables it. Must be in (0, 1].
  double top_p = 1.0;
  // Keep the top_k most likely tokens; 0 disables it.
  int top_k = 0;

  bool greedy() const { return temperature <= 0.0 || top_k == 1; }
  // Throws UsageError naming the bad value.
  void validate() const;
};

struct GenerationConfig {
  SamplingParams sampling;
  int max_new_tokens = 2048;
  // Generation stops after any of these ids (the id is kept in the output).
  std::vector<int32_t> eos_ids;
  // Generation stops once the generated text contains any of these strings.
  std::vector<std::string> stop;
  // Sampling RNG seed; draws are keyed by (seed, prompt id, step).
  uint64_t seed = 0;

  // Defaults for a model: eos ids of config.json plus generation_config.json's eos_token_id;
  // temperature / top_p / top_k from generation_config.json when it has them ("do_sample":
  // false means greedy). Without generation_config.json: temperature 1, top_p 1, top_k 0.
  static GenerationConfig for_model(const std::filesystem::path& model_dir,
                                    const ModelConfig& config);
  // The same from an already parsed generation_config.json (null: absent). `source` names it in
  // error messages.
  static GenerationConfig from_json(const nlohmann::json& generation_config,
                                    const ModelConfig& config, const std::string& source);

  void validate() const;
  nlohmann::json to_json() const;
};

// Command-line overrides (unset fields keep the model's defaults).
struct SamplingOverrides {
  std::optional<double> temperature, top_p;
  std::optional<int> top_k;
  void apply(SamplingParams& p) const;
};

}  // namespace resp
