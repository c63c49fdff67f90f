// ActivationObserver: lets importance criteria see per-layer activations (forward) and their
// gradients (backward) without the model knowing about criteria. Views are valid only during
// the callback and hold this rank's local heads/channels.
#pragma once

#include "core/tensor.h"

namespace resp {

struct LayerActivations {
  int layer = 0;
  int64_t tokens = 0;
  Tensor q_proj_out;  // [T, hq*D] output of q_proj incl. bias (before q-norm and RoPE)
  Tensor q_bias;      // [hq*D] or empty
  Tensor attn_out;    // [T, hq*D] input of o_proj
  Tensor gate_out;    // [T, F]
  Tensor up_out;      // [T, F]
  Tensor mlp_act;     // [T, F] input of down_proj (silu(gate) * up)
  // Backward only: gradients of the loss with respect to the tensors above.
  Tensor d_q_proj_out, d_attn_out, d_gate_out, d_up_out, d_mlp_act;
};

class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  virtual void on_forward(const LayerActivations&) {}
  virtual void on_backward(const LayerActivations&) {}
};

}  // namespace resp
