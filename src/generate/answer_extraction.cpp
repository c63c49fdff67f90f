#include "generate/answer_extraction.h"

#include <algorithm>
#include <cctype>
#include <regex>

#include "tokenizer/chat.h"
#include "tokenizer/unicode.h"

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

std::string_view flexible_region(std::string_view text) {
  const size_t p = text.rfind("</think>");
  return p == std::string_view::npos ? text : text.substr(p + 8);
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

namespace {

bool is_alpha(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) != 0;
}

size_t skip_blanks(std::string_view t, size_t i) {  // spaces and tabs, not newlines
  while (i < t.size() && (t[i] == ' ' || t[i] == '\t')) ++i;
  return i;
}

// Whether the option letter at low[p] of a lower-cased text reads as an option label.
//  - bracketed: after an `open` "(", "[" or quote, the matching ")", "]" or quote must follow
//    (blanks allowed): "(c)", "[d]", "' c '"; a ")" or "]" alone also makes a label ("c )");
//  - otherwise it must not run into a word ("answer is an integer", "e.g."), and the letter "a"
//    followed on the same line by a word is the English article ("the answer is a multiple of
//    3"), unless an "option"/"choice" word names it;
//  - `terminal` (statements without a connecting "is"/":"/"-"): the label must also end its
//    clause, optionally followed by its option's value: end of text, end of line, or one of
//    . * ) ] } " ' $ after it ("answer c", "answer e 51", "hence option d."), so "option d is a
//    common mistake" and "to answer a question" state nothing.
bool letter_is_label(std::string_view low, size_t p, char open, bool after_option_word,
                     bool terminal) {
  const size_t n = low.size();
  if (p > 0 && is_alnum(low[p - 1])) return false;
  if (p + 1 < n && (is_alnum(low[p + 1]) || low[p + 1] == '_')) return false;
  const size_t q = skip_blanks(low, p + 1);
  const bool quote = open == '\'' || open == '"';
  const bool closed = q < n && (quote ? low[q] == open : (low[q] == ')' || low[q] == ']'));
  if (open && !closed) return false;  // "(a good one)"
  if (!closed) {
    if (p + 2 < n && low[p + 1] == '.' && is_alpha(low[p + 2])) return false;  // "e.g."
    if (low[p] == 'a' && !after_option_word && q > p + 1 && q < n && is_alnum(low[q]))
      return false;  // the article
  }
  if (!terminal) return true;
  size_t e = closed ? skip_blanks(low, q + 1) : q;
  // The option's value may follow: "answer e 51", "ans . e ) 7".
  if (e < n && (is_digit(low[e]) || (low[e] == '-' && e + 1 < n && is_digit(low[e + 1])))) {
    ++e;
    while (e < n && (is_digit(low[e]) ||
                     ((low[e] == '.' || low[e] == ',') && e + 1 < n && is_digit(low[e + 1]))))
      ++e;
    e = skip_blanks(low, e);
  }
  return e >= n || std::string_view("\r\n.*)]}\"'$").find(low[e]) != std::string_view::npos;
}

// Calls `accept(match)` on every match of `re` in `low` from left to right, restarting one
// character after each match's start (so a rejected statement hides nothing); returns the last
// accepted letter's position and letter. The last statement wins because reasoning models
// revise ("Answer: a. Wait, no. The answer is b."); words that merely mention an option
// ("Option d is a common mistake") are not statements (the accept rules).
template <class Accept>
std::optional<std::pair<size_t, char>> last_accepted(const std::string& low, const std::regex& re,
                                                     int letter_group, Accept accept) {
  std::optional<std::pair<size_t, char>> found;
  auto begin = low.cbegin();
  std::smatch m;
  auto flags = std::regex_constants::match_default;
  while (std::regex_search(begin, low.cend(), m, re, flags)) {
    const size_t start = static_cast<size_t>(m[0].first - low.cbegin());
    if (accept(m)) {
      const size_t lp = static_cast<size_t>(m[letter_group].first - low.cbegin());
      found = std::make_pair(lp, low[lp]);
    }
    begin = low.cbegin() + static_cast<std::ptrdiff_t>(start + 1);
    flags = std::regex_constants::match_prev_avail;
  }
  return found;
}

// "A", "(a)", "a )", "[B]", "**C**", "d." as the whole text (surrounding whitespace allowed).
std::optional<char> bare_letter(std::string_view t) {
  auto trim = [](std::string_view x) {
    while (!x.empty() && std::isspace(static_cast<unsigned char>(x.front()))) x.remove_prefix(1);
    while (!x.empty() && std::isspace(static_cast<unsigned char>(x.back()))) x.remove_suffix(1);
    return x;
  };
  t = trim(t);
  if (!t.empty() && t.back() == '.') t = trim(t.substr(0, t.size() - 1));
  if (t.size() >= 4 && t.substr(0, 2) == "**" && t.substr(t.size() - 2) == "**")
    t = trim(t.substr(2, t.size() - 4));
  if (!t.empty() && (t.front() == '(' || t.front() == '[')) {
    const char close = t.front() == '(' ? ')' : ']';
    if (t.back() != close) return std::nullopt;
    t = trim(t.substr(1, t.size() - 2));
  } else if (!t.empty() && t.back() == ')') {
    t = trim(t.substr(0, t.size() - 1));
  }
  if (t.size() != 1) return std::nullopt;
  const char c = lower(t[0]);
  if (c < 'a' || c > 'e') return std::nullopt;
  return c;
}

}  // namespace

std::optional<char> mathqa_letter(std::string_view text) {
  if (text.empty()) return std::nullopt;
  const std::string low = to_lower(text);
  // 1. keyword [connector] [option word] letter: "answer is (c)", "answer: c", "ans - b",
  //    "correct option is d", "answer choice ( c )", "answer c" (at the end of a clause).
  //    Groups: 1 "answer"/"ans", 2 "option"/"choice" right after it, 3 the connector, 4 an option
  //    word after the connector, 5 "(", "[" or a quote, 6 the letter.
  static const std::regex stated(
      R"(\b(?:(answer|ans)(\s+(?:option|choice))?|option|choice)\b[\s*.;]*)"
      R"(((?:is|would\s+be|will\s+be|should\s+be|must\s+be)\b|=|:|-|)"
      "\xE2\x80\x93"  // en dash
      R"()?[\s*:]*((?:option|choice)\b[\s*:]*)?([(\['"]?)[\s*]*([a-e]))");
  // 2. "\boxed{c}", "\boxed{\text{c}}", "\boxed{(c) 129}". Groups: 1 "(", 2 the letter.
  static const std::regex boxed(R"(\\boxed\{\s*(?:\\text(?:bf)?\{\s*)?(\(?)\s*([a-e]))");
  // 3. letter as the subject: "d is the answer", "( e ) is correct", "option b is the right
  //    one". Groups: 1 option word, 2 "(", 3 the letter.
  static const std::regex subject(
      R"((?:^|[^a-z0-9\\])((?:option|choice)\s*)?(\(?)\s*([a-e])\s*\)?\s+is\s+(?:the\s+)?)"
      R"((?:correct|right|answer|best)\b)");

  std::optional<std::pair<size_t, char>> best;
  auto consider = [&](const std::optional<std::pair<size_t, char>>& c) {
    if (c && (!best || c->first > best->first)) best = c;
  };
  consider(last_accepted(low, stated, 6, [&](const std::smatch& m) {
    const size_t p = static_cast<size_t>(m[6].first - low.cbegin());
    const bool connector = m[3].matched;
    const bool option_word = m[4].matched || (m[2].matched && !connector);
    const char open = m[5].length() > 0 ? *m[5].first : '\0';
    // "option d" / "choice (b)" without a connector: only a label that ends its clause
    // ("... hence option d."); "answer c" / "answer choice c" likewise unless parenthesised.
    if (!connector && !m[1].matched) return letter_is_label(low, p, open, true, true);
    return letter_is_label(low, p, open, option_word, /*terminal=*/!connector && !open);
  }));
  consider(last_accepted(low, boxed, 2, [&](const std::smatch& m) {
    const size_t p = static_cast<size_t>(m[2].first - low.cbegin());
    if (p + 1 < low.size() && is_alnum(low[p + 1])) return false;
    const size_t q = [&] {
      size_t i = p + 1;
      while (i < low.size() && std::isspace(static_cast<unsigned char>(low[i]))) ++i;
      return i;
    }();
    return m[1].length() > 0 ||
           (q < low.size() && std::string_view("}).:").find(low[q]) != std::string_view::npos);
  }));
  consider(last_accepted(low, subject, 3, [&](const std::smatch& m) {
    const size_t p = static_cast<size_t>(m[3].first - low.cbegin());
    return !(p + 1 < low.size() && is_alnum(low[p + 1])) && (p == 0 || !is_alnum(low[p - 1]));
  }));
  if (best) return best->second;
  return bare_letter(text);
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

// ---- lm-evaluation-harness gsm8k_cot ----------------------------------------------------------

namespace {

// Python str.lstrip(): drops leading code points for which str.isspace() is true. Stops at the
// first byte that does not start a complete UTF-8 sequence.
std::string_view py_lstrip(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    if (len == 0 || i + len > s.size()) break;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return s.substr(i);
    size_t got = 0;
    const uint32_t cp = unicode::decode_utf8(s.data(), i, got);
    if (!(unicode::char_flags(cp) & unicode::kPythonSpace)) break;
    i += len;
  }
  return s.substr(i);
}

}  // namespace

const std::vector<std::string>& lm_eval_gsm8k_until() {
  static const std::vector<std::string> until = {"Q:", "</s>", "<|im_end|>"};
  return until;
}

std::string lm_eval_until_cut(std::string_view text, const std::vector<std::string>& until) {
  for (const std::string& term : until) {
    if (term.empty()) continue;
    const size_t p = text.find(term);
    if (p != std::string_view::npos) text = text.substr(0, p);
  }
  return std::string(text);
}

std::string lm_eval_response(std::string_view output, bool thinking,
                             const std::vector<std::string>& until) {
  std::string s = lm_eval_until_cut(output, until);
  if (!thinking) return s;
  const size_t p = s.rfind("</think>");
  const std::string_view after =
      p == std::string::npos ? std::string_view(s) : std::string_view(s).substr(p + 8);
  return std::string(py_lstrip(after));
}

// The group holds only "-0-9.," (strict) or "-$0-9.," (flexible) characters, so the filter's
// .strip() has nothing to remove.
std::string lm_eval_strict(std::string_view r) {
  static constexpr std::string_view kPrefix = "The answer is ";
  auto in_class = [](char c) { return is_digit(c) || c == '.' || c == ','; };
  const size_t n = r.size();
  for (size_t p = r.find(kPrefix); p != std::string_view::npos; p = r.find(kPrefix, p + 1)) {
    const size_t g = p + kPrefix.size();
    // `\-?` takes the minus when there is one; without it the group must start at g.
    for (size_t j = g + (g < n && r[g] == '-');; j = g) {
      size_t e = j;
      while (e < n && in_class(r[e])) ++e;
      if (e > j) {
        // The pattern's final `.` needs one more character, any but "\n". The greedy run gives
        // back its last character to it when the run is followed by "\n" or the end.
        if (e < n && r[e] != '\n') return std::string(r.substr(g, e - g));
        if (e - j >= 2) return std::string(r.substr(g, e - 1 - g));
      }
      if (j == g) break;
    }
  }
  return std::string(kLmEvalInvalid);
}

std::string lm_eval_flexible(std::string_view r) {
  auto wide = [](char c) { return is_digit(c) || c == '$' || c == '.' || c == ','; };
  const size_t n = r.size();
  size_t last_b = 0, last_e = 0;
  bool found = false;
  size_t i = 0;
  while (i < n) {
    // re.findall: the leftmost match from i; alternative 1 `-?[$0-9.,]{2,}` before alternative
    // 2 `-?[0-9]+`. Without its optional minus neither alternative can start at a "-".
    const size_t j = i + (r[i] == '-');
    size_t e1 = j;
    while (e1 < n && wide(r[e1])) ++e1;
    size_t end = 0;
    if (e1 - j >= 2) {
      end = e1;  // group 1
    } else {
      size_t e2 = j;
      while (e2 < n && is_digit(r[e2])) ++e2;
      if (e2 > j) end = e2;  // group 2
    }
    if (end == 0) {
      ++i;
      continue;
    }
    // Only one group of the tuple is non-empty: the text of the alternative that matched.
    last_b = i;
    last_e = end;
    found = true;
    i = end;
  }
  if (!found) return std::string(kLmEvalInvalid);
  return std::string(r.substr(last_b, last_e - last_b));
}

std::string lm_eval_normalize(std::string_view s, const LmEvalExactMatch& o) {
  std::string x(s);
  if (o.regexes_to_ignore) {
    x.erase(std::remove(x.begin(), x.end(), ','), x.end());  // ","
    x.erase(std::remove(x.begin(), x.end(), '$'), x.end());  // "\$"
    // "(?s).*#### ": the greedy `.*` (newlines included) reaches the last "#### ".
    if (const size_t p = x.rfind("#### "); p != std::string::npos) x.erase(0, p + 5);
    // "\.$": `$` matches at the end and before a final "\n", so the "." removed is the last
    // character or the one before a final newline (never both: they exclude each other).
    if (!x.empty() && x.back() == '.')
      x.pop_back();
    else if (x.size() >= 2 && x.back() == '\n' && x[x.size() - 2] == '.')
      x.erase(x.size() - 2, 1);
  }
  if (o.ignore_case)
    for (char& c : x) c = lower(c);  // ASCII; see docs/generation.md
  if (o.ignore_punctuation) {
    static constexpr std::string_view kPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    x.erase(std::remove_if(x.begin(), x.end(),
                           [](char c) { return kPunct.find(c) != std::string_view::npos; }),
            x.end());
  }
  return x;
}

bool lm_eval_exact_match(std::string_view prediction, std::string_view reference,
                         const LmEvalExactMatch& o) {
  return lm_eval_normalize(prediction, o) == lm_eval_normalize(reference, o);
}

std::string lm_eval_gsm8k_target(std::string_view answer) {
  const size_t p = answer.rfind("####");
  return py_strip(p == std::string_view::npos ? answer : answer.substr(p + 4));
}

}  // namespace resp
