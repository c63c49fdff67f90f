// GradientPass: forward with stored activations, then backward, for one sequence at a time.
// Loss = sum_t weights[t] * -log p(tokens[t+1] | tokens[..t]); the caller chooses the weights
// (decode-only: 1/|R| on response positions and 0 on prompt positions; full: 1/(T-1)).
// Weight gradients accumulate into ModelGrads, so G sums over samples.
//
// Memory: all activations of one sequence are kept, about
//   T * L * (4*H + 3*hq*D + 4*hkv*D + 3*F) floats (+ the workspace of one layer),
// e.g. 1.1 GB for T = 2048 on the 100M benchmark model; the vocabulary projection runs in
// blocks of 128 rows so logits never exist for the whole sequence.
#pragma once

#include <span>
#include <vector>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "model/activation_observer.h"
#include "model/gradients.h"
#include "model/model_weights.h"

namespace resp {

class GradientPass {
 public:
  GradientPass(const ModelWeights& weights, Backend& backend, Communicator& tp);

  struct Result {
    double loss = 0;        // sum_t weights[t] * nll_t
    double weight_sum = 0;  // sum_t weights[t]
    int64_t predicted = 0;  // positions with non-zero weight
  };

  // tokens [T >= 2]; weights [T-1]. Accumulates into `grads`; calls `observer` (if any) with
  // each layer's activations in forward and their gradients in backward.
  Result forward_backward(std::span<const int32_t> tokens, std::span<const float> weights,
                          ModelGrads& grads, ActivationObserver* observer = nullptr);

  // Forward only, reporting activations (forward-only criteria such as Wanda-sp).
  void forward_observe(std::span<const int32_t> tokens, ActivationObserver& observer);

 private:
  struct LayerStore {
    Tensor x_in, h1, q_pre, k_pre, qr, kr, v, att, x_mid, h2, g, u, a;
  };
  void ensure(int64_t T);
  void forward(std::span<const int32_t> tokens, ActivationObserver* observer);
  Tensor ws(const char* name, Shape s) const;

  const ModelWeights& w_;
  Backend& backend_;
  Communicator& tp_;
  int64_t capacity_ = 0;
  Arena store_;
  std::vector<LayerStore> layers_;
  Tensor x_final_, h_final_;  // [T, H] input of and output of the final norm
};

}  // namespace resp
