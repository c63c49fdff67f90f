// Chat formatting: the models' own Jinja templates rendered like transformers'
// apply_chat_template (fixtures from tools/make_chat_template_fixtures.py and
// tools/make_tokenizer_fixtures.py), the thinking modes and their errors, the system prompt,
// the date, and the hand-written fallback formats.
#include <gtest/gtest.h>

#include "core/error.h"
#include "tok_fixtures.h"
#include "tokenizer/chat.h"
#include "tokenizer/jinja_template.h"
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

std::string str_or_empty(const json& j) {
  return j.is_string() ? j.get<std::string>() : std::string();
}

// The fixture templates by name; Llama-3.2's comes from ../shared (empty when absent).
struct FixtureTemplate {
  std::string text, bos, eos;
};
std::map<std::string, FixtureTemplate> jinja_templates(const json& fx) {
  std::map<std::string, FixtureTemplate> out;
  for (const auto& [name, t] : fx["templates"].items()) {
    FixtureTemplate f{str_or_empty(t["template"]), str_or_empty(t["bos_token"]),
                      str_or_empty(t["eos_token"])};
    if (f.text.empty())
      if (const Tokenizer* tok = fixture_tokenizer(name)) f.text = tok->chat_template();
    if (!f.text.empty()) out[name] = f;
  }
  return out;
}

const json& jinja_fixture() {
  static const json fx = load_json(tok_fixtures() / "jinja_cases.json");
  return fx;
}

TEST(ChatTemplate, RendersExactlyLikeApplyChatTemplate) {
  const json& fx = jinja_fixture();
  const auto templates = jinja_templates(fx);
  std::map<std::string, int> via_format, via_interpreter, refused;
  for (const json& c : fx["cases"]) {
    const std::string name = c["name"], tname = c["template"];
    const auto it = templates.find(tname);
    if (it == templates.end()) continue;  // Llama-3.2 without ../shared
    const FixtureTemplate& ft = it->second;
    const auto msgs = messages_of(fx["conversations"][c["conversation"].get<std::string>()]);
    const std::string want = c["text"];
    const bool gen = c["add_generation_prompt"];
    const std::string thinking = c["thinking"];

    // The interpreter with apply_chat_template's variables.
    std::vector<std::pair<std::string, jinja::Value>> vars;
    std::vector<jinja::Value> mv;
    for (const auto& m : msgs)
      mv.push_back(jinja::make_dict({{jinja::Value("role"), jinja::Value(m.role)},
                                     {jinja::Value("content"), jinja::Value(m.content)}}));
    vars = {{"messages", jinja::make_list(mv)},
            {"tools", jinja::Value::none()},
            {"documents", jinja::Value::none()},
            {"add_generation_prompt", jinja::Value(gen)},
            {"date_string", jinja::Value(fx["date_string"].get<std::string>())}};
    if (!ft.bos.empty()) vars.emplace_back("bos_token", jinja::Value(ft.bos));
    if (!ft.eos.empty()) vars.emplace_back("eos_token", jinja::Value(ft.eos));
    if (thinking != "default") vars.emplace_back("enable_thinking", jinja::Value(thinking == "on"));
    EXPECT_EQ(jinja::Template(ft.text, tname).render(vars), want) << name;
    ++via_interpreter[tname];

    // ChatFormat, which refuses the thinking settings the template cannot honour.
    const ChatFormat f = ChatFormat::from_template(ft.text, ft.bos, ft.eos, tname);
    ChatOptions o;
    o.add_generation_prompt = gen;
    o.thinking = thinking_of(thinking);
    const bool impossible = (o.thinking == Thinking::On && !f.has_thinking_mode()) ||
                            (o.thinking == Thinking::Off && f.always_thinks());
    if (impossible) {
      EXPECT_THROW(f.render(msgs, o), ConfigError) << name;
      ++refused[tname];
    } else {
      EXPECT_EQ(f.render(msgs, o), want) << name;
      ++via_format[tname];
    }
  }
  for (const auto& [t, n] : via_interpreter)
    std::cout << "[ jinja    ] " << t << ": " << n << " renderings, " << via_format[t]
              << " through ChatFormat, " << refused[t] << " thinking settings refused\n";
  EXPECT_GE(via_interpreter.size(), 4u);
  EXPECT_GT(via_format["smollm2"], 0);
  EXPECT_GT(refused["smollm2"], 0);      // thinking on: SmolLM2 has no thinking mode
  EXPECT_GT(refused["deepseek_r1"], 0);  // thinking off: DeepSeek-R1 always thinks
  EXPECT_EQ(refused["qwen3"], 0);
}

TEST(ChatTemplate, ChatCasesThroughTheModelsTemplates) {
  // tests/fixtures/tokenizer/chat_cases.json, rendered by each model's own template (the
  // hand-written formats render the same cases in HandWrittenFormatsRenderLikeTheTemplates).
  const json fx = load_json(tok_fixtures() / "chat_cases.json");
  const json templates = load_json(tok_fixtures() / "chat_templates.json");
  std::map<std::string, int> n;
  for (const json& c : fx["cases"]) {
    const std::string model = c["model"];
    const Tokenizer* tok = fixture_tokenizer(model);
    std::string tmpl;
    if (templates.contains(model))
      tmpl = templates[model].get<std::string>();
    else if (tok)
      tmpl = tok->chat_template();
    if (tmpl.empty()) continue;
    const std::string bos = model == "deepseek_r1" ? "<｜begin▁of▁sentence｜>"
                            : model == "llama3_2"  ? "<|begin_of_text|>"
                                                   : "";
    const ChatFormat f = ChatFormat::from_template(tmpl, bos, "", model);
    ChatOptions o;
    o.add_generation_prompt = c["add_generation_prompt"];
    o.thinking = thinking_of(c["thinking"]);
    o.date_string = c["date_string"];
    EXPECT_EQ(f.render(messages_of(c["messages"]), o), c["text"].get<std::string>())
        << c["name"].get<std::string>();
    ++n[model];
  }
  EXPECT_GE(n.size(), 3u);
  EXPECT_GT(n["qwen3"], 0);
  EXPECT_GT(n["deepseek_r1"], 0);
}

TEST(ChatFormat, HandWrittenFormatsRenderLikeTheTemplates) {
  const json fx = load_json(tok_fixtures() / "chat_cases.json");
  std::map<std::string, int> rendered, encoded;
  for (const json& c : fx["cases"]) {
    const std::string name = c["name"];
    const ChatFormat f = ChatFormat::named(c["format"].get<std::string>());
    EXPECT_FALSE(f.is_template());
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

TEST(ChatFormat, ForTokenizerRendersTheModelsOwnTemplate) {
  const ChatFormat q3 = ChatFormat::for_tokenizer(*fixture_tokenizer("qwen3"), {}, "models/q3");
  EXPECT_TRUE(q3.is_template());
  EXPECT_STREQ(q3.name(), "template");
  EXPECT_EQ(q3.family(), ChatFamily::Qwen3);  // recognised, for information
  EXPECT_TRUE(q3.has_thinking_mode());
  EXPECT_FALSE(q3.always_thinks());
  const ChatFormat ds = ChatFormat::for_tokenizer(*fixture_tokenizer("deepseek_r1"));
  EXPECT_EQ(ds.family(), ChatFamily::DeepSeekR1);
  EXPECT_TRUE(ds.always_thinks());
  EXPECT_EQ(ds.render({{"user", "Hi"}}),
            "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><think>\n");
  // Named: the hand-written format, whose control tokens must exist.
  const ChatFormat named = ChatFormat::for_tokenizer(*fixture_tokenizer("qwen3"), "qwen2.5");
  EXPECT_FALSE(named.is_template());
  EXPECT_STREQ(named.name(), "qwen2.5");
  try {
    ChatFormat::for_tokenizer(*fixture_tokenizer("qwen3"), "deepseek-r1");
    ADD_FAILURE() << "missing control token accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("<｜begin▁of▁sentence｜>"), std::string::npos) << e.what();
  }
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
    EXPECT_EQ(ChatFormat::from_template(tmpl).family(), family) << model;
  }
  EXPECT_THROW(ChatFormat::detect(""), ConfigError);
  EXPECT_THROW(ChatFormat::detect("<|im_start|>assistant\n<think>\n"), ConfigError);
  EXPECT_THROW(ChatFormat::named("gemma"), UsageError);
}

TEST(ChatFormat, OlderDeepSeekTemplateHasNoThinkPrefill) {
  const json templates = load_json(tok_fixtures() / "chat_templates.json");
  std::string t = templates["deepseek_r1"];
  const std::string with = "{{'<｜Assistant｜><think>\\n'}}{% endif %}";
  ASSERT_NE(t.find(with), std::string::npos);
  t.replace(t.find(with), with.size(), "{{'<｜Assistant｜>'}}{% endif %}");
  const std::string bos = "<｜begin▁of▁sentence｜>";
  EXPECT_EQ(ChatFormat::detect(t, bos).render({{"user", "Hi"}}),
            "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>");
  const ChatFormat f = ChatFormat::from_template(t, bos);
  EXPECT_EQ(f.render({{"user", "Hi"}}), "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜>");
  EXPECT_FALSE(f.always_thinks());
}

TEST(ChatFormat, AnyTemplateRenders) {
  // A template of none of the hand-written families (Gemma-style) renders as written.
  const ChatFormat f = ChatFormat::from_template(
      "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' "
      "else m.role }}\n{{ m.content | trim }}<end_of_turn>\n{% endfor %}"
      "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}",
      "<bos>", "<eos>", "models/gemma");
  EXPECT_FALSE(f.family());
  EXPECT_FALSE(f.has_thinking_mode());
  EXPECT_EQ(f.render({{"user", " Hi "}, {"assistant", "Hello"}, {"user", "2+2?"}}),
            "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
            "<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n");
  // raise_exception in a template: a ConfigError with the template's message.
  const ChatFormat strict = ChatFormat::from_template(
      "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with a "
      "user turn') }}{% endif %}{{ messages[0].content }}",
      "", "", "models/strict");
  try {
    strict.render({{"assistant", "x"}});
    ADD_FAILURE() << "raise_exception ignored";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "chat template of models/strict: Conversation must start with a user turn");
  }
  EXPECT_THROW(ChatFormat::from_template("{% for m in messages %}", "", "", "models/bad"),
               ConfigError);
  EXPECT_THROW(ChatFormat::from_template("{% include 'other.jinja' %}"), UnsupportedError);
  EXPECT_THROW(f.render({}), UsageError);
}

TEST(ChatFormat, ThinkingModes) {
  const std::vector<ChatMessage> m = {{"user", "Hi"}};
  // Qwen3's template: auto = on (its default), off adds the empty think block.
  const ChatFormat q3 = ChatFormat::for_tokenizer(*fixture_tokenizer("qwen3"));
  const std::string open = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(q3.render(m, true, Thinking::On), open);
  EXPECT_EQ(q3.render(m, true, Thinking::Auto), open);
  EXPECT_EQ(q3.render(m, true, Thinking::Default), open);
  EXPECT_EQ(q3.render(m, true, Thinking::Off), open + "<think>\n\n</think>\n\n");
  EXPECT_EQ(q3.resolve(Thinking::Auto), Thinking::On);
  EXPECT_TRUE(q3.thinks(Thinking::Default));
  EXPECT_FALSE(q3.thinks(Thinking::Off));
  // A template without a thinking mode (SmolLM2): auto = off, on is one clear error.
  const FixtureTemplate smol = jinja_templates(jinja_fixture()).at("smollm2");
  const ChatFormat s = ChatFormat::from_template(smol.text, smol.bos, smol.eos, "models/smol");
  EXPECT_FALSE(s.has_thinking_mode());
  EXPECT_EQ(s.resolve(Thinking::Auto), Thinking::Off);
  EXPECT_FALSE(s.thinks(Thinking::Auto));
  EXPECT_EQ(s.render(m, true, Thinking::Auto), s.render(m, true, Thinking::Default));
  try {
    s.render(m, true, Thinking::On);
    ADD_FAILURE() << "thinking on accepted without a thinking mode";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "chat template of models/smol has no thinking mode (thinking: on); use thinking: "
              "auto or off");
  }
  EXPECT_THROW(s.thinks(Thinking::On), ConfigError);
  // DeepSeek-R1 always thinks: off is the error.
  const ChatFormat ds = ChatFormat::for_tokenizer(*fixture_tokenizer("deepseek_r1"));
  EXPECT_TRUE(ds.thinks(Thinking::Auto));
  EXPECT_THROW(ds.render(m, true, Thinking::Off), ConfigError);
  // The hand-written formats follow the same rules.
  EXPECT_EQ(ChatFormat::named("qwen3").render(m, true, Thinking::Auto), open);
  EXPECT_THROW(ChatFormat::named("qwen2.5").render(m, true, Thinking::On), ConfigError);
  EXPECT_THROW(ChatFormat::named("llama3").render(m, true, Thinking::On), ConfigError);
  EXPECT_THROW(ChatFormat::named("deepseek-r1").render(m, true, Thinking::Off), ConfigError);
  EXPECT_NO_THROW(ChatFormat::named("qwen2.5").render(m, true, Thinking::Off));
  EXPECT_NO_THROW(ChatFormat::named("qwen2.5").render(m, true, Thinking::Auto));
  EXPECT_EQ(parse_thinking_setting(""), Thinking::Auto);
  EXPECT_EQ(parse_thinking_setting("off"), Thinking::Off);
  EXPECT_THROW(parse_thinking_setting("maybe"), UsageError);
}

TEST(ChatFormat, SystemPromptIsALeadingSystemMessage) {
  const FixtureTemplate smol = jinja_templates(jinja_fixture()).at("smollm2");
  const ChatFormat s = ChatFormat::from_template(smol.text, smol.bos, smol.eos);
  ChatOptions o;
  // Without one, the template's own default system text is the template's business.
  EXPECT_NE(s.render({{"user", "Hi"}}, o).find("You are a helpful AI assistant named SmolLM"),
            std::string::npos);
  o.system_prompt = "Be terse.";
  EXPECT_EQ(s.render({{"user", "Hi"}}, o),
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  EXPECT_EQ(s.render({{"user", "Hi"}}, o), s.render({{"system", "Be terse."}, {"user", "Hi"}}));
  EXPECT_THROW(s.render({{"system", "x"}, {"user", "Hi"}}, o), UsageError);
  // The hand-written formats too.
  EXPECT_EQ(ChatFormat::named("qwen2.5").render({{"user", "Hi"}}, o),
            "<|im_start|>system\nBe terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
}

TEST(ChatFormat, DateIsReproducible) {
  const ChatFormat f =
      ChatFormat::from_template("{{ date_string }}|{{ strftime_now('%Y-%m-%d %A %d %b %Y') }}");
  ChatOptions o;
  EXPECT_EQ(f.render({{"user", "x"}}, o), "26 Jul 2024|2024-07-26 Friday 26 Jul 2024");
  o.date_string = "2025-01-01";
  EXPECT_EQ(f.render({{"user", "x"}}, o), "2025-01-01|2025-01-01 Wednesday 01 Jan 2025");
  o.date_string = "yesterday";
  EXPECT_THROW(f.render({{"user", "x"}}, o), ConfigError);
  // Llama-3.2's template reads the date through strftime_now.
  if (const Tokenizer* t = fixture_tokenizer("llama3_2")) {
    const ChatFormat l = ChatFormat::for_tokenizer(*t);
    o.date_string = "01 Jan 2025";
    EXPECT_NE(l.render({{"user", "Hi"}}, o).find("Today Date: 01 Jan 2025\n"), std::string::npos);
  }
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

TEST(ChatFormat, BadMessages) {
  EXPECT_THROW(ChatFormat::named("qwen3").render({}), UsageError);
  EXPECT_THROW(ChatFormat::named("qwen3").render({{"narrator", "x"}}), UsageError);
}

TEST(ChatFormat, LoadReadsChatTemplateJinja) {
  // transformers 5 saves the template as chat_template.jinja beside tokenizer_config.json; the
  // file takes priority over a template in the config, as in transformers.
  toktest::TempDir dir;
  std::filesystem::copy_file(tok_fixtures() / "qwen3/tokenizer.json", dir / "tokenizer.json");
  json cfg = load_json(tok_fixtures() / "qwen3/tokenizer_config.json");
  ASSERT_TRUE(cfg.contains("chat_template"));
  toktest::write_text(dir / "tokenizer_config.json", cfg.dump());
  const std::string tmpl = "{% for m in messages %}[{{ m.content }}]{% endfor %}";
  toktest::write_text(dir / "chat_template.jinja", tmpl);
  const Tokenizer tok = Tokenizer::load(dir.path());
  EXPECT_EQ(tok.chat_template(), tmpl);
  EXPECT_EQ(ChatFormat::for_tokenizer(tok).render({{"user", "a"}, {"assistant", "b"}}), "[a][b]");
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
