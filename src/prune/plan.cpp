#include "prune/plan.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "core/error.h"

namespace resp {

Ranking parse_ranking(const std::string& s) {
  if (s == "global") return Ranking::Global;
  if (s == "per-layer") return Ranking::PerLayer;
  throw ConfigError(cat("unknown ranking \"", s, "\" (choose global, per-layer)"));
}

std::string ranking_name(Ranking r) {
  return r == Ranking::Global ? "global" : "per-layer";
}

PrunePlan dense_plan(const ModelConfig& dense) {
  PrunePlan p(static_cast<size_t>(dense.num_layers));
  for (auto& L : p) {
    for (int h = 0; h < dense.num_heads; ++h) L.heads.push_back(h);
    for (int c = 0; c < dense.intermediate_size; ++c) L.channels.push_back(c);
  }
  return p;
}

PrunePlan plan_of(const ModelConfig& config) {
  PrunePlan p;
  for (const auto& L : config.layers) p.push_back({L.heads, L.channels});
  return p;
}

std::vector<bool> default_protected_layers(int L) {
  std::vector<bool> prot(static_cast<size_t>(L), true);
  for (int l = static_cast<int>(0.1 * L); l < L - 1; ++l) prot[static_cast<size_t>(l)] = false;
  return prot;
}

int64_t total_units(const ModelConfig& d) {
  return static_cast<int64_t>(d.num_layers) * (d.num_heads + d.intermediate_size);
}

int64_t pruned_units(const ModelConfig& d, const PrunePlan& plan) {
  int64_t kept = 0;
  for (const auto& L : plan) kept += static_cast<int64_t>(L.heads.size() + L.channels.size());
  return total_units(d) - kept;
}

namespace {

struct Unit {
  double score;
  int layer;
  int kind;  // 0 head, 1 channel
  int id;
  bool operator<(const Unit& o) const {
    return std::tie(score, layer, kind, id) < std::tie(o.score, o.layer, o.kind, o.id);
  }
};

void check_scores(const PrunePlan& current, const ImportanceScores& s) {
  if (s.layers.size() != current.size())
    throw ConfigError(
        cat("scores cover ", s.layers.size(), " layers, the model has ", current.size()));
  for (size_t l = 0; l < current.size(); ++l) {
    if (s.layers[l].head_ids != current[l].heads || s.layers[l].channel_ids != current[l].channels)
      throw ConfigError(
          cat("scores of layer ", l, " do not describe the current model's kept units"));
    for (double v : s.layers[l].heads)
      if (!std::isfinite(v)) throw ConfigError(cat("non-finite head score in layer ", l));
    for (double v : s.layers[l].channels)
      if (!std::isfinite(v)) throw ConfigError(cat("non-finite channel score in layer ", l));
  }
}

void remove_units(PrunePlan& plan, const std::vector<Unit>& units) {
  for (const Unit& u : units) {
    auto& v = u.kind == 0 ? plan[static_cast<size_t>(u.layer)].heads
                          : plan[static_cast<size_t>(u.layer)].channels;
    v.erase(std::find(v.begin(), v.end(), u.id));
  }
}

}  // namespace

PrunePlan prune_to_ratio(const ModelConfig& dense, const PrunePlan& current,
                         const ImportanceScores& s, double ratio, Ranking ranking,
                         const std::vector<bool>& prot) {
  if (!(ratio >= 0.0 && ratio < 1.0))
    throw ConfigError(cat("pruning ratio ", ratio, " outside [0, 1)"));
  if (prot.size() != current.size()) throw ConfigError("protected-layer mask has the wrong length");
  check_scores(current, s);
  PrunePlan next = current;
  if (ranking == Ranking::Global) {
    const int64_t target =
        static_cast<int64_t>(std::floor(ratio * static_cast<double>(total_units(dense)) + 1e-9));
    const int64_t need = target - pruned_units(dense, current);
    if (need <= 0) return next;
    std::vector<Unit> units;
    for (size_t l = 0; l < current.size(); ++l) {
      if (prot[l]) continue;
      for (size_t i = 0; i < current[l].heads.size(); ++i)
        units.push_back({s.layers[l].heads[i], static_cast<int>(l), 0, current[l].heads[i]});
      for (size_t i = 0; i < current[l].channels.size(); ++i)
        units.push_back({s.layers[l].channels[i], static_cast<int>(l), 1, current[l].channels[i]});
    }
    const size_t n = std::min<size_t>(units.size(), static_cast<size_t>(need));
    std::partial_sort(units.begin(), units.begin() + static_cast<std::ptrdiff_t>(n), units.end());
    units.resize(n);
    remove_units(next, units);
    return next;
  }
  for (size_t l = 0; l < current.size(); ++l) {
    if (prot[l]) continue;
    std::vector<Unit> heads, chans;
    for (size_t i = 0; i < current[l].heads.size(); ++i)
      heads.push_back({s.layers[l].heads[i], static_cast<int>(l), 0, current[l].heads[i]});
    for (size_t i = 0; i < current[l].channels.size(); ++i)
      chans.push_back({s.layers[l].channels[i], static_cast<int>(l), 1, current[l].channels[i]});
    auto cut = [&](std::vector<Unit>& u, int dense_n) {
      const int64_t target = static_cast<int64_t>(std::floor(ratio * dense_n + 1e-9));
      const int64_t have = dense_n - static_cast<int64_t>(u.size());
      const size_t n = static_cast<size_t>(
          std::clamp<int64_t>(target - have, 0, static_cast<int64_t>(u.size())));
      std::partial_sort(u.begin(), u.begin() + static_cast<std::ptrdiff_t>(n), u.end());
      u.resize(n);
      remove_units(next, u);
    };
    cut(heads, dense.num_heads);
    cut(chans, dense.intermediate_size);
  }
  return next;
}

UniformCounts uniform_counts_for_sparsity(const ModelConfig& dense, const std::vector<bool>& prot,
                                          double target, double tolerance) {
  if (prot.size() != static_cast<size_t>(dense.num_layers))
    throw ConfigError("protected-layer mask has the wrong length");
  const int n_prunable = static_cast<int>(std::count(prot.begin(), prot.end(), false));
  if (n_prunable == 0)
    throw ConfigError(
        cat("schedule.targets: sparsity ", target,
            " is unreachable: every layer is protected (importance.protected_layers)"));
  // The plan removing `h` heads and `c` channels (the lowest ids) of every unprotected layer.
  auto sparsity_of = [&](int h, int c) {
    PrunePlan p = dense_plan(dense);
    for (size_t l = 0; l < p.size(); ++l) {
      if (prot[l]) continue;
      p[l].heads.erase(p[l].heads.begin(), p[l].heads.begin() + h);
      p[l].channels.erase(p[l].channels.begin(), p[l].channels.begin() + c);
    }
    return measured_sparsity(dense, p);
  };
  const int n_heads = dense.num_heads, d_ff = dense.intermediate_size;
  // The dense model's measured sparsity is > 0 (norms and biases count only in the denominator).
  const double s0 = sparsity_of(0, 0);
  const double dh = sparsity_of(1, 0) - s0, dc = sparsity_of(0, 1) - s0;
  UniformCounts u;
  u.target = target;
  u.ratio = (target - s0) / (n_heads * dh + d_ff * dc);
  u.heads_removed =
      std::clamp(static_cast<int>(std::floor(u.ratio * n_heads + 0.5)), 0, n_heads - 1);
  const double exact = (target - s0 - u.heads_removed * dh) / dc;
  int best = -1;
  double best_err = 0;
  for (double cand : {std::floor(exact), std::ceil(exact)}) {
    const int c = static_cast<int>(std::clamp(cand, 0.0, static_cast<double>(d_ff - 1)));
    const double err = std::fabs(sparsity_of(u.heads_removed, c) - target);
    if (best < 0 || err < best_err || (err == best_err && c < best)) {
      best = c;
      best_err = err;
    }
  }
  u.channels_removed = best;
  u.sparsity = sparsity_of(u.heads_removed, u.channels_removed);
  if (!(std::fabs(u.sparsity - target) <= tolerance))
    throw ConfigError(
        cat("schedule.targets: sparsity ", target, " is unreachable with a uniform ratio in the ",
            n_prunable, " unprotected layer(s): the closest is ", u.sparsity, " (", u.heads_removed,
            " of ", n_heads, " heads and ", u.channels_removed, " of ", d_ff,
            " channels removed per layer; protected layers and the "
            "last head and channel of a layer are never pruned)"));
  return u;
}

LayerPlan prune_layer_lowest(const LayerPlan& current, const LayerScores& s, int heads,
                             int channels) {
  if (s.head_ids != current.heads || s.channel_ids != current.channels)
    throw ConfigError("scores do not describe the layer's kept units");
  auto keep = [](const std::vector<int>& ids, const std::vector<double>& score, int remove) {
    if (remove < 0 || remove > static_cast<int>(ids.size()))
      throw ConfigError(cat("cannot remove ", remove, " of ", ids.size(), " units"));
    std::vector<size_t> order(ids.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    for (double v : score)
      if (!std::isfinite(v)) throw ConfigError("non-finite score");
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return std::tie(score[a], ids[a]) < std::tie(score[b], ids[b]);
    });
    std::vector<int> kept;
    for (size_t i = static_cast<size_t>(remove); i < order.size(); ++i)
      kept.push_back(ids[order[i]]);
    std::sort(kept.begin(), kept.end());
    return kept;
  };
  return {keep(current.heads, s.heads, heads), keep(current.channels, s.channels, channels)};
}

ModelConfig apply_plan(const ModelConfig& dense, const PrunePlan& plan) {
  if (plan.size() != static_cast<size_t>(dense.num_layers))
    throw ConfigError(cat("plan has ", plan.size(), " layers, the model ", dense.num_layers));
  ModelConfig c = dense;
  const int group = dense.group_size();
  for (size_t l = 0; l < plan.size(); ++l) {
    LayerShape s;
    s.heads = plan[l].heads;
    s.channels = plan[l].channels;
    auto ascending_in = [&](const std::vector<int>& v, int n, const char* what) {
      for (size_t i = 0; i < v.size(); ++i)
        if (v[i] < 0 || v[i] >= n || (i && v[i] <= v[i - 1]))
          throw ConfigError(
              cat("plan layer ", l, ": ", what, " ids must be ascending in [0, ", n, ")"));
    };
    ascending_in(s.heads, dense.num_heads, "head");
    ascending_in(s.channels, dense.intermediate_size, "channel");
    for (int h : s.heads) {
      const int g = h / group;
      s.kv_of_head.push_back(g);
      if (s.kv_heads.empty() || s.kv_heads.back() != g) s.kv_heads.push_back(g);
    }
    c.layers[l] = std::move(s);
  }
  return c;
}

double measured_sparsity(const ModelConfig& d, const PrunePlan& plan) {
  const double H = d.hidden_size, D = d.head_dim;
  double total = 0, present = 0;
  for (const auto& L : plan) {
    const double q_dense = d.num_heads * D, kv = d.num_kv_heads * D, f_dense = d.intermediate_size;
    double layer_total = 2 * H;  // input and post-attention RMSNorm
    layer_total += 2 * q_dense * H + 2 * kv * H + 3 * f_dense * H;
    if (d.qkv_bias) layer_total += q_dense + 2 * kv;
    if (d.o_bias) layer_total += H;
    if (d.qk_norm) layer_total += 2 * D;
    total += layer_total;
    const double q = static_cast<double>(L.heads.size()) * D,
                 f = static_cast<double>(L.channels.size());
    present += 2 * q * H + 2 * kv * H + 3 * f * H;  // linear maps only (k/v stay counted)
  }
  return total > 0 ? 1.0 - present / total : 0.0;
}

}  // namespace resp
