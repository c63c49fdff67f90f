#include "model/shard_plan.h"

#include <algorithm>

#include "core/error.h"

namespace resp {

namespace {

std::pair<int, int> even_range(int n, int parts, int part) {
  const int64_t b = static_cast<int64_t>(n) * part / parts;
  const int64_t e = static_cast<int64_t>(n) * (part + 1) / parts;
  return {static_cast<int>(b), static_cast<int>(e)};
}

LayerShard shard_layer(const LayerShape& s, int tp, int r) {
  LayerShard out;
  const int G = s.n_kv_heads();
  auto kv_position = [&](int kv_id) {
    auto it = std::find(s.kv_heads.begin(), s.kv_heads.end(), kv_id);
    return static_cast<int>(it - s.kv_heads.begin());
  };
  if (G >= tp) {
    const auto [g0, g1] = even_range(G, tp, r);
    for (int g = g0; g < g1; ++g) out.kv_pos.push_back(g);
    for (int h = 0; h < s.n_heads(); ++h) {
      const int g = kv_position(s.kv_of_head[static_cast<size_t>(h)]);
      if (g >= g0 && g < g1) {
        out.head_pos.push_back(h);
        out.kv_local_of_head.push_back(g - g0);
      }
    }
  } else {
    const auto [h0, h1] = even_range(s.n_heads(), tp, r);
    for (int h = h0; h < h1; ++h) {
      const int g = kv_position(s.kv_of_head[static_cast<size_t>(h)]);
      auto it = std::find(out.kv_pos.begin(), out.kv_pos.end(), g);
      if (it == out.kv_pos.end()) {
        out.kv_pos.push_back(g);
        it = out.kv_pos.end() - 1;
      }
      out.head_pos.push_back(h);
      out.kv_local_of_head.push_back(static_cast<int>(it - out.kv_pos.begin()));
    }
  }
  const auto [c0, c1] = even_range(s.d_ff(), tp, r);
  for (int c = c0; c < c1; ++c) out.channel_pos.push_back(c);
  return out;
}

}  // namespace

ShardPlan make_shard_plan(const ModelConfig& config, int tp, int tp_rank) {
  if (tp < 1 || tp_rank < 0 || tp_rank >= tp)
    throw ConfigError(cat("invalid tensor-parallel rank ", tp_rank, " of ", tp));
  if (config.num_heads < tp)
    throw ConfigError(cat("tp=", tp, " exceeds the model's ", config.num_heads,
                          " query heads: every rank needs at least one head"));
  if (config.intermediate_size < tp)
    throw ConfigError(
        cat("tp=", tp, " exceeds the model's ", config.intermediate_size, " MLP channels"));
  ShardPlan p;
  p.tp = tp;
  p.tp_rank = tp_rank;
  for (const auto& L : config.layers) p.layers.push_back(shard_layer(L, tp, tp_rank));
  return p;
}

}  // namespace resp
