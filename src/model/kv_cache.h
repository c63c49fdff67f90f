// KvCache: keys and values of every layer for a fixed number of sequence slots, on the
// backend's device. Layout per layer [slots, max_len, n_kv_local, head_dim]: a slot's cache is
// the [S, Hkv, D] tensor the attention op reads, and a TP rank holds only its own KV heads.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "core/arena.h"
#include "model/model_weights.h"

namespace resp {

// One sequence's new tokens in a cached (incremental) forward: they sit at positions
// cache.length(slot) .. + tokens.size()-1 and are appended to that slot's cache.
struct KvChunk {
  int slot;
  std::span<const int32_t> tokens;
};

class KvCache {
 public:
  KvCache(const ModelWeights& weights, Backend& backend, int slots, int max_len);

  int slots() const { return slots_; }
  int max_len() const { return max_len_; }
  // Tokens cached in `slot` (positions 0..length-1).
  int length(int slot) const { return length_.at(static_cast<size_t>(slot)); }
  void set_length(int slot, int n);
  void clear(int slot) { set_length(slot, 0); }

  // The first `rows` positions of a slot's keys/values in layer l: [rows, n_kv, D].
  Tensor keys(int layer, int slot, int rows) const;
  Tensor values(int layer, int slot, int rows) const;
  // Layer l's whole cache [slots, max_len, n_kv, D] (attention_decode_batch's operands).
  Tensor layer_keys(int layer) const;
  Tensor layer_values(int layer) const;
  size_t bytes() const { return arena_.bytes(); }

 private:
  Tensor slot_view(const Tensor& all, int layer, int slot, int rows) const;
  Tensor layer_view(const Tensor& all, int layer) const;
  int slots_, max_len_, head_dim_;
  std::vector<int> n_kv_;  // per layer (local)
  std::vector<int> length_;
  Arena arena_;
  std::vector<Tensor> k_, v_;  // per layer [slots * max_len * n_kv * D]
};

}  // namespace resp
