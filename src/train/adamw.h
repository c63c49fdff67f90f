// AdamW over a model's parameters (Loshchilov & Hutter: decoupled weight decay, as
// torch.optim.AdamW), with the parameter list in Hugging Face names and the global-norm gradient
// clip. State (first and second moments) is f32, one pair per parameter.
//
// The update runs on host memory: training is a CPU feature today (the CUDA backend keeps
// training out of scope), and the tensors are checked to be host tensors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/gradients.h"
#include "model/model_weights.h"

namespace resp {

struct Parameter {
  std::string name;  // the checkpoint tensor name ("model.layers.0.mlp.up_proj.weight")
  Tensor value;
  Tensor grad;
  bool decay = false;  // weight decay applies to matrices, not to norms and biases
};

// Every trainable tensor of a single-shard (tp = 1) model, paired with its gradient; a tied
// lm_head is the embedding and appears once. `grads` must be GradSelection::All.
std::vector<Parameter> trainable_parameters(ModelWeights& weights, ModelGrads& grads);

struct AdamWHyper {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
};

class AdamW {
 public:
  explicit AdamW(const std::vector<Parameter>& params);

  // One update with gradients already in params[i].grad; `step` counts from 1 (bias
  // correction). For each element: p -= lr*wd*p (decayed parameters only), then
  // m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2, p -= lr * m^ / (sqrt(v^) + eps).
  void step(const std::vector<Parameter>& params, const AdamWHyper& h, int64_t step);

  std::vector<std::vector<float>>& first_moments() { return m_; }
  std::vector<std::vector<float>>& second_moments() { return v_; }

 private:
  std::vector<std::vector<float>> m_, v_;
};

// sqrt(sum of squared gradient elements), accumulated in double.
double global_grad_norm(const std::vector<Parameter>& params);
// g *= factor for every gradient.
void scale_grads(const std::vector<Parameter>& params, float factor);

}  // namespace resp
