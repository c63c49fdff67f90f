// Pruning plans: which query heads and MLP channels each layer keeps, in original numbering.
// Pure functions from scores to plans; materialising a plan is a ModelConfig whose LayerShapes
// hold the kept ids (a KV head is dropped when none of its query heads is kept).
#pragma once

#include <string>
#include <vector>

#include "importance/criterion.h"
#include "model/model_config.h"

namespace resp {

enum class Ranking { Global, PerLayer };
Ranking parse_ranking(const std::string& s);
std::string ranking_name(Ranking r);

struct LayerPlan {
  std::vector<int> heads;     // kept query heads (original ids, ascending)
  std::vector<int> channels;  // kept MLP channels (original ids, ascending)
};
using PrunePlan = std::vector<LayerPlan>;

// The dense model's plan (everything kept).
PrunePlan dense_plan(const ModelConfig& dense);
// The plan a config describes.
PrunePlan plan_of(const ModelConfig& config);

// Layers whose heads and channels are never pruned: outside range(int(0.1 L), L - 1)
// (Qwen3-8B, L = 36: layers 0, 1, 2 and 35).
std::vector<bool> default_protected_layers(int num_layers);

// Number of prunable units (query heads + channels) of the dense model, protected included.
int64_t total_units(const ModelConfig& dense);
// Units removed by `plan` relative to the dense model.
int64_t pruned_units(const ModelConfig& dense, const PrunePlan& plan);

// Cumulative pruning to structural ratio `ratio` (of total_units, protected counted in the
// total): removes the lowest-scored units still kept in `current`, never restores one.
//  Global:   one joint ranking over every unprotected layer's heads and channels.
//  PerLayer: each unprotected layer removes floor(ratio * n) of its heads and of its channels.
// Ties break by (layer, heads before channels, id), so plans are deterministic. `scores` must
// describe `current` (same kept ids per layer).
PrunePlan prune_to_ratio(const ModelConfig& dense, const PrunePlan& current,
                         const ImportanceScores& scores, double ratio, Ranking ranking,
                         const std::vector<bool>& protected_layers);

// The dense config with `plan` applied (per-layer kept ids; KV heads without query heads
// dropped). Throws ConfigError when the plan names ids outside the dense model.
ModelConfig apply_plan(const ModelConfig& dense, const PrunePlan& plan);

// RESP's measured sparsity: 1 - (weights of the decoder layers' linear maps still present) /
// (all parameters of the decoder layers, norms and biases included). A pruned head removes its
// q_proj rows and o_proj columns; k/v projections stay counted. Embeddings/lm_head excluded.
double measured_sparsity(const ModelConfig& dense, const PrunePlan& plan);

}  // namespace resp
