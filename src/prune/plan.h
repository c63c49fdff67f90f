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

// One-shot uniform pruning (Wanda-sp as the paper runs it): every unprotected layer removes the
// same number of query heads and the same number of MLP channels. The kept counts for a measured
// sparsity `target` follow one rule (docs/config.md, "One-shot Wanda-sp"):
//   s0      = the dense model's measured sparsity (> 0: norms and biases are never "present")
//   dh, dc  = what removing one head / one channel from every unprotected layer adds to it
//   ratio   = (target - s0) / (n_heads * dh + d_ff * dc)   (the shared structural ratio)
//   heads   = floor(ratio * n_heads + 0.5), at most n_heads - 1
//   channels = the count in [0, d_ff - 1] whose measured sparsity (with `heads`) is closest to
//             the target (ties: fewer channels), so channels absorb the coarse head rounding.
// Throws ConfigError naming schedule.targets when no unprotected layer exists or the closest
// reachable sparsity is further than `tolerance` from the target.
struct UniformCounts {
  double target = 0;
  double ratio = 0;          // the shared structural ratio
  int heads_removed = 0;     // per unprotected layer
  int channels_removed = 0;  // per unprotected layer
  double sparsity = 0;       // measured sparsity of the resulting plan
};
UniformCounts uniform_counts_for_sparsity(const ModelConfig& dense,
                                          const std::vector<bool>& protected_layers, double target,
                                          double tolerance);

// Removes the `heads` lowest-scored heads and the `channels` lowest-scored channels of one
// layer (ties: the lower original id goes first). `scores` must describe `current`.
LayerPlan prune_layer_lowest(const LayerPlan& current, const LayerScores& scores, int heads,
                             int channels);

// The dense config with `plan` applied (per-layer kept ids; KV heads without query heads
// dropped). Throws ConfigError when the plan names ids outside the dense model.
ModelConfig apply_plan(const ModelConfig& dense, const PrunePlan& plan);

// RESP's measured sparsity: 1 - (weights of the decoder layers' linear maps still present) /
// (all parameters of the decoder layers, norms and biases included). A pruned head removes its
// q_proj rows and o_proj columns; k/v projections stay counted. Embeddings/lm_head excluded.
double measured_sparsity(const ModelConfig& dense, const PrunePlan& plan);

// How far below a requested sparsity a checkpoint may sit and still count as reaching it: the
// matched-sparsity tolerance of the comparisons (docs/results.md). Pruning moves in whole heads
// and channels, so a run's checkpoints rarely land exactly on a target.
inline constexpr double kSparsityTolerance = 0.005;
inline bool sparsity_reached(double measured, double target) {
  return measured >= target - kSparsityTolerance;
}

}  // namespace resp
