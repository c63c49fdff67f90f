// Deterministic answer extraction for GSM8K and MathQA (the reproducible alternative to the
// paper's LLM judge). Two extractors (`resp eval --extract`):
//
// resp (default)
//   GSM8K strict    the number after the last "The answer is" (case-insensitive; "$", "*", ":"
//                   and spaces may sit between) or after the last "####", whichever comes last;
//   GSM8K flexible  the last number inside the last \boxed{...} when there is one, else the last
//                   number of the text.
//   Numbers: optional minus sign (not after a letter or digit: "5-3" is 5 and 3), optional "$",
//   digits with thousands commas ("1,200" only when three digits follow), optional decimals.
//   Compared in canonical form: "$1,200.50" -> "1200.5", "7.0" -> "7", "-0" -> "0".
//   MathQA strict   the last explicit answer statement ("answer is (c)", "answer: c", "ans - b",
//                   "correct option is d", "\boxed{c}", "d is the answer", "e is correct"), else
//                   a bare letter that is the whole answer ("A", "(a).", "**C**"); a letter that is
//                   an English word ("answer a question", "the answer is a multiple") is never
//                   read as an option;
//   MathQA flexible the letter when there is one, else the option whose value is the last number
//                   of the text, else the option whose (non-numeric) text appears last.
//   With thinking, strict reads only the text after the last "</think>" (none: no answer);
//   flexible reads that text too, or the whole output when it was cut before "</think>".
//
// lm-eval: lm-evaluation-harness's gsm8k_cot task (gsm8k-cot.yaml), rule for rule: the `until`
//   cut, the strict-match and flexible-extract regex filters with their "[invalid]" fallback, and
//   exact_match's normalisation of prediction and gold (docs/generation.md).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resp {

// The part of a model output that holds its final answer: after the last "</think>". With
// thinking and no "</think>" (truncated while thinking) it is empty; without thinking it is the
// whole text.
std::string_view answer_region(std::string_view text, bool thinking);
// What the flexible readings look at: the text after the last "</think>", or the whole text when
// there is none (an output truncated while thinking still yields its last number, as in
// lm-evaluation-harness).
std::string_view flexible_region(std::string_view text);

// Canonical form of a number ("1,200.50" -> "1200.5"); nullopt when `s` is not a number.
std::optional<std::string> normalize_number(std::string_view s);

struct NumberMatch {
  size_t begin = 0, end = 0;  // byte range in the text
  std::string value;          // canonical form
};
// Every number in the text, in order.
std::vector<NumberMatch> find_numbers(std::string_view text);

std::optional<std::string> gsm8k_strict(std::string_view text);
std::optional<std::string> gsm8k_flexible(std::string_view text);
// The gold answer of a GSM8K `answer` field: the number after the last "####".
std::optional<std::string> gsm8k_gold(std::string_view answer);

struct MathqaOption {
  char letter = 'a';
  std::string value;  // e.g. "27.675", "data inadequate", "2 : 3"
};
// Parses MathQA's `options`: "a ) 38 , b ) 27.675 , ..." or the list literal
// "['a ) 2 : 3', 'b ) 4 : 5', ...]". Letters found in order a, b, c, ...
std::vector<MathqaOption> parse_mathqa_options(std::string_view options);

// The stated option letter (lower case), or nullopt: the last explicit answer statement, else a
// bare letter or parenthesised letter that is the whole text.
std::optional<char> mathqa_letter(std::string_view text);
std::optional<char> mathqa_flexible(std::string_view text,
                                    const std::vector<MathqaOption>& options);

// ---- lm-evaluation-harness gsm8k_cot ----------------------------------------------------------
// Re-implementations (not ports) of the rules of lm_eval/tasks/gsm8k/gsm8k-cot.yaml, with
// Python's `re` semantics where they matter.

// The generation_kwargs `until` list of gsm8k-cot.yaml.
const std::vector<std::string>& lm_eval_gsm8k_until();
// RegexFilter's fallback when nothing matches.
inline constexpr std::string_view kLmEvalInvalid = "[invalid]";

// lm-eval's post-processing of a generation: for each stop string in turn, keep the text before
// its first occurrence (Python `s.split(term)[0]`; empty terms skipped).
std::string lm_eval_until_cut(std::string_view text, const std::vector<std::string>& until);
// The response the filters see: the output cut at `until` (lm-eval stops generating at the first
// stop string, in the thinking too, so its generation is this prefix of ours); then, with
// `thinking` (lm-eval's think_end_token "</think>"), the text after the last "</think>" with
// leading whitespace removed (Python str.lstrip), or the whole text when there is none.
// (lm-eval cuts at `until` once more after that; on a prefix already cut it changes nothing.)
std::string lm_eval_response(std::string_view output, bool thinking,
                             const std::vector<std::string>& until = lm_eval_gsm8k_until());

// strict-match: regex `The answer is (\-?[0-9\.\,]+).` (case-sensitive; the final `.` is any
// character but "\n"), group 1 of the first match, stripped; "[invalid]" when none.
std::string lm_eval_strict(std::string_view response);
// flexible-extract: regex `(-?[$0-9.,]{2,})|(-?[0-9]+)`, the last match (group_select -1), the
// non-empty group of its tuple, stripped; "[invalid]" when none.
std::string lm_eval_flexible(std::string_view response);

struct LmEvalExactMatch {
  // regexes_to_ignore of gsm8k-cot.yaml, applied in this order with re.sub:
  // ",", "\$", "(?s).*#### ", "\.$".
  bool regexes_to_ignore = true;
  bool ignore_case = true;          // gsm8k-cot.yaml: true
  bool ignore_punctuation = false;  // gsm8k-cot.yaml: false (string.punctuation when true)
};
// The string exact_match compares: `s` after the configured rules.
std::string lm_eval_normalize(std::string_view s, const LmEvalExactMatch& o = {});
bool lm_eval_exact_match(std::string_view prediction, std::string_view reference,
                         const LmEvalExactMatch& o = {});
// doc_to_target of a GSM8K row's `answer`: the text after the last "####", stripped (the whole
// answer, stripped, when there is no "####").
std::string lm_eval_gsm8k_target(std::string_view answer);

}  // namespace resp
