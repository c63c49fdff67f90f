#include "train/synthetic_math.h"

#include <array>
#include <nlohmann/json.hpp>
#include <string_view>
#include <unordered_set>

#include "core/error.h"
#include "train/keyed_draws.h"

namespace resp {

namespace {

struct Person {
  const char* name;
  bool she;
};

constexpr std::array<Person, 24> kPeople{{
    {"Mia", true},   {"Tom", false},    {"Ava", true},   {"Leo", false},  {"Emma", true},
    {"Noah", false}, {"Lily", true},    {"Sam", false},  {"Zoe", true},   {"Ben", false},
    {"Nora", true},  {"Jack", false},   {"Ella", true},  {"Max", false},  {"Ruby", true},
    {"Owen", false}, {"Grace", true},   {"Luke", false}, {"Ivy", true},   {"Adam", false},
    {"Anna", true},  {"Carlos", false}, {"Maya", true},  {"Omar", false},
}};

constexpr std::array<const char*, 16> kItems{
    "apples", "marbles", "stickers", "pencils", "cookies", "books",    "coins",   "cards",
    "shells", "stamps",  "candies",  "beads",   "eggs",    "balloons", "crayons", "toy cars"};

// The problem's own draws (numbers, people, question sentences). Domain 0x5e77 is the one the
// first generator used, so the embedded model's data regenerate bit for bit.
constexpr uint64_t kProblemDomain = 0x5e77;

std::string num(int64_t v) {
  return std::to_string(v);
}

// "a op b = c." — the one equation of a solution line.
std::string equation(int64_t a, const char* op, int64_t b, int64_t c) {
  return num(a) + " " + op + " " + num(b) + " = " + num(c) + ".";
}

std::string capitalised(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

using Op = SyntheticEvent::Kind;

}  // namespace

void SyntheticMathOptions::validate() const {
  auto need = [](bool ok, const char* what) {
    if (!ok) throw ConfigError(std::string("synthetic math: ") + what);
  };
  need(min_ops >= 1 && max_ops >= min_ops && max_ops <= 8, "need 1 <= min_ops <= max_ops <= 8");
  need(min_start >= 2 && max_start >= min_start, "need 2 <= min_start <= max_start");
  need(max_addend >= 2, "max_addend must be >= 2");
  need(max_factor >= 2, "max_factor must be >= 2");
  need(max_pack >= 2, "max_pack must be >= 2");
  need(max_value >= max_start + max_addend, "max_value must be >= max_start + max_addend");
}

std::string SyntheticProblem::gsm8k_answer() const {
  std::string out;
  for (const auto& s : gold_lines.empty() ? steps : gold_lines) out += s + "\n";
  return out + "#### " + num(answer);
}

nlohmann::json SyntheticProblem::to_row() const {
  nlohmann::json row = {{"question", question}, {"answer", gsm8k_answer()}};
  if (!thinking.empty()) row["thinking"] = thinking;
  return row;
}

SyntheticProblem make_synthetic_problem(uint64_t seed, uint64_t index,
                                        const SyntheticMathOptions& o) {
  KeyedDraws d(seed, index, kProblemDomain);
  const Person& who = d.pick(kPeople);
  const Person* friend_ = &d.pick(kPeople);
  while (friend_ == &who) friend_ = &d.pick(kPeople);
  const std::string items = d.pick(kItems);
  const std::string name = who.name, pro = who.she ? "she" : "he", pos = who.she ? "her" : "his",
                    obj = who.she ? "her" : "him", other = friend_->name;

  SyntheticProblem p;
  p.name = name;
  p.other = other;
  p.items = items;
  p.she = who.she;
  int64_t x = d.uniform(o.min_start, o.max_start);
  std::string q = name + " has " + num(x) + " " + items + ".";
  p.steps.push_back(name + " starts with " + num(x) + " " + items + ".");

  int budget = static_cast<int>(d.uniform(o.min_ops, o.max_ops));
  bool first = true;
  while (budget > 0) {
    // The operations possible from the current value; each keeps every value an integer in
    // [1, max_value].
    std::vector<Op> ok;
    // Amounts are at least 2, so every noun stays plural.
    if (x + 2 <= o.max_value) ok.push_back(Op::Add);
    if (x >= 3) ok.push_back(Op::Sub);
    if (x * 2 <= o.max_value) ok.push_back(Op::Mul);
    if (budget >= 2 && x + 4 <= o.max_value) ok.push_back(Op::Pack);
    if (x % 2 == 0 && x >= 4) ok.push_back(Op::Half);
    std::vector<int64_t> divisors;
    for (int64_t k = 3; k <= o.max_factor; ++k)
      if (x % k == 0 && x / k >= 2) divisors.push_back(k);
    if (!divisors.empty()) ok.push_back(Op::Split);
    const Op op = ok[static_cast<size_t>(d.uniform(0, static_cast<int64_t>(ok.size()) - 1))];

    // The first sentence after the start names the person; later ones use the pronoun.
    const std::string subj = first ? name : capitalised(pro);
    switch (op) {
      case Op::Add: {
        const int64_t b = d.uniform(2, std::min<int64_t>(o.max_addend, o.max_value - x));
        const int64_t y = x + b;
        const int variant = static_cast<int>(d.uniform(0, 2));
        p.events.push_back({Op::Add, variant, x, y, b, 0});
        switch (variant) {
          case 0:
            q += " " + subj + " buys " + num(b) + " more " + items + ".";
            p.steps.push_back(capitalised(pro) + " buys " + num(b) +
                              " more: " + equation(x, "+", b, y));
            break;
          case 1:
            q += " " + other + " gives " + obj + " " + num(b) + " " + items + ".";
            p.steps.push_back(other + " gives " + num(b) + ": " + equation(x, "+", b, y));
            break;
          default:
            q += " " + subj + " finds " + num(b) + " " + items + ".";
            p.steps.push_back(capitalised(pro) + " finds " + num(b) + ": " +
                              equation(x, "+", b, y));
        }
        x = y;
        budget -= 1;
        break;
      }
      case Op::Sub: {
        const int64_t b = d.uniform(2, std::min<int64_t>(o.max_addend, x - 1));
        const int64_t y = x - b;
        const int variant = static_cast<int>(d.uniform(0, 2));
        p.events.push_back({Op::Sub, variant, x, y, b, 0});
        switch (variant) {
          case 0:
            q += " " + subj + " gives " + num(b) + " " + items + " to " + other + ".";
            p.steps.push_back(capitalised(pro) + " gives " + num(b) + " to " + other + ": " +
                              equation(x, "-", b, y));
            break;
          case 1:
            q += " " + subj + " loses " + num(b) + " " + items + ".";
            p.steps.push_back(capitalised(pro) + " loses " + num(b) + ": " +
                              equation(x, "-", b, y));
            break;
          default:
            q += " " + subj + " sells " + num(b) + " " + items + ".";
            p.steps.push_back(capitalised(pro) + " sells " + num(b) + ": " +
                              equation(x, "-", b, y));
        }
        x = y;
        budget -= 1;
        break;
      }
      case Op::Mul: {
        const int64_t k = d.uniform(2, std::min<int64_t>(o.max_factor, o.max_value / x));
        const int64_t y = x * k;
        p.events.push_back({Op::Mul, 0, x, y, k, 0});
        q += " " + subj + " then gets more " + items + " until " + pro + " has " + num(k) +
             " times as many.";
        p.steps.push_back(num(k) + " times as many: " + equation(x, "*", k, y));
        x = y;
        budget -= 1;
        break;
      }
      case Op::Pack: {
        const int64_t k = d.uniform(2, o.max_factor);
        const int64_t most = std::min<int64_t>(o.max_pack, (o.max_value - x) / k);
        if (most < 2) continue;  // no room: draw another operation
        const int64_t b = d.uniform(2, most);
        const int64_t m = k * b, y = x + m;
        p.events.push_back({Op::Pack, 0, x, y, k, b});
        q += " " + subj + " buys " + num(k) + " packs of " + items + " with " + num(b) +
             " in each pack.";
        p.steps.push_back(num(k) + " packs of " + num(b) + ": " + equation(k, "*", b, m));
        p.steps.push_back("Adding them: " + equation(x, "+", m, y));
        x = y;
        budget -= 2;
        break;
      }
      case Op::Half: {
        const int64_t y = x / 2;
        p.events.push_back({Op::Half, 0, x, y, 2, 0});
        q += " " + subj + " gives half of " + pos + " " + items + " to " + other + ".";
        p.steps.push_back("Half goes to " + other + ": " + equation(x, "/", 2, y));
        x = y;
        budget -= 1;
        break;
      }
      case Op::Split: {
        const int64_t k =
            divisors[static_cast<size_t>(d.uniform(0, static_cast<int64_t>(divisors.size()) - 1))];
        const int64_t y = x / k;
        p.events.push_back({Op::Split, 0, x, y, k, 0});
        q += " " + subj + " splits " + pos + " " + items + " into " + num(k) +
             " equal groups and keeps one group.";
        p.steps.push_back("One of " + num(k) + " groups: " + equation(x, "/", k, y));
        x = y;
        budget -= 1;
        break;
      }
    }
    first = false;
  }
  q += " How many " + items + " does " + name + " have now?";
  p.steps.push_back(name + " has " + num(x) + " " + items + " now.");
  p.question = std::move(q);
  p.answer = x;
  if (o.gold_markup) p.gold_lines = gold_markup_lines(p);
  if (o.thinking) p.thinking = thinking_trace(p, seed, index);
  return p;
}

std::vector<SyntheticProblem> make_synthetic_split(uint64_t seed, uint64_t first_index,
                                                   int64_t count, const SyntheticMathOptions& o,
                                                   const std::vector<std::string>& exclude) {
  o.validate();
  if (count < 0) throw UsageError("synthetic math: count must be >= 0");
  std::unordered_set<std::string> seen(exclude.begin(), exclude.end());
  std::vector<SyntheticProblem> out;
  out.reserve(static_cast<size_t>(count));
  // Duplicates are rare (names x items x numbers); the cap only guards a degenerate config.
  const uint64_t limit = first_index + static_cast<uint64_t>(count) * 20 + 1000;
  for (uint64_t i = first_index; static_cast<int64_t>(out.size()) < count; ++i) {
    if (i >= limit)
      throw ConfigError("synthetic math: the options allow too few distinct problems for " +
                        std::to_string(count));
    SyntheticProblem p = make_synthetic_problem(seed, i, o);
    if (!seen.insert(p.question).second) continue;
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace resp
