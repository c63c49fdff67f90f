// The configuration of a `resp train` run (YAML, like `resp prune`'s: a schema with defaults,
// unknown keys and impossible values are errors naming the key, `--set section.key=value`
// overrides). docs/config.md lists every key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace resp {

struct TrainConfig {
  // model: exactly one of `config` (random initialisation from a config.json) and `init_from`
  // (continue from a Hugging Face checkpoint directory).
  std::string model_config;
  std::string init_from;
  std::string tokenizer;  // directory with tokenizer.json; default: init_from / config's dir
  double init_std = 0.02;
  // data
  std::string data;
  std::string format = "gsm8k-thinking";  // gsm8k-thinking | messages | prompt-completion | text
  int max_length = 512;                   // longer examples are skipped (and counted)
  std::string chat_format;                // empty: detect from the tokenizer's template
  // loss
  std::string loss_tokens = "response";  // response | all
  // optimizer (AdamW with decoupled weight decay on matrices only)
  double lr = 1e-3;
  double min_lr = 1e-4;
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double clip = 1.0;  // global gradient-norm clip; 0 disables
  // schedule: linear warmup then cosine decay to min_lr
  int steps = 1000;
  int warmup = 50;
  int batch_size = 16;  // sequences per micro-batch, over all data-parallel ranks
  int grad_accum = 1;   // micro-batches per optimizer step
  // checkpoints and output
  int checkpoint_every = 100;
  std::string save_dtype = "f32";  // f32 | bf16 (the exported model; training state is f32)
  int log_every = 10;
  uint64_t seed = 0;
  int threads = 0;

  int sequences_per_step() const { return batch_size * grad_accum; }
  double lr_at(int step) const;  // step is 0-based
};

TrainConfig parse_train_config(const std::string& yaml_text,
                               const std::vector<std::string>& overrides, const std::string& source,
                               const std::string& base_dir);
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides);
std::string to_yaml(const TrainConfig& c);

}  // namespace resp
