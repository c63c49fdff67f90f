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

// The testbed's options (tools/make_testbed_model.sh): harder problems, GSM8K-markup gold and a
// model-style thinking trace.
SyntheticMathOptions testbed_options() {
  SyntheticMathOptions o;
  o.min_ops = 3;
  o.max_ops = 6;
  o.min_start = 20;
  o.max_start = 150;
  o.max_addend = 90;
  o.max_factor = 5;
  o.max_pack = 24;
  o.max_value = 500;
  o.gold_markup = true;
  o.thinking = true;
  return o;
}

int64_t apply(int64_t a, char op, int64_t b) {
  return op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : a / b;
}

TEST(SyntheticMath, ARecordedDrawKeepsTheQuestionAndTheClassicRenderingUnchanged) {
  // The renderings draw from their own stream: switching them on changes neither the question
  // nor the classic steps (the embedded model's data stay reproducible).
  SyntheticMathOptions plain = testbed_options();
  plain.gold_markup = plain.thinking = false;
  for (uint64_t i = 0; i < 300; ++i) {
    const auto a = make_synthetic_problem(4, i, plain),
               b = make_synthetic_problem(4, i, testbed_options());
    EXPECT_EQ(a.question, b.question);
    EXPECT_EQ(a.steps, b.steps);
    EXPECT_TRUE(a.thinking.empty());
    EXPECT_FALSE(b.thinking.empty());
    EXPECT_FALSE(a.to_row().contains("thinking"));
    EXPECT_EQ(b.to_row()["thinking"].get<std::string>(), b.thinking);
  }
}

TEST(SyntheticMath, TestbedQuestionsAreReadableAndHarder) {
  const auto o = testbed_options();
  const auto problems = make_synthetic_split(7, 0, 2000, o);
  int64_t big = 0;
  for (const auto& p : problems) {
    const auto solved = solve_from_text(p.question);
    ASSERT_TRUE(solved.has_value()) << p.question;
    EXPECT_EQ(*solved, p.answer) << p.question;
    int64_t ops = 0;
    for (const auto& e : p.events) ops += e.kind == SyntheticEvent::Kind::Pack ? 2 : 1;
    EXPECT_GE(ops, 3);
    EXPECT_LE(ops, 6);
    for (const auto& e : p.events) big += e.after >= 200;
  }
  EXPECT_GT(big, 500);  // three-digit intermediate values are common, not rare
}

TEST(SyntheticMath, GoldMarkupIsTerseGsm8kStyleWithCorrectCalculatorAnnotations) {
  static const std::regex calc(R"((\d+)([-+*/])(\d+)=<<(\d+)([-+*/])(\d+)=(\d+)>>(\d+))");
  for (const auto& p : make_synthetic_split(8, 0, 1000, testbed_options())) {
    const std::string a = p.gsm8k_answer();
    EXPECT_EQ(a.substr(a.rfind('\n') + 1), "#### " + std::to_string(p.answer));
    EXPECT_EQ(gsm8k_gold(a).value_or("none"), std::to_string(p.answer));
    int64_t last = -1;
    size_t found = 0;
    for (const auto& line : p.gold_lines) {
      std::smatch m;
      ASSERT_TRUE(std::regex_search(line, m, calc)) << line;
      EXPECT_EQ(m[1].str() + m[2].str() + m[3].str(), m[4].str() + m[5].str() + m[6].str());
      const int64_t c = std::stoll(m[7]);
      EXPECT_EQ(c, apply(std::stoll(m[1]), m[2].str()[0], std::stoll(m[3]))) << line;
      EXPECT_EQ(m[8].str(), m[7].str());
      last = c;
      ++found;
    }
    EXPECT_EQ(last, p.answer) << a;
    EXPECT_GE(found, p.events.size());
  }
}

TEST(SyntheticMath, EveryEquationOfTheThinkingTraceIsCorrect) {
  // "a op b = c" where c is a whole result (not the start of "300 * 5 + ..."), and the
  // spelled-out forms.
  static const std::regex eq(R"((\d+) ([-+*/]) (\d+) = (\d+)(?![0-9]| [-+*/]))");
  static const std::regex words(R"((\d+) (plus|minus) (\d+) is (\d+))");
  static const std::regex half(R"([Hh]alf of (\d+) is (\d+))");
  static const std::regex split_sum(R"((\d+) = (\d+) \+ (\d+),)");
  size_t checked = 0;
  for (const auto& p : make_synthetic_split(9, 0, 1500, testbed_options())) {
    const std::string& t = p.thinking;
    for (auto it = std::sregex_iterator(t.begin(), t.end(), eq); it != std::sregex_iterator();
         ++it, ++checked) {
      const auto& m = *it;
      const int64_t a = std::stoll(m[1]), b = std::stoll(m[3]);
      if (m[2].str()[0] == '/') {
        EXPECT_EQ(a % b, 0) << m.str();
      }
      EXPECT_EQ(std::stoll(m[4]), apply(a, m[2].str()[0], b)) << m.str() << "\n" << t;
    }
    for (auto it = std::sregex_iterator(t.begin(), t.end(), words); it != std::sregex_iterator();
         ++it, ++checked) {
      const auto& m = *it;
      EXPECT_EQ(std::stoll(m[4]),
                apply(std::stoll(m[1]), m[2].str() == "plus" ? '+' : '-', std::stoll(m[3])));
    }
    for (auto it = std::sregex_iterator(t.begin(), t.end(), half); it != std::sregex_iterator();
         ++it, ++checked)
      EXPECT_EQ(std::stoll((*it)[1]), 2 * std::stoll((*it)[2])) << it->str();
    for (auto it = std::sregex_iterator(t.begin(), t.end(), split_sum);
         it != std::sregex_iterator(); ++it, ++checked)
      EXPECT_EQ(std::stoll((*it)[1]), std::stoll((*it)[2]) + std::stoll((*it)[3]));
    // The trace ends on the answer (its last number), and never contains the gold markup.
    static const std::regex number(R"(\d+)");
    std::string last;
    for (auto it = std::sregex_iterator(t.begin(), t.end(), number); it != std::sregex_iterator();
         ++it)
      last = it->str();
    EXPECT_EQ(last, std::to_string(p.answer)) << t;
    EXPECT_EQ(t.find("<<"), std::string::npos);
    EXPECT_EQ(t.find("####"), std::string::npos);
  }
  EXPECT_GT(checked, 1500u * 4);
}

TEST(SyntheticMath, ThinkingTracesVaryInPhrasingAndAreSeveralTimesTheGoldLength) {
  std::set<std::string> openings, step_leads;
  size_t trace_chars = 0, gold_chars = 0, checks = 0, detours = 0;
  const auto problems = make_synthetic_split(10, 0, 400, testbed_options());
  for (const auto& p : problems) {
    const std::string& t = p.thinking;
    openings.insert(t.substr(0, t.find(' ')));
    const auto second = t.find('\n');
    step_leads.insert(t.substr(second + 1, t.find(' ', second + 1) - second - 1));
    trace_chars += t.size();
    const std::string g = p.gsm8k_answer();
    gold_chars += g.rfind("####");
    checks += t.find("check") != std::string::npos || t.find("verify") != std::string::npos;
    detours += t.find("Hmm") != std::string::npos || t.find("reread") != std::string::npos ||
               t.find("careful") != std::string::npos;
  }
  EXPECT_GE(openings.size(), 4u);
  EXPECT_GE(step_leads.size(), 4u);
  const double ratio = static_cast<double>(trace_chars) / static_cast<double>(gold_chars);
  EXPECT_GE(ratio, 2.5);
  EXPECT_LE(ratio, 6.0);
  EXPECT_GT(checks, problems.size() / 2);
  EXPECT_GT(detours, problems.size() / 10);
  EXPECT_LT(detours, problems.size() * 7 / 10);
  // The same problem index under another seed gets another problem and another trace.
  EXPECT_NE(make_synthetic_problem(10, 0, testbed_options()).thinking,
            make_synthetic_problem(11, 0, testbed_options()).thinking);
}

}  // namespace
}  // namespace resp
