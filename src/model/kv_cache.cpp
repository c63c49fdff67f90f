#include "model/kv_cache.h"

#include "core/error.h"

namespace resp {

KvCache::KvCache(const ModelWeights& w, Backend& backend, int slots, int max_len)
    : slots_(slots), max_len_(max_len), head_dim_(w.config.head_dim) {
  if (slots < 1 || max_len < 1)
    throw UsageError(cat("KV cache needs >= 1 slot and length (got ", slots, " x ", max_len, ")"));
  ArenaPlan plan;
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const int64_t n = static_cast<int64_t>(slots) * max_len * w.layers[l].n_kv * head_dim_;
    plan.add(cat("k", l), DType::F32, {n});
    plan.add(cat("v", l), DType::F32, {n});
    n_kv_.push_back(w.layers[l].n_kv);
  }
  arena_ = Arena(plan, backend.allocate(plan.total_bytes()));
  for (size_t l = 0; l < w.layers.size(); ++l) {
    k_.push_back(arena_.get(cat("k", l)));
    v_.push_back(arena_.get(cat("v", l)));
  }
  length_.assign(static_cast<size_t>(slots), 0);
}

void KvCache::set_length(int slot, int n) {
  if (slot < 0 || slot >= slots_ || n < 0 || n > max_len_)
    throw UsageError(
        cat("KV cache: slot ", slot, " length ", n, " outside ", slots_, " x ", max_len_));
  length_[static_cast<size_t>(slot)] = n;
}

Tensor KvCache::slot_view(const Tensor& all, int layer, int slot, int rows) const {
  const int64_t kv = n_kv_[static_cast<size_t>(layer)];
  if (slot < 0 || slot >= slots_ || rows < 0 || rows > max_len_)
    throw ShapeError(cat("KV cache view: slot ", slot, " rows ", rows));
  const size_t offset = static_cast<size_t>(slot) * max_len_ * kv * head_dim_ * sizeof(float);
  return Tensor(static_cast<char*>(all.data()) + offset, DType::F32, Shape{rows, kv, head_dim_},
                all.device());
}

Tensor KvCache::keys(int layer, int slot, int rows) const {
  return slot_view(k_.at(static_cast<size_t>(layer)), layer, slot, rows);
}
Tensor KvCache::values(int layer, int slot, int rows) const {
  return slot_view(v_.at(static_cast<size_t>(layer)), layer, slot, rows);
}

Tensor KvCache::layer_view(const Tensor& all, int layer) const {
  return all.view({slots_, max_len_, n_kv_.at(static_cast<size_t>(layer)), head_dim_});
}

Tensor KvCache::layer_keys(int layer) const {
  return layer_view(k_.at(static_cast<size_t>(layer)), layer);
}
Tensor KvCache::layer_values(int layer) const {
  return layer_view(v_.at(static_cast<size_t>(layer)), layer);
}

}  // namespace resp
