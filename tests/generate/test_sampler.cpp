// Sampler and GenerationConfig: the distribution each setting draws from against an independent
// reference (softmax, sort, cut, renormalise), exact inverse-CDF frequencies on a grid of u,
// a chi-square test of keyed random draws, support checks, and the model-directory defaults.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "generate/generation_config.h"
#include "generate/sampler.h"
#include "test_util.h"

using namespace resp;
using namespace resp::test;

namespace {

// Independent reference: HF order (temperature, top-k, top-p), computed with a full sort in
// long double. Returns token -> probability.
std::map<int32_t, double> reference(const std::vector<float>& logits, double T, int k, double p) {
  const int V = static_cast<int>(logits.size());
  std::vector<int32_t> ids(static_cast<size_t>(V));
  std::iota(ids.begin(), ids.end(), 0);
  std::stable_sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)];
  });
  if (k > 0 && k < V) ids.resize(static_cast<size_t>(k));
  const long double mx = logits[static_cast<size_t>(ids[0])];
  std::vector<long double> w;
  long double tot = 0;
  for (int32_t i : ids) {
    w.push_back(std::exp((logits[static_cast<size_t>(i)] - mx) / T));
    tot += w.back();
  }
  // HF top-p: drop a token when the mass of the tokens ranked above it already reaches p.
  size_t keep = ids.size();
  if (p < 1.0) {
    long double cum = 0;
    for (size_t j = 0; j < ids.size(); ++j) {
      if (cum / tot >= p) {
        keep = j;
        break;
      }
      cum += w[j];
    }
  }
  long double kt = 0;
  for (size_t j = 0; j < keep; ++j) kt += w[j];
  std::map<int32_t, double> out;
  for (size_t j = 0; j < keep; ++j) out[ids[j]] = static_cast<double>(w[j] / kt);
  return out;
}

std::vector<float> test_logits(int V, uint32_t salt, float scale) {
  std::vector<float> l(static_cast<size_t>(V));
  for (int i = 0; i < V; ++i) {
    const uint32_t h = (static_cast<uint32_t>(i) * 2654435761u) ^ (salt * 40503u);
    l[static_cast<size_t>(i)] = scale * static_cast<float>((h >> 8) % 10007) / 10007.0f;
  }
  return l;
}

void expect_distribution(const std::vector<float>& logits, double T, int k, double p) {
  SamplingParams sp{T, p, k};
  Sampler s(sp);
  const auto got = s.distribution(logits);
  const auto ref = reference(logits, T, k, p);
  ASSERT_EQ(got.size(), ref.size()) << "T=" << T << " k=" << k << " p=" << p;
  double sum = 0;
  for (const auto& [tok, prob] : got) {
    ASSERT_TRUE(ref.count(tok)) << "token " << tok << " outside the reference support";
    EXPECT_NEAR(prob, ref.at(tok), 1e-12) << "token " << tok;
    sum += prob;
  }
  EXPECT_NEAR(sum, 1.0, 1e-12);
}

}  // namespace

TEST(Sampler, DistributionMatchesReference) {
  const auto l10 = test_logits(10, 1, 4.0f);
  for (double T : {0.3, 0.6, 1.0, 2.5})
    for (int k : {0, 1 + 1, 5, 10, 20})
      for (double p : {0.2, 0.5, 0.9, 0.95, 1.0}) expect_distribution(l10, T, k, p);
  // A large flat vocabulary: nucleus sampling needs most tokens (the growing sorted prefix).
  const auto flat = test_logits(3000, 7, 0.5f);
  expect_distribution(flat, 1.0, 0, 0.95);
  expect_distribution(flat, 0.6, 20, 0.95);
  expect_distribution(flat, 0.6, 0, 0.5);
  expect_distribution(flat, 1.3, 0, 1.0);
}

TEST(Sampler, SupportOfTopKAndTopP) {
  const std::vector<float> l = {0.0f, 3.0f, 1.0f, 2.9f, -1.0f, 2.0f};
  {  // top-k 2: only the two largest logits (ids 1 and 3) can be drawn
    Sampler s({1.0, 1.0, 2});
    for (int i = 0; i < 2000; ++i) {
      const int32_t t = s.sample(l, Sampler::uniform(3, 4, static_cast<uint64_t>(i)));
      EXPECT_TRUE(t == 1 || t == 3) << t;
    }
  }
  {  // top-p tiny: only the argmax survives
    Sampler s({1.0, 1e-6, 0});
    for (int i = 0; i < 200; ++i) EXPECT_EQ(s.sample(l, (i + 0.5) / 200.0), 1);
  }
  {  // greedy: temperature 0 and top_k 1 are the argmax, lowest id on ties; NaN never wins
    const std::vector<float> tie = {1.0f, 5.0f, std::nanf(""), 5.0f};
    EXPECT_EQ(Sampler({0.0, 1.0, 0}).sample(tie, 0.99), 1);
    EXPECT_EQ(Sampler({1.0, 1.0, 1}).sample(tie, 0.99), 1);
    EXPECT_EQ(argmax(tie), 1);
    const auto d = Sampler({0.0, 1.0, 0}).distribution(tie);
    ASSERT_EQ(d.size(), 1u);
    EXPECT_EQ(d[0].first, 1);
    EXPECT_EQ(d[0].second, 1.0);
  }
  {  // -inf logits are never sampled
    const float ninf = -std::numeric_limits<float>::infinity();
    const std::vector<float> m = {ninf, 0.0f, ninf, 0.0f};
    Sampler s({1.0, 1.0, 0});
    for (int i = 0; i < 100; ++i) {
      const int32_t t = s.sample(m, (i + 0.5) / 100.0);
      EXPECT_TRUE(t == 1 || t == 3);
    }
  }
}

TEST(Sampler, InverseCdfFrequenciesOnAGrid) {
  // With u on a regular grid, each token's frequency equals its probability to within 1/N.
  const auto l = test_logits(12, 3, 3.0f);
  for (const SamplingParams sp :
       {SamplingParams{0.7, 1.0, 0}, SamplingParams{1.0, 0.9, 0}, SamplingParams{0.6, 0.95, 5}}) {
    Sampler s(sp);
    const auto dist = s.distribution(l);
    const int N = 100000;
    std::map<int32_t, int> count;
    for (int i = 0; i < N; ++i) ++count[s.sample(l, (i + 0.5) / N)];
    for (const auto& [tok, prob] : dist) EXPECT_NEAR(count[tok] / double(N), prob, 1.5 / N);
    int total = 0;
    for (const auto& [tok, c] : count) total += c;
    EXPECT_EQ(total, N);
    EXPECT_EQ(count.size(), dist.size());
  }
}

TEST(Sampler, ChiSquareOfKeyedDraws) {
  // Draws keyed by (seed, prompt, step) follow the distribution: chi-square below the 99.9%
  // critical value (deterministic draws, so the test cannot flake).
  const auto l = test_logits(10, 11, 2.0f);
  const SamplingParams sp{0.8, 0.97, 8};
  Sampler s(sp);
  const auto dist = s.distribution(l);
  ASSERT_GE(dist.size(), 4u);
  const int N = 40000;
  std::map<int32_t, int> count;
  for (int i = 0; i < N; ++i)
    ++count[s.sample(l, Sampler::uniform(1234, prompt_key("p"), static_cast<uint64_t>(i)))];
  double chi2 = 0;
  for (const auto& [tok, prob] : dist) {
    const double e = prob * N;
    chi2 += (count[tok] - e) * (count[tok] - e) / e;
  }
  // 99.9% critical values of chi-square for df = 3..9.
  const double crit[] = {16.27, 18.47, 20.52, 22.46, 24.32, 26.12, 27.88};
  EXPECT_LT(chi2, crit[dist.size() - 4]) << "df " << dist.size() - 1;
  EXPECT_EQ(count.size(), dist.size());  // every token of the support was drawn, no other
}

TEST(Sampler, UniformIsKeyedAndInRange) {
  double mn = 1, mx = 0, sum = 0;
  for (uint64_t i = 0; i < 10000; ++i) {
    const double u = Sampler::uniform(0, 42, i);
    mn = std::min(mn, u);
    mx = std::max(mx, u);
    sum += u;
  }
  EXPECT_GE(mn, 0.0);
  EXPECT_LT(mx, 1.0);
  EXPECT_NEAR(sum / 10000, 0.5, 0.01);
  EXPECT_EQ(Sampler::uniform(1, 2, 3), Sampler::uniform(1, 2, 3));
  EXPECT_NE(Sampler::uniform(1, 2, 3), Sampler::uniform(1, 2, 4));
  EXPECT_NE(Sampler::uniform(1, 2, 3), Sampler::uniform(2, 2, 3));
  EXPECT_NE(prompt_key("a"), prompt_key("b"));
  EXPECT_EQ(prompt_key("gsm8k-17"), prompt_key("gsm8k-17"));
}

TEST(Sampler, RejectsBadParameters) {
  EXPECT_THROW(Sampler({1.0, 0.0, 0}), UsageError);
  EXPECT_THROW(Sampler({1.0, 1.5, 0}), UsageError);
  EXPECT_THROW(Sampler({1.0, 1.0, -1}), UsageError);
  EXPECT_THROW(Sampler({std::nan(""), 1.0, 0}), UsageError);
}

TEST(GenerationConfig, DefaultsFromTheModelDirectory) {
  const auto dir = fixture_models() / "qwen3-tiny-demo";
  const ModelConfig mc = load_model_config(dir);
  const GenerationConfig g = GenerationConfig::for_model(dir, mc);
  EXPECT_DOUBLE_EQ(g.sampling.temperature, 0.6);
  EXPECT_DOUBLE_EQ(g.sampling.top_p, 0.95);
  EXPECT_EQ(g.sampling.top_k, 20);
  EXPECT_EQ(g.eos_ids, std::vector<int32_t>{257});

  // eos ids: config.json's first, then generation_config's extra ones, deduplicated.
  ModelConfig c2 = mc;
  c2.eos_token_ids = {257, 258};
  auto g2 = GenerationConfig::from_json(
      nlohmann::json{{"eos_token_id", {258, 256}}, {"do_sample", false}, {"temperature", 0.7}}, c2,
      "generation_config.json");
  EXPECT_EQ(g2.eos_ids, (std::vector<int32_t>{257, 258, 256}));
  EXPECT_TRUE(g2.sampling.greedy());  // do_sample false wins over a temperature

  // No generation_config.json: pure sampling at temperature 1 with config.json's eos.
  auto g3 = GenerationConfig::from_json(nlohmann::json(), c2, "none");
  EXPECT_DOUBLE_EQ(g3.sampling.temperature, 1.0);
  EXPECT_DOUBLE_EQ(g3.sampling.top_p, 1.0);
  EXPECT_EQ(g3.sampling.top_k, 0);
  EXPECT_EQ(g3.eos_ids, (std::vector<int32_t>{257, 258}));

  // Overrides: unset fields keep the defaults; temperature 0 is greedy.
  SamplingOverrides o;
  o.temperature = 0.0;
  SamplingParams p = g.sampling;
  o.apply(p);
  EXPECT_TRUE(p.greedy());
  EXPECT_EQ(p.top_k, 20);

  EXPECT_THROW(GenerationConfig::from_json(nlohmann::json{{"top_p", 0.0}}, c2, "g.json"),
               FormatError);
  EXPECT_THROW(GenerationConfig::from_json(nlohmann::json{{"eos_token_id", "x"}}, c2, "g.json"),
               FormatError);
  GenerationConfig bad;
  bad.max_new_tokens = 0;
  EXPECT_THROW(bad.validate(), UsageError);
}
