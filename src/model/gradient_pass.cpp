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
    : w_(weights), backend_(backend), tp_(tp) {}

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
    for (const char* n : {"q_pre", "qr", "att"}) p.add(s + n, DType::F32, {cap, q});
    for (const char* n : {"k_pre", "kr", "v"}) p.add(s + n, DType::F32, {cap, kv});
    for (const char* n : {"g", "u", "a"}) p.add(s + n, DType::F32, {cap, f});
  }
  p.add("x_final", DType::F32, {cap, H});
  p.add("h_final", DType::F32, {cap, H});
  // Backward workspace, shared by all layers.
  for (const char* n : {"dx", "dxm", "dh", "dtmp", "o"}) p.add(n, DType::F32, {cap * H});
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
    LayerStore S;
    S.x_in = store_.get(s + "x_in");
    S.h1 = store_.get(s + "h1");
    S.q_pre = store_.get(s + "q_pre");
    S.k_pre = store_.get(s + "k_pre");
    S.qr = store_.get(s + "qr");
    S.kr = store_.get(s + "kr");
    S.v = store_.get(s + "v");
    S.att = store_.get(s + "att");
    S.x_mid = store_.get(s + "x_mid");
    S.h2 = store_.get(s + "h2");
    S.g = store_.get(s + "g");
    S.u = store_.get(s + "u");
    S.a = store_.get(s + "a");
    layers_.push_back(S);
  }
  x_final_ = store_.get("x_final");
  h_final_ = store_.get("h_final");
  capacity_ = cap;
}

void GradientPass::forward(std::span<const int32_t> tokens, ActivationObserver* obs) {
  const auto& c = w_.config;
  const int64_t T = static_cast<int64_t>(tokens.size());
  if (T > c.max_position_embeddings)
    throw UsageError(cat("sequence of ", T, " tokens exceeds max_position_embeddings ",
                         c.max_position_embeddings));
  for (int32_t id : tokens)
    if (id < 0 || id >= c.vocab_size)
      throw UsageError(cat("token id ", id, " outside the vocabulary [0, ", c.vocab_size, ")"));
  ensure(T);
  const int64_t H = c.hidden_size, D = c.head_dim;
  const float eps = static_cast<float>(c.rms_norm_eps);
  std::vector<int32_t> pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(t);
  const Tensor ids = ws("ids", {T}), positions = ws("pos", {T});
  backend_.copy(ids, Tensor(const_cast<int32_t*>(tokens.data()), DType::I32, Shape{T}));
  backend_.copy(positions, Tensor(pos.data(), DType::I32, Shape{T}));
  const Tensor o = ws("o", {T, H});

  Tensor x = rows(layers_.empty() ? x_final_ : layers_[0].x_in, T);
  backend_.embedding(x, w_.embed, ids);
  for (size_t l = 0; l < w_.layers.size(); ++l) {
    const LayerWeights& L = w_.layers[l];
    const LayerStore& S = layers_[l];
    const int64_t hq = L.n_heads, hkv = L.n_kv, F = L.d_ff;
    const Tensor x_in = rows(S.x_in, T), h1 = rows(S.h1, T), x_mid = rows(S.x_mid, T),
                 h2 = rows(S.h2, T);
    backend_.rmsnorm(h1, x_in, L.attn_norm, eps);
    LayerActivations act;
    act.layer = static_cast<int>(l);
    act.tokens = T;
    if (hq == 0) {
      backend_.fill(o, 0.0f);
    } else {
      const Tensor q_pre = rows(S.q_pre, T), k_pre = rows(S.k_pre, T), qr = rows(S.qr, T),
                   kr = rows(S.kr, T), v = rows(S.v, T), att = rows(S.att, T);
      backend_.linear(q_pre, h1, L.wq, L.bq);
      backend_.linear(k_pre, h1, L.wk, L.bk);
      backend_.linear(v, h1, L.wv, L.bv);
      if (c.qk_norm) {
        backend_.rmsnorm(qr.view({T * hq, D}), q_pre.view({T * hq, D}), L.q_norm, eps);
        backend_.rmsnorm(kr.view({T * hkv, D}), k_pre.view({T * hkv, D}), L.k_norm, eps);
      } else {
        backend_.copy(qr, q_pre);
        backend_.copy(kr, k_pre);
      }
      backend_.rope(qr.view({T, hq, D}), positions, w_.inv_freq);
      backend_.rope(kr.view({T, hkv, D}), positions, w_.inv_freq);
      backend_.attention(att.view({T, hq, D}), qr.view({T, hq, D}), kr.view({T, hkv, D}),
                         v.view({T, hkv, D}), L.kv_of_head, 0,
                         1.0f / std::sqrt(static_cast<float>(D)));
      backend_.linear(o, att, L.wo);
      act.q_proj_out = q_pre;
      act.q_bias = L.bq;
      act.attn_out = att;
    }
    if (!L.bo.empty()) backend_.add_bias(o, L.bo);
    tp_.all_reduce(o);
    backend_.add(x_mid, x_in, o);
    backend_.rmsnorm(h2, x_mid, L.mlp_norm, eps);
    if (F == 0) {
      backend_.fill(o, 0.0f);
    } else {
      const Tensor g = rows(S.g, T), u = rows(S.u, T), a = rows(S.a, T);
      backend_.linear(g, h2, L.wg);
      backend_.linear(u, h2, L.wu);
      backend_.swiglu(a, g, u);
      backend_.linear(o, a, L.wd);
      act.gate_out = g;
      act.up_out = u;
      act.mlp_act = a;
    }
    tp_.all_reduce(o);
    const Tensor x_next = rows(l + 1 < w_.layers.size() ? layers_[l + 1].x_in : x_final_, T);
    backend_.add(x_next, x_mid, o);
    if (obs) obs->on_forward(act);
  }
  backend_.rmsnorm(rows(h_final_, T), rows(x_final_, T), w_.final_norm, eps);
}

void GradientPass::forward_observe(std::span<const int32_t> tokens, ActivationObserver& observer) {
  if (tokens.empty()) throw UsageError("forward: empty token sequence");
  forward(tokens, &observer);
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
    const LayerStore& S = layers_[li];
    const int64_t hq = L.n_heads, hkv = L.n_kv, F = L.d_ff;
    LayerActivations act;
    act.layer = static_cast<int>(li);
    act.tokens = T;

    // MLP: x_next = x_mid + down(silu(gate(h2)) * up(h2)); dx holds d x_next.
    if (F > 0) {
      const Tensor g = rows(S.g, T), u = rows(S.u, T), a = rows(S.a, T), h2 = rows(S.h2, T);
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
    backend_.rmsnorm_backward(dtmp, G.mlp_norm, dh, rows(S.x_mid, T), L.mlp_norm, eps);
    backend_.add(dxm, dx, dtmp);

    // Attention: x_mid = x_in + o_proj(attn(rope(norm(q_proj(h1))), ...)); dxm holds d x_mid.
    if (!G.bo.empty()) backend_.sum_rows(G.bo, dxm);
    if (hq > 0) {
      const Tensor h1 = rows(S.h1, T), att = rows(S.att, T), qr = rows(S.qr, T), kr = rows(S.kr, T),
                   v = rows(S.v, T);
      const Tensor datt = ws("datt", {T, hq * D}), dq = ws("dq", {T, hq * D}),
                   dk = ws("dk", {T, hkv * D}), dv = ws("dv", {T, hkv * D});
      backend_.linear_backward(datt, G.wo, Tensor(), dxm, att, L.wo);
      backend_.attention_backward(dq.view({T, hq, D}), dk.view({T, hkv, D}), dv.view({T, hkv, D}),
                                  datt.view({T, hq, D}), qr.view({T, hq, D}), kr.view({T, hkv, D}),
                                  v.view({T, hkv, D}), L.kv_of_head, 0,
                                  1.0f / std::sqrt(static_cast<float>(D)));
      backend_.rope_backward(dq.view({T, hq, D}), positions, w_.inv_freq);
      backend_.rope_backward(dk.view({T, hkv, D}), positions, w_.inv_freq);
      if (c.qk_norm) {
        backend_.rmsnorm_backward(dq.view({T * hq, D}), G.q_norm, dq.view({T * hq, D}),
                                  rows(S.q_pre, T).view({T * hq, D}), L.q_norm, eps);
        backend_.rmsnorm_backward(dk.view({T * hkv, D}), G.k_norm, dk.view({T * hkv, D}),
                                  rows(S.k_pre, T).view({T * hkv, D}), L.k_norm, eps);
      }
      backend_.linear_backward(dh, G.wq, G.bq, dq, h1, L.wq);
      backend_.linear_backward(dh, G.wk, G.bk, dk, h1, L.wk, 1.0f);
      backend_.linear_backward(dh, G.wv, G.bv, dv, h1, L.wv, 1.0f);
      act.q_proj_out = rows(S.q_pre, T);
      act.q_bias = L.bq;
      act.attn_out = att;
      act.d_q_proj_out = dq;
      act.d_attn_out = datt;
    } else {
      backend_.fill(dh, 0.0f);
    }
    tp_.all_reduce(dh);  // column-parallel q/k/v
    backend_.rmsnorm_backward(dtmp, G.attn_norm, dh, rows(S.x_in, T), L.attn_norm, eps);
    backend_.add(dx, dxm, dtmp);
    if (obs) obs->on_backward(act);
  }
  if (!grads.embed.empty()) backend_.embedding_backward(grads.embed, dx, ws("ids", {T}));
  return res;
}

}  // namespace resp
