#include "model/decoder.h"

#include <algorithm>

#include "core/error.h"

namespace resp {

namespace {
constexpr int64_t kLogitBlock = 128;  // rows of the vocabulary projection computed at once
}

Decoder::Decoder(const ModelWeights& weights, Backend& backend, Communicator& tp)
    : w_(weights), backend_(backend), fwd_(weights, backend, tp) {
  for (const auto& lw : w_.layers) {
    max_q_ = std::max<int64_t>(max_q_, lw.n_heads);
    max_kv_ = std::max<int64_t>(max_kv_, lw.n_kv);
    max_ff_ = std::max<int64_t>(max_ff_, lw.d_ff);
  }
}

void Decoder::ensure_workspace(int64_t T) {
  if (T <= capacity_) return;
  const int64_t cap = std::max<int64_t>(T, 2 * capacity_);
  const auto& c = w_.config;
  const int64_t H = c.hidden_size, D = c.head_dim;
  ArenaPlan p;
  p.add("x", DType::F32, {cap, H});
  p.add("h", DType::F32, {cap, H});
  p.add("o", DType::F32, {cap, H});
  p.add("q", DType::F32, {cap * std::max<int64_t>(max_q_, 1) * D});
  p.add("k", DType::F32, {cap * std::max<int64_t>(max_kv_, 1) * D});
  p.add("v", DType::F32, {cap * std::max<int64_t>(max_kv_, 1) * D});
  p.add("att", DType::F32, {cap * std::max<int64_t>(max_q_, 1) * D});
  p.add("g", DType::F32, {cap * std::max<int64_t>(max_ff_, 1)});
  p.add("u", DType::F32, {cap * std::max<int64_t>(max_ff_, 1)});
  // Per-step integers, uploaded in one copy: token ids [T], positions [T], and each chunk's
  // slot [C] and last position [C] (C <= T) for the batched decode attention.
  p.add("meta", DType::I32, {4 * cap});
  p.add("logits", DType::F32, {kLogitBlock, c.vocab_size});
  ws_ = Arena(p, backend_.allocate(p.total_bytes()));
  capacity_ = cap;
}

void Decoder::upload_meta(const std::vector<int32_t>& host, int64_t T, int64_t C) {
  const Tensor all = ws_.get("meta");
  const auto n = static_cast<int64_t>(host.size());
  if (n != 2 * T + 2 * C || n > all.numel())
    throw ShapeError(cat("decoder meta of ", n, " values for T = ", T, ", C = ", C));
  backend_.copy(all.slice_rows(0, n),
                Tensor(const_cast<int32_t*>(host.data()), DType::I32, Shape{n}));
  ids_ = all.slice_rows(0, T);
  pos_ = all.slice_rows(T, T);
  chunk_slot_ = all.slice_rows(2 * T, C);
  chunk_pos_ = all.slice_rows(2 * T + C, C);
}

Tensor Decoder::ws(const char* name, Shape s) const {
  const Tensor t = ws_.get(name);
  if (s.numel() > t.numel())
    throw ShapeError(cat("decoder workspace ", name, " too small for ", s.str()));
  return Tensor(t.data(), t.dtype(), s, t.device());
}

LayerBuffers Decoder::layer_buffers(const LayerWeights& lw, int64_t T) const {
  const int64_t H = w_.config.hidden_size, D = w_.config.head_dim;
  const Tensor x = ws("x", {T, H}), h = ws("h", {T, H});
  const Tensor q = ws("q", {T, lw.n_heads * D}), k = ws("k", {T, lw.n_kv * D});
  const Tensor g = ws("g", {T, lw.d_ff});
  return LayerBuffers{.x_in = x,
                      .h1 = h,
                      .q_pre = q,
                      .k_pre = k,
                      .q = q,
                      .k = k,
                      .v = ws("v", {T, lw.n_kv * D}),
                      .att = ws("att", {T, lw.n_heads * D}),
                      .o = ws("o", {T, H}),
                      .x_mid = x,
                      .h2 = h,
                      .gate = g,
                      .up = ws("u", {T, lw.d_ff}),
                      .act = g,
                      .x_out = x};
}

void Decoder::run_layers(int64_t T, const CachedAttention* kv) {
  fwd_.embed(ws("x", {T, w_.config.hidden_size}), ids_);
  for (size_t l = 0; l < w_.layers.size(); ++l)
    fwd_.layer(static_cast<int>(l), pos_, layer_buffers(w_.layers[l], T), kv);
}

Tensor Decoder::forward_hidden(std::span<const int32_t> tokens) {
  check_token_sequence(w_.config, tokens);
  const int64_t T = static_cast<int64_t>(tokens.size());
  ensure_workspace(T);
  std::vector<int32_t> meta(tokens.begin(), tokens.end());
  for (int64_t t = 0; t < T; ++t) meta.push_back(static_cast<int32_t>(t));
  upload_meta(meta, T, 0);
  run_layers(T, nullptr);
  const int64_t H = w_.config.hidden_size;
  const Tensor h = ws("h", {T, H});
  fwd_.final_norm(h, ws("x", {T, H}));
  return h;
}

Tensor Decoder::forward_cached(std::span<const Chunk> chunks, KvCache& cache) {
  const auto& c = w_.config;
  if (chunks.empty()) throw UsageError("forward_cached: no sequences");
  std::vector<int32_t> ids, pos, chunk_slot, chunk_pos;
  std::vector<int64_t> last_row;
  for (const Chunk& ch : chunks) {
    if (ch.tokens.empty()) throw UsageError(cat("forward_cached: empty chunk for slot ", ch.slot));
    const int len = cache.length(ch.slot);
    const int64_t end = len + static_cast<int64_t>(ch.tokens.size());
    if (end > cache.max_len() || end > c.max_position_embeddings)
      throw UsageError(cat("sequence in slot ", ch.slot, " would reach ", end,
                           " tokens, beyond the context (",
                           std::min<int64_t>(cache.max_len(), c.max_position_embeddings), ")"));
    check_token_ids(c, ch.tokens);
    for (size_t i = 0; i < ch.tokens.size(); ++i) {
      ids.push_back(ch.tokens[i]);
      pos.push_back(static_cast<int32_t>(len + static_cast<int64_t>(i)));
    }
    last_row.push_back(static_cast<int64_t>(ids.size()) - 1);
    chunk_slot.push_back(ch.slot);
    chunk_pos.push_back(static_cast<int32_t>(end - 1));
  }
  for (size_t i = 0; i < chunks.size(); ++i)
    for (size_t j = i + 1; j < chunks.size(); ++j)
      if (chunks[i].slot == chunks[j].slot)
        throw UsageError(cat("forward_cached: slot ", chunks[i].slot, " appears twice"));

  const int64_t T = static_cast<int64_t>(ids.size());
  const int64_t H = c.hidden_size;
  ensure_workspace(T);
  const auto C = static_cast<int64_t>(chunks.size());
  std::vector<int32_t> meta = std::move(ids);
  meta.insert(meta.end(), pos.begin(), pos.end());
  meta.insert(meta.end(), chunk_slot.begin(), chunk_slot.end());
  meta.insert(meta.end(), chunk_pos.begin(), chunk_pos.end());
  upload_meta(meta, T, C);
  const CachedAttention kv{
      .cache = cache, .chunks = chunks, .chunk_slot = chunk_slot_, .chunk_pos = chunk_pos_};
  run_layers(T, &kv);
  for (const Chunk& ch : chunks)
    cache.set_length(ch.slot, cache.length(ch.slot) + static_cast<int>(ch.tokens.size()));
  // Final norm only for the rows whose logits are wanted: gather them to the front of "o".
  const int64_t n = static_cast<int64_t>(chunks.size());
  const Tensor x = ws("x", {T, H});
  const Tensor last = ws("o", {n, H});
  // Rows that are already consecutive (every decode row of a step) move in one copy.
  for (int64_t i = 0; i < n;) {
    const int64_t r0 = last_row[static_cast<size_t>(i)];
    int64_t e = i + 1;
    while (e < n && last_row[static_cast<size_t>(e)] == r0 + (e - i)) ++e;
    backend_.copy(last.slice_rows(i, e - i), x.slice_rows(r0, e - i));
    i = e;
  }
  fwd_.final_norm(last, last);
  return last;
}

void Decoder::logits(const Tensor& out, const Tensor& hidden_rows) {
  backend_.linear(out, hidden_rows, w_.lm_head);
}

std::vector<double> Decoder::sequence_logprobs(std::span<const int32_t> tokens) {
  const int64_t T = static_cast<int64_t>(tokens.size());
  std::vector<double> lp;
  if (T < 2) {
    if (T == 1) forward_hidden(tokens);  // still validates the token
    return lp;
  }
  const int64_t V = w_.config.vocab_size;
  const Tensor hidden = forward_hidden(tokens);
  std::vector<float> row_block;
  for (int64_t t0 = 0; t0 < T - 1; t0 += kLogitBlock) {
    const int64_t n = std::min(kLogitBlock, T - 1 - t0);
    const Tensor lg = ws("logits", {n, V});
    logits(lg, hidden.slice_rows(t0, n));
    backend_.log_softmax(lg, lg);
    row_block.resize(static_cast<size_t>(n * V));
    backend_.copy(Tensor(row_block.data(), DType::F32, Shape{n, V}), lg);
    for (int64_t i = 0; i < n; ++i)
      lp.push_back(row_block[static_cast<size_t>(i * V + tokens[static_cast<size_t>(t0 + i + 1)])]);
  }
  return lp;
}

}  // namespace resp
