// Deterministic answer extraction for GSM8K and MathQA (the reproducible alternative to the
// paper's LLM judge).
//
// GSM8K
//   strict    the number after the last "The answer is" (case-insensitive; "$", "*", ":" and
//             spaces may sit between) or after the last "####", whichever comes last;
//   flexible  the last number inside the last \boxed{...} when there is one, else the last number
//             of the text.
//   Numbers: optional minus sign (not after a letter or digit: "5-3" is 5 and 3), optional "$",
//   digits with thousands commas ("1,200" only when three digits follow), optional decimals.
//   Compared in canonical form: "$1,200.50" -> "1200.5", "7.0" -> "7", "-0" -> "0".
// MathQA
//   strict    an explicit option letter: "answer is (c)", "answer: c", "ans - b", "option d",
//             "choice e", "\boxed{c}", "d is the answer", "e is correct" (the last one wins);
//   flexible  the letter when there is one, else the option whose value is the last number of the
//             text, else the option whose (non-numeric) text appears last.
// With thinking, only the text after the last "</think>" is read (none: no answer).
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

// The stated option letter (lower case), or nullopt.
std::optional<char> mathqa_letter(std::string_view text);
std::optional<char> mathqa_flexible(std::string_view text,
                                    const std::vector<MathqaOption>& options);

}  // namespace resp
