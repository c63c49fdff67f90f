// `resp tokenize` / `resp detokenize`, run as a subprocess on the Qwen3 (and SmolLM2) fixture
// tokenizers.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>

#include "tok_fixtures.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace resp {
namespace {

using nlohmann::json;
using toktest::fixture_tokenizer;
using toktest::load_json;
using toktest::slurp;
using toktest::TempDir;
using toktest::tok_fixtures;
using toktest::write_text;

struct CliRun {
  int code = -1;
  std::string out, err;
};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

CliRun resp_cli(const std::vector<std::string>& args) {
  TempDir tmp;
  std::string cmd = RESP_BINARY;
  for (const auto& a : args) cmd.append(" ").append(quote(a));
  cmd.append(" >").append((tmp / "out").string()).append(" 2>").append((tmp / "err").string());
  const int status = std::system(cmd.c_str());
  CliRun r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
  r.out = slurp(tmp / "out");
  r.err = slurp(tmp / "err");
  return r;
}

std::vector<json> lines_of(const std::string& s) {
  std::vector<json> v;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t e = s.find('\n', pos);
    if (e == std::string::npos) e = s.size();
    if (e > pos) v.push_back(json::parse(s.substr(pos, e - pos)));
    pos = e + 1;
  }
  return v;
}

const std::string kModel = (tok_fixtures() / "qwen3").string();

TEST(TokenizeCli, Text) {
  const Tokenizer& t = *fixture_tokenizer("qwen3");
  const std::string text = "Hello, 世界! It's 2024.\n  def f(): return 42";
  const CliRun r = resp_cli({"tokenize", "--model", kModel, "--text", text});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto out = lines_of(r.out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["ids"].get<std::vector<int32_t>>(), t.encode(text));
  EXPECT_FALSE(out[0].contains("id"));

  const CliRun empty = resp_cli({"tokenize", "--model", kModel, "--text", ""});
  ASSERT_EQ(empty.code, 0) << empty.err;
  EXPECT_EQ(lines_of(empty.out)[0]["ids"], json::array());
}

// SmolLM2's vocabulary lacks 21 byte tokens; tokenizers drops those bytes, and so does resp.
TEST(TokenizeCli, SmolLM2DropsBytesWithoutTokens) {
  const std::string model = (tok_fixtures() / "smollm2").string();
  const CliRun r = resp_cli({"tokenize", "--model", model, "--text",
                             "ctrl\x04"
                             "char"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).at(0)["ids"].get<std::vector<int32_t>>(),
            (std::vector<int32_t>{39673, 9061}));
  const CliRun d = resp_cli({"detokenize", "--model", model, "--ids", "39673,9061"});
  ASSERT_EQ(d.code, 0) << d.err;
  EXPECT_EQ(lines_of(d.out).at(0)["text"], "ctrlchar");
}

TEST(TokenizeCli, ChatMatchesTheTemplateRendering) {
  const json fx = load_json(tok_fixtures() / "chat_cases.json");
  for (const json& c : fx["cases"]) {
    if (c["model"] != "qwen3" || c["messages"].size() != 1 || !c["add_generation_prompt"]) continue;
    std::vector<std::string> args = {"tokenize", "--model",
                                     kModel,     "--chat",
                                     "--text",   c["messages"][0]["content"].get<std::string>()};
    if (c["thinking"] != "default") {
      args.push_back("--thinking");
      args.push_back(c["thinking"]);
    }
    const CliRun r = resp_cli(args);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(lines_of(r.out)[0]["ids"], c["ids"]) << c["name"];
  }
}

// A model folder as transformers 5 saves SmolLM2-135M-Instruct: the template in
// chat_template.jinja, a template without a thinking mode that adds its own default system text.
void write_smollm2_model(const TempDir& dir) {
  std::filesystem::copy_file(tok_fixtures() / "smollm2/tokenizer.json", dir / "tokenizer.json");
  std::filesystem::copy_file(tok_fixtures() / "smollm2/tokenizer_config.json",
                             dir / "tokenizer_config.json");
  const json fx = load_json(tok_fixtures() / "jinja_cases.json");
  write_text(dir / "chat_template.jinja",
             fx["templates"]["smollm2"]["template"].get<std::string>());
}

TEST(TokenizeCli, SystemPromptReachesThePrompt) {
  TempDir dir;
  write_smollm2_model(dir);
  const Tokenizer tok = Tokenizer::load(dir.path());
  CliRun r = resp_cli({"tokenize", "--model", dir.path().string(), "--chat", "--text", "Hi"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).at(0)["ids"].get<std::vector<int32_t>>(),
            tok.encode("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained "
                       "by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                       "<|im_start|>assistant\n"));
  r = resp_cli({"tokenize", "--model", dir.path().string(), "--chat", "--text", "Hi", "--system",
                "Be terse."});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out).at(0)["ids"].get<std::vector<int32_t>>(),
            tok.encode("<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                       "<|im_start|>assistant\n"));
  // thinking auto is off for this template; on is one clear error.
  r = resp_cli(
      {"tokenize", "--model", dir.path().string(), "--chat", "--text", "Hi", "--thinking", "auto"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = resp_cli(
      {"tokenize", "--model", dir.path().string(), "--chat", "--text", "Hi", "--thinking", "on"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("chat template of " + dir.path().string() +
                       " has no thinking mode (thinking: on); use thinking: auto or off"),
            std::string::npos)
      << r.err;
  r = resp_cli({"tokenize", "--model", dir.path().string(), "--text", "Hi", "--system", "x"});
  EXPECT_EQ(r.code, 2) << "--system without --chat";
}

TEST(TokenizeCli, JsonlInput) {
  const json fx = load_json(tok_fixtures() / "chat_cases.json");
  json fewshot;
  for (const json& c : fx["cases"])
    if (c["name"] == "qwen3/fewshot/gen=1/thinking=off") fewshot = c;
  ASSERT_FALSE(fewshot.is_null());
  TempDir dir;
  write_text(dir / "in.jsonl", json{{"id", "a"}, {"text", "plain text"}}.dump() + "\n\n" +
                                   json{{"messages", fewshot["messages"]}}.dump() + "\n" +
                                   json{{"id", 7}, {"text", "x"}}.dump() + "\n");
  const CliRun r = resp_cli(
      {"tokenize", "--model", kModel, "--input", (dir / "in.jsonl").string(), "--thinking", "off"});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto out = lines_of(r.out);
  ASSERT_EQ(out.size(), 3u);
  const Tokenizer& t = *fixture_tokenizer("qwen3");
  EXPECT_EQ(out[0]["id"], "a");
  EXPECT_EQ(out[0]["ids"].get<std::vector<int32_t>>(), t.encode("plain text"));
  EXPECT_EQ(out[1]["id"], 1);
  EXPECT_EQ(out[1]["ids"], fewshot["ids"]);
  EXPECT_EQ(out[2]["id"], 7);
}

TEST(TokenizeCli, Detokenize) {
  const Tokenizer& t = *fixture_tokenizer("qwen3");
  const std::string text = "<|im_start|>user\nHi 😀<|im_end|>";
  const auto ids = t.encode(text);
  std::string list;
  for (int32_t id : ids) {
    if (!list.empty()) list.push_back(',');
    list.append(std::to_string(id));
  }
  CliRun r = resp_cli({"detokenize", "--model", kModel, "--ids", list});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out)[0]["text"], text);
  r = resp_cli({"detokenize", "--model", kModel, "--ids", list, "--skip-special"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(lines_of(r.out)[0]["text"], "user\nHi 😀");

  TempDir dir;
  write_text(dir / "in.jsonl", json{{"id", "q"}, {"ids", ids}}.dump() + "\n" +
                                   json{{"ids", json::array()}}.dump() + "\n");
  r = resp_cli({"detokenize", "--model", kModel, "--input", (dir / "in.jsonl").string()});
  ASSERT_EQ(r.code, 0) << r.err;
  const auto out = lines_of(r.out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0]["id"], "q");
  EXPECT_EQ(out[0]["text"], text);
  EXPECT_EQ(out[1]["text"], "");
}

TEST(TokenizeCli, Errors) {
  TempDir dir;
  write_text(dir / "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"unterminated\n");
  CliRun r = resp_cli({"tokenize", "--model", kModel, "--input", (dir / "bad.jsonl").string()});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("bad.jsonl:2"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << "nothing is printed when a line is bad";

  write_text(dir / "nofield.jsonl", "{\"text\": \"ok\"}\n{\"id\": 3}\n");
  r = resp_cli({"tokenize", "--model", kModel, "--input", (dir / "nofield.jsonl").string()});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("nofield.jsonl:2"), std::string::npos) << r.err;

  write_text(dir / "role.jsonl", "{\"messages\": [{\"role\": \"narrator\", \"content\": 5}]}\n");
  r = resp_cli({"tokenize", "--model", kModel, "--input", (dir / "role.jsonl").string()});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("role.jsonl:1"), std::string::npos) << r.err;

  write_text(dir / "ids.jsonl", "{\"ids\": [1, 2]}\n{\"ids\": [999999999]}\n");
  r = resp_cli({"detokenize", "--model", kModel, "--input", (dir / "ids.jsonl").string()});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("ids.jsonl:2"), std::string::npos) << r.err;

  r = resp_cli({"tokenize", "--model", kModel});
  EXPECT_EQ(r.code, 2);
  r = resp_cli({"tokenize", "--model", kModel, "--text", "x", "--thinking", "maybe"});
  EXPECT_NE(r.code, 0);
  r = resp_cli({"tokenize", "--model", kModel, "--text", "x", "--thinking", "off"});
  EXPECT_EQ(r.code, 2) << "--thinking without --chat";
  r = resp_cli(
      {"tokenize", "--model", kModel, "--text", "x", "--chat", "--chat-format", "deepseek-r1"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("<｜begin▁of▁sentence｜>"), std::string::npos) << r.err;
  r = resp_cli({"detokenize", "--model", kModel, "--ids", "1,x,3"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("'x'"), std::string::npos) << r.err;
  r = resp_cli({"tokenize", "--model", (dir / "nomodel").string(), "--text", "x"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("tokenizer.json"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace resp
