// Answer extraction: every GSM8K train gold answer gives back its "####" value, MathQA gold
// rationales that state their letter give `correct`, and tricky model outputs.
#include <gtest/gtest.h>

#include <regex>

#include "generate/answer_extraction.h"
#include "generate/evaluator.h"
#include "generate/tasks.h"
#include "test_util.h"

using namespace resp;
using namespace resp::test;

namespace {

std::vector<nlohmann::json> read_rows(const std::string& rel) {
  const auto text = read_text(source_dir() / rel);
  EXPECT_FALSE(text.empty()) << rel << " is missing";
  return parse_jsonl(text);
}

std::string opt(const std::optional<std::string>& v) {
  return v ? *v : "<none>";
}

}  // namespace

TEST(AnswerExtraction, EveryGsm8kTrainGoldAnswer) {
  const auto rows = read_rows("data/gsm8k/train.jsonl");
  ASSERT_EQ(rows.size(), 7473u);
  size_t ok_strict = 0, ok_flexible = 0, with_comma = 0, negative = 0;
  for (const auto& r : rows) {
    const std::string answer = r["answer"].get<std::string>();
    // The expected value, computed independently: text after "####", commas removed.
    std::string want = answer.substr(answer.rfind("####") + 4);
    want.erase(0, want.find_first_not_of(' '));
    with_comma += want.find(',') != std::string::npos;
    want.erase(std::remove(want.begin(), want.end(), ','), want.end());
    negative += want[0] == '-';
    const auto gold = gsm8k_gold(answer);
    ASSERT_TRUE(gold) << answer;
    ASSERT_EQ(*gold, want) << answer;
    ok_strict += opt(gsm8k_strict(answer)) == want;
    ok_flexible += opt(gsm8k_flexible(answer)) == want;
    if (opt(gsm8k_flexible(answer)) != want)
      ADD_FAILURE() << "flexible got " << opt(gsm8k_flexible(answer)) << " for: " << answer;
  }
  EXPECT_EQ(ok_strict, rows.size());
  EXPECT_EQ(ok_flexible, rows.size());
  EXPECT_GT(with_comma, 50u);  // the file exercises thousands separators and negatives
  EXPECT_GT(negative, 0u);
}

TEST(AnswerExtraction, MathqaGoldRationales) {
  const auto rows = read_rows("data/mathqa/test-rows-0-799.jsonl");
  ASSERT_EQ(rows.size(), 800u);
  // "States it": an explicit answer keyword right before the letter (independent regex).
  const std::regex states(
      R"(\b(?:answer|ans|option|choice)\s*(?:is|:|-|=)?\s*:?\s*(?:option\s*)?\(?\s*([a-e])\s*\)?\s*\.?\s*"?$)");
  // The same statement anywhere in the text (not only at its end).
  const std::regex states_anywhere(
      R"(\b(?:answer|ans|option|choice)\s*(?:is|:|-|=)?\s*:?\s*(?:option\s*)?\(?\s*([a-e])\s*\)?\s*\.?\s*"?(?:$|\s))");
  size_t stated = 0, agree = 0, picked = 0;
  for (const auto& r : rows) {
    const std::string rat = r["Rationale"].get<std::string>();
    std::string low = rat;
    for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::smatch m;
    if (!std::regex_search(low, m, states)) continue;
    ++stated;
    const std::string correct = r["correct"].get<std::string>();
    if (m.str(1) != correct) continue;  // the rationale contradicts `correct` (data noise)
    ++agree;
    const auto got = mathqa_letter(rat);
    picked += got && std::string(1, *got) == correct;
    if (got && std::string(1, *got) == correct) continue;
    ADD_FAILURE() << "got " << (got ? std::string(1, *got) : "<none>") << " want " << correct
                  << " in: " << rat;
  }
  EXPECT_EQ(picked, agree);
  EXPECT_GE(stated, 640u) << "most rationales end by stating the letter";
  EXPECT_EQ(agree, stated);  // in this file no rationale contradicts `correct`
}

TEST(AnswerExtraction, MathqaOptionsBothFormats) {
  const auto a = parse_mathqa_options(
      "a ) 38 , b ) 27.675 , c ) 30 , d ) data inadequate , e ) none of these");
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a[0].letter, 'a');
  EXPECT_EQ(a[0].value, "38");
  EXPECT_EQ(a[1].value, "27.675");
  EXPECT_EQ(a[3].value, "data inadequate");
  EXPECT_EQ(a[4].letter, 'e');
  EXPECT_EQ(a[4].value, "none of these");
  const auto b =
      parse_mathqa_options("['a ) 2 : 3', 'b ) 4 : 5', 'c ) 16 : 9', 'd ) 7 : 9', 'e ) 8 : 5']");
  ASSERT_EQ(b.size(), 5u);
  EXPECT_EQ(b[2].value, "16 : 9");
  EXPECT_EQ(b[4].value, "8 : 5");
  const auto c = parse_mathqa_options("['a ) a ) 4 inches', 'b ) b ) 6 inches']");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].value, "4 inches");
  const auto d = parse_mathqa_options("a ) rs . 1,200 , b ) rs . 1,500 , c ) 2 , d ) 3 , e ) 4");
  ASSERT_EQ(d.size(), 5u);
  EXPECT_EQ(d[0].value, "rs . 1,200");
  EXPECT_EQ(d[1].value, "rs . 1,500");
  // Every row of the stored file parses into five options a..e.
  for (const auto& r : read_rows("data/mathqa/test-rows-0-799.jsonl")) {
    const auto o = parse_mathqa_options(r["options"].get<std::string>());
    ASSERT_EQ(o.size(), 5u) << r["options"];
    for (const auto& x : o) EXPECT_FALSE(x.value.empty()) << r["options"];
  }
}

TEST(AnswerExtraction, Gsm8kTrickyOutputs) {
  struct Case {
    const char* text;
    const char* strict;    // "" = none
    const char* flexible;  // "" = none
  };
  const Case cases[] = {
      {"She pays $1,200 in total. The answer is $1,200.", "1200", "1200"},
      {"The answer is 18 dollars.", "18", "18"},
      {"The temperature drops to -4 degrees. The answer is -4.", "-4", "-4"},
      {"Each costs 2.50, so 3 cost 7.50. The answer is 7.5", "7.5", "7.5"},
      {"7 - 3 = 4 apples remain", "", "4"},
      {"He ran 5km then 10km, 15km in total.", "", "15"},
      {"The answer is 12. Then 5 more, so the answer is 17.", "17", "17"},
      {"No idea.", "", ""},
      {"", "", ""},
      {"**The answer is: 42**", "42", "42"},
      {"THE ANSWER IS 9", "9", "9"},
      {"Final: \\boxed{1,000} (check: 10 x 100)", "", "1000"},
      {"So $x = \\boxed{-3}$ and y = 2.", "", "-3"},
      {"#### 56", "56", "56"},
      {"The answer is 0.50.", "0.5", "0.5"},
      {"1, 2, 3 and 1,2345", "", "2345"},
      {"The answer is unknown, but 3 + 4 = 7", "", "7"},
      {"It is 3.", "", "3"},
      {"costs \xE2\x88\x92"
       "5 dollars",
       "", "-5"},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(opt(gsm8k_strict(c.text)), *c.strict ? c.strict : "<none>") << c.text;
    EXPECT_EQ(opt(gsm8k_flexible(c.text)), *c.flexible ? c.flexible : "<none>") << c.text;
  }
  EXPECT_EQ(normalize_number("$1,200.50"), "1200.5");
  EXPECT_EQ(normalize_number("007"), "7");
  EXPECT_EQ(normalize_number("-0.0"), "0");
  EXPECT_EQ(normalize_number("+3"), "3");
  EXPECT_EQ(normalize_number("1.2.3"), std::nullopt);
  EXPECT_EQ(normalize_number("abc"), std::nullopt);
  const auto nums = find_numbers("a -3 b 4-5 c $6 d .5 e 1,000,000.25");
  std::vector<std::string> vals;
  for (const auto& n : nums) vals.push_back(n.value);
  EXPECT_EQ(vals, (std::vector<std::string>{"-3", "4", "5", "6", "0.5", "1000000.25"}));
}

TEST(AnswerExtraction, ThinkingRegion) {
  const std::string out = "<think>Maybe 5? The answer is 5.</think>\n\nThe answer is 7.";
  EXPECT_EQ(answer_region(out, true), "\n\nThe answer is 7.");
  EXPECT_EQ(opt(gsm8k_strict(answer_region(out, true))), "7");
  // Truncated while thinking: strict has no answer region; flexible reads the whole output.
  const std::string cut = "<think>Maybe 5? The answer is 5. Let me check 6";
  EXPECT_EQ(answer_region(cut, true), "");
  EXPECT_EQ(gsm8k_strict(answer_region(cut, true)), std::nullopt);
  EXPECT_EQ(flexible_region(cut), cut);
  EXPECT_EQ(opt(gsm8k_flexible(flexible_region(cut))), "6");
  EXPECT_EQ(flexible_region(out), "\n\nThe answer is 7.");
  // Without thinking the whole output counts.
  EXPECT_EQ(opt(gsm8k_flexible(answer_region(cut, false))), "6");
}

TEST(AnswerExtraction, MathqaTrickyOutputs) {
  const auto opts =
      parse_mathqa_options("a ) 38 , b ) 27.675 , c ) 30 , d ) data inadequate , e ) none");
  struct Case {
    const char* text;
    char letter;    // 0 = none
    char flexible;  // 0 = none
  };
  const Case cases[] = {
      {"The answer is (c).", 'c', 'c'},
      {"**Answer: b) 27.675**", 'b', 'b'},
      {"Therefore the correct option is D.", 'd', 'd'},
      {"$\\boxed{E}$", 'e', 'e'},
      {"\\boxed{\\text{a}}", 'a', 'a'},
      {"ans - b", 'b', 'b'},
      {"so e is correct", 'e', 'e'},
      {"The answer is an integer: 30", 0, 'c'},
      {"The profit is 27.675 percent.", 0, 'b'},
      {"We cannot tell; the data inadequate to decide.", 0, 'd'},
      {"I think it is 31.", 0, 0},
      {"Answer: a. Wait, no. The answer is b.", 'b', 'b'},  // the last statement wins
      {"", 0, 0},
  };
  for (const auto& c : cases) {
    const auto l = mathqa_letter(c.text);
    EXPECT_EQ(l ? *l : 0, c.letter) << c.text;
    const auto f = mathqa_flexible(c.text, opts);
    EXPECT_EQ(f ? *f : 0, c.flexible) << c.text;
  }
}

TEST(Evaluator, ScoresAndSummarises) {
  Evaluator ev(Task::Gsm8k, /*thinking=*/true);
  const nlohmann::json row = {{"question", "q"}, {"answer", "work\n#### 1,200"}};
  GenerationResult r;
  r.tokens = {1, 2, 3};
  r.finish = FinishReason::Eos;
  auto item = ev.add(0, "x", row, "P", "<think>hmm 5</think>The answer is $1,200.", r);
  EXPECT_EQ(item["gold"], "1200");
  EXPECT_EQ(item["extracted"]["strict"], "1200");
  EXPECT_TRUE(item["correct"]["strict"].get<bool>());
  EXPECT_TRUE(item["correct"]["flexible"].get<bool>());
  EXPECT_EQ(item["finish_reason"], "eos");
  r.tokens.assign(10, 1);
  r.finish = FinishReason::Length;
  item = ev.add(1, 2, row, "P", "<think>1200 12", r);  // truncated while thinking
  EXPECT_TRUE(item["extracted"]["strict"].is_null());
  EXPECT_EQ(item["extracted"]["flexible"], "12");  // the last number of the thoughts
  EXPECT_FALSE(item["correct"]["flexible"].get<bool>());
  r.tokens.assign(5, 1);
  r.finish = FinishReason::Eos;
  ev.add(2, 3, row, "P", "</think>so 1200 apples", r);
  const auto s = ev.summary();
  EXPECT_EQ(s["n"], 3);
  EXPECT_DOUBLE_EQ(s["accuracy"]["strict"].get<double>(), 1.0 / 3);
  EXPECT_DOUBLE_EQ(s["accuracy"]["flexible"].get<double>(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(s["generated_tokens"]["mean"].get<double>(), 6.0);
  EXPECT_DOUBLE_EQ(s["generated_tokens"]["p95"].get<double>(), 10.0);
  EXPECT_DOUBLE_EQ(s["truncation_rate"].get<double>(), 1.0 / 3);
  EXPECT_EQ(s["finish_reasons"]["length"], 1);
  EXPECT_EQ(Evaluator::percentile({5, 1, 9, 3}, 50), 3.0);
  EXPECT_EQ(Evaluator::percentile({}, 95), 0.0);

  Evaluator mq(Task::MathQA, false);
  const nlohmann::json mrow = {
      {"Problem", "p"}, {"options", "a ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5"}, {"correct", "c"}};
  const auto sc = mq.score(mrow, "the sum is 3");
  EXPECT_FALSE(sc.strict);
  EXPECT_EQ(opt(sc.flexible), "c");
  EXPECT_TRUE(sc.correct_flexible);
  EXPECT_TRUE(mq.score(mrow, "Answer: (c)").correct_strict);
}

// Fault (a): an output truncated inside <think> (no "</think>") keeps its last number for the
// flexible reading, as lm-evaluation-harness's flexible-extract does; strict finds nothing.
TEST(AnswerExtractionFaults, TruncatedThinkingFlexibleTakesLastNumber) {
  Evaluator ev(Task::Gsm8k, /*thinking=*/true);
  const nlohmann::json row = {{"question", "q"}, {"answer", "#### 8"}};
  const auto s = ev.score(row, "<think>3 apples, then 5 more, so 3 + 5 = 8");
  EXPECT_FALSE(s.strict);
  EXPECT_EQ(opt(s.flexible), "8");
  EXPECT_TRUE(s.correct_flexible);
  EXPECT_FALSE(s.correct_strict);
  // A closed thinking block still hides its numbers from both readings.
  const auto c = ev.score(row, "<think>so 8</think>I do not know.");
  EXPECT_FALSE(c.strict);
  EXPECT_FALSE(c.flexible);
  // MathQA: the same region rule (the option whose value is the last number).
  Evaluator mq(Task::MathQA, true);
  const nlohmann::json mrow = {
      {"Problem", "p"}, {"options", "a ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5"}, {"correct", "d"}};
  const auto m = mq.score(mrow, "<think>two plus two is 4");
  EXPECT_FALSE(m.strict);
  EXPECT_EQ(opt(m.flexible), "d");
}

// Fault (b): "answer" used as a verb followed by the article "a" is not option a.
TEST(AnswerExtractionFaults, MathqaProseIsNotALetter) {
  const auto opts = parse_mathqa_options("a ) 38 , b ) 27 , c ) 30 , d ) 12 , e ) 9");
  EXPECT_EQ(mathqa_letter("To answer a question like this, add 10 and 20 to get 30."),
            std::nullopt);
  EXPECT_EQ(mathqa_flexible("To answer a question like this, add 10 and 20 to get 30.", opts), 'c');
  EXPECT_EQ(mathqa_letter("The answer is a multiple of 3, namely 27."), std::nullopt);
  EXPECT_EQ(mathqa_letter("The answer is an integer."), std::nullopt);
  EXPECT_EQ(mathqa_letter("The answer is e.g. 38"), std::nullopt);
  EXPECT_EQ(mathqa_letter("Answer (a) because it is 38"), 'a');  // a label, not an article
  // A bare article at the start of a sentence is not a letter either.
  EXPECT_EQ(mathqa_letter("A train runs at 30 km/h."), std::nullopt);
}

// Fault (c): "Option d is a common mistake" states nothing; of real statements the last wins.
TEST(AnswerExtractionFaults, MathqaLastStatementWinsAndMentionsAreNotStatements) {
  EXPECT_EQ(mathqa_letter("The answer is b. Option d is a common mistake."), 'b');
  EXPECT_EQ(mathqa_letter("Option d is a common mistake. The answer is b."), 'b');
  EXPECT_EQ(mathqa_letter("Option (d) is a common mistake. The answer is (b)."), 'b');
  EXPECT_EQ(mathqa_letter("The answer is (c). The answer is (e)."), 'e');
  EXPECT_EQ(mathqa_letter("The answer is b. Option d is tempting but wrong."), 'b');
  EXPECT_EQ(mathqa_letter("Option d is correct, not b."), 'd');
  EXPECT_EQ(mathqa_letter("so the total is 30 , hence option d"), 'd');
  EXPECT_EQ(mathqa_letter("answer c"), 'c');
}

// Fault (d): a bare letter or parenthesised letter as the whole answer.
TEST(AnswerExtractionFaults, MathqaBareLetter) {
  for (const char* t : {"A", "a", " (A) ", "(a).", "A.", "A)", "\n**A**\n", "[A]"})
    EXPECT_EQ(mathqa_letter(t), 'a') << t;
  EXPECT_EQ(mathqa_letter("(C)"), 'c');
  EXPECT_EQ(mathqa_letter("E"), 'e');
  for (const char* t : {"F", "(A", "AB", "A bit.", "(A) or (B)", "."})
    EXPECT_EQ(mathqa_letter(t), std::nullopt) << t;
  Evaluator mq(Task::MathQA, /*thinking=*/true);
  const nlohmann::json mrow = {
      {"Problem", "p"}, {"options", "a ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5"}, {"correct", "a"}};
  const auto s = mq.score(mrow, "<think>it is 1</think>\n\n(A)");
  EXPECT_EQ(opt(s.strict), "a");
  EXPECT_TRUE(s.correct_strict);
}

// Statement forms without a connector, as MathQA's own rationales write them, and brackets that
// must close to make a label.
TEST(AnswerExtractionFaults, MathqaStatementForms) {
  EXPECT_EQ(mathqa_letter("x = 5 % ans ; c"), 'c');
  EXPECT_EQ(mathqa_letter("this is the correct answer . ( b )"), 'b');
  EXPECT_EQ(mathqa_letter("so this must be the answer . d"), 'd');
  EXPECT_EQ(mathqa_letter("x = 7 ans . e ) 7"), 'e');
  EXPECT_EQ(mathqa_letter("total hrs = 51 answer e 51"), 'e');
  EXPECT_EQ(mathqa_letter("option ' c '"), 'c');
  EXPECT_EQ(mathqa_letter("the answer is (a good guess) 38"), std::nullopt);
  EXPECT_EQ(mathqa_letter("answer e 51 hours later"), std::nullopt);
  EXPECT_EQ(mathqa_letter("The answer. A train covers 30 km."), std::nullopt);
}
