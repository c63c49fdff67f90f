// Incremental decoding with the KV cache must reproduce full forward passes exactly (up to
// float rounding), for any split of a sequence into chunks and any mix of slots per call.
#include <gtest/gtest.h>

#include <cmath>

#include "comm/communicator.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "model/shard_plan.h"
#include "test_util.h"

using namespace resp;
using namespace resp::test;

namespace {

struct Loaded {
  ModelConfig config;
  std::unique_ptr<Backend> backend;
  ModelWeights weights;
};

Loaded load(const std::string& name) {
  const fs::path dir = fixture_models() / name;
  Loaded m;
  m.config = load_model_config(dir);
  m.backend = make_cpu_backend(0);
  m.weights = load_weights(dir, m.config, make_shard_plan(m.config, 1, 0), *m.backend);
  return m;
}

std::vector<float> log_softmax_row(Decoder& dec, const Tensor& hidden_row, int V) {
  std::vector<float> lg(static_cast<size_t>(V));
  Tensor t(lg.data(), DType::F32, Shape{1, V});
  dec.logits(t, hidden_row);
  dec.backend().log_softmax(t, t);
  return lg;
}

std::vector<int32_t> tokens_of(int n, int V, int salt) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 37 + salt * 11 + 5) % V);
  return t;
}

}  // namespace

TEST(KvCache, ChunkedDecodeMatchesFullForward) {
  for (const std::string name : {"qwen3-f32", "qwen2-sharded-f32", "llama31-bf16"}) {
    Loaded m = load(name);
    const int V = m.config.vocab_size;
    SelfCommunicator self;
    Decoder full(m.weights, *m.backend, self);
    Decoder inc(m.weights, *m.backend, self);
    KvCache cache(m.weights, *m.backend, 3, 64);
    // Three sequences, advanced in different chunk sizes, interleaved in shared calls.
    std::vector<std::vector<int32_t>> seqs = {tokens_of(23, V, 1), tokens_of(17, V, 2),
                                              tokens_of(30, V, 3)};
    std::vector<size_t> done(3, 0);
    const std::vector<size_t> step = {5, 1, 7};
    while (done[0] < seqs[0].size() || done[1] < seqs[1].size() || done[2] < seqs[2].size()) {
      std::vector<Decoder::Chunk> chunks;
      std::vector<size_t> which;
      for (size_t s = 0; s < 3; ++s) {
        if (done[s] >= seqs[s].size()) continue;
        const size_t n = std::min(step[s], seqs[s].size() - done[s]);
        chunks.push_back(
            {static_cast<int>(s), std::span<const int32_t>(seqs[s]).subspan(done[s], n)});
        which.push_back(s);
      }
      const Tensor last = inc.forward_cached(chunks, cache);
      for (size_t i = 0; i < which.size(); ++i) {
        const size_t s = which[i];
        done[s] += chunks[i].tokens.size();
        // Compare the next-token distribution with a full forward over the prefix.
        const std::vector<int32_t> prefix(seqs[s].begin(),
                                          seqs[s].begin() + static_cast<long>(done[s]));
        const Tensor hid = full.forward_hidden(prefix);
        const auto ref =
            log_softmax_row(full, hid.slice_rows(static_cast<int64_t>(done[s]) - 1, 1), V);
        const auto got = log_softmax_row(inc, last.slice_rows(static_cast<int64_t>(i), 1), V);
        double err = 0;
        for (int v = 0; v < V; ++v)
          err = std::max(
              err, std::fabs(double(ref[static_cast<size_t>(v)]) - got[static_cast<size_t>(v)]));
        ASSERT_LT(err, 2e-5) << name << " seq " << s << " at " << done[s];
      }
    }
    EXPECT_EQ(cache.length(0), 23);
    EXPECT_EQ(cache.length(2), 30);
  }
}

TEST(KvCache, GreedyDecodeEqualsRepeatedFullForward) {
  Loaded m = load("qwen3-tiny-demo");
  const int V = m.config.vocab_size;
  SelfCommunicator self;
  Decoder dec(m.weights, *m.backend, self);
  KvCache cache(m.weights, *m.backend, 1, 64);
  std::vector<int32_t> seq = {1, 2, 3, 4};
  std::vector<int32_t> cached = seq;
  Tensor last = dec.forward_cached(std::vector<Decoder::Chunk>{{0, seq}}, cache);
  for (int step = 0; step < 20; ++step) {
    const auto lp = log_softmax_row(dec, last, V);
    const int32_t next = static_cast<int32_t>(std::max_element(lp.begin(), lp.end()) - lp.begin());
    cached.push_back(next);
    std::vector<int32_t> one = {next};
    last = dec.forward_cached(std::vector<Decoder::Chunk>{{0, one}}, cache);
  }
  // Reference: argmax of repeated full passes.
  Decoder full(m.weights, *m.backend, self);
  std::vector<int32_t> ref = seq;
  for (int step = 0; step < 20; ++step) {
    const Tensor hid = full.forward_hidden(ref);
    const auto lp =
        log_softmax_row(full, hid.slice_rows(static_cast<int64_t>(ref.size()) - 1, 1), V);
    ref.push_back(static_cast<int32_t>(std::max_element(lp.begin(), lp.end()) - lp.begin()));
  }
  EXPECT_EQ(cached, ref);
}

TEST(KvCache, RejectsOverflowAndDuplicateSlots) {
  Loaded m = load("qwen3-tiny-demo");
  SelfCommunicator self;
  Decoder dec(m.weights, *m.backend, self);
  KvCache cache(m.weights, *m.backend, 2, 8);
  std::vector<int32_t> nine(9, 1), two = {1, 2};
  EXPECT_THROW(dec.forward_cached(std::vector<Decoder::Chunk>{{0, nine}}, cache), UsageError);
  EXPECT_THROW(dec.forward_cached(std::vector<Decoder::Chunk>{{0, two}, {0, two}}, cache),
               UsageError);
  EXPECT_EQ(cache.length(0), 0);  // failed calls leave the cache untouched
  EXPECT_THROW(KvCache(m.weights, *m.backend, 0, 8), UsageError);
}
