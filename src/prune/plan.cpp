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
