#include "model/gradients.h"

namespace resp {

ModelGrads make_grads(const ModelWeights& w, Backend& backend, GradSelection sel) {
  ArenaPlan plan;
  const bool all = sel == GradSelection::All;
  auto add = [&](const std::string& name, const Tensor& like, bool wanted) {
    if (wanted && !like.empty()) plan.add(name, DType::F32, like.shape());
  };
  add("embed", w.embed, all);
  add("final_norm", w.final_norm, all);
  if (!w.config.tie_word_embeddings) add("lm_head", w.lm_head, all);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    const std::string p = cat("L", l, ".");
    add(p + "attn_norm", L.attn_norm, all);
    add(p + "wq", L.wq, true);
    add(p + "bq", L.bq, all);
    add(p + "wk", L.wk, all);
    add(p + "bk", L.bk, all);
    add(p + "wv", L.wv, all);
    add(p + "bv", L.bv, all);
    add(p + "q_norm", L.q_norm, all);
    add(p + "k_norm", L.k_norm, all);
    add(p + "wo", L.wo, true);
    add(p + "bo", L.bo, all);
    add(p + "mlp_norm", L.mlp_norm, all);
    add(p + "wg", L.wg, true);
    add(p + "wu", L.wu, true);
    add(p + "wd", L.wd, true);
  }
  ModelGrads g;
  g.selection = sel;
  g.arena = Arena(plan, backend.allocate(plan.total_bytes()));
  auto get = [&](const std::string& n) { return g.arena.has(n) ? g.arena.get(n) : Tensor(); };
  g.embed = get("embed");
  g.final_norm = get("final_norm");
  g.lm_head = w.config.tie_word_embeddings ? g.embed : get("lm_head");
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const std::string p = cat("L", l, ".");
    LayerGrads L;
    L.attn_norm = get(p + "attn_norm");
    L.wq = get(p + "wq");
    L.bq = get(p + "bq");
    L.wk = get(p + "wk");
    L.bk = get(p + "bk");
    L.wv = get(p + "wv");
    L.bv = get(p + "bv");
    L.q_norm = get(p + "q_norm");
    L.k_norm = get(p + "k_norm");
    L.wo = get(p + "wo");
    L.bo = get(p + "bo");
    L.mlp_norm = get(p + "mlp_norm");
    L.wg = get(p + "wg");
    L.wu = get(p + "wu");
    L.wd = get(p + "wd");
    g.layers.push_back(L);
  }
  g.zero(backend);
  return g;
}

std::vector<Tensor> ModelGrads::tensors() const {
  std::vector<Tensor> out;
  auto push = [&](const Tensor& t) {
    if (!t.empty()) out.push_back(t);
  };
  push(embed);
  push(final_norm);
  if (lm_head.data() != embed.data()) push(lm_head);
  for (const auto& L : layers)
    for (const Tensor* t : {&L.attn_norm, &L.wq, &L.bq, &L.wk, &L.bk, &L.wv, &L.bv, &L.q_norm,
                            &L.k_norm, &L.wo, &L.bo, &L.mlp_norm, &L.wg, &L.wu, &L.wd})
      push(*t);
  return out;
}

void ModelGrads::zero(Backend& backend) {
  for (const Tensor& t : tensors()) backend.fill(t, 0.0f);
}

}  // namespace resp
