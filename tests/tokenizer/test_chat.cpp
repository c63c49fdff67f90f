// Chat format tests: renderings and ids compared with transformers' apply_chat_template on the
// real chat templates (fixtures from tools/make_tokenizer_fixtures.py), family detection and
// errors.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tok_fixtures.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace resp {
namespace {

using nlohmann::json;
using toktest::fixture_tokenizer;
using toktest::load_json;
using toktest::tok_fixtures;

std::vector<ChatMessage> messages_of(const json& arr) {
  std::vector<ChatMessage> m;
  for (const json& x : arr)
    m.push_back({x["role"].get<std::string>(), x["content"].get<std::string>()});
  return m;
}

Thinking thinking_of(const std::string& s) {
  return s == "on" ? Thinking::On : s == "off" ? Thinking::Off : Thinking::Default;
}

TEST(ChatFormat, RendersLikeTheRealTemplates) {
  const json fx = load_json(tok_fixtures() / "chat_cases.json");
  std::map<std::string, int> rendered, encoded;
  for (const json& c : fx["cases"]) {
    const std::string name = c["name"];
    const ChatFormat f = ChatFormat::named(c["format"].get<std::string>());
    ChatOptions o;
    o.add_generation_prompt = c["add_generation_prompt"];
    o.thinking = thinking_of(c["thinking"]);
    o.date_string = c["date_string"];
    const std::string text = f.render(messages_of(c["messages"]), o);
    EXPECT_EQ(text, c["text"].get<std::string>()) << name;
    ++rendered[c["model"]];
    if (const Tokenizer* t = fixture_tokenizer(c["model"])) {
      EXPECT_EQ(t->encode(text), c["ids"].get<std::vector<int32_t>>()) << name;
      ++encoded[c["model"]];
    }
  }
  for (const auto& [model, n] : rendered)
    std::cout << "[ chat     ] " << model << ": " << n << " renderings checked, " << encoded[model]
              << " id sequences checked\n";
  EXPECT_GE(rendered.size(), 4u);
  EXPECT_GT(encoded["qwen3"], 0);
  EXPECT_GT(encoded["deepseek_r1"], 0);
}

TEST(ChatFormat, DetectsFamiliesFromTemplates) {
  const json templates = load_json(tok_fixtures() / "chat_templates.json");
  const std::map<std::string, ChatFamily> want = {{"qwen3", ChatFamily::Qwen3},
                                                  {"qwen2_5", ChatFamily::Qwen25},
                                                  {"llama3_2", ChatFamily::Llama3},
                                                  {"deepseek_r1", ChatFamily::DeepSeekR1}};
  for (const auto& [model, family] : want) {
    std::string tmpl;
    if (templates.contains(model)) {
      tmpl = templates[model].get<std::string>();
    } else if (const Tokenizer* t = fixture_tokenizer(model)) {
      tmpl = t->chat_template();  // Llama-3.2: read from ../shared when present
    } else {
      continue;
    }
    EXPECT_EQ(ChatFormat::detect(tmpl).family(), family) << model;
  }
  EXPECT_EQ(ChatFormat::for_tokenizer(*fixture_tokenizer("qwen3")).family(), ChatFamily::Qwen3);
  EXPECT_EQ(ChatFormat::for_tokenizer(*fixture_tokenizer("deepseek_r1")).family(),
            ChatFamily::DeepSeekR1);
}

TEST(ChatFormat, OlderDeepSeekTemplateHasNoThinkPrefill) {
  const json templates = load_json(tok_fixtures() / "chat_templates.json");
  std::string t = templates["deepseek_r1"];
  const std::string with = "{{'<｜Assistant｜><think>\\n'}}{% endif %}";
  ASSERT_NE(t.find(with), std::string::npos);
  t.replace(t.find(with), with.size(), "{{'<｜Assistant｜>'}}{% endif %}");
  const ChatFormat f = ChatFormat::detect(t, "<｜begin▁of▁sentence｜>");
  EXPECT_EQ(f.render({{"user", "Hi"}}), "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>");
}

TEST(ChatFormat, UnknownTemplatesAreErrors) {
  EXPECT_THROW(ChatFormat::detect(""), ConfigError);
  try {
    ChatFormat::detect("{% for m in messages %}<start_of_turn>{{ m.content }}{% endfor %}");
    ADD_FAILURE() << "unknown template accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--chat-format"), std::string::npos) << e.what();
  }
  // A ChatML template that is neither Qwen3's nor Qwen2.5's (e.g. QwQ) is not guessed.
  EXPECT_THROW(ChatFormat::detect("<|im_start|>assistant\n<think>\n"), ConfigError);
  EXPECT_THROW(ChatFormat::named("gemma"), UsageError);
}

TEST(ChatFormat, ThinkingModes) {
  const std::vector<ChatMessage> m = {{"user", "Hi"}};
  const ChatFormat q3 = ChatFormat::named("qwen3");
  EXPECT_EQ(q3.render(m, true, Thinking::On),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(q3.render(m, true, Thinking::Default), q3.render(m, true, Thinking::On));
  EXPECT_EQ(q3.render(m, true, Thinking::Off),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_THROW(ChatFormat::named("qwen2.5").render(m, true, Thinking::On), UsageError);
  EXPECT_THROW(ChatFormat::named("llama3").render(m, true, Thinking::On), UsageError);
  EXPECT_THROW(ChatFormat::named("deepseek-r1").render(m, true, Thinking::Off), UsageError);
  EXPECT_NO_THROW(ChatFormat::named("qwen2.5").render(m, true, Thinking::Off));
}

TEST(ChatFormat, Qwen3ThinkingOffIds) {
  // The ids of the empty think block, as the Qwen3 template renders it.
  const Tokenizer& t = *fixture_tokenizer("qwen3");
  const ChatFormat f = ChatFormat::for_tokenizer(t);
  const auto ids = t.encode(f.render({{"user", "Hi"}}, true, Thinking::Off));
  const std::vector<int32_t> tail = {151644, 77091, 198, 151667, 271, 151668, 271};
  ASSERT_GE(ids.size(), tail.size());
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), ids.end() - static_cast<long>(tail.size())));
}

TEST(ChatFormat, BadMessagesAndMissingTokens) {
  EXPECT_THROW(ChatFormat::named("qwen3").render({}), UsageError);
  EXPECT_THROW(ChatFormat::named("qwen3").render({{"narrator", "x"}}), UsageError);
  // The DeepSeek format needs <｜User｜>, which the Qwen3 tokenizer does not have.
  try {
    ChatFormat::for_tokenizer(*fixture_tokenizer("qwen3"), "deepseek-r1");
    ADD_FAILURE() << "missing control token accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("<｜begin▁of▁sentence｜>"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(ChatFormat::for_tokenizer(*fixture_tokenizer("qwen3"), "qwen2.5"));
}

TEST(ChatFormat, Llama3DateAndTrim) {
  const ChatFormat f = ChatFormat::named("llama3");
  ChatOptions o;
  o.date_string = "01 Jan 2025";
  const std::string s = f.render({{"system", "  sys \n"}, {"user", "\t hi \u3000"}}, o);
  EXPECT_EQ(s,
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge "
            "Date: December 2023\nToday Date: 01 Jan 2025\n\nsys<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(py_strip("\x1c a \xC2\x85"), "a");
}

}  // namespace
}  // namespace resp
