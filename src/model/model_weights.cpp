#include "model/model_weights.h"

#include <cmath>
#include <functional>
#include <set>
#include <string>

#include "core/error.h"
#include "core/rng.h"
#include "model/safetensors.h"

namespace resp {

namespace {

std::string layer_prefix(int l) {
  return cat("model.layers.", l, ".");
}

// The arena layout for one rank's weights. Every tensor is registered, possibly with zero
// elements, so that the loaders below can fill by name. The linear layers' matrices (and an
// untied lm_head) are stored in `wt`, the backend's weight dtype: they are only ever gemm()
// operands. Norms, biases and the embedding table stay F32 (element-wise ops read them). A
// tied lm_head is the embedding table itself when `wt` is F32; with a narrower weight dtype it
// gets its own copy in `wt` (V x H more bytes), because as the F32 table it would make the
// largest GEMM of every forward the one that cannot use the bf16 tensor-core path.
ArenaPlan plan_arena(const ModelConfig& c, const ShardPlan& p, DType wt) {
  ArenaPlan a;
  const int64_t H = c.hidden_size, D = c.head_dim, V = c.vocab_size;
  a.add("embed", DType::F32, {V, H});
  a.add("final_norm", DType::F32, {H});
  if (!c.tie_word_embeddings || wt != DType::F32) a.add("lm_head", wt, {V, H});
  a.add("inv_freq", DType::F32, {D / 2});
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerShard& s = p.layers[static_cast<size_t>(l)];
    const int64_t q = s.n_heads() * D, kv = s.n_kv() * D, f = s.d_ff();
    const std::string L = cat("L", l, ".");
    a.add(L + "attn_norm", DType::F32, {H});
    a.add(L + "wq", wt, {q, H});
    a.add(L + "wk", wt, {kv, H});
    a.add(L + "wv", wt, {kv, H});
    if (c.qkv_bias) {
      a.add(L + "bq", DType::F32, {q});
      a.add(L + "bk", DType::F32, {kv});
      a.add(L + "bv", DType::F32, {kv});
    }
    if (c.qk_norm) {
      a.add(L + "q_norm", DType::F32, {D});
      a.add(L + "k_norm", DType::F32, {D});
    }
    a.add(L + "wo", wt, {H, q});
    if (c.o_bias && p.tp_rank == 0) a.add(L + "bo", DType::F32, {H});
    a.add(L + "mlp_norm", DType::F32, {H});
    a.add(L + "wg", wt, {f, H});
    a.add(L + "wu", wt, {f, H});
    a.add(L + "wd", wt, {H, f});
    a.add(L + "kv_of_head", DType::I32, {s.n_heads()});
  }
  return a;
}

Tensor opt(const Arena& a, const std::string& n) {
  return a.has(n) ? a.get(n) : Tensor();
}

ModelWeights bind(const ModelConfig& c, const ShardPlan& p, const ArenaPlan& ap, Backend& backend) {
  ModelWeights w;
  w.config = c;
  w.plan = p;
  w.arena = Arena(ap, backend.allocate(ap.total_bytes()));
  w.embed = w.arena.get("embed");
  w.final_norm = w.arena.get("final_norm");
  w.lm_head = w.arena.has("lm_head") ? w.arena.get("lm_head") : w.embed;
  w.inv_freq = w.arena.get("inv_freq");
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string L = cat("L", l, ".");
    const LayerShard& s = p.layers[static_cast<size_t>(l)];
    LayerWeights lw;
    lw.attn_norm = w.arena.get(L + "attn_norm");
    lw.wq = w.arena.get(L + "wq");
    lw.wk = w.arena.get(L + "wk");
    lw.wv = w.arena.get(L + "wv");
    lw.bq = opt(w.arena, L + "bq");
    lw.bk = opt(w.arena, L + "bk");
    lw.bv = opt(w.arena, L + "bv");
    lw.q_norm = opt(w.arena, L + "q_norm");
    lw.k_norm = opt(w.arena, L + "k_norm");
    lw.wo = w.arena.get(L + "wo");
    lw.bo = opt(w.arena, L + "bo");
    lw.mlp_norm = w.arena.get(L + "mlp_norm");
    lw.wg = w.arena.get(L + "wg");
    lw.wu = w.arena.get(L + "wu");
    lw.wd = w.arena.get(L + "wd");
    lw.kv_of_head = w.arena.get(L + "kv_of_head");
    lw.n_heads = s.n_heads();
    lw.n_kv = s.n_kv();
    lw.d_ff = s.d_ff();
    w.layers.push_back(lw);
  }
  return w;
}

// Fills the non-learned tensors (RoPE table, KV mapping) of every layer.
// What follows from the loaded tensors: RoPE frequencies, each head's KV index, and a tied
// lm_head's copy of the embedding table in the weight dtype (copy() converts).
void fill_static(ModelWeights& w, Backend& backend) {
  if (w.config.tie_word_embeddings && w.lm_head.data() != w.embed.data())
    backend.copy(w.lm_head, w.embed);
  const auto inv = w.config.rope_inv_freq();
  std::vector<float> f(inv.begin(), inv.end());
  backend.copy(w.inv_freq, Tensor(f.data(), DType::F32, Shape{static_cast<int64_t>(f.size())}));
  for (size_t l = 0; l < w.layers.size(); ++l) {
    std::vector<int32_t> m(w.plan.layers[l].kv_local_of_head.begin(),
                           w.plan.layers[l].kv_local_of_head.end());
    if (!m.empty())
      backend.copy(w.layers[l].kv_of_head,
                   Tensor(m.data(), DType::I32, Shape{static_cast<int64_t>(m.size())}));
  }
}

// Row ids (positions) of a head-structured matrix: head h covers rows [h*D, (h+1)*D).
std::vector<int> head_rows(const std::vector<int>& heads, int D) {
  std::vector<int> rows;
  rows.reserve(heads.size() * static_cast<size_t>(D));
  for (int h : heads)
    for (int d = 0; d < D; ++d) rows.push_back(h * D + d);
  return rows;
}

}  // namespace

ModelWeights load_weights(const std::filesystem::path& model_dir, const ModelConfig& config,
                          const ShardPlan& plan, Backend& backend, FileNumbering numbering) {
  CheckpointReader reader(model_dir);
  return load_weights(reader, config, plan, backend, numbering);
}

ModelWeights load_weights(const CheckpointReader& r, const ModelConfig& c, const ShardPlan& p,
                          Backend& backend, FileNumbering numbering, UnusedTensors unused) {
  const ArenaPlan ap = plan_arena(c, p, backend.weight_dtype());
  ModelWeights w = bind(c, p, ap, backend);
  const int64_t H = c.hidden_size, D = c.head_dim, V = c.vocab_size;

  std::vector<float> staging;
  std::set<std::string> used;  // every tensor the config accounts for
  auto stage = [&](const Tensor& dst) -> float* {
    staging.resize(static_cast<size_t>(dst.numel()));
    return staging.data();
  };
  // A NaN or Inf weight only shows up later as null log-probs; the conversion pass is the
  // cheap place to catch it, with the tensor named.
  auto commit = [&](const Tensor& dst, const std::string& name) {
    for (size_t i = 0; i < staging.size(); ++i)
      if (!std::isfinite(staging[i]))
        throw FormatError(cat(r.file_of(name), ": tensor \"", name, "\" holds a non-finite value (",
                              staging[i], ") at element ", i, " of the slice read"));
    if (dst.numel() > 0) backend.copy(dst, Tensor(staging.data(), DType::F32, dst.shape()));
  };
  auto expect = [&](const std::string& name, const std::vector<int64_t>& shape) {
    used.insert(name);
    r.expect_shape(name, shape);
  };
  auto whole = [&](const Tensor& dst, const std::string& name, const std::vector<int64_t>& shape) {
    expect(name, shape);
    r.read(name, stage(dst));
    commit(dst, name);
  };
  auto rows = [&](const Tensor& dst, const std::string& name, const std::vector<int64_t>& shape,
                  const std::vector<int>& ids) {
    expect(name, shape);
    r.read_rows(name, ids, stage(dst));
    commit(dst, name);
  };
  auto cols = [&](const Tensor& dst, const std::string& name, const std::vector<int64_t>& shape,
                  const std::vector<int>& ids) {
    expect(name, shape);
    r.read_cols(name, ids, stage(dst));
    commit(dst, name);
  };

  whole(w.embed, "model.embed_tokens.weight", {V, H});
  whole(w.final_norm, "model.norm.weight", {H});
  if (!c.tie_word_embeddings) whole(w.lm_head, "lm_head.weight", {V, H});

  for (int l = 0; l < c.num_layers; ++l) {
    const LayerShape& shape = c.layers[static_cast<size_t>(l)];
    const LayerShard& s = p.layers[static_cast<size_t>(l)];
    LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    const std::string P = layer_prefix(l);
    // Positions in the layer's kept lists -> indices in the file.
    const bool original = numbering == FileNumbering::Original;
    auto file_ids = [&](const std::vector<int>& pos, const std::vector<int>& kept) {
      if (!original) return pos;
      std::vector<int> ids;
      ids.reserve(pos.size());
      for (int i : pos) ids.push_back(kept[static_cast<size_t>(i)]);
      return ids;
    };
    const int64_t q_all = (original ? c.num_heads : shape.n_heads()) * D;
    const int64_t kv_all = (original ? c.num_kv_heads : shape.n_kv_heads()) * D;
    const int64_t f_all = original ? c.intermediate_size : shape.d_ff();
    const auto qrows = head_rows(file_ids(s.head_pos, shape.heads), c.head_dim);
    const auto kvrows = head_rows(file_ids(s.kv_pos, shape.kv_heads), c.head_dim);
    const auto channels = file_ids(s.channel_pos, shape.channels);

    whole(lw.attn_norm, P + "input_layernorm.weight", {H});
    rows(lw.wq, P + "self_attn.q_proj.weight", {q_all, H}, qrows);
    rows(lw.wk, P + "self_attn.k_proj.weight", {kv_all, H}, kvrows);
    rows(lw.wv, P + "self_attn.v_proj.weight", {kv_all, H}, kvrows);
    if (c.qkv_bias) {
      rows(lw.bq, P + "self_attn.q_proj.bias", {q_all}, qrows);
      rows(lw.bk, P + "self_attn.k_proj.bias", {kv_all}, kvrows);
      rows(lw.bv, P + "self_attn.v_proj.bias", {kv_all}, kvrows);
    }
    if (c.qk_norm) {
      whole(lw.q_norm, P + "self_attn.q_norm.weight", {D});
      whole(lw.k_norm, P + "self_attn.k_norm.weight", {D});
    }
    cols(lw.wo, P + "self_attn.o_proj.weight", {H, q_all}, qrows);
    if (c.o_bias) {
      if (!lw.bo.empty())
        whole(lw.bo, P + "self_attn.o_proj.bias", {H});
      else
        expect(P + "self_attn.o_proj.bias", {H});
    }
    whole(lw.mlp_norm, P + "post_attention_layernorm.weight", {H});
    rows(lw.wg, P + "mlp.gate_proj.weight", {f_all, H}, channels);
    rows(lw.wu, P + "mlp.up_proj.weight", {f_all, H}, channels);
    cols(lw.wd, P + "mlp.down_proj.weight", {H, f_all}, channels);
  }
  // Weights the config does not use mean the config describes another model (3 layers on
  // 4-layer weights, Llama on Qwen3 weights): refuse rather than run a silently different one.
  // Tolerated: a tied model that also stores lm_head, and old checkpoints' RoPE buffers.
  for (const std::string& name : r.names()) {
    if (unused == UnusedTensors::Allow || used.count(name)) continue;
    if (name == "lm_head.weight" && c.tie_word_embeddings) continue;
    if (name.size() >= 19 && name.compare(name.size() - 19, 19, "rotary_emb.inv_freq") == 0)
      continue;
    throw FormatError(cat(r.file_of(name), ": tensor \"", name,
                          "\" is not used by config.json (does the config describe these "
                          "weights? num_hidden_layers, architecture, biases)"));
  }
  fill_static(w, backend);
  return w;
}

ModelWeights random_weights(const ModelConfig& c, const ShardPlan& p, Backend& backend,
                            uint64_t seed, float std) {
  const ArenaPlan ap = plan_arena(c, p, backend.weight_dtype());
  ModelWeights w = bind(c, p, ap, backend);
  std::vector<float> host;
  // Element (row, col) of global tensor `id` gets a value keyed by (seed, id, row, col), so a
  // shard holds exactly the values of the same rows/cols in the unsharded model.
  auto fill = [&](const Tensor& dst, uint64_t id, const std::vector<int>& row_ids,
                  const std::vector<int>& col_ids, float mean, float sd) {
    if (dst.numel() == 0) return;
    host.resize(static_cast<size_t>(dst.numel()));
    const int64_t nr = dst.dim(0);
    const int64_t nc = dst.rank() == 2 ? dst.dim(1) : 1;
#pragma omp parallel for
    for (int64_t i = 0; i < nr; ++i) {
      const uint64_t gr = row_ids.empty() ? static_cast<uint64_t>(i)
                                          : static_cast<uint64_t>(row_ids[static_cast<size_t>(i)]);
      for (int64_t j = 0; j < nc; ++j) {
        const uint64_t gc = col_ids.empty()
                                ? static_cast<uint64_t>(j)
                                : static_cast<uint64_t>(col_ids[static_cast<size_t>(j)]);
        const float u = uniform01(seed, id, gr, gc);
        // Uniform with the requested standard deviation: cheap and deterministic.
        host[static_cast<size_t>(i * nc + j)] = mean + sd * 3.4641016f * (u - 0.5f);
      }
    }
    backend.copy(dst, Tensor(host.data(), DType::F32, dst.shape()));
  };
  const std::vector<int> none;
  fill(w.embed, 1, none, none, 0.0f, std);
  fill(w.final_norm, 2, none, none, 1.0f, 0.0f);
  if (!c.tie_word_embeddings) fill(w.lm_head, 3, none, none, 0.0f, std);
  for (int l = 0; l < c.num_layers; ++l) {
    const LayerShard& s = p.layers[static_cast<size_t>(l)];
    LayerWeights& lw = w.layers[static_cast<size_t>(l)];
    const uint64_t base = 100 + static_cast<uint64_t>(l) * 32;
    const auto qrows = head_rows(s.head_pos, c.head_dim);
    const auto kvrows = head_rows(s.kv_pos, c.head_dim);
    fill(lw.attn_norm, base + 0, none, none, 1.0f, 0.0f);
    fill(lw.wq, base + 1, qrows, none, 0.0f, std);
    fill(lw.wk, base + 2, kvrows, none, 0.0f, std);
    fill(lw.wv, base + 3, kvrows, none, 0.0f, std);
    if (c.qkv_bias) {
      fill(lw.bq, base + 4, qrows, none, 0.0f, std);
      fill(lw.bk, base + 5, kvrows, none, 0.0f, std);
      fill(lw.bv, base + 6, kvrows, none, 0.0f, std);
    }
    if (c.qk_norm) {
      fill(lw.q_norm, base + 7, none, none, 1.0f, 0.0f);
      fill(lw.k_norm, base + 8, none, none, 1.0f, 0.0f);
    }
    fill(lw.wo, base + 9, none, qrows, 0.0f, std);
    if (!lw.bo.empty()) fill(lw.bo, base + 10, none, none, 0.0f, std);
    fill(lw.mlp_norm, base + 11, none, none, 1.0f, 0.0f);
    fill(lw.wg, base + 12, s.channel_pos, none, 0.0f, std);
    fill(lw.wu, base + 13, s.channel_pos, none, 0.0f, std);
    fill(lw.wd, base + 14, none, s.channel_pos, 0.0f, std);
  }
  fill_static(w, backend);
  return w;
}

}  // namespace resp
