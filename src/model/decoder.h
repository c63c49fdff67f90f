// Decoder: inference forward of Qwen3 / Qwen2 / Llama on one rank's weight shard: whole
// sequences, or chunks of several sequences through a KV cache. The layer itself is
// LayerForward's (shared with the gradient pass); the decoder runs it in place in one set of
// workspace buffers.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "core/arena.h"
#include "model/kv_cache.h"
#include "model/layer_forward.h"
#include "model/model_weights.h"

namespace resp {

class Decoder {
 public:
  // `weights`, `backend` and `tp` must outlive the decoder.
  Decoder(const ModelWeights& weights, Backend& backend, Communicator& tp);

  const ModelConfig& config() const { return w_.config; }
  Backend& backend() { return backend_; }

  // Runs the decoder stack on tokens at positions 0..T-1 and returns the final-normed hidden
  // states [T, H] (a view into the decoder's workspace, valid until the next call).
  Tensor forward_hidden(std::span<const int32_t> tokens);

  // logits[T', V] = hidden[T', H] @ lm_head^T for a block of rows of forward_hidden's result.
  void logits(const Tensor& out, const Tensor& hidden_rows);

  // One sequence's new tokens in a cached (incremental) forward pass (see KvChunk).
  using Chunk = KvChunk;
  // Runs prefill and/or decode for several sequences at once: all chunks' tokens share the
  // GEMMs; attention reads each slot's cache. Returns the final-normed hidden state of the last
  // token of every chunk, [chunks, H] (workspace view, valid until the next call). Advances the
  // cache lengths.
  Tensor forward_cached(std::span<const Chunk> chunks, KvCache& cache);

  // log p(tokens[t+1] | tokens[0..t]) for t = 0..T-2 (double for accumulation by callers).
  // The vocabulary projection runs in blocks of rows to bound memory for long sequences.
  std::vector<double> sequence_logprobs(std::span<const int32_t> tokens);

 private:
  void ensure_workspace(int64_t T);
  // Copies the step's integers (ids, positions, chunk slots, chunk last positions) to the
  // backend in one transfer and points ids_, pos_, chunk_slot_, chunk_pos_ at them.
  void upload_meta(const std::vector<int32_t>& host, int64_t T, int64_t C);
  // A view of workspace buffer `name` with shape `s` (contiguous, from its start).
  Tensor ws(const char* name, Shape s) const;
  // Layer l's buffers for T rows: the one set of workspace buffers, aliased so the layer runs
  // in place.
  LayerBuffers layer_buffers(const LayerWeights& lw, int64_t T) const;
  // Embedding and every layer on the T rows of ids_ / pos_ (through `kv` when given).
  void run_layers(int64_t T, const CachedAttention* kv);

  const ModelWeights& w_;
  Backend& backend_;
  LayerForward fwd_;
  int64_t capacity_ = 0;
  Arena ws_;
  int64_t max_q_ = 0, max_kv_ = 0, max_ff_ = 0;
  Tensor ids_, pos_, chunk_slot_, chunk_pos_;  // views into the workspace's "meta" (I32)
};

}  // namespace resp
