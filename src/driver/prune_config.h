// The configuration of a `resp prune` run. Every knob has RESP's default (resp-method.md),
// written once, as the initialisers below (the YAML schema is to_yaml of a default-constructed
// PruneConfig); a YAML file overrides some, `--set section.key=value` overrides more. Unknown keys
// and impossible values are errors that name the key. The effective configuration is printed in
// full and saved in the run directory.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace resp {

struct PruneConfig {
  // model
  std::string model;
  // data: calibration prompts
  std::string task = "gsm8k";  // gsm8k | mathqa: prompt format and gold field
  std::string prompts;         // dataset JSONL (or {"text"} rows for source text)
  int num_prompts = 500;
  uint64_t shuffle_seed = 0;
  // generation (trace sampling)
  bool chat = true;
  std::string thinking = "auto";  // auto (on when the template has a thinking mode) | on | off
  std::string chat_format;        // empty: the model's own chat template
  std::string system_prompt;      // empty: no system message
  double temperature = 0.6;
  std::optional<double> top_p;  // unset: generation_config.json
  std::optional<int> top_k;
  int max_new_tokens = 2048;
  uint64_t seed = 0;
  int batch_size = 8;
  // calibration
  std::string source = "self";  // self | gold | text
  std::string loss = "decode-only";
  // importance
  std::string criterion = "taylor";
  std::string ranking = "global";
  std::optional<std::vector<int>> protected_layers;  // unset: outside range(int(0.1 L), L-1)
  // schedule
  std::string mode = "progressive";  // progressive | one-shot
  int iterations = 112;              // progressive
  double final_ratio = 0.7;          // progressive
  // one-shot: measured sparsities to prune the dense model to, one checkpoint each
  std::vector<double> targets = {0.2, 0.3, 0.4, 0.5};
  // regeneration
  std::vector<double> milestones = {0.1, 0.2, 0.3, 0.4, 0.5};
  double regen_fraction = 1.0;
  // report
  std::vector<double> report_sparsities = {0.2, 0.3, 0.4, 0.5};
  // parallel
  int tp = 1;
  int threads = 0;

  bool one_shot() const { return mode == "one-shot"; }
  // Structural ratio of iteration t: linspace(0, final_ratio, iterations)[t].
  double ratio_at(int t) const;
};

// Parses YAML text (the defaults filled in) plus `key=value` overrides. `source` names the file
// in errors. Relative model/prompt paths are made absolute against `base_dir`.
PruneConfig parse_prune_config(const std::string& yaml_text,
                               const std::vector<std::string>& overrides, const std::string& source,
                               const std::string& base_dir);
PruneConfig load_prune_config(const std::string& path, const std::vector<std::string>& overrides);
// The full effective configuration as YAML (every key, defaults included).
std::string to_yaml(const PruneConfig& c);

}  // namespace resp
