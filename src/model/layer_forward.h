// LayerForward: the one forward of a transformer layer (and of the embedding and final norm
// around the stack), shared by inference (Decoder: causal over the rows, or through a KV cache)
// and the gradient pass (GradientPass: every activation kept for the backward). A new
// architecture feature is written here once; the two callers differ only in the buffers they
// pass and in how attention finds its keys.
#pragma once

#include <cstdint>
#include <span>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "model/activation_observer.h"
#include "model/kv_cache.h"
#include "model/model_weights.h"

namespace resp {

// Where one layer's activations go, each [T, width] with the same T rows. The gradient pass
// gives distinct tensors, so all of them survive for the backward; inference aliases them
// (q_pre == q, k_pre == k, x_in == x_mid == x_out, h1 == h2, gate == act) and the layer then
// runs in place in one set of buffers. Every op reads and writes whole rows element by element,
// so the aliased and the distinct forms give the same bits.
struct LayerBuffers {
  Tensor x_in;          // [T, H] residual stream entering the layer
  Tensor h1;            // [T, H] attn_norm(x_in)
  Tensor q_pre, k_pre;  // [T, hq*D], [T, hkv*D] q/k projections incl. bias
  Tensor q, k;          // the same after q/k-norm (Qwen3) and RoPE
  Tensor v;             // [T, hkv*D]
  Tensor att;           // [T, hq*D] attention output, the input of o_proj
  Tensor o;             // [T, H] a block's partial sum before its all-reduce (scratch)
  Tensor x_mid;         // [T, H] x_in + attention block
  Tensor h2;            // [T, H] mlp_norm(x_mid)
  Tensor gate, up;      // [T, F]
  Tensor act;           // [T, F] silu(gate) * up, the input of down_proj
  Tensor x_out;         // [T, H] x_mid + MLP block

  // The first T rows of every buffer (buffers allocated for a longer sequence).
  LayerBuffers first_rows(int64_t T) const;
};

// Attention through a KV cache: the rows are the chunks' tokens in order. A run of one-token
// chunks (a decode step's rows) attends in one batched call; a longer chunk (a prefill piece)
// appends its keys/values to its slot and attends over the whole slot. The cache lengths are
// the lengths before this call (the caller advances them after the last layer).
struct CachedAttention {
  KvCache& cache;
  std::span<const KvChunk> chunks;
  Tensor chunk_slot;  // I32 [chunks] on the backend: each chunk's slot
  Tensor chunk_pos;   // I32 [chunks] on the backend: each chunk's last position
};

class LayerForward {
 public:
  // `weights`, `backend` and `tp` must outlive this object.
  LayerForward(const ModelWeights& weights, Backend& backend, Communicator& tp);

  // x[T, H] = embedding rows of ids (I32 [T] on the backend).
  void embed(const Tensor& x, const Tensor& ids) const;

  // Layer `layer` on the rows of `b` at `positions` (I32 [T] on the backend). Without `kv` the
  // rows are one sequence attending causally to itself (positions 0..T-1); with it, attention
  // goes through the cache. Returns the forward report for an ActivationObserver (views into
  // `b`); q_proj_out holds the projection only when q_pre and q are distinct buffers.
  LayerActivations layer(int layer, const Tensor& positions, const LayerBuffers& b,
                         const CachedAttention* kv = nullptr) const;

  // out[R, H] = final_norm(x); out may be x.
  void final_norm(const Tensor& out, const Tensor& x) const;

 private:
  void attend(const LayerWeights& lw, int layer, const LayerBuffers& b, float scale,
              const CachedAttention& kv) const;

  const ModelWeights& w_;
  Backend& backend_;
  Communicator& tp_;
  float eps_;
};

// The checks every forward makes on a whole sequence, with the messages users see: non-empty,
// at most max_position_embeddings tokens, every id in the vocabulary. UsageError otherwise.
void check_token_sequence(const ModelConfig& config, std::span<const int32_t> tokens);
// Only the vocabulary check (a cached forward bounds lengths against its cache itself).
void check_token_ids(const ModelConfig& config, std::span<const int32_t> tokens);

}  // namespace resp
