// AdamW against torch.optim.AdamW (tests/fixtures/train/adamw_reference.json, written by
// tools/make_adamw_fixture.py), the LR schedule and the gradient clip helpers.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "train/adamw.h"
#include "train/train_config.h"

namespace resp {
namespace {

TEST(AdamW, MatchesTorchAdamWStepByStep) {
  std::ifstream in(test::source_dir() / "tests/fixtures/train/adamw_reference.json");
  ASSERT_TRUE(in.good());
  const nlohmann::json ref = nlohmann::json::parse(in);
  std::map<std::string, std::vector<float>> value, grad;
  std::vector<Parameter> params;
  for (const char* k : {"w", "b"}) {
    value[k] = ref["init"][k].get<std::vector<float>>();
    grad[k].assign(value[k].size(), 0.0f);
  }
  for (const char* k : {"w", "b"}) {
    const auto shape = ref["shapes"][k].get<std::vector<int64_t>>();
    Shape s = shape.size() == 2 ? Shape{shape[0], shape[1]} : Shape{shape[0]};
    params.push_back({k, Tensor(value[k].data(), DType::F32, s),
                      Tensor(grad[k].data(), DType::F32, s), ref["decay"][k].get<bool>()});
  }
  AdamW opt(params);
  AdamWHyper h;
  h.beta1 = ref["hyper"]["beta1"];
  h.beta2 = ref["hyper"]["beta2"];
  h.eps = ref["hyper"]["eps"];
  h.weight_decay = ref["hyper"]["weight_decay"];
  int64_t step = 0;
  for (const auto& st : ref["steps"]) {
    for (const char* k : {"w", "b"}) grad[k] = st["grads"][k].get<std::vector<float>>();
    // grad vectors were reassigned: rebind the views.
    for (auto& p : params) p.grad = Tensor(grad[p.name].data(), DType::F32, p.value.shape());
    h.lr = st["lr"];
    opt.step(params, h, ++step);
    for (const char* k : {"w", "b"}) {
      const auto want = st["after"][k].get<std::vector<double>>();
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_NEAR(value[k][i], want[i], 2e-6 * (1 + std::abs(want[i])))
            << k << "[" << i << "] after step " << step;
    }
  }
  EXPECT_EQ(step, 6);
}

TEST(AdamW, GradNormAndScaleAreExact) {
  std::vector<float> v(1000, 0.0f), g(1000);
  for (size_t i = 0; i < g.size(); ++i) g[i] = static_cast<float>(i % 7) - 3.0f;
  double want = 0;
  for (float x : g) want += static_cast<double>(x) * x;
  std::vector<Parameter> p{
      {"x", Tensor(v.data(), DType::F32, {1000}), Tensor(g.data(), DType::F32, {1000}), false}};
  EXPECT_DOUBLE_EQ(global_grad_norm(p), std::sqrt(want));
  scale_grads(p, 0.5f);
  EXPECT_NEAR(global_grad_norm(p), 0.5 * std::sqrt(want), 1e-9);
}

TEST(TrainConfig, WarmupThenCosineToMinLr) {
  TrainConfig c;
  c.lr = 1e-3;
  c.min_lr = 1e-4;
  c.steps = 100;
  c.warmup = 10;
  EXPECT_NEAR(c.lr_at(0), 1e-4, 1e-12);
  EXPECT_NEAR(c.lr_at(9), 1e-3, 1e-12);
  EXPECT_NEAR(c.lr_at(10), 1e-3, 1e-12);
  EXPECT_NEAR(c.lr_at(55), 0.5 * (1e-3 + 1e-4), 1e-9);
  EXPECT_NEAR(c.lr_at(99), 1e-4, 1e-6);
  for (int s = 11; s < 100; ++s) EXPECT_LE(c.lr_at(s), c.lr_at(s - 1));
}

TEST(TrainConfig, UnknownKeysAndImpossibleValuesNameTheKey) {
  const std::string base = "model: {config: m/config.json}\ndata: {path: d.jsonl}\n";
  EXPECT_NO_THROW(parse_train_config(base, {}, "t.yaml", "/x"));
  auto msg = [&](const std::string& text, std::vector<std::string> sets = {}) {
    try {
      parse_train_config(text, sets, "t.yaml", "/x");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg(base + "optimizer: {lr2: 1}\n").find("optimizer.lr2"), std::string::npos);
  EXPECT_NE(msg(base, {"optimizer.lr=-1"}).find("optimizer.lr"), std::string::npos);
  EXPECT_NE(msg(base, {"data.format=csv"}).find("data.format"), std::string::npos);
  EXPECT_NE(msg(base, {"schedule.warmup=5000"}).find("schedule.warmup"), std::string::npos);
  EXPECT_NE(msg("data: {path: d.jsonl}\n").find("model"), std::string::npos);
  EXPECT_NE(msg(base, {"model.init_from=x"}).find("exactly one"), std::string::npos);
  EXPECT_NE(msg(base + "model: {init_from: x}\n").find("duplicate key \"model\""),
            std::string::npos);
  EXPECT_NE(msg(base, {"data.format=text"}).find("loss.tokens"), std::string::npos);
  // An empty value is an empty string, so `--set model.config=` clears the key.
  const TrainConfig ft =
      parse_train_config(base, {"model.config=", "model.init_from=ckpt"}, "t.yaml", "/x");
  EXPECT_EQ(ft.model_config, "");
  EXPECT_EQ(ft.init_from, "/x/ckpt");
  EXPECT_EQ(ft.tokenizer, "/x/ckpt");
  // The tokenizer defaults to the config's directory; paths are absolute.
  const TrainConfig c = parse_train_config(base, {}, "t.yaml", "/x");
  EXPECT_EQ(c.tokenizer, "/x/m");
  EXPECT_EQ(c.data, "/x/d.jsonl");
}

TEST(TrainConfig, DefaultsAreTheInitialisers) {
  // The defaults as the YAML schema spelled them before it was derived from TrainConfig{}:
  // given as a user file, they must change nothing.
  const std::string before = R"(model:
  config: m/config.json
  init_from: ""
  tokenizer: auto
  init_std: 0.02
data:
  path: d.jsonl
  format: gsm8k-thinking
  max_length: 512
  chat_format: auto
loss:
  tokens: response
optimizer:
  lr: 0.001
  min_lr: 0.0001
  weight_decay: 0.1
  beta1: 0.9
  beta2: 0.95
  eps: 1.0e-8
  clip: 1.0
schedule:
  steps: 1000
  warmup: 50
  batch_size: 16
  grad_accum: 1
checkpoint:
  every: 100
  save_dtype: f32
log:
  every: 10
seed: 0
parallel:
  threads: 0
)";
  const std::string base = "model: {config: m/config.json}\ndata: {path: d.jsonl}\n";
  EXPECT_EQ(to_yaml(parse_train_config(before, {}, "t.yaml", "/x")),
            to_yaml(parse_train_config(base, {}, "t.yaml", "/x")));
  EXPECT_EQ(
      to_yaml(parse_train_config(base, {"optimizer.lr=0.5"}, "t.yaml", "/x")).find("lr: 0.001"),
      std::string::npos);
}

}  // namespace
}  // namespace resp
