#include "train/adamw.h"

#include <cmath>

#include "core/error.h"

namespace resp {

std::vector<Parameter> trainable_parameters(ModelWeights& w, ModelGrads& g) {
  if (g.selection != GradSelection::All)
    throw UsageError("training needs the gradients of every tensor (GradSelection::All)");
  if (w.plan.tp != 1) throw UnsupportedError("training runs with tp = 1 (data parallel only)");
  std::vector<Parameter> out;
  auto add = [&](std::string name, const Tensor& v, const Tensor& gr, bool decay) {
    if (v.empty()) return;  // absent part (no bias, no q/k norm)
    if (v.device() != Device::CPU || gr.device() != Device::CPU)
      throw UnsupportedError("training needs host tensors (CPU backend)");
    if (!(v.shape() == gr.shape()))
      throw ShapeError(
          cat("gradient of ", name, " has shape ", gr.shape().str(), ", weight ", v.shape().str()));
    out.push_back({std::move(name), v, gr, decay});
  };
  add("model.embed_tokens.weight", w.embed, g.embed, true);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& lw = w.layers[l];
    const LayerGrads& lg = g.layers[l];
    const std::string P = "model.layers." + std::to_string(l) + ".";
    add(P + "input_layernorm.weight", lw.attn_norm, lg.attn_norm, false);
    add(P + "self_attn.q_proj.weight", lw.wq, lg.wq, true);
    add(P + "self_attn.q_proj.bias", lw.bq, lg.bq, false);
    add(P + "self_attn.k_proj.weight", lw.wk, lg.wk, true);
    add(P + "self_attn.k_proj.bias", lw.bk, lg.bk, false);
    add(P + "self_attn.v_proj.weight", lw.wv, lg.wv, true);
    add(P + "self_attn.v_proj.bias", lw.bv, lg.bv, false);
    add(P + "self_attn.q_norm.weight", lw.q_norm, lg.q_norm, false);
    add(P + "self_attn.k_norm.weight", lw.k_norm, lg.k_norm, false);
    add(P + "self_attn.o_proj.weight", lw.wo, lg.wo, true);
    add(P + "self_attn.o_proj.bias", lw.bo, lg.bo, false);
    add(P + "post_attention_layernorm.weight", lw.mlp_norm, lg.mlp_norm, false);
    add(P + "mlp.gate_proj.weight", lw.wg, lg.wg, true);
    add(P + "mlp.up_proj.weight", lw.wu, lg.wu, true);
    add(P + "mlp.down_proj.weight", lw.wd, lg.wd, true);
  }
  add("model.norm.weight", w.final_norm, g.final_norm, false);
  if (!w.config.tie_word_embeddings) add("lm_head.weight", w.lm_head, g.lm_head, true);
  for (const auto& p : out)
    if (!p.value.is_contiguous() || !p.grad.is_contiguous() || p.value.dtype() != DType::F32)
      throw UnsupportedError(cat("parameter ", p.name, " is not a contiguous f32 tensor"));
  return out;
}

AdamW::AdamW(const std::vector<Parameter>& params) {
  for (const auto& p : params) {
    m_.emplace_back(static_cast<size_t>(p.value.numel()), 0.0f);
    v_.emplace_back(static_cast<size_t>(p.value.numel()), 0.0f);
  }
}

void AdamW::step(const std::vector<Parameter>& params, const AdamWHyper& h, int64_t step) {
  if (params.size() != m_.size()) throw UsageError("AdamW::step: parameter list changed");
  if (step < 1) throw UsageError("AdamW::step: steps count from 1");
  const double c1 = 1.0 - std::pow(h.beta1, static_cast<double>(step));
  const double c2 = 1.0 - std::pow(h.beta2, static_cast<double>(step));
  const float b1 = static_cast<float>(h.beta1), b2 = static_cast<float>(h.beta2);
  const float lr = static_cast<float>(h.lr), eps = static_cast<float>(h.eps);
  // torch's formulation: p -= (lr / c1) * m / (sqrt(v) / sqrt(c2) + eps).
  const float step_size = static_cast<float>(h.lr / c1);
  const float inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(c2));
  for (size_t i = 0; i < params.size(); ++i) {
    float* p = params[i].value.f32();
    const float* g = params[i].grad.f32();
    float* m = m_[i].data();
    float* v = v_[i].data();
    const int64_t n = params[i].value.numel();
    const float decay = params[i].decay ? 1.0f - lr * static_cast<float>(h.weight_decay) : 1.0f;
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      p[j] *= decay;
      m[j] = b1 * m[j] + (1.0f - b1) * g[j];
      v[j] = b2 * v[j] + (1.0f - b2) * g[j] * g[j];
      p[j] -= step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_c2 + eps);
    }
  }
}

double global_grad_norm(const std::vector<Parameter>& params) {
  // Fixed chunks summed in order: the norm (hence the clip factor, hence the weights) must not
  // depend on thread timing, or a resumed run would drift from an uninterrupted one.
  constexpr int64_t kChunks = 64;
  double total = 0;
  for (const auto& p : params) {
    const float* g = p.grad.f32();
    const int64_t n = p.grad.numel();
    double part[kChunks] = {};
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < kChunks; ++c) {
      double s = 0;
      for (int64_t j = n * c / kChunks; j < n * (c + 1) / kChunks; ++j)
        s += static_cast<double>(g[j]) * g[j];
      part[c] = s;
    }
    for (double s : part) total += s;
  }
  return std::sqrt(total);
}

void scale_grads(const std::vector<Parameter>& params, float factor) {
  for (const auto& p : params) {
    float* g = p.grad.f32();
    const int64_t n = p.grad.numel();
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; ++j) g[j] *= factor;
  }
}

}  // namespace resp
