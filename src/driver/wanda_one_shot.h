// Wanda-sp as the paper runs it (resp-method.md, "Baselines used in the paper"): one shot,
// layer by layer, the same ratio in every unprotected layer. For each unprotected layer l in
// order:
//   1. the calibration samples run through the model whose layers < l are already pruned
//      (layer l itself still dense; only layers 0..l are loaded and run);
//   2. layer l is scored with compute_importance(criterion wanda-sp) — every token of every
//      sample: head h = sum over its o_proj input columns j of ||X_j||_2 * sum_i |Wo[i, j]|,
//      channel c = ||A_c||_2 * sum_i |Wd[i, c]| (A = down_proj input);
//   3. layer l drops its counts.heads_removed lowest-scored heads and counts.channels_removed
//      lowest-scored channels (ties: lower id first).
// Protected layers are run but never scored or pruned. The result does not depend on the
// TP x DP layout (scores are reduced like every other criterion's).
#pragma once

#include <functional>
#include <span>

#include "backend/backend.h"
#include "comm/parallel_layout.h"
#include "importance/calibration.h"
#include "importance/criterion.h"
#include "model/model_config.h"
#include "prune/plan.h"

namespace resp {

class CheckpointReader;

// How close to its target the measured sparsity of a one-shot plan must be.
constexpr double kOneShotTolerance = 0.005;

struct OneShotResult {
  PrunePlan plan;
  // Per layer, the scores the layer was pruned with (dense ids); protected layers: empty.
  ImportanceScores scores;
  double t_load = 0, t_importance = 0;  // seconds spent loading weights / scoring
};

// Collective over all ranks of `par`. `dense` is the dense model `reader` holds; `progress`
// (optional) is called after each pruned layer with its index and the seconds it took.
OneShotResult wanda_sp_one_shot(const CheckpointReader& reader, const ModelConfig& dense,
                                const std::vector<bool>& protected_layers,
                                std::span<const CalibrationSample> samples,
                                const UniformCounts& counts, const ParallelContext& par,
                                Backend& backend,
                                const std::function<void(int, double)>& progress = {});

}  // namespace resp
