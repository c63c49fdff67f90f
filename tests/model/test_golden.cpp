// Golden tests: the engine's log-probs on tiny random models equal an independent float64
// PyTorch implementation (tools/reference_model.py; fixtures from tools/make_fixtures.py).
#include <gtest/gtest.h>

#include <barrier>
#include <cmath>
#include <fstream>
#include <thread>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "model/decoder.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "model/shard_plan.h"
#include "test_util.h"
#include "thread_comm.h"

using namespace resp;
using namespace resp::test;

namespace {

struct RefSeq {
  std::string id;
  std::vector<int32_t> tokens;
  std::vector<double> logprobs;
};

std::vector<RefSeq> load_reference(const fs::path& dir) {
  std::vector<RefSeq> v;
  for (const auto& j : parse_jsonl(read_text(dir / "reference.jsonl"))) {
    RefSeq s;
    s.id = j["id"].get<std::string>();
    s.tokens = j["tokens"].get<std::vector<int32_t>>();
    s.logprobs = j["logprobs"].get<std::vector<double>>();
    v.push_back(std::move(s));
  }
  return v;
}

// Max |engine - reference| over all sequences of a fixture, single rank.
double max_error(const std::string& name) {
  const fs::path dir = fixture_models() / name;
  const ModelConfig c = load_model_config(dir);
  auto backend = make_cpu_backend(0);
  const ModelWeights w = load_weights(dir, c, make_shard_plan(c, 1, 0), *backend);
  SelfCommunicator self;
  Decoder dec(w, *backend, self);
  double err = 0;
  const auto ref = load_reference(dir);
  EXPECT_GE(ref.size(), 3u);
  for (const auto& s : ref) {
    const auto lp = dec.sequence_logprobs(s.tokens);
    EXPECT_EQ(lp.size(), s.logprobs.size()) << name << " " << s.id;
    for (size_t i = 0; i < std::min(lp.size(), s.logprobs.size()); ++i)
      err = std::max(err, std::fabs(lp[i] - s.logprobs[i]));
  }
  return err;
}

// Documented bound (docs/architecture.md): f32 compute against a float64 reference on the
// same weights; bf16 files hold exactly representable values, so the same bound applies.
constexpr double kTol = 1e-4;

}  // namespace

TEST(Golden, Qwen3F32) {
  EXPECT_LE(max_error("qwen3-f32"), kTol);
}
TEST(Golden, Qwen3TiedBf16) {
  EXPECT_LE(max_error("qwen3-tied-bf16"), kTol);
}
TEST(Golden, Qwen2ShardedWithBias) {
  EXPECT_LE(max_error("qwen2-sharded-f32"), kTol);
}
TEST(Golden, Llama31RopeScalingBf16) {
  EXPECT_LE(max_error("llama31-bf16"), kTol);
}
TEST(Golden, LlamaMqaNestedRopeParameters) {
  EXPECT_LE(max_error("llama-mqa-f32"), kTol);
}
TEST(Golden, Qwen3Demo) {
  EXPECT_LE(max_error("qwen3-tiny-demo"), kTol);
}

TEST(Golden, ReferenceIsNotTrivial) {
  // Guards against degenerate fixtures (e.g. uniform predictions) that any engine would match.
  const auto ref = load_reference(fixture_models() / "qwen3-f32");
  double mn = 0, mx = -1e9;
  for (const auto& s : ref)
    for (double v : s.logprobs) {
      mn = std::min(mn, v);
      mx = std::max(mx, v);
    }
  EXPECT_GT(mx - mn, 0.5);
}

namespace {
void check_tp(const std::string& name, int tp) {
  const fs::path dir = fixture_models() / name;
  const ModelConfig c = load_model_config(dir);
  const auto ref = load_reference(dir);
  ThreadGroup group(tp);
  std::vector<std::vector<std::vector<double>>> results(static_cast<size_t>(tp));
  std::vector<std::thread> threads;
  for (int r = 0; r < tp; ++r)
    threads.emplace_back([&, r] {
      auto backend = make_cpu_backend(1);
      const ModelWeights w = load_weights(dir, c, make_shard_plan(c, tp, r), *backend);
      ThreadComm comm(group, r);
      Decoder dec(w, *backend, comm);
      for (const auto& s : ref)
        results[static_cast<size_t>(r)].push_back(dec.sequence_logprobs(s.tokens));
    });
  for (auto& t : threads) t.join();
  for (int r = 0; r < tp; ++r)
    for (size_t i = 0; i < ref.size(); ++i)
      for (size_t t = 0; t < ref[i].logprobs.size(); ++t)
        ASSERT_NEAR(results[static_cast<size_t>(r)][i][t], ref[i].logprobs[t], kTol)
            << name << " tp=" << tp << " rank " << r << " seq " << ref[i].id << " pos " << t;
}
}  // namespace

TEST(GoldenTensorParallel, Qwen3TwoRanks) {
  check_tp("qwen3-f32", 2);
}
TEST(GoldenTensorParallel, Qwen2BiasThreeRanks) {
  check_tp("qwen2-sharded-f32", 3);
}
TEST(GoldenTensorParallel, LlamaMqaReplicatedKvFourRanks) {
  check_tp("llama-mqa-f32", 4);
}
TEST(GoldenTensorParallel, LlamaRopeScalingThreeRanks) {
  check_tp("llama31-bf16", 3);
}
