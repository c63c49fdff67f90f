// Gradients and importance scores against float64 PyTorch autograd (tools/make_grad_fixtures.py)
// on the tiny golden models, plus invariances (sample order, micro-batching, TP, DP).
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "calibration_samples.h"
#include "ckpt/scores_file.h"
#include "comm/parallel_layout.h"
#include "importance/scorer.h"
#include "model/gradient_pass.h"
#include "model/safetensors.h"
#include "model/shard_plan.h"
#include "test_util.h"
#include "thread_comm.h"

using namespace resp;
using namespace resp::test;

namespace {

struct Fixture {
  fs::path dir;
  ModelConfig config;
  std::unique_ptr<Backend> backend;
  ModelWeights weights;
  std::vector<CalibrationSample> samples;
  nlohmann::json ref;
};

using test::read_calibration_samples;

Fixture load(const std::string& name, int threads = 0) {
  Fixture f;
  f.dir = fixture_models() / name;
  f.config = load_model_config(f.dir);
  f.backend = make_cpu_backend(threads);
  f.weights = load_weights(f.dir, f.config, make_shard_plan(f.config, 1, 0), *f.backend);
  f.samples = read_calibration_samples(f.dir / "calibration.jsonl");
  f.ref = nlohmann::json::parse(read_text(f.dir / "grad_reference.json"));
  return f;
}

std::vector<float> host(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.data(), t.nbytes());
  return v;
}

// max |a - b| / max |b|: gradients of f32 vs f64 agree to ~1e-6 of the tensor's scale, while
// individual tiny entries can differ more in relative terms.
double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
  double err = 0, scale = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    err = std::max(err, std::fabs(double(a[i]) - b[i]));
    scale = std::max(scale, std::fabs(double(b[i])));
  }
  return scale > 0 ? err / scale : err;
}

void check_grads(const std::string& name) {
  Fixture f = load(name);
  ModelGrads g = make_grads(f.weights, *f.backend, GradSelection::All);
  SelfCommunicator self;
  GradientPass pass(f.weights, *f.backend, self);
  const auto losses = f.ref["losses_decode_only"].get<std::vector<double>>();
  for (size_t i = 0; i < f.samples.size(); ++i) {
    const auto r = pass.forward_backward(f.samples[i].tokens,
                                         loss_weights(f.samples[i], LossMode::DecodeOnly), g);
    EXPECT_NEAR(r.loss, losses[i], 1e-5 * std::max(1.0, std::fabs(losses[i])))
        << name << " sample " << i;
  }
  SafetensorsFile ref(f.dir / "grad_reference.safetensors");
  auto want = [&](const std::string& n) {
    const TensorInfo& t = ref.tensors().at(n);
    std::vector<float> v(static_cast<size_t>(t.numel()));
    convert_to_f32(t.dtype, ref.data() + t.offset, v.data(), v.size());
    return v;
  };
  auto expect = [&](const Tensor& got, const std::string& n) {
    ASSERT_FALSE(got.empty()) << n;
    EXPECT_LE(max_rel(host(got), want(n)), 1e-4) << name << " " << n;
  };
  expect(g.embed, "model.embed_tokens.weight");
  expect(g.final_norm, "model.norm.weight");
  if (!f.config.tie_word_embeddings) expect(g.lm_head, "lm_head.weight");
  for (int l = 0; l < f.config.num_layers; ++l) {
    const LayerGrads& G = g.layers[static_cast<size_t>(l)];
    const std::string p = cat("model.layers.", l, ".");
    expect(G.attn_norm, p + "input_layernorm.weight");
    expect(G.wq, p + "self_attn.q_proj.weight");
    expect(G.wk, p + "self_attn.k_proj.weight");
    expect(G.wv, p + "self_attn.v_proj.weight");
    expect(G.wo, p + "self_attn.o_proj.weight");
    expect(G.mlp_norm, p + "post_attention_layernorm.weight");
    expect(G.wg, p + "mlp.gate_proj.weight");
    expect(G.wu, p + "mlp.up_proj.weight");
    expect(G.wd, p + "mlp.down_proj.weight");
    if (f.config.qk_norm) {
      expect(G.q_norm, p + "self_attn.q_norm.weight");
      expect(G.k_norm, p + "self_attn.k_norm.weight");
    }
    if (f.config.qkv_bias) {
      expect(G.bq, p + "self_attn.q_proj.bias");
      expect(G.bk, p + "self_attn.k_proj.bias");
      expect(G.bv, p + "self_attn.v_proj.bias");
    }
  }
}

// Scores vs reference: `tol` relative to each entry, or to the layer's largest score when
// `layer_scale` (signed sums that cancel, as in taylor-vectorize).
void expect_scores(const ImportanceScores& s, const nlohmann::json& ref, double tol,
                   bool layer_scale, const std::string& what) {
  const auto heads = ref["heads"].get<std::vector<std::vector<double>>>();
  const auto chans = ref["channels"].get<std::vector<std::vector<double>>>();
  ASSERT_EQ(s.layers.size(), heads.size());
  for (size_t l = 0; l < heads.size(); ++l) {
    double scale = 0;
    for (double v : heads[l]) scale = std::max(scale, std::fabs(v));
    for (double v : chans[l]) scale = std::max(scale, std::fabs(v));
    ASSERT_EQ(s.layers[l].heads.size(), heads[l].size());
    ASSERT_EQ(s.layers[l].channels.size(), chans[l].size());
    auto check = [&](double got, double want, const char* kind, size_t i) {
      const double denom = layer_scale ? scale : std::max(std::fabs(want), 1e-300);
      EXPECT_LE(std::fabs(got - want) / denom, tol)
          << what << " layer " << l << " " << kind << " " << i << ": " << got << " vs " << want;
    };
    for (size_t i = 0; i < heads[l].size(); ++i)
      check(s.layers[l].heads[i], heads[l][i], "head", i);
    for (size_t i = 0; i < chans[l].size(); ++i)
      check(s.layers[l].channels[i], chans[l][i], "channel", i);
  }
}

ImportanceScores score(Fixture& f, Criterion c, LossMode loss,
                       std::span<const CalibrationSample> samples) {
  ImportanceOptions o;
  o.criterion = c;
  o.loss = loss;
  const ParallelContext par = ParallelContext::single();
  return compute_importance(f.weights, *f.backend, par, samples, o);
}

void check_all_criteria(const std::string& name) {
  Fixture f = load(name);
  const auto& R = f.ref["scores"];
  expect_scores(score(f, Criterion::Taylor, LossMode::DecodeOnly, f.samples), R["taylor"], 1e-4,
                false, name + " taylor");
  expect_scores(score(f, Criterion::Taylor, LossMode::Full, f.samples), R["taylor_full"], 1e-4,
                false, name + " taylor full");
  expect_scores(score(f, Criterion::TaylorVectorize, LossMode::DecodeOnly, f.samples),
                R["taylor-vectorize"], 1e-4, true, name + " vectorize");
  expect_scores(score(f, Criterion::WandaSp, LossMode::DecodeOnly, f.samples), R["wanda-sp"], 1e-5,
                false, name + " wanda-sp");
  expect_scores(score(f, Criterion::Magnitude, LossMode::DecodeOnly, {}), R["magnitude"], 1e-5,
                false, name + " magnitude");
  const auto s = score(f, Criterion::Taylor, LossMode::DecodeOnly, f.samples);
  EXPECT_EQ(s.samples, 3);
  EXPECT_EQ(s.tokens, f.ref["tokens_decode_only"].get<int64_t>());
  EXPECT_NEAR(s.mean_loss, f.ref["mean_loss_decode_only"].get<double>(), 1e-5);
}

double max_rel_diff(const ImportanceScores& a, const ImportanceScores& b) {
  double err = 0;
  for (size_t l = 0; l < a.layers.size(); ++l) {
    for (size_t i = 0; i < a.layers[l].heads.size(); ++i)
      err = std::max(err, std::fabs(a.layers[l].heads[i] - b.layers[l].heads[i]) /
                              std::max(std::fabs(b.layers[l].heads[i]), 1e-300));
    for (size_t i = 0; i < a.layers[l].channels.size(); ++i)
      err = std::max(err, std::fabs(a.layers[l].channels[i] - b.layers[l].channels[i]) /
                              std::max(std::fabs(b.layers[l].channels[i]), 1e-300));
  }
  return err;
}

// Differences relative to each layer's largest score: the right measure for signed sums that
// cancel (taylor-vectorize), where a near-zero entry has no meaningful relative error.
double max_layer_rel_diff(const ImportanceScores& a, const ImportanceScores& b) {
  double err = 0;
  for (size_t l = 0; l < a.layers.size(); ++l) {
    double scale = 1e-300, d = 0;
    for (size_t i = 0; i < b.layers[l].heads.size(); ++i) {
      scale = std::max(scale, std::fabs(b.layers[l].heads[i]));
      d = std::max(d, std::fabs(a.layers[l].heads[i] - b.layers[l].heads[i]));
    }
    for (size_t i = 0; i < b.layers[l].channels.size(); ++i) {
      scale = std::max(scale, std::fabs(b.layers[l].channels[i]));
      d = std::max(d, std::fabs(a.layers[l].channels[i] - b.layers[l].channels[i]));
    }
    err = std::max(err, d / scale);
  }
  return err;
}

}  // namespace

TEST(Gradients, Qwen3MatchesAutograd) {
  check_grads("qwen3-f32");
}
TEST(Gradients, Qwen2BiasMatchesAutograd) {
  check_grads("qwen2-sharded-f32");
}
TEST(Gradients, LlamaMqaMatchesAutograd) {
  check_grads("llama-mqa-f32");
}
TEST(Gradients, LlamaTiedBf16MatchesAutograd) {
  check_grads("llama31-bf16");
}

TEST(Importance, Qwen3AllCriteria) {
  check_all_criteria("qwen3-f32");
}
TEST(Importance, Qwen2AllCriteria) {
  check_all_criteria("qwen2-sharded-f32");
}
TEST(Importance, LlamaMqaAllCriteria) {
  check_all_criteria("llama-mqa-f32");
}
TEST(Importance, LlamaTiedAllCriteria) {
  check_all_criteria("llama31-bf16");
}

TEST(Importance, DecodeOnlyMaskExcludesPrompt) {
  CalibrationSample s;
  s.tokens = {1, 2, 3, 4, 5, 6};
  s.prompt_len = 4;
  const auto w = loss_weights(s, LossMode::DecodeOnly);
  ASSERT_EQ(w.size(), 5u);
  // Positions 3 and 4 predict the response tokens 5 and 6; nothing else counts.
  EXPECT_EQ(w, (std::vector<float>{0, 0, 0, 0.5f, 0.5f}));
  const auto full = loss_weights(s, LossMode::Full);
  for (float v : full) EXPECT_FLOAT_EQ(v, 0.2f);
  s.prompt_len = 6;  // no response: nothing to predict
  EXPECT_TRUE(loss_weights(s, LossMode::DecodeOnly).empty());

  // Changing a prompt token's *target* cannot change a decode-only gradient; we check the
  // stronger end-to-end statement: scores differ between decode-only and full losses.
  Fixture f = load("qwen3-f32");
  const auto a = score(f, Criterion::Taylor, LossMode::DecodeOnly, f.samples);
  const auto b = score(f, Criterion::Taylor, LossMode::Full, f.samples);
  EXPECT_GT(max_rel_diff(a, b), 0.05);
}

TEST(Importance, SampleOrderAndMicroBatchInvariance) {
  Fixture f = load("qwen2-sharded-f32");
  const auto base = score(f, Criterion::Taylor, LossMode::DecodeOnly, f.samples);
  std::vector<CalibrationSample> rev(f.samples.rbegin(), f.samples.rend());
  EXPECT_LE(max_rel_diff(score(f, Criterion::Taylor, LossMode::DecodeOnly, rev), base), 1e-6);
  // Samples one per call, gradients summed across calls through the same reduction as DP.
  const auto vec = score(f, Criterion::TaylorVectorize, LossMode::DecodeOnly, f.samples);
  EXPECT_LE(
      max_layer_rel_diff(score(f, Criterion::TaylorVectorize, LossMode::DecodeOnly, rev), vec),
      1e-5);
}

namespace {
// Runs compute_importance on tp x dp "ranks" (threads) and returns rank 0's scores.
ImportanceScores score_parallel(const std::string& name, int tp, int dp, Criterion c) {
  const fs::path dir = fixture_models() / name;
  const ModelConfig config = load_model_config(dir);
  const auto samples = read_calibration_samples(dir / "calibration.jsonl");
  std::vector<ImportanceScores> out(static_cast<size_t>(tp * dp));
  run_on_thread_ranks(tp, dp, [&](ParallelContext& par, int r) {
    auto backend = make_cpu_backend(1);
    const ModelWeights w =
        load_weights(dir, config, make_shard_plan(config, tp, par.layout.tp_rank), *backend);
    ImportanceOptions o;
    o.criterion = c;
    out[static_cast<size_t>(r)] = compute_importance(w, *backend, par, samples, o);
  });
  for (int r = 1; r < tp * dp; ++r)
    EXPECT_EQ(max_rel_diff(out[static_cast<size_t>(r)], out[0]), 0.0) << r;
  return out[0];
}
}  // namespace

TEST(ImportanceParallel, TensorAndDataParallelEqualSingleRank) {
  for (Criterion c :
       {Criterion::Taylor, Criterion::TaylorVectorize, Criterion::WandaSp, Criterion::Magnitude}) {
    // Entry-wise relative for sums of non-negative terms; layer-relative for signed sums.
    auto diff = c == Criterion::TaylorVectorize ? max_layer_rel_diff : max_rel_diff;
    const auto single = score_parallel("llama-mqa-f32", 1, 1, c);
    EXPECT_LE(diff(score_parallel("llama-mqa-f32", 2, 1, c), single), 1e-5) << criterion_name(c);
    EXPECT_LE(diff(score_parallel("llama-mqa-f32", 1, 2, c), single), 1e-5) << criterion_name(c);
    EXPECT_LE(diff(score_parallel("llama-mqa-f32", 2, 2, c), single), 1e-5) << criterion_name(c);
  }
}

TEST(ScoresFile, RoundTripAndValidation) {
  Fixture f = load("llama-mqa-f32");
  const auto s = score(f, Criterion::WandaSp, LossMode::DecodeOnly, f.samples);
  TempDir d;
  write_scores_h5(d / "s.h5", s, "m");
  EXPECT_FALSE(fs::exists(d / "s.h5.tmp"));
  const auto back = read_scores_h5(d / "s.h5");
  EXPECT_EQ(back.criterion, Criterion::WandaSp);
  EXPECT_EQ(back.samples, s.samples);
  EXPECT_EQ(max_rel_diff(back, s), 0.0);
  EXPECT_EQ(back.layers[1].head_ids, s.layers[1].head_ids);
  write_text(d / "bad.h5", "not hdf5");
  EXPECT_THROW(read_scores_h5(d / "bad.h5"), FormatError);
  EXPECT_THROW(read_scores_h5(d / "missing.h5"), IoError);
  const std::string bytes = read_text(d / "s.h5");
  write_text(d / "trunc.h5", bytes.substr(0, bytes.size() / 2));
  EXPECT_THROW(read_scores_h5(d / "trunc.h5"), Error);
}
