#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "model/shard_plan.h"

using namespace resp;

namespace {
ModelConfig dense(int heads, int kv, int ff, int layers = 2) {
  ModelConfig c;
  c.num_heads = heads;
  c.num_kv_heads = kv;
  c.intermediate_size = ff;
  c.num_layers = layers;
  c.head_dim = 4;
  c.layers = dense_layers(layers, heads, kv, ff);
  return c;
}

// Every head appears on exactly one rank, channels partition, and each rank's heads read
// KV heads that the rank holds.
void check_partition(const ModelConfig& c, int tp) {
  for (int l = 0; l < c.num_layers; ++l) {
    std::multiset<int> heads, channels;
    for (int r = 0; r < tp; ++r) {
      const auto p = make_shard_plan(c, tp, r).layers[static_cast<size_t>(l)];
      const auto& shape = c.layers[static_cast<size_t>(l)];
      for (size_t i = 0; i < p.head_pos.size(); ++i) {
        heads.insert(p.head_pos[i]);
        const int kv_id = shape.kv_heads[static_cast<size_t>(
            p.kv_pos[static_cast<size_t>(p.kv_local_of_head[i])])];
        EXPECT_EQ(kv_id, shape.kv_of_head[static_cast<size_t>(p.head_pos[i])]);
      }
      for (int ch : p.channel_pos) channels.insert(ch);
    }
    EXPECT_EQ(static_cast<int>(heads.size()), c.layers[static_cast<size_t>(l)].n_heads());
    EXPECT_EQ(std::set<int>(heads.begin(), heads.end()).size(), heads.size());
    EXPECT_EQ(static_cast<int>(channels.size()), c.layers[static_cast<size_t>(l)].d_ff());
    EXPECT_EQ(std::set<int>(channels.begin(), channels.end()).size(), channels.size());
  }
}
}  // namespace

TEST(ShardPlan, SingleRankOwnsEverything) {
  const auto c = dense(6, 2, 100);
  const auto p = make_shard_plan(c, 1, 0);
  EXPECT_EQ(p.layers[0].n_heads(), 6);
  EXPECT_EQ(p.layers[0].n_kv(), 2);
  EXPECT_EQ(p.layers[0].d_ff(), 100);
  EXPECT_EQ(p.layers[0].kv_local_of_head, (std::vector<int>{0, 0, 0, 1, 1, 1}));
}

TEST(ShardPlan, GroupsStayTogether) {
  const auto c = dense(8, 4, 99);
  for (int tp : {2, 4}) check_partition(c, tp);
  const auto r1 = make_shard_plan(c, 2, 1).layers[0];
  EXPECT_EQ(r1.head_pos, (std::vector<int>{4, 5, 6, 7}));
  EXPECT_EQ(r1.kv_pos, (std::vector<int>{2, 3}));
  EXPECT_EQ(r1.d_ff(), 50);  // 99 channels split 49 / 50
  EXPECT_EQ(make_shard_plan(c, 2, 0).layers[0].d_ff(), 49);
}

TEST(ShardPlan, ReplicatesKvWhenFewerKvHeadsThanRanks) {
  const auto c = dense(4, 1, 88);  // multi-query attention on 2 and 4 ranks
  for (int tp : {2, 4}) check_partition(c, tp);
  const auto r = make_shard_plan(c, 4, 3).layers[0];
  EXPECT_EQ(r.head_pos, std::vector<int>{3});
  EXPECT_EQ(r.kv_pos, std::vector<int>{0});
  const auto c2 = dense(6, 2, 10);
  for (int tp : {3, 4, 6}) check_partition(c2, tp);
}

TEST(ShardPlan, UnevenPrunedLayers) {
  auto c = dense(6, 2, 10, 1);
  c.layers[0].heads = {0, 1, 5};
  c.layers[0].kv_of_head = {0, 0, 1};
  c.layers[0].channels = {3};
  check_partition(c, 2);
  // One channel on two ranks: one rank owns none and must still work.
  EXPECT_EQ(make_shard_plan(c, 2, 0).layers[0].d_ff() + make_shard_plan(c, 2, 1).layers[0].d_ff(),
            1);
}

TEST(ShardPlan, ErrorsExplain) {
  const auto c = dense(4, 2, 100);
  try {
    make_shard_plan(c, 8, 0);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("4 query heads"), std::string::npos);
  }
  EXPECT_THROW(make_shard_plan(c, 2, 2), ConfigError);
  EXPECT_THROW(make_shard_plan(dense(4, 2, 3), 4, 0), ConfigError);
}
