#include "driver/prune_config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/yaml_schema.h"
#include "core/error.h"

namespace resp {

using namespace yaml_schema;

double PruneConfig::ratio_at(int t) const {
  if (iterations <= 1) return 0.0;
  return final_ratio * static_cast<double>(t) / static_cast<double>(iterations - 1);
}

PruneConfig parse_prune_config(const std::string& text, const std::vector<std::string>& overrides,
                               const std::string& src, const std::string& base_dir) {
  // The schema is the full YAML of a default-constructed PruneConfig: its initialisers are the
  // one place RESP's defaults are written ("auto" stands for the unset optionals: take the
  // value from the model).
  const std::string defaults = to_yaml(PruneConfig{});
  YAML::Node root = load_with_schema(defaults.c_str(), text, overrides, src);

  PruneConfig c;
  const auto s = [&](const char* sec, const char* key) { return root[sec][key]; };
  c.model = absolute(get<std::string>(root["model"], "model", src), base_dir);
  c.task = get<std::string>(s("data", "task"), "data.task", src);
  c.prompts = absolute(get<std::string>(s("data", "prompts"), "data.prompts", src), base_dir);
  c.num_prompts = get<int>(s("data", "num_prompts"), "data.num_prompts", src);
  c.shuffle_seed = get<uint64_t>(s("data", "shuffle_seed"), "data.shuffle_seed", src);
  c.chat = get<bool>(s("generation", "chat"), "generation.chat", src);
  c.thinking = get<std::string>(s("generation", "thinking"), "generation.thinking", src);
  c.system_prompt =
      get<std::string>(s("generation", "system_prompt"), "generation.system_prompt", src);
  if (!is_auto(s("generation", "chat_format")))
    c.chat_format = get<std::string>(s("generation", "chat_format"), "generation.chat_format", src);
  c.temperature = get<double>(s("generation", "temperature"), "generation.temperature", src);
  if (!is_auto(s("generation", "top_p")))
    c.top_p = get<double>(s("generation", "top_p"), "generation.top_p", src);
  if (!is_auto(s("generation", "top_k")))
    c.top_k = get<int>(s("generation", "top_k"), "generation.top_k", src);
  c.max_new_tokens = get<int>(s("generation", "max_new_tokens"), "generation.max_new_tokens", src);
  c.seed = get<uint64_t>(s("generation", "seed"), "generation.seed", src);
  c.batch_size = get<int>(s("generation", "batch_size"), "generation.batch_size", src);
  c.source = get<std::string>(s("calibration", "source"), "calibration.source", src);
  c.loss = get<std::string>(s("calibration", "loss"), "calibration.loss", src);
  c.criterion = get<std::string>(s("importance", "criterion"), "importance.criterion", src);
  c.ranking = get<std::string>(s("importance", "ranking"), "importance.ranking", src);
  if (!is_auto(s("importance", "protected_layers")))
    c.protected_layers = get<std::vector<int>>(s("importance", "protected_layers"),
                                               "importance.protected_layers", src);
  c.mode = get<std::string>(s("schedule", "mode"), "schedule.mode", src);
  c.iterations = get<int>(s("schedule", "iterations"), "schedule.iterations", src);
  c.final_ratio = get<double>(s("schedule", "final_ratio"), "schedule.final_ratio", src);
  c.targets = get<std::vector<double>>(s("schedule", "targets"), "schedule.targets", src);
  c.milestones =
      get<std::vector<double>>(s("regeneration", "milestones"), "regeneration.milestones", src);
  c.regen_fraction = get<double>(s("regeneration", "fraction"), "regeneration.fraction", src);
  c.report_sparsities =
      get<std::vector<double>>(s("report", "sparsities"), "report.sparsities", src);
  c.tp = get<int>(s("parallel", "tp"), "parallel.tp", src);
  c.threads = get<int>(s("parallel", "threads"), "parallel.threads", src);

  // Validation: every impossible value is refused with its key.
  auto bad = [&](const std::string& key, const std::string& why) {
    throw ConfigError(cat(src, ": ", key, " ", why));
  };
  if (c.model.empty()) bad("model", "is required (a Hugging Face model directory)");
  if (c.task != "gsm8k" && c.task != "mathqa")
    bad("data.task", cat("\"", c.task, "\" must be gsm8k or mathqa"));
  if (c.source != "self" && c.source != "gold" && c.source != "text")
    bad("calibration.source", cat("\"", c.source, "\" must be self, gold or text"));
  if (c.loss != "decode-only" && c.loss != "full")
    bad("calibration.loss", "must be decode-only or full");
  if (c.source == "text" && c.loss != "full")
    bad("calibration.loss", "must be full for source text (no prompt to mask)");
  if (c.criterion != "taylor" && c.criterion != "taylor-vectorize" && c.criterion != "wanda-sp" &&
      c.criterion != "magnitude")
    bad("importance.criterion",
        cat("\"", c.criterion, "\" must be taylor, taylor-vectorize, wanda-sp or magnitude"));
  if (c.ranking != "global" && c.ranking != "per-layer")
    bad("importance.ranking", "must be global or per-layer");
  if (c.criterion != "magnitude" && c.prompts.empty())
    bad("data.prompts", "is required for data-driven criteria");
  if (c.num_prompts < 1) bad("data.num_prompts", "must be >= 1");
  if (c.thinking != "auto" && c.thinking != "on" && c.thinking != "off")
    bad("generation.thinking", cat("\"", c.thinking, "\" must be auto, on or off"));
  if (!(c.temperature >= 0) || !std::isfinite(c.temperature))
    bad("generation.temperature", "must be >= 0");
  if (c.top_p && !(*c.top_p > 0 && *c.top_p <= 1)) bad("generation.top_p", "must be in (0, 1]");
  if (c.top_k && *c.top_k < 0) bad("generation.top_k", "must be >= 0");
  if (c.max_new_tokens < 1) bad("generation.max_new_tokens", "must be >= 1");
  if (c.batch_size < 1) bad("generation.batch_size", "must be >= 1");
  if (c.iterations < 1) bad("schedule.iterations", "must be >= 1");
  if (!(c.final_ratio >= 0 && c.final_ratio < 1))
    bad("schedule.final_ratio", cat(c.final_ratio, " must be in [0, 1)"));
  if (c.mode != "progressive" && c.mode != "one-shot")
    bad("schedule.mode", cat("\"", c.mode, "\" must be progressive or one-shot"));
  if (c.targets.empty()) bad("schedule.targets", "must list at least one sparsity");
  for (size_t i = 0; i < c.targets.size(); ++i)
    if (!(c.targets[i] > 0 && c.targets[i] < 1) || (i && c.targets[i] <= c.targets[i - 1]))
      bad("schedule.targets", "must be increasing values in (0, 1)");
  if (c.one_shot()) {
    // One-shot is Wanda-sp as the paper runs it: layer by layer, a uniform ratio per layer,
    // on fixed calibration samples.
    if (c.criterion != "wanda-sp")
      bad("importance.criterion",
          cat("\"", c.criterion, "\" cannot run with schedule.mode one-shot (only wanda-sp)"));
    if (c.ranking != "per-layer")
      bad("importance.ranking",
          "must be per-layer with schedule.mode one-shot (a uniform ratio in every layer)");
    if (c.source == "self")
      bad("calibration.source",
          "must be gold or text with schedule.mode one-shot (fixed calibration samples)");
  }
  for (size_t i = 0; i < c.milestones.size(); ++i)
    if (!(c.milestones[i] > 0 && c.milestones[i] < 1) ||
        (i && c.milestones[i] <= c.milestones[i - 1]))
      bad("regeneration.milestones", "must be increasing values in (0, 1)");
  if (!(c.regen_fraction > 0 && c.regen_fraction <= 1))
    bad("regeneration.fraction", "must be in (0, 1]");
  for (double v : c.report_sparsities)
    if (!(v >= 0 && v < 1)) bad("report.sparsities", "must be values in [0, 1)");
  if (c.tp < 1) bad("parallel.tp", "must be >= 1");
  if (c.protected_layers)
    for (int l : *c.protected_layers)
      if (l < 0) bad("importance.protected_layers", "must list layer indices >= 0");
  return c;
}

PruneConfig load_prune_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw IoError(cat("cannot open config ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_prune_config(ss.str(), overrides, path, std::filesystem::current_path().string());
}

std::string to_yaml(const PruneConfig& c) {
  YAML::Emitter e;
  auto seq = [&](const auto& v) {
    e << YAML::Flow << YAML::BeginSeq;
    for (const auto& x : v) e << x;
    e << YAML::EndSeq;
  };
  e << YAML::BeginMap;
  e << YAML::Key << "model" << YAML::Value << c.model;
  e << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "task" << YAML::Value << c.task;
  e << YAML::Key << "prompts" << YAML::Value << c.prompts;
  e << YAML::Key << "num_prompts" << YAML::Value << c.num_prompts;
  e << YAML::Key << "shuffle_seed" << YAML::Value << c.shuffle_seed;
  e << YAML::EndMap;
  e << YAML::Key << "generation" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "chat" << YAML::Value << c.chat;
  e << YAML::Key << "thinking" << YAML::Value << YAML::DoubleQuoted << c.thinking;
  e << YAML::Key << "chat_format" << YAML::Value
    << (c.chat_format.empty() ? "auto" : c.chat_format);
  e << YAML::Key << "system_prompt" << YAML::Value << YAML::DoubleQuoted << c.system_prompt;
  e << YAML::Key << "temperature" << YAML::Value << c.temperature;
  e << YAML::Key << "top_p" << YAML::Value;
  if (c.top_p)
    e << *c.top_p;
  else
    e << "auto";
  e << YAML::Key << "top_k" << YAML::Value;
  if (c.top_k)
    e << *c.top_k;
  else
    e << "auto";
  e << YAML::Key << "max_new_tokens" << YAML::Value << c.max_new_tokens;
  e << YAML::Key << "seed" << YAML::Value << c.seed;
  e << YAML::Key << "batch_size" << YAML::Value << c.batch_size;
  e << YAML::EndMap;
  e << YAML::Key << "calibration" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "source" << YAML::Value << c.source;
  e << YAML::Key << "loss" << YAML::Value << c.loss;
  e << YAML::EndMap;
  e << YAML::Key << "importance" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "criterion" << YAML::Value << c.criterion;
  e << YAML::Key << "ranking" << YAML::Value << c.ranking;
  e << YAML::Key << "protected_layers" << YAML::Value;
  if (c.protected_layers)
    seq(*c.protected_layers);
  else
    e << "auto";
  e << YAML::EndMap;
  e << YAML::Key << "schedule" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "mode" << YAML::Value << c.mode;
  e << YAML::Key << "iterations" << YAML::Value << c.iterations;
  e << YAML::Key << "final_ratio" << YAML::Value << c.final_ratio;
  e << YAML::Key << "targets" << YAML::Value;
  seq(c.targets);
  e << YAML::EndMap;
  e << YAML::Key << "regeneration" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "milestones" << YAML::Value;
  seq(c.milestones);
  e << YAML::Key << "fraction" << YAML::Value << c.regen_fraction;
  e << YAML::EndMap;
  e << YAML::Key << "report" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "sparsities" << YAML::Value;
  seq(c.report_sparsities);
  e << YAML::EndMap;
  e << YAML::Key << "parallel" << YAML::Value << YAML::BeginMap;
  e << YAML::Key << "tp" << YAML::Value << c.tp;
  e << YAML::Key << "threads" << YAML::Value << c.threads;
  e << YAML::EndMap;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

}  // namespace resp
