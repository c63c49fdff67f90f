#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "prune/plan.h"

using namespace resp;

namespace {
ModelConfig dense(int layers = 5, int heads = 4, int kv = 2, int ff = 6) {
  ModelConfig c;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_kv_heads = kv;
  c.intermediate_size = ff;
  c.hidden_size = 8;
  c.head_dim = 2;
  c.layers = dense_layers(layers, heads, kv, ff);
  return c;
}

// Scores: unit (layer l, kind, id) gets a distinct value, lower for higher layer*10 + id.
ImportanceScores scores_for(const PrunePlan& p, double head_bias = 0.0) {
  ImportanceScores s;
  for (size_t l = 0; l < p.size(); ++l) {
    LayerScores L;
    L.head_ids = p[l].heads;
    L.channel_ids = p[l].channels;
    for (int h : p[l].heads) L.heads.push_back(head_bias + 100.0 - static_cast<double>(l) * 10 - h);
    for (int c : p[l].channels) L.channels.push_back(50.0 + static_cast<double>(l) - c * 0.5);
    s.layers.push_back(L);
  }
  return s;
}
}  // namespace

TEST(Plan, ProtectedLayersFollowTheReference) {
  // Qwen3-8B: 36 layers -> 0, 1, 2 and 35 protected.
  const auto p = default_protected_layers(36);
  for (int l = 0; l < 36; ++l) EXPECT_EQ(p[static_cast<size_t>(l)], l < 3 || l == 35) << l;
  const auto q = default_protected_layers(5);  // range(0, 4): only the last
  EXPECT_EQ(q, (std::vector<bool>{false, false, false, false, true}));
}

TEST(Plan, GlobalRankingCumulativeAndProtected) {
  const auto d = dense();
  const auto prot = default_protected_layers(5);
  PrunePlan p = dense_plan(d);
  const int64_t total = total_units(d);  // 5 * (4 + 6) = 50
  EXPECT_EQ(total, 50);
  for (double r : {0.1, 0.3, 0.5}) {
    const auto next = prune_to_ratio(d, p, scores_for(p), r, Ranking::Global, prot);
    EXPECT_EQ(pruned_units(d, next), static_cast<int64_t>(r * 50 + 1e-9)) << r;
    // Never restores: every unit kept now was kept before.
    for (size_t l = 0; l < p.size(); ++l) {
      for (int h : next[l].heads)
        EXPECT_NE(std::find(p[l].heads.begin(), p[l].heads.end(), h), p[l].heads.end());
      for (int c : next[l].channels)
        EXPECT_NE(std::find(p[l].channels.begin(), p[l].channels.end(), c), p[l].channels.end());
    }
    EXPECT_EQ(next[4].heads.size(), 4u);  // protected layer intact
    EXPECT_EQ(next[4].channels.size(), 6u);
    p = next;
  }
  // Beyond what unprotected layers hold: everything prunable goes, protected stays.
  const auto all = prune_to_ratio(d, p, scores_for(p), 0.95, Ranking::Global, prot);
  EXPECT_EQ(pruned_units(d, all), 40);
  EXPECT_EQ(all[4].heads.size(), 4u);
  // The lowest scores go first: with these scores heads of deep layers (score 100 - 10 l - h)
  // are below channels (~50) only from layer 5 on; channels of layer 0 with high id go first.
  const auto first =
      prune_to_ratio(d, dense_plan(d), scores_for(dense_plan(d)), 0.02, Ranking::Global, prot);
  EXPECT_EQ(first[0].channels,
            (std::vector<int>{0, 1, 2, 3, 4}));  // channel 5 of layer 0 (47.5) removed
}

TEST(Plan, DeterministicTieBreak) {
  const auto d = dense();
  const auto prot = default_protected_layers(5);
  auto s = scores_for(dense_plan(d));
  for (auto& L : s.layers) {
    std::fill(L.heads.begin(), L.heads.end(), 1.0);
    std::fill(L.channels.begin(), L.channels.end(), 1.0);
  }
  const auto a = prune_to_ratio(d, dense_plan(d), s, 0.2, Ranking::Global, prot);
  const auto b = prune_to_ratio(d, dense_plan(d), s, 0.2, Ranking::Global, prot);
  EXPECT_EQ(pruned_units(d, a), 10);
  for (size_t l = 0; l < a.size(); ++l) EXPECT_EQ(a[l].heads, b[l].heads);
  // Ties break by (layer, heads first, id): layer 0 loses all 4 heads and its first 6 channels.
  EXPECT_TRUE(a[0].heads.empty());
  EXPECT_TRUE(a[0].channels.empty());
}

TEST(Plan, PerLayerUniform) {
  const auto d = dense();
  const auto prot = default_protected_layers(5);
  const auto p =
      prune_to_ratio(d, dense_plan(d), scores_for(dense_plan(d)), 0.5, Ranking::PerLayer, prot);
  for (int l = 0; l < 4; ++l) {
    EXPECT_EQ(p[static_cast<size_t>(l)].heads.size(), 2u);
    EXPECT_EQ(p[static_cast<size_t>(l)].channels.size(), 3u);
  }
  EXPECT_EQ(p[4].heads.size(), 4u);
}

TEST(Plan, ApplyPlanDropsUnusedKvHeads) {
  const auto d = dense();
  PrunePlan p = dense_plan(d);
  p[1].heads = {2, 3};  // group 0 (heads 0, 1) gone
  p[2].heads = {};
  p[2].channels = {};
  const ModelConfig c = apply_plan(d, p);
  EXPECT_EQ(c.layers[1].kv_heads, std::vector<int>{1});
  EXPECT_EQ(c.layers[1].kv_of_head, (std::vector<int>{1, 1}));
  EXPECT_TRUE(c.layers[2].kv_heads.empty());
  EXPECT_EQ(c.layers[0].kv_heads, (std::vector<int>{0, 1}));
  p[0].heads = {3, 1};  // not ascending
  EXPECT_THROW(apply_plan(d, p), ConfigError);
  p[0].heads = {0, 9};
  EXPECT_THROW(apply_plan(d, p), ConfigError);
}

TEST(Plan, MeasuredSparsityDefinition) {
  const auto d = dense(1, 4, 2, 6);  // H = 8, D = 2
  // Decoder params: norms 2*8, q 8*8, k/v 2*(4*8), o 8*8, mlp 3*6*8 = 16+64+64+64+144 = 352.
  EXPECT_NEAR(measured_sparsity(d, dense_plan(d)), 16.0 / 352.0, 1e-12);
  PrunePlan p = dense_plan(d);
  p[0].heads = {0};        // removes 3 heads: 3 * (2*8 + 8*2) = 96 weights (k/v still counted)
  p[0].channels = {0, 1};  // removes 4 channels: 4 * 24 = 96
  EXPECT_NEAR(measured_sparsity(d, p), (16.0 + 96 + 96) / 352.0, 1e-12);
}

TEST(Plan, RejectsBadInput) {
  const auto d = dense();
  const auto prot = default_protected_layers(5);
  auto s = scores_for(dense_plan(d));
  EXPECT_THROW(prune_to_ratio(d, dense_plan(d), s, 1.0, Ranking::Global, prot), ConfigError);
  EXPECT_THROW(prune_to_ratio(d, dense_plan(d), s, -0.1, Ranking::Global, prot), ConfigError);
  s.layers[0].heads[0] = std::nan("");
  EXPECT_THROW(prune_to_ratio(d, dense_plan(d), s, 0.1, Ranking::Global, prot), ConfigError);
  s = scores_for(dense_plan(d));
  s.layers[0].head_ids = {0, 1, 2};
  EXPECT_THROW(prune_to_ratio(d, dense_plan(d), s, 0.1, Ranking::Global, prot), ConfigError);
  EXPECT_THROW(parse_ranking("random"), ConfigError);
}
