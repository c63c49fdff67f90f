// GradientPass: forward with stored activations, then backward, for one sequence at a time.
// The forward is LayerForward's (shared with the Decoder), given distinct buffers per layer so
// every activation survives for the backward.
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
#include "model/layer_forward.h"
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

  // The final-normed hidden states [T, H] of the last forward (a view into the pass's store,
  // valid until the next call; empty before the first): what Decoder::forward_hidden gives for
  // the same tokens.
  Tensor final_hidden() const;

 private:
  void ensure(int64_t T);
  void forward(std::span<const int32_t> tokens, ActivationObserver* observer);
  Tensor ws(const char* name, Shape s) const;

  const ModelWeights& w_;
  Backend& backend_;
  Communicator& tp_;
  LayerForward fwd_;
  int64_t capacity_ = 0;
  int64_t tokens_ = 0;  // T of the last forward
  Arena store_;
  std::vector<LayerBuffers> layers_;  // [capacity, width] each; x_out is the next x_in
  Tensor x_final_, h_final_;          // [T, H] input of and output of the final norm
};

}  // namespace resp
