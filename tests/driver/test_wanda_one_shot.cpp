// One-shot Wanda-sp (schedule.mode one-shot): the kept-count rule, the layer-sequential prune
// against the float64 PyTorch reference (tools/reference_wanda_sp.py, committed output in
// tests/fixtures/wanda_sp/), layout invariance, and `resp prune` / `inspect` / `export` / resume
// on a one-shot run.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <thread>

#include "calibration_samples.h"
#include "ckpt/run_checkpoint.h"
#include "comm/parallel_layout.h"
#include "core/error.h"
#include "driver/prune_model.h"
#include "driver/wanda_one_shot.h"
#include "model/model_weights.h"
#include "model/safetensors.h"
#include "test_util.h"
#include "thread_comm.h"

using namespace resp;
using namespace resp::test;

namespace {

fs::path reference_file(const std::string& model) {
  return source_dir() / "tests/fixtures/wanda_sp" / (model + ".json");
}

std::vector<bool> protected_mask(const nlohmann::json& ref, int layers) {
  std::vector<bool> prot(static_cast<size_t>(layers), false);
  for (int l : ref["protected"].get<std::vector<int>>()) prot[static_cast<size_t>(l)] = true;
  return prot;
}

// The one-shot prune on tp x dp "ranks" (threads); every rank must end with the same plan.
PrunePlan one_shot_parallel(const fs::path& dir, const std::vector<bool>& prot,
                            const std::vector<CalibrationSample>& samples, const UniformCounts& u,
                            int tp, int dp) {
  const ModelConfig dense = load_model_config(dir);
  const CheckpointReader reader(dir);
  std::vector<PrunePlan> out(static_cast<size_t>(tp * dp));
  run_on_thread_ranks(tp, dp, [&](ParallelContext& par, int r) {
    auto backend = make_cpu_backend(1);
    out[static_cast<size_t>(r)] =
        wanda_sp_one_shot(reader, dense, prot, samples, u, par, *backend).plan;
  });
  for (int r = 1; r < tp * dp; ++r)
    for (size_t l = 0; l < out[0].size(); ++l) {
      EXPECT_EQ(out[static_cast<size_t>(r)][l].heads, out[0][l].heads) << "rank " << r;
      EXPECT_EQ(out[static_cast<size_t>(r)][l].channels, out[0][l].channels) << "rank " << r;
    }
  return out[0];
}

void check_against_reference(const std::string& model) {
  const nlohmann::json ref = nlohmann::json::parse(read_text(reference_file(model)));
  const fs::path dir = fixture_models() / model;
  const ModelConfig dense = load_model_config(dir);
  const CheckpointReader reader(dir);
  const auto prot = protected_mask(ref, dense.num_layers);
  const auto samples = read_calibration_samples(dir / "calibration.jsonl");
  auto backend = make_cpu_backend(1);
  const ParallelContext par = ParallelContext::single();
  ASSERT_EQ(ref["targets"].size(), 4u);
  for (const auto& t : ref["targets"]) {
    const double target = t["target"].get<double>();
    SCOPED_TRACE(model + " target " + std::to_string(target));
    const UniformCounts u = uniform_counts_for_sparsity(dense, prot, target, kOneShotTolerance);
    EXPECT_EQ(u.heads_removed, t["heads_removed"].get<int>());
    EXPECT_EQ(u.channels_removed, t["channels_removed"].get<int>());
    EXPECT_NEAR(u.ratio, t["ratio"].get<double>(), 1e-12);
    const OneShotResult r = wanda_sp_one_shot(reader, dense, prot, samples, u, par, *backend);
    ASSERT_EQ(r.plan.size(), t["layers"].size());
    for (size_t l = 0; l < r.plan.size(); ++l) {
      EXPECT_EQ(r.plan[l].heads, t["layers"][l]["heads"].get<std::vector<int>>()) << "layer " << l;
      EXPECT_EQ(r.plan[l].channels, t["layers"][l]["channels"].get<std::vector<int>>())
          << "layer " << l;
      // Scores are kept for pruned layers only, over the layer's dense units.
      EXPECT_EQ(r.scores.layers[l].heads.size(),
                prot[l] ? 0u : static_cast<size_t>(dense.num_heads));
    }
    const double s = measured_sparsity(dense, r.plan);
    EXPECT_NEAR(s, t["sparsity"].get<double>(), 1e-12);
    EXPECT_LE(std::fabs(s - target), 0.005);
    EXPECT_EQ(r.scores.samples, static_cast<int64_t>(samples.size()));
    EXPECT_EQ(r.scores.tokens, ref["tokens"].get<int64_t>());
  }
}

// Short GSM8K-style rows: the byte tokenizer's gold samples must fit the model's 512 positions.
fs::path write_config(const TempDir& d, const fs::path& model, const std::string& extra = "") {
  std::string rows;
  for (int i = 0; i < 7; ++i)
    rows += "{\"question\": \"Tom has " + std::to_string(i + 2) +
            " apples and buys 3 more. How many?\", \"answer\": \"" + std::to_string(i + 2) +
            " + 3 = " + std::to_string(i + 5) + "\\n#### " + std::to_string(i + 5) + "\"}\n";
  write_text(d / "train.jsonl", rows);
  write_text(d / "cfg.yaml", "model: " + model.string() + "\ndata:\n  task: gsm8k\n  prompts: " +
                                 (d / "train.jsonl").string() +
                                 "\n  num_prompts: 5\ncalibration:\n  source: gold\n"
                                 "importance:\n  criterion: wanda-sp\n  ranking: per-layer\n"
                                 "schedule:\n  mode: one-shot\n  targets: [0.2, 0.3, 0.4, 0.5]\n" +
                                 extra);
  return d / "cfg.yaml";
}

std::vector<RunState> all_states(const fs::path& run) {
  std::vector<RunState> v;
  for (const auto& p : list_checkpoints(run)) v.push_back(read_run_checkpoint(p));
  return v;
}

}  // namespace

TEST(WandaOneShot, UniformCountsRule) {
  const ModelConfig dense = load_model_config(fixture_models() / "qwen3-f32");
  const std::vector<bool> prot = {false, false, true};
  const double s0 = measured_sparsity(dense, dense_plan(dense));
  EXPECT_GT(s0, 0.0);  // norms count only in the denominator
  for (double target : {0.05, 0.2, 0.33, 0.5}) {
    const UniformCounts u = uniform_counts_for_sparsity(dense, prot, target, kOneShotTolerance);
    EXPECT_LE(std::fabs(u.sparsity - target), kOneShotTolerance) << target;
    EXPECT_LT(u.heads_removed, dense.num_heads);
    EXPECT_LT(u.channels_removed, dense.intermediate_size);
    // Heads follow the shared ratio; channels absorb the head rounding.
    EXPECT_EQ(u.heads_removed, static_cast<int>(std::floor(u.ratio * dense.num_heads + 0.5)));
    PrunePlan p = dense_plan(dense);
    for (size_t l = 0; l < 2; ++l) {
      p[l].heads.resize(static_cast<size_t>(dense.num_heads - u.heads_removed));
      p[l].channels.resize(static_cast<size_t>(dense.intermediate_size - u.channels_removed));
    }
    EXPECT_DOUBLE_EQ(measured_sparsity(dense, p), u.sparsity);
  }
  // Unreachable: beyond the last head and channel of the two unprotected layers, or no layer
  // left to prune. The error names the key.
  try {
    uniform_counts_for_sparsity(dense, prot, 0.6, kOneShotTolerance);
    FAIL() << "0.6 should be unreachable";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("schedule.targets"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("unreachable"), std::string::npos) << e.what();
  }
  EXPECT_THROW(uniform_counts_for_sparsity(dense, {true, true, true}, 0.2, kOneShotTolerance),
               ConfigError);
}

TEST(WandaOneShot, PruneLayerLowestBreaksTiesByLowerId) {
  LayerPlan cur{{0, 1, 2, 3}, {0, 2, 5}};
  LayerScores s;
  s.head_ids = cur.heads;
  s.channel_ids = cur.channels;
  s.heads = {2.0, 1.0, 1.0, 3.0};
  s.channels = {0.5, 0.1, 0.5};
  const LayerPlan p = prune_layer_lowest(cur, s, 1, 2);
  EXPECT_EQ(p.heads, (std::vector<int>{0, 2, 3}));  // heads 1 and 2 tie: 1 goes
  EXPECT_EQ(p.channels, (std::vector<int>{5}));     // 2 (0.1), then 0 before 5
  s.head_ids = {0, 1, 2};
  EXPECT_THROW(prune_layer_lowest(cur, s, 1, 1), ConfigError);
}

TEST(WandaOneShot, MatchesPythonReferenceQwen3) {
  check_against_reference("qwen3-f32");
}

TEST(WandaOneShot, MatchesPythonReferenceQwen2AllLayersPruned) {
  check_against_reference("qwen2-sharded-f32");
}

TEST(WandaOneShot, SamePlanUnderTensorAndDataParallel) {
  const std::string model = "qwen2-sharded-f32";
  const nlohmann::json ref = nlohmann::json::parse(read_text(reference_file(model)));
  const fs::path dir = fixture_models() / model;
  const ModelConfig dense = load_model_config(dir);
  const auto prot = protected_mask(ref, dense.num_layers);
  const auto samples = read_calibration_samples(dir / "calibration.jsonl");
  const auto& t = ref["targets"][2];
  const UniformCounts u =
      uniform_counts_for_sparsity(dense, prot, t["target"].get<double>(), kOneShotTolerance);
  for (auto [tp, dp] : {std::pair{2, 1}, std::pair{1, 2}, std::pair{2, 2}}) {
    const PrunePlan p = one_shot_parallel(dir, prot, samples, u, tp, dp);
    for (size_t l = 0; l < p.size(); ++l) {
      EXPECT_EQ(p[l].heads, t["layers"][l]["heads"].get<std::vector<int>>())
          << "tp " << tp << " dp " << dp << " layer " << l;
      EXPECT_EQ(p[l].channels, t["layers"][l]["channels"].get<std::vector<int>>())
          << "tp " << tp << " dp " << dp << " layer " << l;
    }
  }
}

TEST(WandaOneShot, PruneRunReachesEveryTargetResumesInspectsAndExports) {
  TempDir d;
  const fs::path model = make_prune_model(d);
  const auto cfg = write_config(d, model);
  const std::string run = (d / "run").string();
  const auto r = run_resp("prune --config " + cfg.string() + " --out " + run);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto states = all_states(d / "run");
  ASSERT_EQ(states.size(), 4u);
  const std::vector<double> targets = {0.2, 0.3, 0.4, 0.5};
  const ModelConfig dense = load_model_config(model);
  const std::vector<bool> prot = {false, false, true};
  const RunState& last = states.back();
  ASSERT_EQ(last.history.size(), 4u);
  const CheckpointReader reader(model);
  auto backend = make_cpu_backend(1);
  std::vector<CalibrationSample> samples;
  for (const auto& tr : last.traces) {
    EXPECT_EQ(tr.finish, "gold");
    CalibrationSample s;
    s.id = tr.id;
    s.tokens = tr.prompt;
    s.prompt_len = static_cast<int>(tr.prompt.size());
    s.tokens.insert(s.tokens.end(), tr.output.begin(), tr.output.end());
    samples.push_back(std::move(s));
  }
  ASSERT_EQ(samples.size(), 5u);
  for (size_t k = 0; k < 4; ++k) {
    const RunState& s = states[k];
    EXPECT_EQ(s.iteration, static_cast<int>(k));
    const double sp = measured_sparsity(dense, s.plan);
    EXPECT_LE(std::fabs(sp - targets[k]), 0.005) << k;
    EXPECT_DOUBLE_EQ(last.history[k].sparsity, sp);
    // Not nested: each target prunes the dense model, with the same counts in layers 0 and 1.
    EXPECT_EQ(s.plan[0].heads.size(), s.plan[1].heads.size());
    EXPECT_EQ(s.plan[0].channels.size(), s.plan[1].channels.size());
    EXPECT_EQ(s.plan[2].heads.size(), 6u);
    EXPECT_EQ(s.plan[2].channels.size(), 100u);
    EXPECT_EQ(s.scores.criterion, Criterion::WandaSp);
    EXPECT_EQ(s.scores.source, "gold");
    // The run's plan is the library's one-shot prune of the run's calibration samples.
    const UniformCounts u = uniform_counts_for_sparsity(dense, prot, targets[k], kOneShotTolerance);
    const PrunePlan want =
        wanda_sp_one_shot(reader, dense, prot, samples, u, ParallelContext::single(), *backend)
            .plan;
    for (size_t l = 0; l < want.size(); ++l) {
      EXPECT_EQ(s.plan[l].heads, want[l].heads) << k << " layer " << l;
      EXPECT_EQ(s.plan[l].channels, want[l].channels) << k << " layer " << l;
    }
  }

  // inspect: one row per target with its error, and the per-layer table per target.
  const auto ins = run_resp("inspect " + run + " --layers");
  ASSERT_EQ(ins.exit_code, 0) << ins.err;
  EXPECT_NE(ins.out.find("one-shot wanda-sp"), std::string::npos) << ins.out;
  EXPECT_NE(ins.out.find("4 of 4 targets done"), std::string::npos) << ins.out;
  EXPECT_NE(ins.out.find("t=0.3"), std::string::npos) << ins.out;

  // export --sparsity picks the target's own checkpoint.
  const auto ex = run_resp("export --run " + run + " --sparsity 0.3 --format masked --out " +
                           (d / "exp").string());
  ASSERT_EQ(ex.exit_code, 0) << ex.err;
  EXPECT_NE(ex.out.find("iteration 1:"), std::string::npos) << ex.out;

  // Interrupted after two targets and resumed: the same checkpoints; a finished run resumes to
  // a no-op.
  const std::string run2 = (d / "run2").string();
  const auto a =
      run_resp("prune --config " + cfg.string() + " --out " + run2 + " --max-iterations 2");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_EQ(list_checkpoints(run2).size(), 2u);
  const auto b = run_resp("prune --config " + cfg.string() + " --out " + run2 + " --resume");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto resumed = all_states(run2);
  ASSERT_EQ(resumed.size(), 4u);
  for (size_t k = 0; k < 4; ++k) {
    for (size_t l = 0; l < 3; ++l) {
      EXPECT_EQ(resumed[k].plan[l].heads, states[k].plan[l].heads) << k;
      EXPECT_EQ(resumed[k].plan[l].channels, states[k].plan[l].channels) << k;
    }
    EXPECT_EQ(resumed.back().history[k].sparsity, last.history[k].sparsity);
  }
  const auto c = run_resp("prune --config " + cfg.string() + " --out " + run2 + " --resume");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(list_checkpoints(run2).size(), 4u);

  // An unreachable target fails before any work, naming the key.
  const auto bad = run_resp("prune --config " + cfg.string() + " --out " + (d / "run3").string() +
                            " --set schedule.targets=[0.3,0.7]");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("schedule.targets"), std::string::npos) << bad.err;
  EXPECT_TRUE(list_checkpoints(d / "run3").empty());
}

TEST(ScheduleMode, RunWrittenBeforeTheModeKeysResumes) {
  // A progressive run whose checkpoint config predates schedule.mode / schedule.targets.
  TempDir d;
  const fs::path model = make_prune_model(d);
  write_text(d / "cfg.yaml", "model: " + model.string() +
                                 "\nimportance: {criterion: magnitude}\n"
                                 "schedule: {iterations: 3, final_ratio: 0.4}\n");
  const std::string run = (d / "run").string();
  const std::string cmd = "prune --config " + (d / "cfg.yaml").string() + " --out " + run;
  ASSERT_EQ(run_resp(cmd + " --max-iterations 1").exit_code, 0);
  const auto p = latest_checkpoint(run);
  ASSERT_TRUE(p.has_value());
  RunState s = read_run_checkpoint(*p);
  std::string old;
  std::istringstream in(s.config_yaml);
  for (std::string line; std::getline(in, line);)
    if (line.find("  mode:") != 0 && line.find("  targets:") != 0) old += line + "\n";
  ASSERT_NE(old, s.config_yaml);
  s.config_yaml = old;
  write_run_checkpoint(run, s);
  const auto r = run_resp(cmd + " --resume");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(list_checkpoints(run).size(), 3u);
}
