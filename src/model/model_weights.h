// ModelWeights: the rank-local weights of a decoder in one backend arena. Empty tensors stand
// for absent parts (no bias, no q/k norm). The projection matrices (wq ... wd) and the lm_head
// are stored in the backend's weight_dtype() (F32 on the CPU, BF16 on CUDA), converted from the
// checkpoint's dtype on upload; everything else is F32. A tied lm_head is the embedding table
// when the weight dtype is F32, else a converted copy of it made at load (weights that change
// the table afterwards, e.g. an optimiser, must refresh it: training runs on F32 only). Read
// them back with Backend::copy() into F32 host memory, which converts.
#pragma once

#include <filesystem>
#include <vector>

#include "backend/backend.h"
#include "core/arena.h"
#include "model/model_config.h"
#include "model/shard_plan.h"

namespace resp {

class CheckpointReader;

struct LayerWeights {
  Tensor attn_norm;               // [H]
  Tensor wq, bq, wk, bk, wv, bv;  // [hq*D, H], [hq*D], [hkv*D, H], ...
  Tensor q_norm, k_norm;          // [D] (Qwen3)
  Tensor wo, bo;                  // [H, hq*D], [H] (bias only on tp_rank 0)
  Tensor mlp_norm;                // [H]
  Tensor wg, wu, wd;              // [f, H], [f, H], [H, f]
  Tensor kv_of_head;              // I32 [hq]: local KV index read by each local query head
  int n_heads = 0, n_kv = 0, d_ff = 0;
};

struct ModelWeights {
  ModelConfig config;
  ShardPlan plan;
  Arena arena;
  Tensor embed;       // [V, H]
  Tensor final_norm;  // [H]
  Tensor lm_head;     // [V, H]; aliases embed when tied and the weight dtype is F32
  Tensor inv_freq;    // [D/2] RoPE inverse frequencies (scaled)
  std::vector<LayerWeights> layers;

  size_t bytes() const { return arena.bytes(); }
};

// How a checkpoint's tensors are numbered relative to `config.layers`:
//  - Kept: the file holds exactly the config's kept heads/channels (a dense model, or a
//    pruned model exported as hetero) — row i of q_proj is the layer's i-th kept head;
//  - Original: the file is the dense model and the config's kept ids select its rows/columns
//    (how the pruning driver materialises a pruned model from the original checkpoint).
enum class FileNumbering { Kept, Original };

// Whether the checkpoint may hold tensors the config does not use. Refuse catches a config
// that describes another model; Allow is for deliberately partial models (the first l layers
// of layer-sequential Wanda).
enum class UnusedTensors { Refuse, Allow };

// Loads this rank's shard from a Hugging Face checkpoint directory. Names and shapes are
// checked against the config (errors name file, tensor, expected and got); non-finite weights
// are a FormatError naming the tensor.
ModelWeights load_weights(const std::filesystem::path& model_dir, const ModelConfig& config,
                          const ShardPlan& plan, Backend& backend,
                          FileNumbering numbering = FileNumbering::Kept);
ModelWeights load_weights(const CheckpointReader& reader, const ModelConfig& config,
                          const ShardPlan& plan, Backend& backend,
                          FileNumbering numbering = FileNumbering::Kept,
                          UnusedTensors unused = UnusedTensors::Refuse);

// Random weights (benchmarks, tests): N(0, std) for matrices, 1 for norms, keyed by seed so
// every TP layout sees the same global model.
ModelWeights random_weights(const ModelConfig& config, const ShardPlan& plan, Backend& backend,
                            uint64_t seed, float std = 0.02f);

}  // namespace resp
