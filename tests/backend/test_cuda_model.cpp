// The golden fixture models on the CUDA backend against the CPU backend: sequence log-probs
// (and the float64 reference), cached prefill + decode of two interleaved sequences, and the
// importance scores (taylor, taylor-vectorize) of the calibration samples. Skipped without a
// CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "calibration_samples.h"
#include "comm/parallel_layout.h"
#include "gpu_test.h"
#include "importance/scorer.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "model/model_weights.h"
#include "model/shard_plan.h"
#include "test_util.h"

namespace resp {
namespace {

using namespace resp::test;

struct Loaded {
  ModelConfig config;
  std::unique_ptr<Backend> backend;
  ModelWeights weights;
};

Loaded load(const fs::path& dir, bool cuda, DType weights = DType::F32) {
  Loaded l;
  l.config = load_model_config(dir);
  l.backend = cuda ? make_cuda_backend(0, weights) : make_cpu_backend(1);
  l.weights = load_weights(dir, l.config, make_shard_plan(l.config, 1, 0), *l.backend);
  return l;
}

const std::vector<std::string> kModels = {"qwen3-f32", "qwen3-tied-bf16", "qwen2-sharded-f32",
                                          "llama31-bf16", "llama-mqa-f32"};

std::string test_name(const ::testing::TestParamInfo<std::string>& p) {
  std::string s = p.param;
  for (char& ch : s)
    if (ch == '-') ch = '_';
  return s;
}

class CudaModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    RESP_REQUIRE_GPU();
    dir = fixture_models() / GetParam();
    cpu = load(dir, false);
    gpu = load(dir, true);
  }
  fs::path dir;
  Loaded cpu, gpu;
};

TEST_P(CudaModel, LogprobsMatchCpuAndReference) {
  SelfCommunicator self;
  Decoder dc(cpu.weights, *cpu.backend, self), dg(gpu.weights, *gpu.backend, self);
  int checked = 0;
  for (const auto& j : parse_jsonl(read_text(dir / "reference.jsonl"))) {
    const auto tokens = j["tokens"].get<std::vector<int32_t>>();
    const auto ref = j["logprobs"].get<std::vector<double>>();
    const auto a = dc.sequence_logprobs(tokens), b = dg.sequence_logprobs(tokens);
    ASSERT_EQ(a.size(), b.size());
    ASSERT_EQ(b.size(), ref.size());
    for (size_t i = 0; i < b.size(); ++i) {
      EXPECT_NEAR(b[i], a[i], 2e-5) << j["id"] << " position " << i;
      EXPECT_NEAR(b[i], ref[i], 1e-4) << j["id"] << " position " << i;
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

TEST_P(CudaModel, CachedPrefillAndDecodeMatchCpu) {
  SelfCommunicator self;
  Decoder dc(cpu.weights, *cpu.backend, self), dg(gpu.weights, *gpu.backend, self);
  KvCache cc(cpu.weights, *cpu.backend, 2, 64), cg(gpu.weights, *gpu.backend, 2, 64);
  const int64_t H = cpu.config.hidden_size;
  const int32_t V = static_cast<int32_t>(cpu.config.vocab_size);
  std::vector<int32_t> p0 = {1, 7 % V, 11 % V, 3, 5, 9 % V, 2, 4, 8 % V}, p1 = {6 % V, 2, 3};
  auto step = [&](std::vector<Decoder::Chunk> chunks) {
    const Tensor hc = dc.forward_cached(chunks, cc);
    const Tensor hg = dg.forward_cached(chunks, cg);
    std::vector<float> a(static_cast<size_t>(hc.numel())), b(a.size());
    cpu.backend->copy(Tensor(a.data(), DType::F32, hc.shape()), hc);
    gpu.backend->copy(Tensor(b.data(), DType::F32, hg.shape()), hg);
    ASSERT_EQ(hc.dim(1), H);
    double err = 0, scale = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      err = std::max(err, std::fabs(double(a[i]) - b[i]));
      scale = std::max(scale, std::fabs(double(a[i])));
    }
    EXPECT_LE(err, 1e-4 * std::max(1.0, scale));
  };
  step({{0, p0}, {1, p1}});  // two prefills in one pass
  for (int i = 0; i < 5; ++i) {
    const std::vector<int32_t> t0 = {static_cast<int32_t>((13 * i + 1) % V)};
    const std::vector<int32_t> t1 = {static_cast<int32_t>((7 * i + 3) % V)};
    step({{0, t0}, {1, t1}});  // decode steps of both slots
  }
  EXPECT_EQ(cg.length(0), 9 + 5);
}

// What `resp --device cuda` runs: bf16 weight matrices, so every projection rounds its input
// to bf16 (f32 accumulation). Against the f32 CPU run the log-probs move by the bf16 rounding of
// weights and activations (~0.4% relative per product), far below the gaps that decide tokens.
TEST_P(CudaModel, Bf16WeightsStayCloseToCpu) {
  const Loaded g16 = load(dir, true, DType::BF16);
  EXPECT_EQ(g16.weights.layers[0].wq.dtype(), DType::BF16);
  EXPECT_EQ(g16.weights.embed.dtype(), DType::F32);
  EXPECT_EQ(g16.weights.lm_head.dtype(), DType::BF16);  // a tied one as its own bf16 copy
  EXPECT_LT(g16.weights.bytes(), gpu.weights.bytes());
  SelfCommunicator self;
  Decoder dc(cpu.weights, *cpu.backend, self), dg(g16.weights, *g16.backend, self);
  double worst = 0, sum = 0;
  int n = 0;
  for (const auto& j : parse_jsonl(read_text(dir / "reference.jsonl"))) {
    const auto tokens = j["tokens"].get<std::vector<int32_t>>();
    const auto a = dc.sequence_logprobs(tokens), b = dg.sequence_logprobs(tokens);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
      ASSERT_FALSE(std::isnan(b[i])) << j["id"] << " position " << i;
      worst = std::max(worst, std::fabs(a[i] - b[i]));
      sum += std::fabs(a[i] - b[i]);
      ++n;
    }
  }
  ASSERT_GT(n, 10);
  EXPECT_LE(worst, 0.1);
  EXPECT_LE(sum / n, 0.02);
}

TEST_P(CudaModel, ImportanceMatchesCpu) {
  if (!fs::exists(dir / "calibration.jsonl")) GTEST_SKIP() << "no calibration samples";
  const std::vector<CalibrationSample> samples =
      test::read_calibration_samples(dir / "calibration.jsonl");
  const ParallelContext par = ParallelContext::single();
  for (Criterion crit : {Criterion::Taylor, Criterion::TaylorVectorize, Criterion::WandaSp}) {
    ImportanceOptions opt;
    opt.criterion = crit;
    const auto a = compute_importance(cpu.weights, *cpu.backend, par, samples, opt);
    const auto b = compute_importance(gpu.weights, *gpu.backend, par, samples, opt);
    EXPECT_NEAR(b.mean_loss, a.mean_loss, 1e-5 * std::max(1.0, std::fabs(a.mean_loss)));
    ASSERT_EQ(a.layers.size(), b.layers.size());
    for (size_t l = 0; l < a.layers.size(); ++l) {
      auto cmp = [&](const std::vector<double>& x, const std::vector<double>& y, const char* what) {
        ASSERT_EQ(x.size(), y.size());
        double scale = 0;
        for (double v : x) scale = std::max(scale, std::fabs(v));
        for (size_t i = 0; i < x.size(); ++i)
          EXPECT_NEAR(y[i], x[i], 1e-3 * scale + 1e-12)
              << criterion_name(crit) << " layer " << l << " " << what << " " << i;
      };
      cmp(a.layers[l].heads, b.layers[l].heads, "head");
      cmp(a.layers[l].channels, b.layers[l].channels, "channel");
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Golden, CudaModel, ::testing::ValuesIn(kModels), test_name);

}  // namespace
}  // namespace resp
