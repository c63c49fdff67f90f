// Inference (Decoder, buffers aliased in place) and the gradient pass (GradientPass, every
// activation kept) run the same layer forward, so their final hidden states agree bit for bit,
// on shapes the golden fixtures do not have: unequal pruned layers, a layer without heads, a
// layer without channels, q/k/v and o biases, with and without qk-norm, on one and two TP ranks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <thread>

#include "backend/backend.h"
#include "model/decoder.h"
#include "model/gradient_pass.h"
#include "model/layer_forward.h"
#include "model/shard_plan.h"
#include "thread_comm.h"

using namespace resp;
using namespace resp::test;

namespace {

ModelConfig odd_model(bool qk_norm) {
  ModelConfig c;
  c.arch = qk_norm ? Arch::Qwen3 : Arch::Qwen2;
  c.model_type = qk_norm ? "qwen3" : "qwen2";
  c.vocab_size = 97;
  c.hidden_size = 40;
  c.num_layers = 4;
  c.num_heads = 6;
  c.num_kv_heads = 3;
  c.head_dim = 8;
  c.intermediate_size = 45;
  c.max_position_embeddings = 64;
  c.qkv_bias = true;
  c.o_bias = true;
  c.qk_norm = qk_norm;
  c.tie_word_embeddings = !qk_norm;
  c.layers = dense_layers(c.num_layers, c.num_heads, c.num_kv_heads, c.intermediate_size);
  // Layer 1: unequal GQA groups and 20 scattered channels.
  c.layers[1].heads = {0, 3, 4};
  c.layers[1].kv_of_head = {0, 1, 2};
  c.layers[1].channels.clear();
  for (int ch = 1; ch < 45; ch += 2) c.layers[1].channels.push_back(ch);
  c.layers[1].channels.resize(20);
  // Layer 2: every head pruned, 7 channels left.
  c.layers[2].heads.clear();
  c.layers[2].kv_heads.clear();
  c.layers[2].kv_of_head.clear();
  c.layers[2].channels = {0, 5, 9, 17, 30, 31, 44};
  // Layer 3: one head (so one of two TP ranks has none) and no channels.
  c.layers[3].heads = {5};
  c.layers[3].kv_heads = {2};
  c.layers[3].kv_of_head = {2};
  c.layers[3].channels.clear();
  return c;
}

std::vector<float> to_host(Backend& be, const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  be.copy(Tensor(v.data(), DType::F32, t.shape()), t);
  return v;
}

struct RankResult {
  std::vector<float> inference, gradient_pass;
  double sum_logprob = 0, loss = 0;
};

RankResult run_rank(const ModelConfig& c, int tp, int rank, Communicator& comm,
                    const std::vector<int32_t>& tokens) {
  auto be = make_cpu_backend(1);
  const ModelWeights w = random_weights(c, make_shard_plan(c, tp, rank), *be, 77, 0.3f);
  RankResult r;
  Decoder dec(w, *be, comm);
  r.inference = to_host(*be, dec.forward_hidden(tokens));
  for (double lp : dec.sequence_logprobs(tokens)) r.sum_logprob += lp;

  GradientPass pass(w, *be, comm);
  ModelGrads grads = make_grads(w, *be, GradSelection::Prunable);
  grads.zero(*be);
  const std::vector<float> ones(tokens.size() - 1, 1.0f);
  r.loss = pass.forward_backward(tokens, ones, grads).loss;
  r.gradient_pass = to_host(*be, pass.final_hidden());
  return r;
}

void check_agreement(bool qk_norm, int tp) {
  const ModelConfig c = odd_model(qk_norm);
  std::mt19937 gen(qk_norm ? 5 : 6);
  std::uniform_int_distribution<int32_t> id(0, c.vocab_size - 1);
  std::vector<int32_t> tokens(37);
  for (auto& t : tokens) t = id(gen);

  ThreadGroup group(tp);
  std::vector<RankResult> res(static_cast<size_t>(tp));
  std::vector<std::thread> threads;
  for (int r = 0; r < tp; ++r)
    threads.emplace_back([&, r] {
      ThreadComm comm(group, r);
      res[static_cast<size_t>(r)] = run_rank(c, tp, r, comm, tokens);
    });
  for (auto& t : threads) t.join();

  for (int r = 0; r < tp; ++r) {
    const RankResult& x = res[static_cast<size_t>(r)];
    const std::string where = cat("qk_norm=", qk_norm, " tp=", tp, " rank ", r);
    ASSERT_EQ(x.inference.size(), tokens.size() * static_cast<size_t>(c.hidden_size)) << where;
    ASSERT_EQ(x.gradient_pass.size(), x.inference.size()) << where;
    EXPECT_EQ(
        std::memcmp(x.inference.data(), x.gradient_pass.data(), x.inference.size() * sizeof(float)),
        0)
        << where;
    // Guards against a degenerate model (all rows equal) that would agree trivially.
    EXPECT_NE(std::memcmp(x.inference.data(), x.inference.data() + c.hidden_size,
                          static_cast<size_t>(c.hidden_size) * sizeof(float)),
              0)
        << where;
    // The losses come through different ops (log_softmax vs cross_entropy) on the same logits.
    EXPECT_NEAR(x.loss, -x.sum_logprob, 1e-4 * std::fabs(x.sum_logprob)) << where;
    // Every rank holds the whole (all-reduced) hidden state.
    EXPECT_EQ(x.inference, res[0].inference) << where;
  }
}

}  // namespace

TEST(LayerForward, InferenceAndGradientPassAgreeBitForBitQkNorm) {
  check_agreement(true, 1);
  check_agreement(true, 2);
}

TEST(LayerForward, InferenceAndGradientPassAgreeBitForBitBiasNoQkNorm) {
  check_agreement(false, 1);
  check_agreement(false, 2);
}

TEST(LayerForward, SequenceChecksShareTheirMessages) {
  const ModelConfig c = odd_model(true);
  auto be = make_cpu_backend(1);
  const ModelWeights w = random_weights(c, make_shard_plan(c, 1, 0), *be, 1);
  SelfCommunicator self;
  Decoder dec(w, *be, self);
  GradientPass pass(w, *be, self);
  ModelGrads grads = make_grads(w, *be, GradSelection::Prunable);
  const std::vector<int32_t> bad_id = {1, 97, 2}, too_long(65, 1);
  const std::vector<float> lw2(2, 1.0f), lw64(64, 1.0f);
  auto message = [](auto&& f) {
    try {
      f();
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string id_msg = "token id 97 outside the vocabulary [0, 97)";
  const std::string len_msg = "sequence of 65 tokens exceeds max_position_embeddings 64";
  EXPECT_EQ(message([&] { dec.forward_hidden(bad_id); }), id_msg);
  EXPECT_EQ(message([&] { pass.forward_backward(bad_id, lw2, grads); }), id_msg);
  EXPECT_EQ(message([&] { dec.forward_hidden(too_long); }), len_msg);
  EXPECT_EQ(message([&] { pass.forward_backward(too_long, lw64, grads); }), len_msg);
  ActivationObserver none;
  EXPECT_EQ(message([&] { dec.forward_hidden({}); }), "forward: empty token sequence");
  EXPECT_EQ(message([&] { pass.forward_observe({}, none); }), "forward: empty token sequence");
  KvCache cache(w, *be, 1, 8);
  const std::vector<int32_t> neg = {3, -1};
  EXPECT_EQ(message([&] {
              dec.forward_cached(std::vector<KvChunk>{{0, neg}}, cache);
            }),
            "token id -1 outside the vocabulary [0, 97)");
}
