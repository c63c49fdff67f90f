#include "model/layer_forward.h"

#include <cmath>

#include "core/error.h"

namespace resp {

LayerBuffers LayerBuffers::first_rows(int64_t T) const {
  auto r = [T](const Tensor& t) { return t.slice_rows(0, T); };
  return LayerBuffers{.x_in = r(x_in),
                      .h1 = r(h1),
                      .q_pre = r(q_pre),
                      .k_pre = r(k_pre),
                      .q = r(q),
                      .k = r(k),
                      .v = r(v),
                      .att = r(att),
                      .o = r(o),
                      .x_mid = r(x_mid),
                      .h2 = r(h2),
                      .gate = r(gate),
                      .up = r(up),
                      .act = r(act),
                      .x_out = r(x_out)};
}

LayerForward::LayerForward(const ModelWeights& weights, Backend& backend, Communicator& tp)
    : w_(weights),
      backend_(backend),
      tp_(tp),
      eps_(static_cast<float>(weights.config.rms_norm_eps)) {}

void LayerForward::embed(const Tensor& x, const Tensor& ids) const {
  backend_.embedding(x, w_.embed, ids);
}

void LayerForward::final_norm(const Tensor& out, const Tensor& x) const {
  backend_.rmsnorm(out, x, w_.final_norm, eps_);
}

LayerActivations LayerForward::layer(int layer, const Tensor& positions, const LayerBuffers& b,
                                     const CachedAttention* kv) const {
  const auto& c = w_.config;
  const LayerWeights& lw = w_.layers.at(static_cast<size_t>(layer));
  const int64_t T = b.x_in.dim(0), D = c.head_dim, hq = lw.n_heads, hkv = lw.n_kv;
  LayerActivations act;
  act.layer = layer;
  act.tokens = T;

  // ---- attention block ------------------------------------------------------------------------
  backend_.rmsnorm(b.h1, b.x_in, lw.attn_norm, eps_);
  if (hq == 0) {
    backend_.fill(b.o, 0.0f);  // no local heads after pruning: contribute a zero partial sum
  } else {
    backend_.linear(b.q_pre, b.h1, lw.wq, lw.bq);
    backend_.linear(b.k_pre, b.h1, lw.wk, lw.bk);
    backend_.linear(b.v, b.h1, lw.wv, lw.bv);
    if (c.qk_norm) {  // Qwen3: RMSNorm over each head's vector, before RoPE
      backend_.rmsnorm(b.q.view({T * hq, D}), b.q_pre.view({T * hq, D}), lw.q_norm, eps_);
      backend_.rmsnorm(b.k.view({T * hkv, D}), b.k_pre.view({T * hkv, D}), lw.k_norm, eps_);
    } else {
      // RoPE rotates in place: keep the projections only where they have their own buffers.
      if (b.q.data() != b.q_pre.data()) backend_.copy(b.q, b.q_pre);
      if (b.k.data() != b.k_pre.data()) backend_.copy(b.k, b.k_pre);
    }
    backend_.rope(b.q.view({T, hq, D}), positions, w_.inv_freq);
    backend_.rope(b.k.view({T, hkv, D}), positions, w_.inv_freq);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    if (!kv) {
      backend_.attention(b.att.view({T, hq, D}), b.q.view({T, hq, D}), b.k.view({T, hkv, D}),
                         b.v.view({T, hkv, D}), lw.kv_of_head, 0, scale);
    } else {
      attend(lw, layer, b, scale, *kv);
    }
    backend_.linear(b.o, b.att, lw.wo);
    act.q_proj_out = b.q_pre;
    act.q_bias = lw.bq;
    act.attn_out = b.att;
  }
  // The o_proj bias belongs to the full sum: only the rank holding it adds it.
  if (!lw.bo.empty()) backend_.add_bias(b.o, lw.bo);
  tp_.all_reduce(b.o);
  backend_.add(b.x_mid, b.x_in, b.o);

  // ---- MLP block ------------------------------------------------------------------------------
  backend_.rmsnorm(b.h2, b.x_mid, lw.mlp_norm, eps_);
  if (lw.d_ff == 0) {
    backend_.fill(b.o, 0.0f);
  } else {
    backend_.linear(b.gate, b.h2, lw.wg);
    backend_.linear(b.up, b.h2, lw.wu);
    backend_.swiglu(b.act, b.gate, b.up);
    backend_.linear(b.o, b.act, lw.wd);
    act.gate_out = b.gate;
    act.up_out = b.up;
    act.mlp_act = b.act;
  }
  tp_.all_reduce(b.o);
  backend_.add(b.x_out, b.x_mid, b.o);
  return act;
}

void LayerForward::attend(const LayerWeights& lw, int layer, const LayerBuffers& b, float scale,
                          const CachedAttention& kv) const {
  const int64_t D = w_.config.head_dim, hq = lw.n_heads, hkv = lw.n_kv;
  const auto heads = [D](const Tensor& t, int64_t row, int64_t n, int64_t h) {
    return t.slice_rows(row, n).view({n, h, D});
  };
  int64_t row = 0;
  const auto n_chunks = static_cast<int64_t>(kv.chunks.size());
  for (int64_t i = 0; i < n_chunks;) {
    const KvChunk& ch = kv.chunks[static_cast<size_t>(i)];
    const int64_t n = static_cast<int64_t>(ch.tokens.size());
    if (n == 1) {
      // A run of one-token chunks (the decode rows of a step): one batched call.
      int64_t e = i + 1;
      while (e < n_chunks && kv.chunks[static_cast<size_t>(e)].tokens.size() == 1) ++e;
      const int64_t B = e - i;
      backend_.attention_decode_batch(
          heads(b.att, row, B, hq), heads(b.q, row, B, hq), heads(b.k, row, B, hkv),
          heads(b.v, row, B, hkv), kv.cache.layer_keys(layer), kv.cache.layer_values(layer),
          kv.chunk_slot.slice_rows(i, B), kv.chunk_pos.slice_rows(i, B), lw.kv_of_head, scale);
      row += B;
      i = e;
      continue;
    }
    const int len = kv.cache.length(ch.slot);
    const int total = len + static_cast<int>(n);
    // Append this chunk's keys/values to its slot, then attend over the whole slot.
    const Tensor kc = kv.cache.keys(layer, ch.slot, total);
    const Tensor vc = kv.cache.values(layer, ch.slot, total);
    backend_.copy(kc.slice_rows(len, n), heads(b.k, row, n, hkv));
    backend_.copy(vc.slice_rows(len, n), heads(b.v, row, n, hkv));
    backend_.attention(heads(b.att, row, n, hq), heads(b.q, row, n, hq), kc, vc, lw.kv_of_head, len,
                       scale);
    row += n;
    ++i;
  }
}

void check_token_ids(const ModelConfig& c, std::span<const int32_t> tokens) {
  for (int32_t id : tokens)
    if (id < 0 || id >= c.vocab_size)
      throw UsageError(cat("token id ", id, " outside the vocabulary [0, ", c.vocab_size, ")"));
}

void check_token_sequence(const ModelConfig& c, std::span<const int32_t> tokens) {
  const auto T = static_cast<int64_t>(tokens.size());
  if (T == 0) throw UsageError("forward: empty token sequence");
  if (T > c.max_position_embeddings)
    throw UsageError(cat("sequence of ", T, " tokens exceeds max_position_embeddings ",
                         c.max_position_embeddings));
  check_token_ids(c, tokens);
}

}  // namespace resp
