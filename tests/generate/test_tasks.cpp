// Prompt builders: RESP's calibration prompt (one user turn, thinking on, generation prompt),
// MathQA's user text, the GSM8K 8-shot chain of thought, and the fixture tokenizer.
#include <gtest/gtest.h>

#include "core/error.h"
#include "generate/answer_extraction.h"
#include "generate/tasks.h"
#include "test_util.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

using namespace resp;
using namespace resp::test;

TEST(Tasks, ParseTask) {
  EXPECT_EQ(parse_task("gsm8k"), Task::Gsm8k);
  EXPECT_EQ(parse_task("MathQA"), Task::MathQA);
  try {
    parse_task("math500");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown task 'math500'"), std::string::npos);
  }
}

TEST(Tasks, UserTextAndGold) {
  const nlohmann::json g = {{"question", "How many?"}, {"answer", "2+2=4\n#### 4"}};
  EXPECT_EQ(task_user_text(Task::Gsm8k, g), "How many?");
  EXPECT_EQ(task_gold(Task::Gsm8k, g), "4");
  const nlohmann::json m = {{"Problem", "what is 1 + 1 ?"},
                            {"options", "a ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5"},
                            {"correct", "B"}};
  EXPECT_EQ(task_user_text(Task::MathQA, m),
            "Question: what is 1 + 1 ?\nOptions: a ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5\nAnswer:");
  EXPECT_EQ(task_gold(Task::MathQA, m), "b");
  EXPECT_THROW(task_user_text(Task::Gsm8k, nlohmann::json{{"q", "x"}}), UsageError);
  EXPECT_THROW(task_user_text(Task::Gsm8k, nlohmann::json{{"question", "  "}}), UsageError);
  EXPECT_THROW(task_user_text(Task::MathQA, nlohmann::json{{"Problem", "x"}}), UsageError);
  EXPECT_THROW(task_gold(Task::Gsm8k, nlohmann::json{{"answer", "no final"}}), UsageError);
  EXPECT_THROW(task_gold(Task::MathQA, nlohmann::json{{"correct", "f"}}), UsageError);
}

TEST(Tasks, Gsm8kEightShotChainOfThought) {
  const auto& ex = gsm8k_cot_exemplars();
  ASSERT_EQ(ex.size(), 8u);
  const int want[] = {6, 5, 39, 8, 9, 29, 33, 8};  // Wei et al. (2022), Table 20
  for (size_t i = 0; i < ex.size(); ++i) {
    EXPECT_EQ(gsm8k_strict(ex[i].answer), std::to_string(want[i])) << ex[i].answer;
    const std::string a = ex[i].answer, end = "The answer is " + std::to_string(want[i]) + ".";
    EXPECT_EQ(a.substr(a.size() - end.size()), end);
  }
  const std::string t = gsm8k_fewshot_text("Natalia sold clips?", 8);
  EXPECT_EQ(t.rfind("Q: There are 15 trees in the grove.", 0), 0u);
  EXPECT_NE(t.find("The answer is 6.\n\nQ: If there are 3 cars"), std::string::npos);
  const std::string tail = "The answer is 8.\n\nQ: Natalia sold clips?\nA:";
  EXPECT_EQ(t.substr(t.size() - tail.size()), tail);
  size_t qs = 0;
  for (size_t p = t.find("Q: "); p != std::string::npos; p = t.find("Q: ", p + 1)) ++qs;
  EXPECT_EQ(qs, 9u);
  EXPECT_EQ(gsm8k_fewshot_text("x", 0), "Q: x\nA:");
  EXPECT_THROW(gsm8k_fewshot_text("x", 9), UsageError);
}

TEST(Tasks, CalibrationPromptIsOneThinkingUserTurn) {
  const ChatFormat qwen3 = ChatFormat::named("qwen3");
  const nlohmann::json g = {{"question", "What is 2+2?"}, {"answer", "#### 4"}};
  // Qwen3 with enable_thinking: the generation prompt is left open for the model's <think>.
  EXPECT_EQ(calibration_prompt(Task::Gsm8k, g, qwen3),
            "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(
      calibration_prompt(Task::Gsm8k, g, qwen3, Thinking::Off),
      "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  const nlohmann::json m = {{"Problem", "p ?"}, {"options", "a ) 1 , b ) 2"}, {"correct", "a"}};
  EXPECT_EQ(calibration_prompt(Task::MathQA, m, qwen3),
            "<|im_start|>user\nQuestion: p ?\nOptions: a ) 1 , b ) 2\nAnswer:<|im_end|>\n"
            "<|im_start|>assistant\n");
  // Evaluation prompt with --no-fewshot-as-multiturn: the 8-shot text as one user turn.
  EvalPromptOptions o;
  o.chat = &qwen3;
  o.fewshot_as_multiturn = false;
  const std::string e = eval_prompt(o, g);
  EXPECT_EQ(e, qwen3.render({{"user", gsm8k_fewshot_text("What is 2+2?", 8)}}));
  EXPECT_EQ(e.rfind("<|im_start|>user\nQ: There are 15 trees", 0), 0u);
  EXPECT_NE(e.find("Q: What is 2+2?\nA:<|im_end|>\n<|im_start|>assistant\n"), std::string::npos);
  EXPECT_EQ(e.find("<|im_start|>assistant\nThere"), std::string::npos);  // no assistant turns
  o.chat = nullptr;
  o.shots = 0;
  EXPECT_EQ(eval_prompt(o, g), "What is 2+2?");
  o.task = Task::MathQA;
  o.shots = 2;
  EXPECT_THROW(eval_prompt(o, m), UsageError);
}

TEST(Tasks, FixtureTokenizerIsQwen3ByteLevel) {
  const Tokenizer tok = Tokenizer::load(fixture_models() / "qwen3-tiny-demo");
  EXPECT_EQ(tok.vocab_size(), 263);
  EXPECT_EQ(tok.encode("hi"), (std::vector<int32_t>{104, 105}));
  EXPECT_EQ(tok.encode("<think>é</think>"), (std::vector<int32_t>{259, 195, 169, 260}));
  EXPECT_EQ(tok.token_id("<|im_end|>"), 257);
  EXPECT_EQ(tok.token_id("<|endoftext|>"), 256);
  EXPECT_EQ(tok.eos_ids(), std::vector<int32_t>{257});
  EXPECT_EQ(tok.decode(std::vector<int32_t>{72, 105, 257}, true), "Hi");
  const ChatFormat f = ChatFormat::for_tokenizer(tok);
  EXPECT_EQ(f.family(), ChatFamily::Qwen3);
  const auto ids = tok.encode(f.render({{"user", "2+2?"}}));
  EXPECT_EQ(ids.front(), 258);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 257), 1);
}

// lm-evaluation-harness with apply_chat_template and fewshot_as_multiturn: per exemplar a user
// turn doc_to_text ("Q: {question}\nA:") and an assistant turn with the target (no leading
// target delimiter, no trailing fewshot delimiter), then the question as the last user turn.
TEST(Tasks, Gsm8kFewshotAsMultiturn) {
  const auto& ex = gsm8k_cot_exemplars();
  const auto m = gsm8k_fewshot_messages("What is 2+2?", 8, true);
  ASSERT_EQ(m.size(), 17u);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_EQ(m[2 * i].role, "user");
    EXPECT_EQ(m[2 * i].content, std::string("Q: ") + ex[i].question + "\nA:");
    EXPECT_EQ(m[2 * i + 1].role, "assistant");
    EXPECT_EQ(m[2 * i + 1].content, ex[i].answer);
  }
  EXPECT_EQ(m[0].content,
            "Q: There are 15 trees in the grove. Grove workers will plant trees in the grove "
            "today. After they are done, there will be 21 trees. How many trees did the grove "
            "workers plant today?\nA:");
  EXPECT_EQ(m[1].content,
            "There are 15 trees originally. Then there were 21 trees after some more were "
            "planted. So there must have been 21 - 15 = 6. The answer is 6.");
  EXPECT_EQ(m[16].role, "user");
  EXPECT_EQ(m[16].content, "Q: What is 2+2?\nA:");
  // Not multiturn: one user turn with the plain few-shot text.
  const auto one = gsm8k_fewshot_messages("What is 2+2?", 2, false);
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].content, gsm8k_fewshot_text("What is 2+2?", 2));
  EXPECT_EQ(gsm8k_fewshot_messages("x", 0, true).size(), 1u);
  EXPECT_THROW(gsm8k_fewshot_messages("x", 9, true), UsageError);

  // Rendered through Qwen3's template (history assistant turns carry no thinking block).
  const ChatFormat qwen3 = ChatFormat::named("qwen3");
  const nlohmann::json g = {{"question", "What is 2+2?"}, {"answer", "#### 4"}};
  EvalPromptOptions o;
  o.chat = &qwen3;
  o.shots = 2;
  EXPECT_TRUE(o.fewshot_as_multiturn);  // the default
  EXPECT_EQ(eval_prompt(o, g),
            "<|im_start|>user\nQ: There are 15 trees in the grove. Grove workers will plant "
            "trees in the grove today. After they are done, there will be 21 trees. How many "
            "trees did the grove workers plant today?\nA:<|im_end|>\n"
            "<|im_start|>assistant\nThere are 15 trees originally. Then there were 21 trees "
            "after some more were planted. So there must have been 21 - 15 = 6. The answer is "
            "6.<|im_end|>\n"
            "<|im_start|>user\nQ: If there are 3 cars in the parking lot and 2 more cars "
            "arrive, how many cars are in the parking lot?\nA:<|im_end|>\n"
            "<|im_start|>assistant\nThere are originally 3 cars. 2 more cars arrive. 3 + 2 = 5. "
            "The answer is 5.<|im_end|>\n"
            "<|im_start|>user\nQ: What is 2+2?\nA:<|im_end|>\n<|im_start|>assistant\n");
  o.thinking = Thinking::Off;
  EXPECT_EQ(eval_prompt(o, g),
            qwen3.render(gsm8k_fewshot_messages("What is 2+2?", 2, true), true, Thinking::Off));
  // Plain text and 0-shot prompts do not depend on the setting.
  o.chat = nullptr;
  EXPECT_EQ(eval_prompt(o, g), gsm8k_fewshot_text("What is 2+2?", 2));
  o.chat = &qwen3;
  o.thinking = Thinking::Default;
  o.shots = 0;
  const std::string zero = eval_prompt(o, g);
  o.fewshot_as_multiturn = false;
  EXPECT_EQ(eval_prompt(o, g), zero);
}
