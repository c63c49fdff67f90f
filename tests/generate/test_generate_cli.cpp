// `resp generate` and `resp eval` end to end on the fixture model qwen3-tiny-demo (with its
// byte-level test tokenizer): output formats, determinism across batch sizes, dataset rows,
// results files, and one-line errors that leave no output file behind.
#include <gtest/gtest.h>

#include "generate/tasks.h"
#include "test_util.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

using namespace resp;
using namespace resp::test;

namespace {

const fs::path& model() {
  static const fs::path m = fixture_models() / "qwen3-tiny-demo";
  return m;
}

std::string q(const fs::path& p) {
  std::string s = "'";
  s += p.string();
  s += '\'';
  return s;
}

void expect_one_line_error(const RunResult& r, const std::string& needle) {
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.err.rfind("resp: error:", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
}

// Nothing under the output's name, and no temporary file either.
void expect_no_output(const fs::path& out) {
  EXPECT_FALSE(fs::exists(out)) << out;
  EXPECT_FALSE(fs::exists(out.string() + ".tmp")) << out;
}

RunResult generate(const fs::path& prompts, const fs::path& out, const std::string& extra) {
  return run_resp("generate --model " + q(model()) + " --prompts " + q(prompts) + " --out " +
                  q(out) + " --threads 1 " + extra);
}

}  // namespace

TEST(GenerateCli, TracesFormat) {
  TempDir d;
  write_text(d / "p.jsonl",
             "{\"id\": \"a\", \"prompt\": \"Hello\"}\n"
             "\n"
             "{\"id\": 7, \"messages\": [{\"role\": \"user\", \"content\": \"2+2?\"}]}\n"
             "{\"prompt\": \"raw text\"}\n");
  const auto r =
      generate(d / "p.jsonl", d / "o.jsonl", "--chat --temperature 0 --max-new-tokens 9");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = parse_jsonl(read_text(d / "o.jsonl"));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["id"], "a");
  EXPECT_EQ(lines[1]["id"], 7);
  EXPECT_EQ(lines[2]["id"], 2);  // no id: the line's index among the records
  const Tokenizer tok = Tokenizer::load(model());
  const ChatFormat chat = ChatFormat::for_tokenizer(tok);
  EXPECT_EQ(lines[0]["prompt_tokens"].get<std::vector<int32_t>>(),
            tok.encode(chat.render({{"user", "Hello"}})));
  EXPECT_EQ(lines[1]["prompt_tokens"].get<std::vector<int32_t>>(),
            tok.encode(chat.render({{"user", "2+2?"}})));
  for (const auto& l : lines) {
    const auto out = l["output_tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(l["n_output_tokens"], out.size());
    EXPECT_EQ(l["n_prompt_tokens"], l["prompt_tokens"].size());
    EXPECT_LE(out.size(), 9u);
    EXPECT_TRUE(l["text"].is_string());
    const std::string fr = l["finish_reason"];
    EXPECT_TRUE(fr == "length" || fr == "eos") << fr;
    EXPECT_EQ(fr == "eos", !out.empty() && out.back() == 257);
  }
  EXPECT_FALSE(fs::exists(d / "o.jsonl.tmp"));

  // Without --chat a "prompt" is plain text.
  ASSERT_EQ(
      generate(d / "p.jsonl", d / "raw.jsonl", "--temperature 0 --max-new-tokens 2").exit_code, 0);
  const auto raw = parse_jsonl(read_text(d / "raw.jsonl"));
  EXPECT_EQ(raw[0]["prompt_tokens"].get<std::vector<int32_t>>(), tok.encode("Hello"));
}

TEST(GenerateCli, SameSeedSameTracesAtAnyBatchSize) {
  TempDir d;
  std::string lines;
  for (int i = 0; i < 7; ++i) {
    nlohmann::json l = {
        {"id", std::string("q").append(std::to_string(i))},
        {"prompt", std::string(static_cast<size_t>(3 + i * 5), static_cast<char>('a' + i))}};
    lines += l.dump() + "\n";
  }
  write_text(d / "p.jsonl", lines);
  const std::string flags = "--temperature 0.8 --top-p 0.9 --top-k 50 --max-new-tokens 12";
  ASSERT_EQ(generate(d / "p.jsonl", d / "b1.jsonl", flags + " --seed 3 --batch-size 1").exit_code,
            0);
  ASSERT_EQ(generate(d / "p.jsonl", d / "b3.jsonl", flags + " --seed 3 --batch-size 3").exit_code,
            0);
  ASSERT_EQ(generate(d / "p.jsonl", d / "b8.jsonl", flags + " --seed 3 --batch-size 8").exit_code,
            0);
  const auto a = parse_jsonl(read_text(d / "b1.jsonl"));
  ASSERT_EQ(a.size(), 7u);
  EXPECT_EQ(a, parse_jsonl(read_text(d / "b3.jsonl")));
  EXPECT_EQ(a, parse_jsonl(read_text(d / "b8.jsonl")));
  ASSERT_EQ(generate(d / "p.jsonl", d / "s4.jsonl", flags + " --seed 4").exit_code, 0);
  EXPECT_NE(a, parse_jsonl(read_text(d / "s4.jsonl")));
}

TEST(GenerateCli, DatasetRowsBuildTheCalibrationPrompt) {
  TempDir d;
  const auto r = generate(source_dir() / "data/gsm8k/train.jsonl", d / "o.jsonl",
                          "--task gsm8k --limit 3 --max-new-tokens 4");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = parse_jsonl(read_text(d / "o.jsonl"));
  ASSERT_EQ(lines.size(), 3u);
  const auto rows = parse_jsonl(read_text(source_dir() / "data/gsm8k/train.jsonl"));
  const Tokenizer tok = Tokenizer::load(model());
  const ChatFormat chat = ChatFormat::for_tokenizer(tok);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(lines[i]["id"], i);
    EXPECT_EQ(lines[i]["prompt_tokens"].get<std::vector<int32_t>>(),
              tok.encode(calibration_prompt(Task::Gsm8k, rows[i], chat)));
  }
  // MathQA rows, thinking off explicitly.
  const auto m = generate(source_dir() / "data/mathqa/test-rows-0-799.jsonl", d / "m.jsonl",
                          "--task mathqa --limit 2 --max-new-tokens 2 --thinking off");
  ASSERT_EQ(m.exit_code, 0) << m.err;
  const auto ml = parse_jsonl(read_text(d / "m.jsonl"));
  ASSERT_EQ(ml.size(), 2u);
  const std::string prompt = tok.decode(ml[0]["prompt_tokens"].get<std::vector<int32_t>>());
  EXPECT_NE(prompt.find("Question: a shopkeeper sold"), std::string::npos) << prompt;
  EXPECT_NE(prompt.find("\nOptions: a ) 38 , b ) 27.675"), std::string::npos) << prompt;
  EXPECT_NE(prompt.find("Answer:<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"),
            std::string::npos)
      << prompt;
}

TEST(GenerateCli, BadInputsFailCleanlyWithoutOutput) {
  TempDir d;
  const fs::path out = d / "o.jsonl";
  write_text(d / "malformed.jsonl", "{\"prompt\": \"ok\"}\n{\"prompt\": \"broken\"\n");
  auto r = generate(d / "malformed.jsonl", out, "");
  expect_one_line_error(r, "malformed.jsonl:2:");
  expect_no_output(out);

  write_text(d / "empty.jsonl", "{\"prompt\": \"ok\"}\n\n{\"id\": 3, \"prompt\": \"\"}\n");
  r = generate(d / "empty.jsonl", out, "");
  expect_one_line_error(r, "empty.jsonl:3: empty prompt");
  expect_no_output(out);

  write_text(d / "long.jsonl", "{\"prompt\": \"" + std::string(600, 'x') + "\"}\n");
  r = generate(d / "long.jsonl", out, "");
  expect_one_line_error(r, "long.jsonl:1: prompt of 600 tokens is too long");
  expect_no_output(out);

  write_text(d / "none.jsonl", "{\"text\": \"hi\"}\n");
  r = generate(d / "none.jsonl", out, "");
  expect_one_line_error(r, "none.jsonl:1: needs \"prompt\" or \"messages\"");
  expect_no_output(out);

  r = generate(d / "none.jsonl", out, "--task gsm8k");
  expect_one_line_error(r, "none.jsonl:1: gsm8k row has no \"question\" field");
  expect_no_output(out);

  r = generate(d / "none.jsonl", out, "--task aime");
  expect_one_line_error(r, "unknown task 'aime'");
  expect_no_output(out);

  r = generate(d / "malformed.jsonl", out, "--temperature 1 --top-p 0");
  EXPECT_NE(r.exit_code, 0);
  expect_no_output(out);

  r = run_resp("eval --model " + q(model()) + " --task nope --data x.jsonl --out " + q(out));
  expect_one_line_error(r, "unknown task 'nope'");
  expect_no_output(out);
}

TEST(EvalCli, ResultsAndItems) {
  TempDir d;
  const fs::path out = d / "results.json";
  const auto r = run_resp("eval --model " + q(model()) + " --task gsm8k --data " +
                          q(source_dir() / "data/gsm8k/train.jsonl") + " --shots 0 --limit 3 " +
                          "--max-new-tokens 16 --threads 1 --out " + q(out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto res = nlohmann::json::parse(read_text(out));
  EXPECT_EQ(res["task"], "gsm8k");
  EXPECT_EQ(res["n"], 3);
  for (const char* k : {"strict", "flexible"}) {
    EXPECT_GE(res["accuracy"][k].get<double>(), 0.0);
    EXPECT_LE(res["accuracy"][k].get<double>(), 1.0);
  }
  EXPECT_GT(res["generated_tokens"]["mean"].get<double>(), 0.0);
  EXPECT_LE(res["generated_tokens"]["p95"].get<double>(), 16.0);
  EXPECT_GE(res["truncation_rate"].get<double>(), 0.0);
  EXPECT_GT(res["wall_time_s"].get<double>(), 0.0);
  EXPECT_EQ(res["settings"]["shots"], 0);
  EXPECT_EQ(res["settings"]["chat"], true);
  EXPECT_EQ(res["settings"]["thinking"], true);
  EXPECT_EQ(res["settings"]["max_new_tokens"], 16);
  EXPECT_DOUBLE_EQ(res["settings"]["temperature"].get<double>(), 0.6);  // generation_config.json
  const auto items = parse_jsonl(read_text(d / "results.items.jsonl"));
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0]["gold"], "72");
  EXPECT_EQ(items[1]["gold"], "10");
  EXPECT_NE(items[0]["prompt"].get<std::string>().find("Natalia sold clips"), std::string::npos);
  EXPECT_TRUE(items[0]["output"].is_string());
  EXPECT_TRUE(items[0]["extracted"].contains("strict"));
  int64_t total = 0;
  for (const auto& it : items) total += it["n_output_tokens"].get<int64_t>();
  EXPECT_EQ(res["generated_tokens"]["total"], total);

  // --no-chat: the bare question as plain text, no thinking block expected.
  const auto nc = run_resp("eval --model " + q(model()) + " --task gsm8k --data " +
                           q(source_dir() / "data/gsm8k/train.jsonl") +
                           " --shots 0 --limit 1 --no-chat --max-new-tokens 2 --threads 1 --out " +
                           q(d / "nc.json"));
  ASSERT_EQ(nc.exit_code, 0) << nc.err;
  const auto ncr = nlohmann::json::parse(read_text(d / "nc.json"));
  EXPECT_EQ(ncr["settings"]["chat"], false);
  EXPECT_EQ(ncr["settings"]["thinking"], false);
  EXPECT_EQ(parse_jsonl(read_text(d / "nc.items.jsonl"))[0]["prompt"],
            parse_jsonl(read_text(source_dir() / "data/gsm8k/train.jsonl"))[0]["question"]);

  // MathQA with an explicit items path; 0-shot only.
  const auto m = run_resp("eval --model " + q(model()) + " --task mathqa --data " +
                          q(source_dir() / "data/mathqa/test-rows-0-799.jsonl") +
                          " --limit 2 --max-new-tokens 4 --threads 1 --out " + q(d / "m.json") +
                          " --items " + q(d / "mi.jsonl"));
  ASSERT_EQ(m.exit_code, 0) << m.err;
  EXPECT_EQ(parse_jsonl(read_text(d / "mi.jsonl"))[0]["gold"], "a");
  EXPECT_EQ(nlohmann::json::parse(read_text(d / "m.json"))["n"], 2);

  // The 8-shot prompt does not fit this model's 512-token context: a clear error, no results.
  const fs::path out8 = d / "r8.json";
  const auto e =
      run_resp("eval --model " + q(model()) + " --task gsm8k --data " +
               q(source_dir() / "data/gsm8k/train.jsonl") + " --limit 2 --out " + q(out8));
  expect_one_line_error(e, "train.jsonl:1: prompt of ");
  expect_no_output(out8);
  expect_no_output(d / "r8.items.jsonl");
  const auto s =
      run_resp("eval --model " + q(model()) + " --task mathqa --shots 3 --data " +
               q(source_dir() / "data/mathqa/test-rows-0-799.jsonl") + " --out " + q(out8));
  expect_one_line_error(s, "0-shot");
}

// --fewshot-as-multiturn (the default with a chat template): each GSM8K exemplar is its own user
// and assistant turn in the prompt; --no-fewshot-as-multiturn puts them all in one user turn.
// The per-item JSONL records the prompt text, and the results' settings record the choice.
TEST(EvalCli, FewshotAsMultiturnAndExtractor) {
  TempDir d;
  write_text(d / "g.jsonl", "{\"question\": \"2+2?\", \"answer\": \"so\\n#### 4\"}\n");
  const Tokenizer tok = Tokenizer::load(model());
  const ChatFormat chat = ChatFormat::for_tokenizer(tok);
  auto eval = [&](const std::string& name, const std::string& extra) {
    return run_resp("eval --model " + q(model()) + " --task gsm8k --data " + q(d / "g.jsonl") +
                    " --shots 1 --max-new-tokens 2 --temperature 0 --threads 1 --out " +
                    q(d / (name + ".json")) + " " + extra);
  };
  auto prompt_of = [&](const std::string& name) {
    return parse_jsonl(read_text(d / (name + ".items.jsonl")))[0]["prompt"].get<std::string>();
  };
  auto settings_of = [&](const std::string& name) {
    return nlohmann::json::parse(read_text(d / (name + ".json")))["settings"];
  };

  auto r = eval("multi", "");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string multi = prompt_of("multi");
  EXPECT_EQ(multi, chat.render(gsm8k_fewshot_messages("2+2?", 1, true)));
  EXPECT_EQ(multi.rfind("<|im_start|>user\nQ: There are 15 trees", 0), 0u);
  EXPECT_NE(multi.find("plant today?\nA:<|im_end|>\n<|im_start|>assistant\nThere are 15 trees "
                       "originally."),
            std::string::npos);
  EXPECT_NE(multi.find("The answer is 6.<|im_end|>\n<|im_start|>user\nQ: 2+2?\nA:<|im_end|>\n"),
            std::string::npos);
  EXPECT_EQ(settings_of("multi")["fewshot_as_multiturn"], true);
  EXPECT_EQ(settings_of("multi")["extract"], "resp");

  r = eval("single", "--no-fewshot-as-multiturn");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string single = prompt_of("single");
  EXPECT_EQ(single, chat.render({{"user", gsm8k_fewshot_text("2+2?", 1)}}));
  EXPECT_NE(single.find("The answer is 6.\n\nQ: 2+2?\nA:<|im_end|>"), std::string::npos);
  EXPECT_NE(single, multi);
  EXPECT_EQ(settings_of("single")["fewshot_as_multiturn"], false);

  // Plain text: the setting does not apply (recorded false); asking for it is an error.
  r = eval("plain", "--no-chat");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(prompt_of("plain"), gsm8k_fewshot_text("2+2?", 1));
  EXPECT_EQ(settings_of("plain")["fewshot_as_multiturn"], false);
  r = eval("bad", "--no-chat --fewshot-as-multiturn");
  expect_one_line_error(r, "--fewshot-as-multiturn needs a chat template");
  expect_no_output(d / "bad.json");
  expect_no_output(d / "bad.items.jsonl");

  // --extract lm-eval: recorded, and the gold is lm-eval's doc_to_target string.
  r = eval("lm", "--extract lm-eval");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(settings_of("lm")["extract"], "lm-eval");
  const auto item = parse_jsonl(read_text(d / "lm.items.jsonl"))[0];
  EXPECT_EQ(item["gold"], "4");
  for (const char* k : {"strict", "flexible"})
    EXPECT_TRUE(item["extracted"][k].is_null() || item["extracted"][k].is_string());
  r = run_resp("eval --model " + q(model()) + " --task mathqa --data " +
               q(source_dir() / "data/mathqa/test-rows-0-799.jsonl") + " --extract lm-eval --out " +
               q(d / "m.json"));
  expect_one_line_error(r, "--extract lm-eval supports only --task gsm8k");
  expect_no_output(d / "m.json");
  r = eval("judge", "--extract judge");
  expect_one_line_error(r, "unknown extractor 'judge'");
  expect_no_output(d / "judge.json");
}
