// The synthetic word problems: every answer recomputed by an independent reading of the
// question text (not of the generator's steps), every solution equation checked, determinism,
// disjoint splits, and the GSM8K row format that the eval/calibration code reads.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "core/error.h"
#include "generate/answer_extraction.h"
#include "generate/tasks.h"
#include "train/synthetic_math.h"

namespace resp {
namespace {

// Reads the question sentence by sentence and applies what each one says to the stock.
// Returns nullopt for a sentence it cannot read (which fails the test).
std::optional<int64_t> solve_from_text(const std::string& question) {
  static const std::regex start(R"(^(\w+) has (\d+) ([a-z ]+)\.$)");
  static const std::regex buys(R"(^\w+ buys (\d+) more [a-z ]+\.$)");
  static const std::regex finds(R"(^\w+ finds (\d+) [a-z ]+\.$)");
  static const std::regex given(R"(^\w+ gives (?:her|him) (\d+) [a-z ]+\.$)");
  static const std::regex gives(R"(^\w+ gives (\d+) [a-z ]+ to \w+\.$)");
  static const std::regex loses(R"(^\w+ (?:loses|sells) (\d+) [a-z ]+\.$)");
  static const std::regex times(
      R"(^\w+ then gets more [a-z ]+ until \w+ has (\d+) times as many\.$)");
  static const std::regex packs(R"(^\w+ buys (\d+) packs of [a-z ]+ with (\d+) in each pack\.$)");
  static const std::regex half(R"(^\w+ gives half of (?:her|his) [a-z ]+ to \w+\.$)");
  static const std::regex split(
      R"(^\w+ splits (?:her|his) [a-z ]+ into (\d+) equal groups and keeps one group\.$)");
  static const std::regex ask(R"(^How many [a-z ]+ does \w+ have now\?$)");
  // Sentences end in ". " or "? "; none contains another full stop.
  std::vector<std::string> sentences;
  size_t from = 0;
  for (size_t i = 0; i < question.size(); ++i)
    if ((question[i] == '.' || question[i] == '?') &&
        (i + 1 == question.size() || question[i + 1] == ' ')) {
      sentences.push_back(question.substr(from, i + 1 - from));
      from = i + 2;
    }
  if (sentences.size() < 3) return std::nullopt;
  std::smatch m;
  if (!std::regex_match(sentences.front(), m, start)) return std::nullopt;
  int64_t x = std::stoll(m[2]);
  if (!std::regex_match(sentences.back(), ask)) return std::nullopt;
  for (size_t i = 1; i + 1 < sentences.size(); ++i) {
    const std::string& s = sentences[i];
    if (std::regex_match(s, m, buys) || std::regex_match(s, m, finds) ||
        std::regex_match(s, m, given)) {
      x += std::stoll(m[1]);
    } else if (std::regex_match(s, m, gives) || std::regex_match(s, m, loses)) {
      x -= std::stoll(m[1]);
    } else if (std::regex_match(s, m, times)) {
      x *= std::stoll(m[1]);
    } else if (std::regex_match(s, m, packs)) {
      x += std::stoll(m[1]) * std::stoll(m[2]);
    } else if (std::regex_match(s, half)) {
      if (x % 2) return std::nullopt;
      x /= 2;
    } else if (std::regex_match(s, m, split)) {
      const int64_t k = std::stoll(m[1]);
      if (x % k) return std::nullopt;
      x /= k;
    } else {
      return std::nullopt;
    }
    if (x < 1) return std::nullopt;
  }
  return x;
}

TEST(SyntheticMath, AnIndependentReadingOfEveryQuestionGivesTheGoldAnswer) {
  SyntheticMathOptions o;
  o.max_ops = 5;
  const auto problems = make_synthetic_split(3, 0, 3000, o);
  ASSERT_EQ(problems.size(), 3000u);
  for (const auto& p : problems) {
    const auto solved = solve_from_text(p.question);
    ASSERT_TRUE(solved.has_value()) << p.question;
    EXPECT_EQ(*solved, p.answer) << p.question;
    EXPECT_GE(p.answer, 1);
    EXPECT_LE(p.answer, o.max_value);
  }
}

TEST(SyntheticMath, EverySolutionEquationIsCorrectAndTheChainEndsAtTheAnswer) {
  static const std::regex eq(R"((\d+) ([-+*/]) (\d+) = (\d+))");
  const auto problems = make_synthetic_split(11, 0, 2000, SyntheticMathOptions{});
  size_t equations = 0;
  for (const auto& p : problems) {
    int64_t last = -1;
    for (const auto& s : p.steps) {
      std::smatch m;
      if (!std::regex_search(s, m, eq)) continue;
      const int64_t a = std::stoll(m[1]), b = std::stoll(m[3]), c = std::stoll(m[4]);
      const char op = m[2].str()[0];
      const int64_t want = op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : a / b;
      if (op == '/') {
        EXPECT_EQ(a % b, 0) << s;
      }
      EXPECT_EQ(c, want) << s;
      last = c;
      ++equations;
    }
    EXPECT_EQ(last, p.answer) << p.gsm8k_answer();
  }
  EXPECT_GT(equations, problems.size() * 2);  // at least 2 operations each
}

TEST(SyntheticMath, RowsUseTheGsm8kFormatTheTaskCodeReads) {
  const auto p = make_synthetic_problem(5, 42, SyntheticMathOptions{});
  const nlohmann::json row = p.to_row();
  EXPECT_EQ(task_gold(Task::Gsm8k, row), std::to_string(p.answer));
  EXPECT_EQ(task_user_text(Task::Gsm8k, row), p.question);
  // The worked answer ends in "#### N" like GSM8K's.
  const std::string a = row["answer"].get<std::string>();
  EXPECT_EQ(a.substr(a.rfind('\n') + 1), "#### " + std::to_string(p.answer));
}

TEST(SyntheticMath, DeterministicPerIndexAndTheOperationCountIsRespected) {
  SyntheticMathOptions o;
  o.min_ops = 3;
  o.max_ops = 3;
  for (uint64_t i = 0; i < 200; ++i) {
    const auto a = make_synthetic_problem(9, i, o), b = make_synthetic_problem(9, i, o);
    EXPECT_EQ(a.question, b.question);
    EXPECT_EQ(a.gsm8k_answer(), b.gsm8k_answer());
    // 3 operations: 3 equations (a "packs" sentence is two of them).
    int eqs = 0;
    for (const auto& s : a.steps) eqs += s.find(" = ") != std::string::npos;
    EXPECT_EQ(eqs, 3) << a.gsm8k_answer();
  }
  EXPECT_NE(make_synthetic_problem(9, 0, o).question, make_synthetic_problem(10, 0, o).question);
}

TEST(SyntheticMath, ExcludedQuestionsAreSkippedSoSplitsAreDisjoint) {
  SyntheticMathOptions o;
  const auto train = make_synthetic_split(1, 0, 500, o);
  std::vector<std::string> seen;
  for (const auto& p : train) seen.push_back(p.question);
  // The same index range again, excluding the train questions: nothing may repeat.
  const auto test = make_synthetic_split(1, 0, 100, o, seen);
  const std::set<std::string> train_set(seen.begin(), seen.end());
  EXPECT_EQ(train_set.size(), train.size());
  for (const auto& p : test) EXPECT_EQ(train_set.count(p.question), 0u) << p.question;
}

TEST(SyntheticMath, BadKnobsAreConfigErrors) {
  SyntheticMathOptions o;
  o.min_ops = 4;
  o.max_ops = 2;
  EXPECT_THROW(o.validate(), ConfigError);
  SyntheticMathOptions small;
  small.max_value = 10;
  EXPECT_THROW(make_synthetic_split(1, 0, 5, small), ConfigError);
}

TEST(SyntheticMath, TheAnswerExtractionReadsTheTrainedResponseFormat) {
  const auto p = make_synthetic_problem(2, 7, SyntheticMathOptions{});
  std::string response = "<think>\n";
  for (const auto& s : p.steps) response += s + "\n";
  response += "</think>\n\nThe answer is " + std::to_string(p.answer) + ".";
  const std::string_view region = answer_region(response, true);
  EXPECT_EQ(gsm8k_strict(region).value_or("none"), std::to_string(p.answer));
  EXPECT_EQ(gsm8k_flexible(region).value_or("none"), std::to_string(p.answer));
  EXPECT_EQ(gsm8k_gold(p.gsm8k_answer()).value_or("none"), std::to_string(p.answer));
}

}  // namespace
}  // namespace resp
