// ModelGrads: weight gradients in the same shapes as the rank's ModelWeights, in one arena.
// Which tensors exist is chosen up front: importance needs only the prunable matrices
// (q_proj, o_proj, gate/up/down_proj), training needs everything.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "core/arena.h"
#include "model/model_weights.h"

namespace resp {

enum class GradSelection { Prunable, All };

struct LayerGrads {
  Tensor attn_norm, wq, bq, wk, bk, wv, bv, q_norm, k_norm, wo, bo, mlp_norm, wg, wu, wd;
};

struct ModelGrads {
  GradSelection selection = GradSelection::Prunable;
  Arena arena;
  Tensor embed, final_norm, lm_head;  // lm_head aliases embed when tied
  std::vector<LayerGrads> layers;

  void zero(Backend& backend);
  // Every allocated gradient tensor (for reductions across data-parallel replicas).
  std::vector<Tensor> tensors() const;
};

ModelGrads make_grads(const ModelWeights& weights, Backend& backend, GradSelection selection);

}  // namespace resp
