// `resp eval --extract lm-eval`: lm-evaluation-harness's gsm8k_cot rules (gsm8k-cot.yaml), one
// rule per test, with expectations written by hand from Python's `re` semantics (and checked
// against Python 3 re.findall / re.sub when they were written).
#include <gtest/gtest.h>

#include "core/error.h"
#include "generate/answer_extraction.h"
#include "generate/evaluator.h"

using namespace resp;

// strict-match: `The answer is (\-?[0-9\.\,]+).`, the first match (take_first of group_select 0).
TEST(LmEvalExtraction, StrictTakesTheFirstMatch) {
  EXPECT_EQ(lm_eval_strict("Some work. The answer is 18."), "18");
  // First, not last; the greedy group keeps the "." because the pattern's `.` takes the space.
  EXPECT_EQ(lm_eval_strict("The answer is 12. Then the answer is 17."), "12.");
  EXPECT_EQ(lm_eval_strict("The answer is -3 apples"), "-3");
  EXPECT_EQ(lm_eval_strict("The answer is 1,234.5 dollars"), "1,234.5");
  // A failed occurrence does not stop the search.
  EXPECT_EQ(lm_eval_strict("The answer is x. The answer is 7!"), "7");
}

TEST(LmEvalExtraction, StrictPatternQuirks) {
  // The trailing `.` needs one more character that is not "\n": at the end of the text or of a
  // line the group gives its last character back.
  EXPECT_EQ(lm_eval_strict("The answer is 42"), "4");
  EXPECT_EQ(lm_eval_strict("The answer is 42\nmore"), "4");
  EXPECT_EQ(lm_eval_strict("The answer is -12"), "-1");
  EXPECT_EQ(lm_eval_strict("The answer is 5"), "[invalid]");
  EXPECT_EQ(lm_eval_strict("The answer is -5\n"), "[invalid]");
  // Python's `.` matches "\r" (only "\n" is excluded).
  EXPECT_EQ(lm_eval_strict("The answer is 1.5.\r\n"), "1.5.");
  // Case-sensitive, exactly one space, no "$" in the group.
  EXPECT_EQ(lm_eval_strict("the answer is 18."), "[invalid]");
  EXPECT_EQ(lm_eval_strict("The answer is  7."), "[invalid]");
  EXPECT_EQ(lm_eval_strict("The answer is $18."), "[invalid]");
  EXPECT_EQ(lm_eval_strict("The answer is -"), "[invalid]");
  EXPECT_EQ(lm_eval_strict(""), "[invalid]");
}

// flexible-extract: `(-?[$0-9.,]{2,})|(-?[0-9]+)`, group_select -1 = the last match.
TEST(LmEvalExtraction, FlexibleTakesTheLastMatch) {
  EXPECT_EQ(lm_eval_flexible("3 + 4 = 7 apples"), "7");
  EXPECT_EQ(lm_eval_flexible("costs $1,200.50 total"), "$1,200.50");
  EXPECT_EQ(lm_eval_flexible("Total: 5. Done"), "5.");
  EXPECT_EQ(lm_eval_flexible("The answer is 18.\n\n"), "18.");
  EXPECT_EQ(lm_eval_flexible("It is 7... maybe"), "7...");
  EXPECT_EQ(lm_eval_flexible("-$5"), "-$5");
  EXPECT_EQ(lm_eval_flexible("no digits here"), "[invalid]");
  EXPECT_EQ(lm_eval_flexible("-."), "[invalid]");
  EXPECT_EQ(lm_eval_flexible(""), "[invalid]");
}

TEST(LmEvalExtraction, FlexibleTupleGroupChoice) {
  // findall returns (group1, group2) tuples; the non-empty one is taken.
  EXPECT_EQ(lm_eval_flexible("10 then 3"), "3");   // last match from the 2nd alternative
  EXPECT_EQ(lm_eval_flexible("3 then 10"), "10");  // last match from the 1st alternative
  EXPECT_EQ(lm_eval_flexible("5"), "5");           // one character: only the 2nd can match
  EXPECT_EQ(lm_eval_flexible("$5"), "$5");
  EXPECT_EQ(lm_eval_flexible("x = -5"), "-5");  // "-5": 1st needs 2 after the minus; 2nd does
  EXPECT_EQ(lm_eval_flexible("a - 5"), "5");    // a minus not touching the digits is dropped
  EXPECT_EQ(lm_eval_flexible("a-b-3"), "-3");
  EXPECT_EQ(lm_eval_flexible("items 1, 2"), "2");  // "1," then "2"
}

// generation_kwargs until: ["Q:", "</s>", "<|im_end|>"], each cut at its first occurrence.
TEST(LmEvalExtraction, UntilCut) {
  EXPECT_EQ(lm_eval_gsm8k_until(), (std::vector<std::string>{"Q:", "</s>", "<|im_end|>"}));
  EXPECT_EQ(lm_eval_until_cut("The answer is 5.\n\nQ: next Q: again", lm_eval_gsm8k_until()),
            "The answer is 5.\n\n");
  EXPECT_EQ(lm_eval_until_cut("abc</s>Q:def", lm_eval_gsm8k_until()), "abc");
  EXPECT_EQ(lm_eval_until_cut("x <|im_end|> y Q: z", lm_eval_gsm8k_until()), "x ");
  EXPECT_EQ(lm_eval_until_cut("no stop", lm_eval_gsm8k_until()), "no stop");
  EXPECT_EQ(lm_eval_until_cut("a|b", {"", "|"}), "a");  // empty terms are skipped
  // The response the filters see: without thinking the cut only.
  EXPECT_EQ(lm_eval_response("<think>x</think> The answer is 3.\nQ: 9", false),
            "<think>x</think> The answer is 3.\n");
  // With thinking (think_end_token "</think>"): after the last "</think>", lstripped.
  EXPECT_EQ(lm_eval_response("<think>2+2</think>\n\n  The answer is 4.", true), "The answer is 4.");
  // lm-eval stops generating at "Q:" even inside the thoughts: no "</think>" is left, so the
  // whole (cut) text is the response.
  EXPECT_EQ(lm_eval_response("<think>\nQ: hmm</think>\n\nThe answer is 5.", true), "<think>\n");
  // Truncated while thinking: the whole text, and flexible finds its last number.
  const std::string cut = lm_eval_response("<think>3 apples, then 5 more: 8", true);
  EXPECT_EQ(lm_eval_strict(cut), "[invalid]");
  EXPECT_EQ(lm_eval_flexible(cut), "8");
  // str.lstrip() removes Unicode whitespace (U+3000, U+00A0) but not U+200B.
  EXPECT_EQ(lm_eval_response("</think>\xE3\x80\x80\xC2\xA0 7", true), "7");
  EXPECT_EQ(lm_eval_response("</think>\xE2\x80\x8B"
                             "7",
                             true),
            "\xE2\x80\x8B"
            "7");
}

// exact_match: regexes_to_ignore [",", "\$", "(?s).*#### ", "\.$"] in order, then ignore_case.
TEST(LmEvalExtraction, RegexesToIgnore) {
  EXPECT_EQ(lm_eval_normalize("1,200"), "1200");             // ","
  EXPECT_EQ(lm_eval_normalize("$5"), "5");                   // "\$"
  EXPECT_EQ(lm_eval_normalize("work\nmore #### 72"), "72");  // "(?s).*#### " spans lines
  EXPECT_EQ(lm_eval_normalize("a #### b #### 9"), "9");      // greedy: up to the last one
  EXPECT_EQ(lm_eval_normalize("##### 5"), "5");
  EXPECT_EQ(lm_eval_normalize("18."), "18");      // "\.$"
  EXPECT_EQ(lm_eval_normalize("18.\n"), "18\n");  // `$` before a final "\n"
  EXPECT_EQ(lm_eval_normalize("18.."), "18.");    // one match only
  EXPECT_EQ(lm_eval_normalize("5.\n\n"), "5.\n\n");
  EXPECT_EQ(lm_eval_normalize("1.5"), "1.5");
  EXPECT_EQ(lm_eval_normalize("$1,000."), "1000");
  EXPECT_EQ(lm_eval_normalize("7..."), "7..");
  LmEvalExactMatch none;
  none.regexes_to_ignore = false;
  EXPECT_EQ(lm_eval_normalize("$1,000.", none), "$1,000.");
}

TEST(LmEvalExtraction, CaseAndPunctuation) {
  EXPECT_EQ(lm_eval_normalize("[INVALID]"), "[invalid]");  // ignore_case: true
  EXPECT_TRUE(lm_eval_exact_match("ABC", "abc"));
  LmEvalExactMatch cased;
  cased.ignore_case = false;
  EXPECT_FALSE(lm_eval_exact_match("ABC", "abc", cased));
  // ignore_punctuation is false in gsm8k-cot.yaml: the sign and the decimal point count.
  EXPECT_FALSE(lm_eval_exact_match("-5", "5"));
  LmEvalExactMatch punct;
  punct.ignore_punctuation = true;  // string.punctuation removed
  EXPECT_EQ(lm_eval_normalize("-5.0", punct), "50");
  EXPECT_EQ(lm_eval_normalize("a(b)[c]{d}!?@#%^&*_~`|\\/<>=+:;'\"e", punct), "abcde");
  EXPECT_TRUE(lm_eval_exact_match("-5", "5", punct));
}

TEST(LmEvalExtraction, ExactMatchAndInvalid) {
  EXPECT_TRUE(lm_eval_exact_match("18.", "18"));
  EXPECT_TRUE(lm_eval_exact_match("$1,200.", "1,200"));
  EXPECT_FALSE(lm_eval_exact_match("7...", "7"));
  EXPECT_FALSE(lm_eval_exact_match("12.0", "12"));  // no numeric comparison
  EXPECT_FALSE(lm_eval_exact_match("[invalid]", "5"));
  EXPECT_EQ(lm_eval_gsm8k_target("work\n#### 1,200"), "1,200");
  EXPECT_EQ(lm_eval_gsm8k_target("#### 72 \n"), "72");
  EXPECT_EQ(lm_eval_gsm8k_target("no marker "), "no marker");
}

TEST(LmEvalExtraction, EvaluatorScoresLikeLmEval) {
  Evaluator ev(Task::Gsm8k, /*thinking=*/true, Extractor::LmEval);
  const nlohmann::json row = {{"question", "q"}, {"answer", "work\n#### 1,200"}};
  // strict "1,200." and flexible "1,200." both normalise to "1200".
  auto s = ev.score(row, "<think>maybe 7</think>\nThe answer is 1,200.\n\nQ: more 9");
  EXPECT_EQ(s.gold, "1,200");
  EXPECT_EQ(s.strict.value_or("-"), "1,200");
  EXPECT_EQ(s.flexible.value_or("-"), "1,200.");
  EXPECT_TRUE(s.correct_strict);
  EXPECT_TRUE(s.correct_flexible);
  // "the answer is" (lower case): strict finds nothing ("[invalid]" -> nullopt), flexible does.
  s = ev.score(row, "</think>so the answer is 1200");
  EXPECT_FALSE(s.strict);
  EXPECT_FALSE(s.correct_strict);
  EXPECT_TRUE(s.correct_flexible);
  // Truncated while thinking: flexible takes the last number of the whole output.
  s = ev.score(row, "<think>so 1200 then 1,200");
  EXPECT_FALSE(s.strict);
  EXPECT_EQ(s.flexible.value_or("-"), "1,200");
  EXPECT_TRUE(s.correct_flexible);
  // The resp extractor reads the same output differently (strict accepts lower case).
  Evaluator rv(Task::Gsm8k, true, Extractor::Resp);
  EXPECT_TRUE(rv.score(row, "</think>so the answer is 1200").correct_strict);
  EXPECT_THROW(Evaluator(Task::MathQA, true, Extractor::LmEval), UsageError);
  EXPECT_EQ(parse_extractor("lm-eval"), Extractor::LmEval);
  EXPECT_EQ(parse_extractor("resp"), Extractor::Resp);
  EXPECT_THROW(parse_extractor("judge"), UsageError);
}
