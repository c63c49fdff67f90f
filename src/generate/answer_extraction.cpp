#include "generate/answer_extraction.h"

#include <algorithm>
#include <cctype>
#include <regex>

namespace resp {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}
char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

std::string to_lower(std::string_view s) {
  std::string o(s);
  for (char& c : o) c = lower(c);
  return o;
}

// U+2212 MINUS SIGN in UTF-8.
constexpr std::string_view kUnicodeMinus = "\xE2\x88\x92";

// Parses a number starting exactly at `i`; returns its end (0 when there is none) and fills
// `raw` with sign + digits + '.' + digits (no commas, no '$').
size_t parse_number_at(std::string_view t, size_t i, std::string& raw) {
  raw.clear();
  size_t j = i;
  const size_t n = t.size();
  bool neg = false;
  if (j < n && t[j] == '-') {
    neg = true;
    ++j;
  } else if (t.substr(j, kUnicodeMinus.size()) == kUnicodeMinus) {
    neg = true;
    j += kUnicodeMinus.size();
  }
  if (neg && i > 0 && is_alnum(t[i - 1])) return 0;  // "5-3": a minus between operands
  if (j < n && t[j] == '$') ++j;
  const bool lead_dot = j + 1 < n && t[j] == '.' && is_digit(t[j + 1]);
  if (!(j < n && (is_digit(t[j]) || lead_dot))) return 0;
  if (lead_dot && j > 0 && is_digit(t[j - 1])) return 0;
  if (neg) raw += '-';
  while (j < n && is_digit(t[j])) raw += t[j++];
  // Thousands groups: ",ddd" not followed by another digit.
  while (j + 3 < n && t[j] == ',' && is_digit(t[j + 1]) && is_digit(t[j + 2]) &&
         is_digit(t[j + 3]) && !(j + 4 < n && is_digit(t[j + 4])) && !raw.empty() &&
         is_digit(raw.back())) {
    raw.append(t.substr(j + 1, 3));
    j += 4;
  }
  if (j + 1 < n && t[j] == '.' && is_digit(t[j + 1])) {
    raw += '.';
    ++j;
    while (j < n && is_digit(t[j])) raw += t[j++];
  }
  return j;
}

// The number starting at `pos` once any of the `skip` characters there are passed.
std::optional<std::string> number_after(std::string_view t, size_t pos, std::string_view skip) {
  while (pos < t.size() && skip.find(t[pos]) != std::string_view::npos) ++pos;
  std::string raw;
  if (parse_number_at(t, pos, raw) == 0) return std::nullopt;
  return normalize_number(raw);
}

}  // namespace

std::string_view answer_region(std::string_view text, bool thinking) {
  const size_t p = text.rfind("</think>");
  if (p != std::string_view::npos) return text.substr(p + 8);
  return thinking ? std::string_view() : text;
}

std::optional<std::string> normalize_number(std::string_view s) {
  std::string digits;
  bool neg = false, seen_digit = false, dot = false;
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  if (s.substr(i, kUnicodeMinus.size()) == kUnicodeMinus) {
    neg = true;
    i += kUnicodeMinus.size();
  } else if (i < s.size() && (s[i] == '-' || s[i] == '+')) {
    neg = s[i] == '-';
    ++i;
  }
  for (; i < s.size(); ++i) {
    const char c = s[i];
    if (c == ',' || c == '$' || c == ' ') continue;
    if (is_digit(c)) {
      digits += c;
      seen_digit = true;
    } else if (c == '.' && !dot) {
      dot = true;
      digits += c;
    } else {
      return std::nullopt;
    }
  }
  if (!seen_digit) return std::nullopt;
  std::string ip = digits, fp;
  if (const size_t d = digits.find('.'); d != std::string::npos) {
    ip = digits.substr(0, d);
    fp = digits.substr(d + 1);
  }
  while (!fp.empty() && fp.back() == '0') fp.pop_back();
  const size_t nz = ip.find_first_not_of('0');
  ip = nz == std::string::npos ? "0" : ip.substr(nz);
  std::string out = fp.empty() ? ip : ip + "." + fp;
  if (neg && out != "0") out = "-" + out;
  return out;
}

std::vector<NumberMatch> find_numbers(std::string_view t) {
  std::vector<NumberMatch> out;
  std::string raw;
  size_t i = 0;
  while (i < t.size()) {
    const size_t e = parse_number_at(t, i, raw);
    if (e == 0) {
      ++i;
      continue;
    }
    if (auto v = normalize_number(raw)) out.push_back({i, e, *v});
    i = e;
  }
  return out;
}

std::optional<std::string> gsm8k_strict(std::string_view text) {
  const std::string low = to_lower(text);
  // Candidates: every "the answer is" and "####"; the last one followed by a number wins.
  struct Cand {
    size_t pos, after;
  };
  std::vector<Cand> cands;
  for (size_t p = low.find("the answer is"); p != std::string::npos;
       p = low.find("the answer is", p + 1))
    cands.push_back({p, p + 13});
  for (size_t p = low.find("####"); p != std::string::npos; p = low.find("####", p + 4))
    cands.push_back({p, p + 4});
  std::sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) { return a.pos > b.pos; });
  for (const Cand& c : cands)
    if (auto v = number_after(text, c.after, " \t\n*:$")) return v;
  return std::nullopt;
}

std::optional<std::string> gsm8k_flexible(std::string_view text) {
  const size_t b = text.rfind("\\boxed{");
  if (b != std::string_view::npos) {
    size_t depth = 1, i = b + 7;
    while (i < text.size() && depth > 0) {
      if (text[i] == '{') ++depth;
      if (text[i] == '}') --depth;
      ++i;
    }
    const auto inner = find_numbers(text.substr(b + 7, i - (b + 7)));
    if (!inner.empty()) return inner.back().value;
  }
  const auto all = find_numbers(text);
  if (all.empty()) return std::nullopt;
  return all.back().value;
}

std::optional<std::string> gsm8k_gold(std::string_view answer) {
  const size_t p = answer.rfind("####");
  if (p == std::string_view::npos) return std::nullopt;
  return number_after(answer, p + 4, " \t$");
}

std::vector<MathqaOption> parse_mathqa_options(std::string_view s) {
  // Marker of option L: "L )" at the start, or after "'", "[", "," or ", ".
  auto find_marker = [&](char L, size_t from) -> size_t {
    for (size_t p = from; p < s.size(); ++p) {
      if (lower(s[p]) != L) continue;
      size_t q = p + 1;
      while (q < s.size() && s[q] == ' ') ++q;
      if (q >= s.size() || s[q] != ')') continue;
      if (p == 0) return p;
      const char prev = s[p - 1];
      if (prev == '\'' || prev == '"' || prev == '[' || prev == ',') return p;
      if (prev == ' ' && (p < 2 || s[p - 2] == ',' || s[p - 2] == '\'' || s[p - 2] == '['))
        return p;
    }
    return std::string_view::npos;
  };
  auto clean = [](std::string_view v, char L) {
    auto trim = [](std::string_view x) {
      const std::string_view junk = " \t\n,'\"[]";
      while (!x.empty() && junk.find(x.front()) != std::string_view::npos) x.remove_prefix(1);
      while (!x.empty() && junk.find(x.back()) != std::string_view::npos) x.remove_suffix(1);
      return x;
    };
    v = trim(v);
    // Some rows repeat the label: "a ) a ) 4 inches".
    if (v.size() >= 3 && lower(v[0]) == L && v[1] == ' ' && v[2] == ')') v = trim(v.substr(3));
    return std::string(v);
  };
  std::vector<MathqaOption> out;
  size_t pos = 0, value_start = 0;
  char prev = 0;
  for (char L = 'a'; L <= 'z'; ++L) {
    const size_t m = find_marker(L, pos);
    if (m == std::string_view::npos) break;
    if (prev) out.push_back({prev, clean(s.substr(value_start, m - value_start), prev)});
    value_start = s.find(')', m) + 1;
    pos = value_start;
    prev = L;
  }
  if (prev) out.push_back({prev, clean(s.substr(value_start), prev)});
  return out;
}

std::optional<char> mathqa_letter(std::string_view text) {
  if (text.empty()) return std::nullopt;
  const std::string low = to_lower(text);
  static const std::regex patterns[] = {
      // "answer is (c)", "answer: c", "ans - b", "correct option is a", "answer choice ( c )"
      std::regex(R"(\b(?:answer|ans|option|choice)[^a-z0-9]{0,12}(?:(?:is|would be|will be|should )"
                 R"(be|must be|=|:)[^a-z0-9]{0,8})?(?:(?:option|choice)[^a-z0-9]{0,4})?([a-e]))"
                 R"((?![a-z0-9]))"),
      // "\boxed{c}", "\boxed{\text{c}}", "\boxed{(c) 129}"
      std::regex(R"(\\boxed\{\s*(?:\\text(?:bf)?\{\s*)?\(?([a-e])(?![a-z0-9]))"),
      // "d is the answer", "( e ) is correct"
      std::regex(
          R"((?:^|[^a-z0-9])\(?\s*([a-e])\s*\)?\s+is\s+(?:the\s+)?(?:correct|right|answer))"),
  };
  std::optional<char> best;
  std::ptrdiff_t best_pos = -1;
  for (const auto& re : patterns) {
    for (std::sregex_iterator it(low.begin(), low.end(), re), end; it != end; ++it) {
      const std::ptrdiff_t p = it->position(1);
      if (p > best_pos) {
        best_pos = p;
        best = it->str(1)[0];
      }
    }
  }
  return best;
}

std::optional<char> mathqa_flexible(std::string_view text,
                                    const std::vector<MathqaOption>& options) {
  if (auto l = mathqa_letter(text)) return l;
  if (text.empty() || options.empty()) return std::nullopt;
  // The option whose only number equals the text's last number (when exactly one does).
  const auto nums = find_numbers(text);
  if (!nums.empty()) {
    std::optional<char> hit;
    int count = 0;
    for (const auto& o : options) {
      const auto on = find_numbers(o.value);
      if (on.size() == 1 && on[0].value == nums.back().value) {
        hit = o.letter;
        ++count;
      }
    }
    if (count == 1) return hit;
  }
  // The option whose text (spaces removed, lower case) appears last; numeric-only options are
  // skipped (a number would match inside other numbers).
  auto compact = [](std::string_view s) {
    std::string o;
    for (const char c : s)
      if (!std::isspace(static_cast<unsigned char>(c))) o += lower(c);
    return o;
  };
  const std::string ct = compact(text);
  std::optional<char> best;
  size_t best_pos = 0;
  for (const auto& o : options) {
    const auto on = find_numbers(o.value);
    const std::string cv = compact(o.value);
    if (cv.empty() || (on.size() == 1 && on[0].end - on[0].begin + 2 >= o.value.size())) continue;
    const size_t p = ct.rfind(cv);
    if (p != std::string::npos && (!best || p + cv.size() > best_pos)) {
      best = o.letter;
      best_pos = p + cv.size();
    }
  }
  return best;
}

}  // namespace resp
