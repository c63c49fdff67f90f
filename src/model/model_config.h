// ModelConfig: what resp needs from a Hugging Face config.json. Widths are stored per layer
// (LayerShape) because pruning leaves every layer with its own number of query heads, KV heads
// and MLP channels; a dense model simply has identical entries.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace resp {

enum class Arch { Qwen3, Qwen2, Llama };
std::string arch_name(Arch a);  // the HF architectures[] string

struct RopeScaling {
  enum class Type { None, Llama3 } type = Type::None;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  double original_max_position_embeddings = 8192.0;
};

struct LayerShape {
  // Original (global) ids of the query heads, KV heads and MLP channels this layer keeps.
  // A dense layer keeps 0..n-1; ids index the dense model's numbering.
  std::vector<int> heads;
  std::vector<int> kv_heads;
  std::vector<int> channels;
  // For each kept query head (same order as `heads`), the original id of the KV head it reads.
  std::vector<int> kv_of_head;

  int n_heads() const { return static_cast<int>(heads.size()); }
  int n_kv_heads() const { return static_cast<int>(kv_heads.size()); }
  int d_ff() const { return static_cast<int>(channels.size()); }
};

struct ModelConfig {
  Arch arch = Arch::Qwen3;
  std::string model_type;
  int vocab_size = 0;
  int hidden_size = 0;
  int num_layers = 0;
  // Dense (original) widths; per-layer kept widths live in `layers`.
  int num_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int intermediate_size = 0;
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2 always; Llama when attention_bias
  bool o_bias = false;    // Llama attention_bias
  bool qk_norm = false;   // Qwen3
  std::vector<int> eos_token_ids;
  int bos_token_id = -1;
  std::vector<LayerShape> layers;

  // Query heads per KV head in the dense model.
  int group_size() const { return num_heads / num_kv_heads; }
  // Parameter count of the (possibly pruned) model, counting each weight once.
  int64_t parameter_count() const;
  // RoPE inverse frequencies [head_dim/2] with rope scaling applied, in double.
  std::vector<double> rope_inv_freq() const;
};

// Parses config.json content; `source` names the file in error messages.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& source);
// Reads DIR/config.json. Throws IoError / FormatError / ConfigError / UnsupportedError.
ModelConfig load_model_config(const std::filesystem::path& model_dir);
// A dense LayerShape for every layer.
std::vector<LayerShape> dense_layers(int num_layers, int num_heads, int num_kv_heads, int d_ff);

}  // namespace resp
