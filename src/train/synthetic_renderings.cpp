// The two renderings of a drawn word problem that the method-comparison testbed needs: the
// terse GSM8K-style gold rationale (what GISP calibrates on) and a model-style thinking trace
// (what the testbed model learns to produce, so its own traces differ from the gold text).
#include <array>
#include <string>
#include <vector>

#include "train/keyed_draws.h"
#include "train/synthetic_math.h"

namespace resp {

namespace {

using Kind = SyntheticEvent::Kind;

// The trace's own draw stream: independent of the problem's (synthetic_math.cpp).
constexpr uint64_t kThinkingDomain = 0x7417;

std::string num(int64_t v) {
  return std::to_string(v);
}

std::string capitalised(std::string s) {
  if (!s.empty() && s[0] >= 'a' && s[0] <= 'z') s[0] = static_cast<char>(s[0] - 'a' + 'A');
  return s;
}

// "a op b=<<a op b=c>>c": GSM8K's calculator markup.
std::string markup(int64_t a, const char* op, int64_t b, int64_t c) {
  const std::string e = num(a) + op + num(b);
  return e + "=<<" + e + "=" + num(c) + ">>" + num(c);
}

struct Who {
  std::string name, other, items, pro, Pro, obj, pos;
  explicit Who(const SyntheticProblem& p)
      : name(p.name),
        other(p.other),
        items(p.items),
        pro(p.she ? "she" : "he"),
        Pro(p.she ? "She" : "He"),
        obj(p.she ? "her" : "him"),
        pos(p.she ? "her" : "his") {}
};

// Place-value parts of x, largest first, zeros left out: 347 -> 300, 40, 7.
std::vector<int64_t> place_parts(int64_t x) {
  std::vector<int64_t> parts;
  int64_t scale = 1;
  while (scale * 10 <= x) scale *= 10;
  for (; scale >= 1; scale /= 10) {
    const int64_t part = (x / scale) % 10 * scale;
    if (part) parts.push_back(part);
  }
  return parts;
}

// The arithmetic of one operation, spelled out the way a careful solver writes it: multi-digit
// operands are split by place value so every written equation is a small one.
class Arithmetic {
 public:
  explicit Arithmetic(KeyedDraws& d) : d_(d) {}

  std::string add(int64_t x, int64_t b) { return plus_minus(x, b, +1); }
  std::string sub(int64_t x, int64_t b) { return plus_minus(x, b, -1); }

  std::string mul(int64_t x, int64_t k) {
    const int64_t y = x * k;
    const auto parts = place_parts(x);
    if (parts.size() < 2) return num(x) + " * " + num(k) + " = " + num(y) + ".";
    std::string s = num(x) + " * " + num(k) + " = ";
    for (size_t i = 0; i < parts.size(); ++i)
      s += (i ? " + " : "") + num(parts[i]) + " * " + num(k);
    s += ". ";
    for (size_t i = 0; i < parts.size(); ++i)
      s += (i ? ", " : "") + num(parts[i]) + " * " + num(k) + " = " + num(parts[i] * k);
    s += ". ";
    int64_t acc = parts[0] * k;
    for (size_t i = 1; i < parts.size(); ++i) {
      const int64_t next = acc + parts[i] * k;
      s += (i > 1 ? ", " : "") + num(acc) + " + " + num(parts[i] * k) + " = " + num(next);
      acc = next;
    }
    return s + ". So " + num(x) + " * " + num(k) + " = " + num(y) + ".";
  }

  std::string half(int64_t x) {
    const int64_t y = x / 2;
    const int64_t hundreds = x - x % 100, rest = x % 100;
    if (hundreds == 0 || rest == 0) return "Half of " + num(x) + " is " + num(y) + ".";
    return "Half of " + num(x) + ": half of " + num(hundreds) + " is " + num(hundreds / 2) +
           " and half of " + num(rest) + " is " + num(rest / 2) + ", so " + num(hundreds / 2) +
           " + " + num(rest / 2) + " = " + num(y) + ".";
  }

  std::string divide(int64_t x, int64_t k) {
    const int64_t y = x / k;
    const int64_t big = x - x % (10 * k), rest = x % (10 * k);
    if (big == 0 || rest == 0) return num(x) + " / " + num(k) + " = " + num(y) + ".";
    return num(x) + " / " + num(k) + ": " + num(x) + " = " + num(big) + " + " + num(rest) + ", " +
           num(big) + " / " + num(k) + " = " + num(big / k) + " and " + num(rest) + " / " + num(k) +
           " = " + num(rest / k) + ", so " + num(big / k) + " + " + num(rest / k) + " = " + num(y) +
           ".";
  }

 private:
  // x + b or x - b (sign +1 / -1); a two-digit b goes in two steps, tens first.
  std::string plus_minus(int64_t x, int64_t b, int sign) {
    const std::string op = sign > 0 ? " + " : " - ";
    const int64_t y = x + sign * b;
    if (b >= 10 && b % 10 != 0) {
      const int64_t tens = b - b % 10, mid = x + sign * tens;
      return d_.coin()
                 ? num(x) + op + num(b) + ": first " + num(x) + op + num(tens) + " = " + num(mid) +
                       ", then " + num(mid) + op + num(b % 10) + " = " + num(y) + "."
                 : num(x) + op + num(tens) + " = " + num(mid) + ", and " + num(mid) + op +
                       num(b % 10) + " = " + num(y) + ", so " + num(x) + op + num(b) + " = " +
                       num(y) + ".";
    }
    return d_.coin() ? num(x) + op + num(b) + " = " + num(y) + "."
                     : num(x) + (sign > 0 ? " plus " : " minus ") + num(b) + " is " + num(y) + ".";
  }

  KeyedDraws& d_;
};

// What happens in one event, said as the story says it (no arithmetic).
std::string action(const SyntheticEvent& e, const Who& w) {
  switch (e.kind) {
    case Kind::Add:
      if (e.variant == 1) return w.other + " gives " + w.obj + " " + num(e.amount) + " " + w.items;
      return w.pro + (e.variant == 0 ? " buys " : " finds ") + num(e.amount) +
             (e.variant == 0 ? " more" : " " + w.items);
    case Kind::Sub:
      if (e.variant == 0) return w.pro + " gives " + num(e.amount) + " to " + w.other;
      return w.pro + (e.variant == 1 ? " loses " : " sells ") + num(e.amount);
    case Kind::Mul:
      return w.pro + " ends up with " + num(e.amount) + " times as many";
    case Kind::Pack:
      return w.pro + " buys " + num(e.amount) + " packs of " + num(e.pack);
    case Kind::Half:
      return w.pro + " gives half of " + w.pos + " " + w.items + " to " + w.other;
    case Kind::Split:
      return w.pro + " splits them into " + num(e.amount) + " equal groups and keeps one";
  }
  return {};
}

// What the event does to the count, as a reason for the arithmetic.
std::string effect(const SyntheticEvent& e) {
  switch (e.kind) {
    case Kind::Add:
      return "the count goes up by " + num(e.amount);
    case Kind::Sub:
      return "the count goes down by " + num(e.amount);
    case Kind::Mul:
      return "I multiply by " + num(e.amount);
    case Kind::Pack:
      return "I count the packs first";
    case Kind::Half:
      return "the count is cut in half";
    case Kind::Split:
      return "I divide by " + num(e.amount);
  }
  return {};
}

std::string inverse_check(KeyedDraws& d, const SyntheticEvent& e) {
  const std::string lead = d.pick(std::array<const char*, 4>{
      "Let me verify: ", "Quick check: ", "Let me double-check that: ", "Checking backwards: "});
  const std::string ok =
      d.pick(std::array<const char*, 4>{" Yes.", " That matches.", " Good.", " Right."});
  switch (e.kind) {
    case Kind::Add:
      return lead + num(e.after) + " - " + num(e.amount) + " = " + num(e.before) + "." + ok;
    case Kind::Sub:
      return lead + num(e.after) + " + " + num(e.amount) + " = " + num(e.before) + "." + ok;
    case Kind::Mul:
      return lead + num(e.after) + " / " + num(e.amount) + " = " + num(e.before) + "." + ok;
    case Kind::Pack:
      return lead + num(e.after) + " - " + num(e.after - e.before) + " = " + num(e.before) + "." +
             ok;
    case Kind::Half:
    case Kind::Split:
      return lead + num(e.after) + " * " + num(e.amount) + " = " + num(e.before) + "." + ok;
  }
  return {};
}

std::string detour(KeyedDraws& d, const Who& w) {
  switch (d.uniform(0, 5)) {
    case 0:
      return "Hmm, wait. Does " + w.other + " matter here? No, only " + w.name + "'s " + w.items +
             " count.";
    case 1:
      return "Let me reread that sentence to be sure. Yes, that is what it says.";
    case 2:
      return "I should be careful to keep the steps in the order of the story.";
    case 3:
      return "The kind of " + w.items + " does not matter, only how many there are.";
    case 4:
      return "Hmm, could the question be about " + w.other + " instead? No, it asks about " +
             w.name + ".";
    default:
      return "Wait, is anything left over here? No, the numbers work out exactly.";
  }
}

std::string step_text(KeyedDraws& d, Arithmetic& a, const SyntheticEvent& e, const Who& w,
                      bool first) {
  const std::string act = action(e, w);
  std::string lead;
  switch (d.uniform(0, 3)) {
    case 0:
      lead = (first ? "First, " : "Next, ") + act + ".";
      break;
    case 1:
      lead = "Then " + act + ", so " + effect(e) + ".";
      break;
    case 2:
      lead = capitalised(act) + ". That means " + effect(e) + ".";
      break;
    default:
      lead = (first ? "The first change: " : "After that, ") + act + ".";
  }
  std::string calc;
  switch (e.kind) {
    case Kind::Add:
      calc = a.add(e.before, e.amount);
      break;
    case Kind::Sub:
      calc = a.sub(e.before, e.amount);
      break;
    case Kind::Mul:
      calc = a.mul(e.before, e.amount);
      break;
    case Kind::Pack: {
      const int64_t m = e.amount * e.pack;
      calc = d.coin() ? "The packs hold " + a.mul(e.pack, e.amount) +
                            " Adding them: " + a.add(e.before, m)
                      : num(e.amount) + " packs of " + num(e.pack) + " is " +
                            a.mul(e.pack, e.amount) + " Then " + a.add(e.before, m);
      break;
    }
    case Kind::Half:
      calc = a.half(e.before);
      break;
    case Kind::Split:
      calc = a.divide(e.before, e.amount);
      break;
  }
  std::string s = lead + " " + calc;
  switch (d.uniform(0, 3)) {
    case 0:
      s += " Now " + w.pro + " has " + num(e.after) + ".";
      break;
    case 1:
      s += " So the count is " + num(e.after) + ".";
      break;
    case 2:
      s += " That leaves " + num(e.after) + " " + w.items + ".";
      break;
    default:
      break;
  }
  if (d.chance(45)) s += " " + inverse_check(d, e);
  if (d.chance(12)) s += "\n" + detour(d, w);
  return s;
}

}  // namespace

std::vector<std::string> gold_markup_lines(const SyntheticProblem& p) {
  const Who w(p);
  std::vector<std::string> lines;
  for (const auto& e : p.events) {
    const int64_t x = e.before, b = e.amount, y = e.after;
    switch (e.kind) {
      case Kind::Add: {
        const char* how = e.variant == 0 ? "buying" : e.variant == 1 ? "getting" : "finding";
        lines.push_back("After " + std::string(how) + " " + num(b) + ", " + w.pro + " has " +
                        markup(x, "+", b, y) + ".");
        break;
      }
      case Kind::Sub: {
        const char* how = e.variant == 0 ? "giving away" : e.variant == 1 ? "losing" : "selling";
        lines.push_back("After " + std::string(how) + " " + num(b) + ", " + w.pro + " has " +
                        markup(x, "-", b, y) + ".");
        break;
      }
      case Kind::Mul:
        lines.push_back(num(b) + " times as many is " + markup(x, "*", b, y) + ".");
        break;
      case Kind::Pack:
        lines.push_back("The packs hold " + markup(b, "*", e.pack, b * e.pack) + ".");
        lines.push_back(w.Pro + " has " + markup(x, "+", b * e.pack, y) + ".");
        break;
      case Kind::Half:
        lines.push_back("Half of them is " + markup(x, "/", 2, y) + ".");
        break;
      case Kind::Split:
        lines.push_back("One group is " + markup(x, "/", b, y) + ".");
        break;
    }
  }
  return lines;
}

std::string thinking_trace(const SyntheticProblem& p, uint64_t seed, uint64_t index) {
  KeyedDraws d(seed, index, kThinkingDomain);
  Arithmetic a(d);
  const Who w(p);
  const int64_t start = p.events.empty() ? p.answer : p.events.front().before;
  const std::string n = num(static_cast<int64_t>(p.events.size()));
  std::string t;
  switch (d.uniform(0, 3)) {
    case 0:
      t = "Okay, so " + w.name + " starts with " + num(start) + " " + w.items +
          ", and the story changes that number " + n + " times. I need the count at the end.";
      break;
    case 1:
      t = "Let me restate the question: how many " + w.items + " does " + w.name +
          " have after everything that happens? " + w.Pro + " starts with " + num(start) + ".";
      break;
    case 2:
      t = "Alright. " + w.name + " has " + num(start) + " " + w.items +
          " to begin with. I'll go through the " + n + " changes one at a time.";
      break;
    default:
      t = "First, what do we know? " + w.name + " has " + num(start) + " " + w.items + ". Then " +
          n + " things change the number, and the question wants the final number.";
  }
  for (size_t i = 0; i < p.events.size(); ++i) {
    t += '\n';  // appended apart: GCC 12 warns (-Wrestrict) on "\n" + std::string here
    t += step_text(d, a, p.events[i], w, i == 0);
  }
  switch (d.uniform(0, 2)) {
    case 0:
      t += "\nSo at the end " + w.name + " has " + num(p.answer) + " " + w.items + ".";
      break;
    case 1:
      t += "\nThat gives a final count of " + num(p.answer) + ".";
      break;
    default:
      t +=
          "\nAfter all of that, " + w.name + " is left with " + num(p.answer) + " " + w.items + ".";
  }
  if (d.chance(40)) {
    t += "\nLet me go over the whole chain once more: " + num(start);
    for (const auto& e : p.events) t += ", " + num(e.after);
    t += ". Every step matches the story.";
  }
  return t;
}

}  // namespace resp
