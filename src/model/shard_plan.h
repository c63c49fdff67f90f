// ShardPlan: which query heads, KV heads and MLP channels each tensor-parallel rank owns.
// Positions index a layer's kept lists (LayerShape::heads etc.), which are also the row/column
// positions in the checkpoint's tensors. Rules (Megatron layout, GQA-aware):
//  - a KV group (a KV head and the query heads reading it) stays on one rank: with at least tp
//    groups, rank r takes groups [r*G/tp, (r+1)*G/tp);
//  - with fewer groups than ranks, query heads are split evenly and each rank holds a replica
//    of the KV heads its query heads read;
//  - MLP channels are split evenly in contiguous runs.
// After pruning a rank may own zero heads or channels in a layer; it still joins the
// all-reduces with a zero partial sum.
#pragma once

#include <string>
#include <vector>

#include "model/model_config.h"

namespace resp {

struct LayerShard {
  std::vector<int> head_pos;          // positions into LayerShape::heads
  std::vector<int> kv_pos;            // positions into LayerShape::kv_heads
  std::vector<int> kv_local_of_head;  // per owned head: index into kv_pos
  std::vector<int> channel_pos;       // positions into LayerShape::channels
  int n_heads() const { return static_cast<int>(head_pos.size()); }
  int n_kv() const { return static_cast<int>(kv_pos.size()); }
  int d_ff() const { return static_cast<int>(channel_pos.size()); }
};

struct ShardPlan {
  int tp = 1;
  int tp_rank = 0;
  std::vector<LayerShard> layers;
};

// Throws ConfigError explaining why when the dense model cannot be placed on `tp` ranks
// (fewer query heads or MLP channels than ranks).
ShardPlan make_shard_plan(const ModelConfig& config, int tp, int tp_rank);

}  // namespace resp
