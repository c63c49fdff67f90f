// load_model_shard / random_model_shard: the shard placed by the TP communicator's size and rank
// is the one the explicit sequence (make_shard_plan with those integers, then load_weights or
// random_weights) produced, byte for byte, on every rank of every layout.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "backend/backend.h"
#include "model/model_config.h"
#include "model/model_shard.h"
#include "model/safetensors.h"
#include "model/shard_plan.h"
#include "test_util.h"
#include "thread_comm.h"

using namespace resp;
using namespace resp::test;

namespace {

std::vector<Tensor> all_tensors(const ModelWeights& w) {
  std::vector<Tensor> v = {w.embed, w.final_norm, w.lm_head, w.inv_freq};
  for (const LayerWeights& l : w.layers)
    for (const Tensor& t : {l.attn_norm, l.wq, l.bq, l.wk, l.bk, l.wv, l.bv, l.q_norm, l.k_norm,
                            l.wo, l.bo, l.mlp_norm, l.wg, l.wu, l.wd, l.kv_of_head})
      v.push_back(t);
  return v;
}

void expect_same_shard(const ModelWeights& got, const ModelWeights& want, const std::string& what) {
  EXPECT_EQ(got.plan.tp, want.plan.tp) << what;
  EXPECT_EQ(got.plan.tp_rank, want.plan.tp_rank) << what;
  ASSERT_EQ(got.plan.layers.size(), want.plan.layers.size()) << what;
  for (size_t l = 0; l < want.plan.layers.size(); ++l) {
    EXPECT_EQ(got.plan.layers[l].head_pos, want.plan.layers[l].head_pos) << what << " layer " << l;
    EXPECT_EQ(got.plan.layers[l].kv_pos, want.plan.layers[l].kv_pos) << what << " layer " << l;
    EXPECT_EQ(got.plan.layers[l].kv_local_of_head, want.plan.layers[l].kv_local_of_head)
        << what << " layer " << l;
    EXPECT_EQ(got.plan.layers[l].channel_pos, want.plan.layers[l].channel_pos)
        << what << " layer " << l;
  }
  const auto a = all_tensors(got), b = all_tensors(want);
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].empty(), b[i].empty()) << what << " tensor " << i;
    if (b[i].empty()) continue;
    ASSERT_EQ(a[i].dtype(), b[i].dtype()) << what << " tensor " << i;
    ASSERT_EQ(a[i].nbytes(), b[i].nbytes()) << what << " tensor " << i;
    EXPECT_EQ(std::memcmp(a[i].data(), b[i].data(), b[i].nbytes()), 0) << what << " tensor " << i;
  }
}

}  // namespace

TEST(ModelShard, LoadsTheShardOfTheCommunicatorsRank) {
  // Sharded safetensors, a bf16 checkpoint with tied embeddings (KV groups dealt to ranks), and
  // one KV head for four query heads (replicated on both ranks).
  for (const std::string name : {"qwen2-sharded-f32", "qwen3-tied-bf16", "llama-mqa-f32"}) {
    const fs::path dir = fixture_models() / name;
    const ModelConfig c = load_model_config(dir);
    auto backend = make_cpu_backend(1);
    const CheckpointReader reader(dir);
    for (int tp : {1, 2}) {
      ThreadGroup group(tp);
      for (int r = 0; r < tp; ++r) {
        ThreadComm comm(group, r);
        const std::string what = name + " tp=" + std::to_string(tp) + " rank " + std::to_string(r);
        const ModelWeights want = load_weights(dir, c, make_shard_plan(c, tp, r), *backend);
        expect_same_shard(load_model_shard(dir, c, comm, *backend), want, what + " (dir)");
        expect_same_shard(load_model_shard(reader, c, comm, *backend), want, what + " (reader)");
        if (tp == 2) {
          EXPECT_LT(load_model_shard(dir, c, comm, *backend).bytes(),
                    load_weights(dir, c, make_shard_plan(c, 1, 0), *backend).bytes())
              << what << ": a shard is smaller than the model";
        }
      }
    }
  }
}

TEST(ModelShard, OptionsReachTheLoader) {
  // The first layer of a model, read from the full checkpoint: refused by default (the file has
  // tensors the config does not use), accepted with UnusedTensors::Allow.
  const fs::path dir = fixture_models() / "qwen3-f32";
  ModelConfig first = load_model_config(dir);
  first.num_layers = 1;
  first.layers.resize(1);
  auto backend = make_cpu_backend(1);
  SelfCommunicator self;
  EXPECT_THROW(load_model_shard(dir, first, self, *backend), FormatError);
  const ModelWeights w =
      load_model_shard(dir, first, self, *backend, {FileNumbering::Kept, UnusedTensors::Allow});
  EXPECT_EQ(w.layers.size(), 1u);
  expect_same_shard(w,
                    load_weights(CheckpointReader(dir), first, make_shard_plan(first, 1, 0),
                                 *backend, FileNumbering::Kept, UnusedTensors::Allow),
                    "first layer");
}

TEST(ModelShard, RandomShardIsTheRandomWeightsOfThatRank) {
  const ModelConfig c = load_model_config(fixture_models() / "qwen3-f32");
  auto backend = make_cpu_backend(1);
  ThreadGroup group(2);
  for (int r = 0; r < 2; ++r) {
    ThreadComm comm(group, r);
    expect_same_shard(random_model_shard(c, comm, *backend, 7, 0.05f),
                      random_weights(c, make_shard_plan(c, 2, r), *backend, 7, 0.05f),
                      "random rank " + std::to_string(r));
  }
}
