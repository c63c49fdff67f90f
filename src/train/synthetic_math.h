// A seeded generator of GSM8K-style multi-step word problems with worked solutions: the task
// the embedded default model is trained on, so that accuracy on a CPU-sized model means
// something. Rows use the GSM8K format ({"question", "answer": "...\n#### N"}), so `resp eval
// --task gsm8k`, gold calibration and RESP prompts take them unchanged.
//
// A problem follows one person's stock of one kind of item through 2..8 operations (+, -, *, /
// on integers); every intermediate value stays a non-negative integer within bounds.
// Problem `index` of a seed is a pure function of (seed, index), so splits are reproducible
// and a split can be regenerated piecewise.
//
// Two optional renderings serve the method-comparison testbed (docs/results.md), where the
// model's own thinking must differ from the human-style gold text GISP calibrates on:
//  - `gold_markup`: the `answer` field in GSM8K's terse style, one `a*b=<<a*b=c>>c` equation
//    per sentence, ending in "#### N";
//  - `thinking`: a `thinking` field with a model-style trace (restated question, a phrasing
//    per step chosen at random, arithmetic spelled out digit group by digit group, self-checks,
//    occasional harmless detours, a closing line), several times the gold length. Its draws
//    come from a stream of their own, so the problem and its gold text do not depend on it.
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
  int max_addend = 30;       // amounts added or removed
  int max_factor = 5;        // multipliers, divisors and pack counts
  int max_pack = 12;         // items per pack
  int max_value = 300;       // every intermediate value stays <= max_value
  bool gold_markup = false;  // `answer` in GSM8K markup style (else one "a op b = c." per line)
  bool thinking = false;     // also write a model-style `thinking` trace per problem

  void validate() const;  // ConfigError naming the knob
};

// One operation of a problem's story, as drawn: what the renderings are made of.
struct SyntheticEvent {
  enum class Kind { Add, Sub, Mul, Pack, Half, Split } kind = Kind::Add;
  int variant = 0;     // which question sentence (buys / is given / finds, ...)
  int64_t before = 0;  // the stock before and after the operation
  int64_t after = 0;
  int64_t amount = 0;  // the addend, subtrahend, factor, divisor or pack count
  int64_t pack = 0;    // items per pack (Pack only)
};

struct SyntheticProblem {
  std::string question;
  std::vector<std::string> steps;  // solution lines, each with one "a op b = c" equation
  int64_t answer = 0;
  std::string name, other, items;  // the person, the friend, the item noun (plural)
  bool she = false;
  std::vector<SyntheticEvent> events;
  std::vector<std::string> gold_lines;  // GSM8K markup lines (gold_markup)
  std::string thinking;                 // model-style trace (thinking), without <think> tags

  // The GSM8K `answer` field: the steps (or the markup lines), one per line, then "#### N".
  std::string gsm8k_answer() const;
  nlohmann::json to_row() const;  // {"question", "answer"} (+ "thinking" when drawn)
};

// The renderings of a drawn problem (src/train/synthetic_renderings.cpp). The trace's draws are
// keyed by (seed, index) on a stream of their own.
std::vector<std::string> gold_markup_lines(const SyntheticProblem& p);
std::string thinking_trace(const SyntheticProblem& p, uint64_t seed, uint64_t index);

SyntheticProblem make_synthetic_problem(uint64_t seed, uint64_t index,
                                        const SyntheticMathOptions& options);

// `count` distinct problems (by question text) starting at `first_index`; problems whose
// question is in `exclude` are skipped (keeps a test split disjoint from a train split).
std::vector<SyntheticProblem> make_synthetic_split(uint64_t seed, uint64_t first_index,
                                                   int64_t count,
                                                   const SyntheticMathOptions& options,
                                                   const std::vector<std::string>& exclude = {});

}  // namespace resp
