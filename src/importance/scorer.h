// compute_importance: scores for every kept query head and MLP channel of the current model.
//
// Data parallelism: sample i runs on replica i % dp. Quantities are summed across replicas
// BEFORE the absolute value (summed gradients G for taylor, signed per-structure sums for
// taylor-vectorize, squared activation norms for wanda-sp), so scores do not depend on dp.
// Tensor parallelism: a rank scores the heads/channels it owns; the pieces are gathered in
// fp64 so every rank ends with every layer's full score vector.
#pragma once

#include <functional>
#include <span>

#include "backend/backend.h"
#include "comm/parallel_layout.h"
#include "importance/calibration.h"
#include "importance/criterion.h"
#include "model/model_weights.h"

namespace resp {

struct ImportanceOptions {
  Criterion criterion = Criterion::Taylor;
  LossMode loss = LossMode::DecodeOnly;
  std::string source = "self";
  // Layers to observe and score (empty: every layer). The others get their kept ids with zero
  // scores and cost no activation statistics or weight reads (one-shot Wanda-sp scores one
  // layer at a time). The same on every rank.
  std::vector<bool> layers;
  // Called after each local sample (done, total local) for progress reporting.
  std::function<void(int64_t, int64_t)> progress;
};

ImportanceScores compute_importance(const ModelWeights& weights, Backend& backend,
                                    const ParallelContext& par,
                                    std::span<const CalibrationSample> samples,
                                    const ImportanceOptions& options);

}  // namespace resp
