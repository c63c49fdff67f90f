#include "model/gradient_pass.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace resp {

namespace {
constexpr int64_t kLogitBlock = 128;

Tensor rows(const Tensor& t, int64_t T) {
  return t.slice_rows(0, T);
}
}  // namespace

GradientPass::GradientPass(const ModelWeights& weights, Backend& backend, Communicator& tp)
    : w_(weights), backend_(backend), tp_(tp), fwd_(weights, backend, tp) {}

Tensor GradientPass::ws(const char* name, Shape s) const {
  const Tensor t = store_.get(name);
  if (s.numel() > t.numel())
    throw ShapeError(cat("gradient workspace ", name, " too small for ", s.str()));
  return Tensor(t.data(), t.dtype(), s, t.device());
}

void GradientPass::ensure(int64_t T) {
  if (T <= capacity_) return;
  const int64_t cap = std::max<int64_t>(T, capacity_ * 3 / 2);
  const auto& c = w_.config;
  const int64_t H = c.hidden_size, D = c.head_dim, V = c.vocab_size;
  int64_t max_q = 1, max_kv = 1, max_f = 1;
  ArenaPlan p;
  for (size_t l = 0; l < w_.layers.size(); ++l) {
    const auto& L = w_.layers[l];
    const int64_t q = L.n_heads * D, kv = L.n_kv * D, f = L.d_ff;
    max_q = std::max(max_q, q);
    max_kv = std::max(max_kv, kv);
    max_f = std::max(max_f, f);
    const std::string s = cat("L", l, ".");
    for (const char* n : {"x_in", "h1", "x_mid", "h2"}) p.add(s + n, DType::F32, {cap, H});
    for (const char* n : {"q_pre", "q", "att"}) p.add(s + n, DType::F32, {cap, q});
    for (const char* n : {"k_pre", "k", "v"}) p.add(s + n, DType::F32, {cap, kv});
    for (const char* n : {"gate", "up", "act"}) p.add(s + n, DType::F32, {cap, f});
  }
  p.add("x_final", DType::F32, {cap, H});
  p.add("h_final", DType::F32, {cap, H});
  p.add("o", DType::F32, {cap, H});  // the forward's block outputs, shared by all layers
  // Backward workspace, shared by all layers.
  for (const char* n : {"dx", "dxm", "dh", "dtmp"}) p.add(n, DType::F32, {cap * H});
  for (const char* n : {"datt", "dq"}) p.add(n, DType::F32, {cap * max_q});
  for (const char* n : {"dk", "dv"}) p.add(n, DType::F32, {cap * max_kv});
  for (const char* n : {"dg", "du", "da"}) p.add(n, DType::F32, {cap * max_f});
  p.add("ids", DType::I32, {cap});
  p.add("pos", DType::I32, {cap});
  p.add("targets", DType::I32, {kLogitBlock});
  p.add("weights", DType::F32, {kLogitBlock});
  p.add("losses", DType::F32, {kLogitBlock});
  p.add("logits", DType::F32, {kLogitBlock, V});
  store_ = Arena(p, backend_.allocate(p.total_bytes()));
  layers_.clear();
  for (size_t l = 0; l < w_.layers.size(); ++l) {
    const std::string s = cat("L", l, ".");
    auto get = [&](const char* n) { return store_.get(s + n); };
    layers_.push_back(LayerBuffers{.x_in = get("x_in"),
                                   .h1 = get("h1"),
                                   .q_pre = get("q_pre"),
                                   .k_pre = get("k_pre"),
                                   .q = get("q"),
                                   .k = get("k"),
                                   .v = get("v"),
                                   .att = get("att"),
                                   .o = store_.get("o"),
                                   .x_mid = get("x_mid"),
                                   .h2 = get("h2"),
                                   .gate = get("gate"),
                                   .up = get("up"),
                                   .act = get("act"),
                                   .x_out = {}});
  }
  x_final_ = store_.get("x_final");
  h_final_ = store_.get("h_final");
  for (size_t l = 0; l < layers_.size(); ++l)
    layers_[l].x_out = l + 1 < layers_.size() ? layers_[l + 1].x_in : x_final_;
  capacity_ = cap;
}

void GradientPass::forward(std::span<const int32_t> tokens, ActivationObserver* obs) {
  check_token_sequence(w_.config, tokens);
  const int64_t T = static_cast<int64_t>(tokens.size());
  ensure(T);
  tokens_ = T;
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(t);
  const Tensor ids = ws("ids", {T}), positions = ws("pos", {T});
  backend_.copy(ids, Tensor(const_cast<int32_t*>(tokens.data()), DType::I32, Shape{T}));
  backend_.copy(positions, Tensor(pos.data(), DType::I32, Shape{T}));

  fwd_.embed(rows(layers_.empty() ? x_final_ : layers_[0].x_in, T), ids);
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerActivations act =
        fwd_.layer(static_cast<int>(l), positions, layers_[l].first_rows(T));
    if (obs) obs->on_forward(act);
  }
  fwd_.final_norm(rows(h_final_, T), rows(x_final_, T));
}

void GradientPass::forward_observe(std::span<const int32_t> tokens, ActivationObserver& observer) {
  forward(tokens, &observer);
}

Tensor GradientPass::final_hidden() const {
  return tokens_ == 0 ? Tensor() : rows(h_final_, tokens_);
}

GradientPass::Result GradientPass::forward_backward(std::span<const int32_t> tokens,
                                                    std::span<const float> weights,
                                                    ModelGrads& grads, ActivationObserver* obs) {
  const auto& c = w_.config;
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (T < 2) throw UsageError("forward_backward: a sequence needs at least 2 tokens");
  if (static_cast<int64_t>(weights.size()) != T - 1)
    throw ShapeError(cat("forward_backward: ", weights.size(), " loss weights for ", T, " tokens"));
  forward(tokens, obs);
  const int64_t H = c.hidden_size, D = c.head_dim, V = c.vocab_size;
  const float eps = static_cast<float>(c.rms_norm_eps);
  const Tensor positions = ws("pos", {T});
  Result res;

  // ---- loss and the vocabulary projection, in blocks of rows --------------------------------
  const Tensor dx = ws("dx", {T, H});
  const Tensor dh = ws("dh", {T, H});  // gradient of the final norm's output
  backend_.fill(dh, 0.0f);
  const Tensor hf = rows(h_final_, T);
  std::vector<float> block_w, losses;
  std::vector<int32_t> block_t;
  for (int64_t t0 = 0; t0 < T - 1; t0 += kLogitBlock) {
    const int64_t n = std::min(kLogitBlock, T - 1 - t0);
    block_w.assign(weights.begin() + t0, weights.begin() + t0 + n);
    bool any = false;
    for (float wt : block_w) {
      if (!std::isfinite(wt) || wt < 0) throw UsageError("loss weights must be finite and >= 0");
      any = any || wt != 0.0f;
    }
    if (!any) continue;  // e.g. prompt-only rows under the decode-only loss
    block_t.assign(tokens.begin() + t0 + 1, tokens.begin() + t0 + 1 + n);
    const Tensor logits = ws("logits", {n, V});
    const Tensor tg = ws("targets", {n}), wt = ws("weights", {n}), ls = ws("losses", {n});
    backend_.copy(tg, Tensor(block_t.data(), DType::I32, Shape{n}));
    backend_.copy(wt, Tensor(block_w.data(), DType::F32, Shape{n}));
    const Tensor hrows = hf.slice_rows(t0, n);
    backend_.linear(logits, hrows, w_.lm_head);
    backend_.cross_entropy(ls, logits, tg, wt);  // logits now hold dL/dlogits
    losses.resize(static_cast<size_t>(n));
    backend_.copy(Tensor(losses.data(), DType::F32, Shape{n}), ls);
    for (int64_t i = 0; i < n; ++i) {
      const double wgt = block_w[static_cast<size_t>(i)];
      if (wgt == 0) continue;
      res.loss += wgt * losses[static_cast<size_t>(i)];
      res.weight_sum += wgt;
      ++res.predicted;
    }
    backend_.linear_backward(dh.slice_rows(t0, n), grads.lm_head, Tensor(), logits, hrows,
                             w_.lm_head);
  }
  backend_.rmsnorm_backward(dx, grads.final_norm, dh, rows(x_final_, T), w_.final_norm, eps);

  // ---- layers in reverse ---------------------------------------------------------------------
  const Tensor dxm = ws("dxm", {T, H}), dtmp = ws("dtmp", {T, H});
  for (size_t li = w_.layers.size(); li-- > 0;) {
    const LayerWeights& L = w_.layers[li];
    LayerGrads& G = grads.layers[li];
    const LayerBuffers S = layers_[li].first_rows(T);
    const int64_t hq = L.n_heads, hkv = L.n_kv, F = L.d_ff;
    LayerActivations act;
    act.layer = static_cast<int>(li);
    act.tokens = T;

    // MLP: x_next = x_mid + down(silu(gate(h2)) * up(h2)); dx holds d x_next.
    if (F > 0) {
      const Tensor &g = S.gate, &u = S.up, &a = S.act, &h2 = S.h2;
      const Tensor da = ws("da", {T, F}), dg = ws("dg", {T, F}), du = ws("du", {T, F});
      backend_.linear_backward(da, G.wd, Tensor(), dx, a, L.wd);
      backend_.swiglu_backward(dg, du, da, g, u);
      backend_.linear_backward(dh, G.wg, Tensor(), dg, h2, L.wg);
      backend_.linear_backward(dh, G.wu, Tensor(), du, h2, L.wu, 1.0f);
      act.gate_out = g;
      act.up_out = u;
      act.mlp_act = a;
      act.d_gate_out = dg;
      act.d_up_out = du;
      act.d_mlp_act = da;
    } else {
      backend_.fill(dh, 0.0f);
    }
    tp_.all_reduce(dh);  // column-parallel gate/up: input gradient sums over ranks
    backend_.rmsnorm_backward(dtmp, G.mlp_norm, dh, S.x_mid, L.mlp_norm, eps);
    backend_.add(dxm, dx, dtmp);

    // Attention: x_mid = x_in + o_proj(attn(rope(norm(q_proj(h1))), ...)); dxm holds d x_mid.
    if (!G.bo.empty()) backend_.sum_rows(G.bo, dxm);
    if (hq > 0) {
      const Tensor &h1 = S.h1, &att = S.att, &q = S.q, &k = S.k, &v = S.v;
      const Tensor datt = ws("datt", {T, hq * D}), dq = ws("dq", {T, hq * D}),
                   dk = ws("dk", {T, hkv * D}), dv = ws("dv", {T, hkv * D});
      backend_.linear_backward(datt, G.wo, Tensor(), dxm, att, L.wo);
      backend_.attention_backward(dq.view({T, hq, D}), dk.view({T, hkv, D}), dv.view({T, hkv, D}),
                                  datt.view({T, hq, D}), q.view({T, hq, D}), k.view({T, hkv, D}),
                                  v.view({T, hkv, D}), L.kv_of_head, 0,
                                  1.0f / std::sqrt(static_cast<float>(D)));
      backend_.rope_backward(dq.view({T, hq, D}), positions, w_.inv_freq);
      backend_.rope_backward(dk.view({T, hkv, D}), positions, w_.inv_freq);
      if (c.qk_norm) {
        backend_.rmsnorm_backward(dq.view({T * hq, D}), G.q_norm, dq.view({T * hq, D}),
                                  S.q_pre.view({T * hq, D}), L.q_norm, eps);
        backend_.rmsnorm_backward(dk.view({T * hkv, D}), G.k_norm, dk.view({T * hkv, D}),
                                  S.k_pre.view({T * hkv, D}), L.k_norm, eps);
      }
      backend_.linear_backward(dh, G.wq, G.bq, dq, h1, L.wq);
      backend_.linear_backward(dh, G.wk, G.bk, dk, h1, L.wk, 1.0f);
      backend_.linear_backward(dh, G.wv, G.bv, dv, h1, L.wv, 1.0f);
      act.q_proj_out = S.q_pre;
      act.q_bias = L.bq;
      act.attn_out = att;
      act.d_q_proj_out = dq;
      act.d_attn_out = datt;
    } else {
      backend_.fill(dh, 0.0f);
    }
    tp_.all_reduce(dh);  // column-parallel q/k/v
    backend_.rmsnorm_backward(dtmp, G.attn_norm, dh, S.x_in, L.attn_norm, eps);
    backend_.add(dx, dxm, dtmp);
    if (obs) obs->on_backward(act);
  }
  if (!grads.embed.empty()) backend_.embedding_backward(grads.embed, dx, ws("ids", {T}));
  return res;
}

}  // namespace resp
