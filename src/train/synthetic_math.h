// A seeded generator of GSM8K-style multi-step word problems with worked solutions: the task
// the embedded default model is trained on, so that accuracy on a CPU-sized model means
// something. Rows use the GSM8K format ({"question", "answer": "...\n#### N"}), so `resp eval
// --task gsm8k`, gold calibration and RESP prompts take them unchanged.
//
// A problem follows one person's stock of one kind of item through 2..5 operations (+, -, *, /
// on small integers); every intermediate value stays a non-negative integer within bounds.
// Problem `index` of a seed is a pure function of (seed, index), so splits are reproducible
// and a split can be regenerated piecewise.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace resp {

struct SyntheticMathOptions {
  int min_ops = 2;  // arithmetic operations per problem (a "packs of" step counts as 2)
  int max_ops = 4;
  int max_start = 40;  // initial stock in [min_start, max_start]
  int min_start = 5;
  int max_addend = 30;  // amounts added or removed
  int max_factor = 5;   // multipliers, divisors and pack counts
  int max_pack = 12;    // items per pack
  int max_value = 300;  // every intermediate value stays <= max_value

  void validate() const;  // ConfigError naming the knob
};

struct SyntheticProblem {
  std::string question;
  std::vector<std::string> steps;  // solution lines, each with one "a op b = c" equation
  int64_t answer = 0;

  // The GSM8K `answer` field: the steps, one per line, then "#### N".
  std::string gsm8k_answer() const;
  nlohmann::json to_row() const;  // {"question", "answer"}
};

SyntheticProblem make_synthetic_problem(uint64_t seed, uint64_t index,
                                        const SyntheticMathOptions& options);

// `count` distinct problems (by question text) starting at `first_index`; problems whose
// question is in `exclude` are skipped (keeps a test split disjoint from a train split).
std::vector<SyntheticProblem> make_synthetic_split(uint64_t seed, uint64_t first_index,
                                                   int64_t count,
                                                   const SyntheticMathOptions& options,
                                                   const std::vector<std::string>& exclude = {});

}  // namespace resp
