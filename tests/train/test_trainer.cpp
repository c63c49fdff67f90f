// resp train end to end on the tiny demo model (2 layers, hidden 64, byte-level tokenizer):
// the loss falls, runs are bit-reproducible, a stopped-and-resumed run ends with exactly the
// weights of an uninterrupted one, data formats build the right prompt/response split, and the
// CLI (also over 2 MPI ranks) writes a model that the rest of resp loads.
#include <gtest/gtest.h>

#include <cmath>

#include <nlohmann/json.hpp>

#include "ckpt/export.h"
#include "core/error.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "prune/plan.h"
#include "test_util.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"
#include "train/synthetic_math.h"
#include "train/train_data.h"
#include "train/trainer.h"

namespace resp {
namespace {

using test::TempDir;
namespace fs = std::filesystem;

fs::path demo() {
  return test::fixture_models() / "qwen3-tiny-demo";
}

void write_problems(const fs::path& path, int n) {
  std::ofstream out(path);
  for (const auto& p : make_synthetic_split(21, 0, n, SyntheticMathOptions{}))
    out << p.to_row().dump() << "\n";
}

TrainConfig tiny_config(const fs::path& data, int steps) {
  TrainConfig c;
  c.model_config = (demo() / "config.json").string();
  c.tokenizer = demo().string();
  c.data = data.string();
  c.max_length = 1024;
  c.steps = steps;
  c.warmup = 2;
  c.batch_size = 3;
  c.grad_accum = 2;
  c.lr = 3e-3;
  c.min_lr = 3e-4;
  c.log_every = 1;
  c.checkpoint_every = 4;
  c.seed = 5;
  c.threads = 1;
  return c;
}

std::vector<nlohmann::json> log_lines(const fs::path& run) {
  return test::parse_jsonl(test::read_text(run / "log.jsonl"));
}

TrainRunResult train(const TrainConfig& c, const fs::path& out, bool resume = false,
                     int max_steps = 0) {
  auto backend = make_cpu_backend(1);
  const ParallelContext par = ParallelContext::single();
  TrainRunOptions o;
  o.config = c;
  o.out = out;
  o.resume = resume;
  o.max_steps = max_steps;
  return run_training(o, par, *backend);
}

TEST(Trainer, LossFallsAndTwoRunsAreBitIdentical) {
  TempDir d;
  write_problems(d / "train.jsonl", 24);
  const TrainConfig c = tiny_config(d / "train.jsonl", 16);
  const auto r1 = train(c, d / "a");
  ASSERT_TRUE(r1.finished);
  EXPECT_EQ(r1.steps_done, 16);
  const auto log = log_lines(d / "a");
  ASSERT_EQ(log.size(), 16u);
  const double first = log.front()["loss"], last = log.back()["loss"];
  EXPECT_LT(last, 0.75 * first) << "first " << first << " last " << last;
  train(c, d / "b");
  EXPECT_EQ(test::read_text(d / "a/model/model.safetensors"),
            test::read_text(d / "b/model/model.safetensors"));
  for (const char* f :
       {"config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    EXPECT_TRUE(fs::exists(d / "a/model" / f)) << f;
}

TEST(Trainer, StopAndResumeEndsWithTheWeightsOfAnUninterruptedRun) {
  TempDir d;
  write_problems(d / "train.jsonl", 10);  // 6 sequences a step: epochs wrap mid-step
  const TrainConfig c = tiny_config(d / "train.jsonl", 10);
  train(c, d / "straight");
  const auto stopped = train(c, d / "resumed", false, 5);
  EXPECT_TRUE(stopped.stopped);
  EXPECT_FALSE(stopped.finished);
  EXPECT_FALSE(fs::exists(d / "resumed/model"));
  const auto resumed = train(c, d / "resumed", true);
  EXPECT_TRUE(resumed.finished);
  EXPECT_EQ(test::read_text(d / "straight/model/model.safetensors"),
            test::read_text(d / "resumed/model/model.safetensors"));
  // The log has every step once, as if the run had never stopped.
  const auto log = log_lines(d / "resumed");
  ASSERT_EQ(log.size(), 10u);
  for (size_t i = 0; i < log.size(); ++i) EXPECT_EQ(log[i]["step"].get<int>(), int(i) + 1);
  EXPECT_DOUBLE_EQ(log.back()["loss"].get<double>(),
                   log_lines(d / "straight").back()["loss"].get<double>());
}

TEST(Trainer, RefusesToOverwriteAndChecksTheModelAgainstTheTokenizer) {
  TempDir d;
  write_problems(d / "train.jsonl", 4);
  fs::create_directories(d / "busy");
  test::write_text(d / "busy/x", "keep me");
  EXPECT_THROW(train(tiny_config(d / "train.jsonl", 2), d / "busy"), UsageError);
  EXPECT_EQ(test::read_text(d / "busy/x"), "keep me");
  // A vocabulary smaller than the tokenizer's cannot be trained.
  auto cfg = nlohmann::json::parse(test::read_text(demo() / "config.json"));
  cfg["vocab_size"] = 100;
  test::write_text(d / "config.json", cfg.dump());
  TrainConfig c = tiny_config(d / "train.jsonl", 2);
  c.model_config = (d / "config.json").string();
  EXPECT_THROW(train(c, d / "out"), ConfigError);
  // An eos id that is an ordinary token of the tokenizer (a config copied from another model)
  // would end every generation at that word: refused, naming the token.
  const Tokenizer tok = Tokenizer::load(demo());
  int32_t ordinary = 0;
  while (tok.is_special(ordinary)) ++ordinary;
  cfg = nlohmann::json::parse(test::read_text(demo() / "config.json"));
  cfg["eos_token_id"] = ordinary;
  test::write_text(d / "config.json", cfg.dump());
  try {
    train(c, d / "out2");
    ADD_FAILURE() << "an ordinary-token eos id was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is not a special token"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(d / "out2/model"));
}

TEST(TrainData, FormatsSplitPromptAndResponse) {
  const Tokenizer tok = Tokenizer::load(demo());
  const ChatFormat chat = ChatFormat::for_tokenizer(tok);
  TempDir d;
  const auto p = make_synthetic_problem(1, 1, SyntheticMathOptions{});
  test::write_text(d / "g.jsonl", p.to_row().dump() + "\n");
  const auto g = load_train_dataset((d / "g.jsonl").string(), "gsm8k-thinking", tok, &chat, 4096);
  ASSERT_EQ(g.examples.size(), 1u);
  const auto& ex = g.examples[0];
  const std::string prompt =
      tok.decode(std::vector<int32_t>(ex.tokens.begin(), ex.tokens.begin() + ex.prompt_len));
  const std::string response =
      tok.decode(std::vector<int32_t>(ex.tokens.begin() + ex.prompt_len, ex.tokens.end()));
  EXPECT_EQ(prompt, "<|im_start|>user\n" + p.question + "<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(response.substr(0, 8), "<think>\n");
  EXPECT_EQ(response.substr(response.size() - 27),
            "The answer is " + std::to_string(p.answer) + ".<|im_end|>");
  // Loss mask: response positions only.
  const auto w = loss_mask(ex, false);
  EXPECT_EQ(w[static_cast<size_t>(ex.prompt_len) - 2], 0.0f);
  EXPECT_EQ(w[static_cast<size_t>(ex.prompt_len) - 1], 1.0f);

  test::write_text(
      d / "m.jsonl",
      R"({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]})"
      "\n");
  const auto m = load_train_dataset((d / "m.jsonl").string(), "messages", tok, &chat, 4096);
  const auto& mx = m.examples[0];
  EXPECT_EQ(tok.decode(std::vector<int32_t>(mx.tokens.begin() + mx.prompt_len, mx.tokens.end())),
            "<think>\n\n</think>\n\nyo<|im_end|>");

  test::write_text(d / "t.jsonl", "{\"text\": \"abc\"}\n{\"text\": \"de\"}\n");
  const auto t = load_train_dataset((d / "t.jsonl").string(), "text", tok, nullptr, 4096);
  EXPECT_EQ(t.examples.size(), 2u);
  EXPECT_EQ(t.examples[0].prompt_len, 0);

  test::write_text(d / "pc.jsonl", "{\"prompt\": \"2+2=\", \"completion\": \"4\"}\n");
  const auto pc =
      load_train_dataset((d / "pc.jsonl").string(), "prompt-completion", tok, nullptr, 4096);
  EXPECT_EQ(pc.examples[0].prompt_len, 4);
  EXPECT_EQ(pc.examples[0].tokens.size(), 5u);

  // Too long: skipped and counted; nothing left: an error naming the limit.
  const auto few = load_train_dataset((d / "t.jsonl").string(), "text", tok, nullptr, 2);
  EXPECT_EQ(few.examples.size(), 1u);
  EXPECT_EQ(few.skipped_too_long, 1);
  EXPECT_THROW(load_train_dataset((d / "g.jsonl").string(), "gsm8k-thinking", tok, &chat, 10),
               UsageError);
  // Errors name file and line.
  test::write_text(d / "bad.jsonl", "{\"text\": \"ok\"}\n{\"txt\": 1}\n");
  try {
    load_train_dataset((d / "bad.jsonl").string(), "text", tok, nullptr, 4096);
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(TrainData, ThinkingFieldIsTheReasoningWhenPresent) {
  const nlohmann::json gold = {{"question", "q"}, {"answer", "2+3=<<2+3=5>>5\n#### 5"}};
  EXPECT_EQ(gsm8k_thinking_response(gold), "<think>\n2+3=<<2+3=5>>5\n</think>\n\nThe answer is 5.");
  nlohmann::json traced = gold;
  traced["thinking"] = "  Let me add: 2 + 3 = 5.\n";
  EXPECT_EQ(gsm8k_thinking_response(traced),
            "<think>\nLet me add: 2 + 3 = 5.\n</think>\n\nThe answer is 5.");
  traced["thinking"] = 7;
  EXPECT_THROW(gsm8k_thinking_response(traced), UsageError);
}

TEST(TrainData, EpochOrderIsAKeyedPermutation) {
  const auto a = epoch_permutation(50, 3, 0), b = epoch_permutation(50, 3, 0);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, epoch_permutation(50, 3, 1));
  EXPECT_NE(a, epoch_permutation(50, 4, 0));
  std::vector<int64_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(sorted[static_cast<size_t>(i)], i);
}

// Recovery fine-tuning: model.init_from a hetero-pruned export (every layer its own head and
// channel counts) trains in the pruned shapes, keeps the pruning record, changes the weights,
// and writes a model that resp loads.
TEST(Trainer, FineTunesAHeteroPrunedExportInItsShapes) {
  TempDir d;
  const ModelConfig dense = load_model_config(demo());
  PrunePlan plan(static_cast<size_t>(dense.num_layers));
  for (int l = 0; l < dense.num_layers; ++l) {
    auto& L = plan[static_cast<size_t>(l)];
    for (int h = 0; h < dense.num_heads; ++h)
      if (h % (l + 2) != 1) L.heads.push_back(h);
    for (int c = 0; c < dense.intermediate_size; ++c)
      if (c % (l + 3) != 0) L.channels.push_back(c);
  }
  export_model(demo(), dense, plan, ExportFormat::Hetero, d / "pruned");

  write_problems(d / "train.jsonl", 12);
  TrainConfig c = tiny_config(d / "train.jsonl", 4);
  c.model_config.clear();
  c.init_from = (d / "pruned").string();
  c.tokenizer = c.init_from;
  const TrainRunResult r = train(c, d / "run");
  EXPECT_EQ(r.steps_done, 4);
  const auto log = log_lines(d / "run");
  ASSERT_EQ(log.size(), 4u);
  for (const auto& line : log) EXPECT_TRUE(std::isfinite(line["loss"].get<double>())) << line;

  // Same pruned configuration (per-layer counts and the pruning record) and tensor shapes.
  const auto config_of = [](const fs::path& dir) {
    return nlohmann::json::parse(test::read_text(dir / "config.json"));
  };
  const auto before = config_of(d / "pruned"), after = config_of(d / "run/model");
  ASSERT_TRUE(before.contains("resp_pruning")) << before.dump();
  EXPECT_EQ(after["resp_pruning"], before["resp_pruning"]);
  // The modeling code that auto_map names travels with the tuned model, byte for byte, so stock
  // transformers loads it as it loads the export.
  ASSERT_TRUE(after.contains("auto_map")) << after.dump();
  EXPECT_EQ(after["auto_map"], before["auto_map"]);
  for (const char* py : {"configuration_resp_pruned.py", "modeling_resp_pruned.py"}) {
    ASSERT_TRUE(fs::exists(d / "run/model" / py)) << py;
    EXPECT_EQ(test::read_text(d / "run/model" / py), test::read_text(d / "pruned" / py)) << py;
  }
  const CheckpointReader pruned(d / "pruned"), tuned(d / "run/model");
  ASSERT_EQ(pruned.names(), tuned.names());
  size_t changed = 0;
  for (const auto& name : pruned.names()) {
    ASSERT_EQ(pruned.info(name).shape, tuned.info(name).shape) << name;
    std::vector<float> a(static_cast<size_t>(pruned.info(name).numel())), b(a.size());
    pruned.read(name, a.data());
    tuned.read(name, b.data());
    if (a != b) ++changed;
  }
  EXPECT_GT(changed, pruned.names().size() / 2) << "training left most tensors untouched";

  // The tuned model runs: log-probs over a short sequence.
  test::write_text(d / "in.jsonl", "{\"id\": \"x\", \"tokens\": [77, 105, 97, 32, 51]}\n");
  const auto lp = test::run_resp("logprobs --model " + (d / "run/model").string() + " --input " +
                                 (d / "in.jsonl").string() + " --threads 1");
  EXPECT_EQ(lp.exit_code, 0) << lp.err;
}

TEST(TrainCli, TrainsOverTwoRanksAndTheModelLoads) {
  if (std::system("command -v mpiexec >/dev/null 2>&1") != 0) GTEST_SKIP() << "no mpiexec";
  TempDir d;
  write_problems(d / "train.jsonl", 12);
  test::write_text(d / "t.yaml", "model: {config: " + (demo() / "config.json").string() +
                                     "}\ndata: {path: " + (d / "train.jsonl").string() +
                                     ", max_length: 1024}\nschedule: {steps: 6, warmup: 1, "
                                     "batch_size: 4}\nlog: {every: 1}\nseed: 3\n");
  const std::string args = "train --config " + (d / "t.yaml").string() + " --threads 1 --out ";
  const auto one = test::run_resp(args + (d / "one").string());
  ASSERT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.err.find("train step 6/6"), std::string::npos) << one.err;
  const std::string cmd = "mpiexec -n 2 " + std::string(RESP_BINARY) + " " + args +
                          (d / "two").string() + " >/dev/null 2>" + (d / "err").string();
  ASSERT_EQ(WEXITSTATUS(std::system(cmd.c_str())), 0) << test::read_text(d / "err");
  // Data parallel splits each step's sequences; only the summation order differs.
  const auto l1 = log_lines(d / "one"), l2 = log_lines(d / "two");
  ASSERT_EQ(l1.size(), 6u);
  ASSERT_EQ(l2.size(), 6u);
  for (size_t i = 0; i < 6; ++i)
    EXPECT_NEAR(l1[i]["loss"].get<double>(), l2[i]["loss"].get<double>(), 1e-4) << i;
  // The written model is a checkpoint resp loads: logprobs runs on it.
  test::write_text(d / "in.jsonl", "{\"id\": \"x\", \"tokens\": [77, 105, 97, 32, 51]}\n");
  const auto lp = test::run_resp("logprobs --model " + (d / "one/model").string() + " --input " +
                                 (d / "in.jsonl").string() + " --threads 1");
  EXPECT_EQ(lp.exit_code, 0) << lp.err;
  // Bad config: one line, exit 2, nothing written.
  test::write_text(d / "bad.yaml", "model: {config: x}\ndata: {path: y}\nschedule: {stepz: 1}\n");
  const auto bad = test::run_resp("train --config " + (d / "bad.yaml").string() + " --out " +
                                  (d / "bad").string());
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("schedule.stepz"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(d / "bad"));
}

}  // namespace
}  // namespace resp
