#include "train/train_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <sstream>

#include "config/yaml_schema.h"

namespace resp {

using namespace yaml_schema;

namespace {}  // namespace

double TrainConfig::lr_at(int step) const {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double span = std::max(1, steps - warmup);
  const double progress = std::min(1.0, static_cast<double>(step - warmup) / span);
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

TrainConfig parse_train_config(const std::string& text, const std::vector<std::string>& overrides,
                               const std::string& src, const std::string& base_dir) {
  // The schema and its defaults are the struct's initialisers, written out: one source.
  const std::string defaults = to_yaml(TrainConfig{});
  YAML::Node root = load_with_schema(defaults.c_str(), text, overrides, src);
  TrainConfig c;
  const auto s = [&](const char* sec, const char* key) { return root[sec][key]; };
  c.model_config = absolute(get<std::string>(s("model", "config"), "model.config", src), base_dir);
  c.init_from =
      absolute(get<std::string>(s("model", "init_from"), "model.init_from", src), base_dir);
  if (!is_auto(s("model", "tokenizer")))
    c.tokenizer =
        absolute(get<std::string>(s("model", "tokenizer"), "model.tokenizer", src), base_dir);
  c.init_std = get<double>(s("model", "init_std"), "model.init_std", src);
  c.data = absolute(get<std::string>(s("data", "path"), "data.path", src), base_dir);
  c.format = get<std::string>(s("data", "format"), "data.format", src);
  c.max_length = get<int>(s("data", "max_length"), "data.max_length", src);
  if (!is_auto(s("data", "chat_format")))
    c.chat_format = get<std::string>(s("data", "chat_format"), "data.chat_format", src);
  c.loss_tokens = get<std::string>(s("loss", "tokens"), "loss.tokens", src);
  c.lr = get<double>(s("optimizer", "lr"), "optimizer.lr", src);
  c.min_lr = get<double>(s("optimizer", "min_lr"), "optimizer.min_lr", src);
  c.weight_decay = get<double>(s("optimizer", "weight_decay"), "optimizer.weight_decay", src);
  c.beta1 = get<double>(s("optimizer", "beta1"), "optimizer.beta1", src);
  c.beta2 = get<double>(s("optimizer", "beta2"), "optimizer.beta2", src);
  c.eps = get<double>(s("optimizer", "eps"), "optimizer.eps", src);
  c.clip = get<double>(s("optimizer", "clip"), "optimizer.clip", src);
  c.steps = get<int>(s("schedule", "steps"), "schedule.steps", src);
  c.warmup = get<int>(s("schedule", "warmup"), "schedule.warmup", src);
  c.batch_size = get<int>(s("schedule", "batch_size"), "schedule.batch_size", src);
  c.grad_accum = get<int>(s("schedule", "grad_accum"), "schedule.grad_accum", src);
  c.checkpoint_every = get<int>(s("checkpoint", "every"), "checkpoint.every", src);
  c.save_dtype = get<std::string>(s("checkpoint", "save_dtype"), "checkpoint.save_dtype", src);
  c.log_every = get<int>(s("log", "every"), "log.every", src);
  c.seed = get<uint64_t>(root["seed"], "seed", src);
  c.threads = get<int>(s("parallel", "threads"), "parallel.threads", src);

  auto bad = [&](const std::string& key, const std::string& why) {
    throw ConfigError(cat(src, ": ", key, " ", why));
  };
  if (c.model_config.empty() == c.init_from.empty())
    bad("model", "needs exactly one of model.config (train from scratch) and model.init_from");
  if (c.tokenizer.empty())
    c.tokenizer = c.init_from.empty() ? std::filesystem::path(c.model_config).parent_path().string()
                                      : c.init_from;
  if (!(c.init_std > 0)) bad("model.init_std", "must be > 0");
  if (c.data.empty()) bad("data.path", "is required (a JSONL file)");
  if (c.format != "gsm8k-thinking" && c.format != "messages" && c.format != "prompt-completion" &&
      c.format != "text")
    bad("data.format",
        cat("\"", c.format, "\" must be gsm8k-thinking, messages, prompt-completion or text"));
  if (c.max_length < 2) bad("data.max_length", "must be >= 2");
  if (c.loss_tokens != "response" && c.loss_tokens != "all")
    bad("loss.tokens", "must be response or all");
  if (c.format == "text" && c.loss_tokens != "all")
    bad("loss.tokens", "must be all for data.format text (there is no prompt to mask)");
  if (!(c.lr > 0) || !std::isfinite(c.lr)) bad("optimizer.lr", "must be > 0");
  if (!(c.min_lr >= 0 && c.min_lr <= c.lr)) bad("optimizer.min_lr", "must be in [0, lr]");
  if (!(c.weight_decay >= 0)) bad("optimizer.weight_decay", "must be >= 0");
  if (!(c.beta1 >= 0 && c.beta1 < 1)) bad("optimizer.beta1", "must be in [0, 1)");
  if (!(c.beta2 >= 0 && c.beta2 < 1)) bad("optimizer.beta2", "must be in [0, 1)");
  if (!(c.eps > 0)) bad("optimizer.eps", "must be > 0");
  if (!(c.clip >= 0)) bad("optimizer.clip", "must be >= 0 (0 disables clipping)");
  if (c.steps < 1) bad("schedule.steps", "must be >= 1");
  if (c.warmup < 0 || c.warmup > c.steps) bad("schedule.warmup", "must be in [0, steps]");
  if (c.batch_size < 1) bad("schedule.batch_size", "must be >= 1");
  if (c.grad_accum < 1) bad("schedule.grad_accum", "must be >= 1");
  if (c.checkpoint_every < 1) bad("checkpoint.every", "must be >= 1");
  if (c.save_dtype != "f32" && c.save_dtype != "bf16")
    bad("checkpoint.save_dtype", "must be f32 or bf16");
  if (c.log_every < 1) bad("log.every", "must be >= 1");
  return c;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path);
  if (!in) throw IoError(cat("cannot open config ", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_train_config(ss.str(), overrides, path, std::filesystem::current_path().string());
}

std::string to_yaml(const TrainConfig& c) {
  YAML::Emitter e;
  auto kv = [&](const char* k, const auto& v) { e << YAML::Key << k << YAML::Value << v; };
  auto section = [&](const char* name) { e << YAML::Key << name << YAML::Value << YAML::BeginMap; };
  e << YAML::BeginMap;
  section("model");
  kv("config", c.model_config);
  kv("init_from", c.init_from);
  kv("tokenizer", c.tokenizer);
  kv("init_std", c.init_std);
  e << YAML::EndMap;
  section("data");
  kv("path", c.data);
  kv("format", c.format);
  kv("max_length", c.max_length);
  kv("chat_format", c.chat_format.empty() ? std::string("auto") : c.chat_format);
  e << YAML::EndMap;
  section("loss");
  kv("tokens", c.loss_tokens);
  e << YAML::EndMap;
  section("optimizer");
  kv("lr", c.lr);
  kv("min_lr", c.min_lr);
  kv("weight_decay", c.weight_decay);
  kv("beta1", c.beta1);
  kv("beta2", c.beta2);
  kv("eps", c.eps);
  kv("clip", c.clip);
  e << YAML::EndMap;
  section("schedule");
  kv("steps", c.steps);
  kv("warmup", c.warmup);
  kv("batch_size", c.batch_size);
  kv("grad_accum", c.grad_accum);
  e << YAML::EndMap;
  section("checkpoint");
  kv("every", c.checkpoint_every);
  kv("save_dtype", c.save_dtype);
  e << YAML::EndMap;
  section("log");
  kv("every", c.log_every);
  e << YAML::EndMap;
  kv("seed", c.seed);
  section("parallel");
  kv("threads", c.threads);
  e << YAML::EndMap;
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

}  // namespace resp
