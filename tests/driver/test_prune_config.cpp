#include <gtest/gtest.h>

#include "core/error.h"
#include "driver/prune_config.h"

using namespace resp;

namespace {
std::string err(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    parse_prune_config(yaml, sets, "cfg.yaml", "/base");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

// The defaults live in PruneConfig's initialisers only (the schema is derived from them); this
// is the schema text that held them before, given as a user file: nothing may differ.
TEST(PruneConfig, DefaultsAreTheInitialisers) {
  const std::string before = R"(model: m
data:
  task: gsm8k
  prompts: p.jsonl
  num_prompts: 500
  shuffle_seed: 0
generation:
  chat: true
  thinking: auto
  chat_format: auto
  system_prompt: ""
  temperature: 0.6
  top_p: auto
  top_k: auto
  max_new_tokens: 2048
  seed: 0
  batch_size: 8
calibration:
  source: self
  loss: decode-only
importance:
  criterion: taylor
  ranking: global
  protected_layers: auto
schedule:
  mode: progressive
  iterations: 112
  final_ratio: 0.7
  targets: [0.2, 0.3, 0.4, 0.5]
regeneration:
  milestones: [0.1, 0.2, 0.3, 0.4, 0.5]
  fraction: 1.0
report:
  sparsities: [0.2, 0.3, 0.4, 0.5]
parallel:
  tp: 1
  threads: 0
)";
  const auto minimal = parse_prune_config("model: m\ndata: {prompts: p.jsonl}\n", {}, "cfg", "/b");
  EXPECT_EQ(to_yaml(minimal), to_yaml(parse_prune_config(before, {}, "cfg", "/b")));
  // And the printed configuration is the struct's, key for key.
  PruneConfig c;
  c.model = "/b/m";
  c.prompts = "/b/p.jsonl";
  EXPECT_EQ(to_yaml(minimal), to_yaml(c));
}

TEST(PruneConfig, DefaultsAreResps) {
  const auto c = parse_prune_config("model: m\ndata: {prompts: p.jsonl}\n", {}, "cfg", "/base");
  EXPECT_EQ(c.model, "/base/m");
  EXPECT_EQ(c.prompts, "/base/p.jsonl");
  EXPECT_EQ(c.num_prompts, 500);
  EXPECT_EQ(c.shuffle_seed, 0u);
  EXPECT_DOUBLE_EQ(c.temperature, 0.6);
  EXPECT_FALSE(c.top_p.has_value());  // from generation_config.json
  EXPECT_EQ(c.max_new_tokens, 2048);
  EXPECT_EQ(c.iterations, 112);
  EXPECT_DOUBLE_EQ(c.final_ratio, 0.7);
  EXPECT_EQ(c.milestones, (std::vector<double>{0.1, 0.2, 0.3, 0.4, 0.5}));
  EXPECT_DOUBLE_EQ(c.regen_fraction, 1.0);
  EXPECT_EQ(c.criterion, "taylor");
  EXPECT_EQ(c.source, "self");
  EXPECT_EQ(c.loss, "decode-only");
  EXPECT_FALSE(c.protected_layers.has_value());
  // linspace(0, 0.7, 112)
  EXPECT_DOUBLE_EQ(c.ratio_at(0), 0.0);
  EXPECT_DOUBLE_EQ(c.ratio_at(111), 0.7);
  EXPECT_NEAR(c.ratio_at(1), 0.7 / 111, 1e-15);
}

TEST(PruneConfig, OverridesAndRoundTrip) {
  const auto c = parse_prune_config("model: /m\ndata: {prompts: /p}\n",
                                    {"schedule.iterations=7", "importance.protected_layers=[0, 3]",
                                     "generation.top_p=0.9", "regeneration.milestones=[]"},
                                    "cfg", "/");
  EXPECT_EQ(c.iterations, 7);
  EXPECT_EQ(*c.protected_layers, (std::vector<int>{0, 3}));
  EXPECT_DOUBLE_EQ(*c.top_p, 0.9);
  EXPECT_TRUE(c.milestones.empty());
  const auto back = parse_prune_config(to_yaml(c), {}, "again", "/");
  EXPECT_EQ(to_yaml(back), to_yaml(c));
}

TEST(PruneConfig, ClearErrors) {
  const std::string ok = "model: m\ndata: {prompts: p}\n";
  EXPECT_NE(err(ok + "schedul: {iterations: 3}\n").find("unknown key \"schedul\""),
            std::string::npos);
  EXPECT_NE(err(ok + "schedule: {iteratons: 3}\n").find("schedule.iteratons"), std::string::npos);
  EXPECT_NE(err(ok, {"schedule.final_ratio=1.5"}).find("schedule.final_ratio"), std::string::npos);
  EXPECT_NE(err(ok, {"schedule.iterations=abc"}).find("schedule.iterations"), std::string::npos);
  EXPECT_NE(err(ok, {"parallel.tp=0"}).find("parallel.tp"), std::string::npos);
  EXPECT_NE(err(ok, {"regeneration.milestones=[0.3, 0.2]"}).find("milestones"), std::string::npos);
  EXPECT_NE(err(ok, {"calibration.source=web"}).find("calibration.source"), std::string::npos);
  EXPECT_NE(err(ok, {"nokey"}).find("section.key=value"), std::string::npos);
  EXPECT_NE(err("data: {prompts: p}\n").find("model"), std::string::npos);
  EXPECT_NE(err("model: [unclosed\n").find("malformed YAML"), std::string::npos);
  EXPECT_NE(err(ok + "schedule: 3\n").find("mapping"), std::string::npos);
  EXPECT_THROW(load_prune_config("/nonexistent/cfg.yaml", {}), IoError);
  // Repeated keys and extra documents are refused, not resolved silently.
  EXPECT_NE(err(ok + "model: n\n").find("duplicate key \"model\""), std::string::npos);
  EXPECT_NE(err(ok + "schedule:\n  iterations: 3\n  iterations: 4\n")
                .find("duplicate key \"schedule.iterations\" (line 5)"),
            std::string::npos)
      << err(ok + "schedule:\n  iterations: 3\n  iterations: 4\n");
  EXPECT_NE(err(ok + "---\nmodel: other\n").find("2 YAML documents"), std::string::npos);
  EXPECT_EQ(err("---\n" + ok), "");  // one document with an explicit start marker is fine
  // Negative seeds are refused, not wrapped to 2^64-1.
  EXPECT_NE(err(ok, {"generation.seed=-1"}).find("\"generation.seed\" must be a non-negative"),
            std::string::npos)
      << err(ok, {"generation.seed=-1"});
  EXPECT_NE(err(ok, {"data.shuffle_seed=-3"}).find("data.shuffle_seed"), std::string::npos);
  EXPECT_EQ(err(ok, {"generation.seed=18446744073709551615"}), "");
}

TEST(PruneConfig, OneShotModeKeysAndErrors) {
  const std::string ok =
      "model: m\ndata: {prompts: p}\ncalibration: {source: gold}\n"
      "importance: {criterion: wanda-sp, ranking: per-layer}\n";
  const auto def = parse_prune_config(ok, {}, "cfg", "/base");
  EXPECT_EQ(def.mode, "progressive");
  EXPECT_FALSE(def.one_shot());
  EXPECT_EQ(def.targets, (std::vector<double>{0.2, 0.3, 0.4, 0.5}));
  const auto c = parse_prune_config(ok, {"schedule.mode=one-shot", "schedule.targets=[0.25, 0.45]"},
                                    "cfg", "/base");
  EXPECT_TRUE(c.one_shot());
  EXPECT_EQ(c.targets, (std::vector<double>{0.25, 0.45}));
  const auto back = parse_prune_config(to_yaml(c), {}, "again", "/");
  EXPECT_EQ(to_yaml(back), to_yaml(c));
  EXPECT_TRUE(back.one_shot());
  const std::vector<std::string> one = {"schedule.mode=one-shot"};
  auto with = [&](std::vector<std::string> v, const std::string& s) {
    v.push_back(s);
    return v;
  };
  EXPECT_NE(err(ok, {"schedule.mode=oneshot"}).find("schedule.mode"), std::string::npos);
  EXPECT_NE(err(ok, {"schedule.targets=[0.4, 0.3]"}).find("schedule.targets"), std::string::npos);
  EXPECT_NE(err(ok, {"schedule.targets=[]"}).find("schedule.targets"), std::string::npos);
  EXPECT_NE(err(ok, {"schedule.targets=[1.0]"}).find("schedule.targets"), std::string::npos);
  EXPECT_NE(err(ok, with(one, "importance.criterion=taylor")).find("importance.criterion"),
            std::string::npos);
  EXPECT_NE(err(ok, with(one, "importance.ranking=global")).find("importance.ranking"),
            std::string::npos);
  EXPECT_NE(err(ok, with(one, "calibration.source=self")).find("calibration.source"),
            std::string::npos);
  EXPECT_EQ(err(ok, with(with(one, "calibration.source=text"), "calibration.loss=full")), "");
}
