#include "tokenizer/pystr.h"

#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "tokenizer/unicode.h"

namespace resp {

std::string py_strip(std::string_view s) {
  return pystr::strip(s, std::nullopt, true, true);
}

std::string_view py_strip_char(std::string_view s, char c, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && s[b] == c) ++b;
  if (right)
    while (e > b && s[e - 1] == c) --e;
  return s.substr(b, e - b);
}

namespace pystr {

namespace {

// Start of the code point that ends at byte `e` (exclusive).
size_t prev_start(std::string_view s, size_t e) {
  size_t p = e - 1;
  while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
  return p;
}

uint32_t cp_at(std::string_view s, size_t i, size_t& len) {
  return unicode::decode_utf8(s.data(), i, len);
}

std::string icu_to_utf8(const icu::UnicodeString& u) {
  std::string out;
  u.toUTF8String(out);
  return out;
}

icu::UnicodeString icu_of(std::string_view s) {
  return icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), static_cast<int32_t>(s.size())));
}

std::string title_one(uint32_t cp) {
  icu::UnicodeString u(static_cast<UChar32>(cp));
  u.toTitle(nullptr, icu::Locale::getRoot(),
            U_TITLECASE_NO_LOWERCASE | U_TITLECASE_NO_BREAK_ADJUSTMENT);
  return icu_to_utf8(u);
}

std::string lower_one(uint32_t cp) {
  icu::UnicodeString u(static_cast<UChar32>(cp));
  u.toLower(icu::Locale::getRoot());
  return icu_to_utf8(u);
}

std::string upper_one(uint32_t cp) {
  icu::UnicodeString u(static_cast<UChar32>(cp));
  u.toUpper(icu::Locale::getRoot());
  return icu_to_utf8(u);
}

bool is_cased(uint32_t cp) {
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_CASED);
}
bool is_upper_cp(uint32_t cp) {
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_UPPERCASE);
}
bool is_lower_cp(uint32_t cp) {
  return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_LOWERCASE);
}
bool is_title_cp(uint32_t cp) {
  return u_istitle(static_cast<UChar32>(cp));
}
bool is_digit_cp(uint32_t cp) {
  const int t = u_getIntPropertyValue(static_cast<UChar32>(cp), UCHAR_NUMERIC_TYPE);
  return t == U_NT_DECIMAL || t == U_NT_DIGIT;
}
bool is_numeric_cp(uint32_t cp) {
  return u_getIntPropertyValue(static_cast<UChar32>(cp), UCHAR_NUMERIC_TYPE) != U_NT_NONE;
}
bool is_alpha_cp(uint32_t cp) {
  return (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_L_MASK) != 0;
}

// CPython's Py_UNICODE_ISPRINTABLE: not Cc, Cf, Cs, Co, Cn, Zl, Zp, Zs (but ' ' is printable).
bool is_printable(uint32_t cp) {
  if (cp == ' ') return true;
  const uint32_t m = U_GET_GC_MASK(static_cast<UChar32>(cp));
  return !(m & (U_GC_CC_MASK | U_GC_CF_MASK | U_GC_CS_MASK | U_GC_CO_MASK | U_GC_CN_MASK |
                U_GC_ZL_MASK | U_GC_ZP_MASK | U_GC_ZS_MASK));
}

template <typename Pred>
bool all_of_cps(std::string_view s, Pred p) {
  if (s.empty()) return false;
  for (size_t i = 0, len = 0; i < s.size(); i += len)
    if (!p(cp_at(s, i, len))) return false;
  return true;
}

void append_hex(std::string& out, uint32_t v, int digits) {
  static const char* hex = "0123456789abcdef";
  for (int k = digits - 1; k >= 0; --k) out += hex[(v >> (4 * k)) & 15];
}

bool is_line_break(uint32_t cp) {
  return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || cp == 0x1C || cp == 0x1D ||
         cp == 0x1E || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

}  // namespace

std::vector<uint32_t> code_points(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t i = 0, len = 0; i < s.size(); i += len) out.push_back(cp_at(s, i, len));
  return out;
}

std::string from_code_points(const uint32_t* cps, size_t n) {
  std::string out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) unicode::append_utf8(out, cps[i]);
  return out;
}

size_t length(std::string_view s) {
  size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

size_t byte_offset(std::string_view s, size_t index) {
  size_t i = 0;
  for (size_t k = 0; k < index && i < s.size(); ++k) {
    size_t len;
    cp_at(s, i, len);
    i += len;
  }
  return i;
}

bool is_space(uint32_t cp) {
  return (unicode::char_flags(cp) & unicode::kPythonSpace) != 0;
}

std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                  bool right) {
  std::vector<uint32_t> set;
  if (chars) set = code_points(*chars);
  auto strippable = [&](uint32_t cp) {
    return chars ? std::find(set.begin(), set.end(), cp) != set.end() : is_space(cp);
  };
  size_t b = 0, e = s.size();
  if (left) {
    while (b < e) {
      size_t len;
      if (!strippable(cp_at(s, b, len))) break;
      b += len;
    }
  }
  if (right) {
    while (e > b) {
      const size_t p = prev_start(s, e);
      size_t len;
      if (!strippable(cp_at(s, p, len))) break;
      e = p;
    }
  }
  return std::string(s.substr(b, e - b));
}

std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t i = 0;
    while (maxsplit != 0) {
      const size_t j = s.find(*sep, i);
      if (j == std::string_view::npos) break;
      out.emplace_back(s.substr(i, j - i));
      i = j + sep->size();
      if (maxsplit > 0) --maxsplit;
    }
    out.emplace_back(s.substr(i));
    return out;
  }
  auto skip_ws = [&](size_t i) {
    while (i < s.size()) {
      size_t len;
      if (!is_space(cp_at(s, i, len))) break;
      i += len;
    }
    return i;
  };
  size_t i = skip_ws(0);
  while (i < s.size()) {
    if (maxsplit == 0) {
      out.emplace_back(s.substr(i));
      break;
    }
    size_t j = i;
    while (j < s.size()) {
      size_t len;
      if (is_space(cp_at(s, j, len))) break;
      j += len;
    }
    out.emplace_back(s.substr(i, j - i));
    if (maxsplit > 0) --maxsplit;
    i = skip_ws(j);
  }
  return out;
}

std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t e = s.size();
    while (maxsplit != 0 && e >= sep->size()) {
      const size_t j = s.substr(0, e).rfind(*sep);
      if (j == std::string_view::npos) break;
      out.emplace_back(s.substr(j + sep->size(), e - j - sep->size()));
      e = j;
      if (maxsplit > 0) --maxsplit;
    }
    out.emplace_back(s.substr(0, e));
    std::reverse(out.begin(), out.end());
    return out;
  }
  auto skip_ws_back = [&](size_t e) {
    while (e > 0) {
      const size_t p = prev_start(s, e);
      size_t len;
      if (!is_space(cp_at(s, p, len))) break;
      e = p;
    }
    return e;
  };
  size_t e = skip_ws_back(s.size());
  while (e > 0) {
    if (maxsplit == 0) {
      out.emplace_back(s.substr(0, e));
      break;
    }
    size_t j = e;
    while (j > 0) {
      const size_t p = prev_start(s, j);
      size_t len;
      if (is_space(cp_at(s, p, len))) break;
      j = p;
    }
    out.emplace_back(s.substr(j, e - j));
    if (maxsplit > 0) --maxsplit;
    e = skip_ws_back(j);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<std::string> splitlines(std::string_view s, bool keepends) {
  std::vector<std::string> out;
  size_t start = 0, i = 0;
  while (i < s.size()) {
    size_t len;
    const uint32_t cp = cp_at(s, i, len);
    if (!is_line_break(cp)) {
      i += len;
      continue;
    }
    size_t end = i + len;
    if (cp == '\r' && end < s.size() && s[end] == '\n') ++end;
    out.emplace_back(s.substr(start, (keepends ? end : i) - start));
    start = i = end;
  }
  if (start < s.size()) out.emplace_back(s.substr(start));
  return out;
}

std::string replace(std::string_view s, std::string_view old, std::string_view repl,
                    int64_t count) {
  std::string out;
  if (old.empty()) {
    size_t i = 0;
    while (i <= s.size()) {
      if (count != 0) {
        out += repl;
        if (count > 0) --count;
      }
      if (i == s.size()) break;
      size_t len;
      cp_at(s, i, len);
      out += s.substr(i, len);
      i += len;
    }
    return out;
  }
  size_t i = 0;
  while (count != 0) {
    const size_t j = s.find(old, i);
    if (j == std::string_view::npos) break;
    out += s.substr(i, j - i);
    out += repl;
    i = j + old.size();
    if (count > 0) --count;
  }
  out += s.substr(i);
  return out;
}

int64_t find(std::string_view s, std::string_view sub) {
  const size_t j = s.find(sub);
  return j == std::string_view::npos ? -1 : static_cast<int64_t>(length(s.substr(0, j)));
}

int64_t rfind(std::string_view s, std::string_view sub) {
  const size_t j = s.rfind(sub);
  return j == std::string_view::npos ? -1 : static_cast<int64_t>(length(s.substr(0, j)));
}

int64_t count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(length(s)) + 1;
  int64_t n = 0;
  for (size_t i = s.find(sub); i != std::string_view::npos; i = s.find(sub, i + sub.size())) ++n;
  return n;
}

std::string upper(std::string_view s) {
  icu::UnicodeString u = icu_of(s);
  u.toUpper(icu::Locale::getRoot());
  return icu_to_utf8(u);
}

std::string lower(std::string_view s) {
  icu::UnicodeString u = icu_of(s);
  u.toLower(icu::Locale::getRoot());
  return icu_to_utf8(u);
}

std::string title(std::string_view s) {
  std::string out;
  bool prev_cased = false;
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const uint32_t cp = cp_at(s, i, len);
    out += prev_cased ? lower_one(cp) : title_one(cp);
    prev_cased = is_cased(cp);
  }
  return out;
}

std::string capitalize(std::string_view s) {
  if (s.empty()) return {};
  size_t len;
  const uint32_t cp = cp_at(s, 0, len);
  return title_one(cp) + lower(s.substr(len));
}

std::string swapcase(std::string_view s) {
  std::string out;
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const uint32_t cp = cp_at(s, i, len);
    if (is_upper_cp(cp))
      out += lower_one(cp);
    else if (is_lower_cp(cp))
      out += upper_one(cp);
    else
      out += s.substr(i, len);
  }
  return out;
}

bool isdigit(std::string_view s) {
  return all_of_cps(s, is_digit_cp);
}
bool isalpha(std::string_view s) {
  return all_of_cps(s, is_alpha_cp);
}
bool isalnum(std::string_view s) {
  return all_of_cps(s, [](uint32_t c) { return is_alpha_cp(c) || is_numeric_cp(c); });
}
bool isspace(std::string_view s) {
  return all_of_cps(s, is_space);
}

bool islower(std::string_view s) {
  bool cased = false;
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const uint32_t cp = cp_at(s, i, len);
    if (is_upper_cp(cp) || is_title_cp(cp)) return false;
    cased = cased || is_lower_cp(cp);
  }
  return cased;
}

bool isupper(std::string_view s) {
  bool cased = false;
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const uint32_t cp = cp_at(s, i, len);
    if (is_lower_cp(cp) || is_title_cp(cp)) return false;
    cased = cased || is_upper_cp(cp);
  }
  return cased;
}

std::string repr(std::string_view s) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  std::string out(1, quote);
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const uint32_t cp = cp_at(s, i, len);
    if (cp == static_cast<uint32_t>(quote) || cp == '\\') {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
      // NOLINTNEXTLINE(bugprone-branch-clone): same escape as Latin-1 below, tested before
      // printables
    } else if (cp < 0x20 || cp == 0x7F) {
      out += "\\x";
      append_hex(out, cp, 2);
    } else if (cp < 0x80 || is_printable(cp)) {
      out += s.substr(i, len);
    } else if (cp <= 0xFF) {
      out += "\\x";
      append_hex(out, cp, 2);
    } else if (cp <= 0xFFFF) {
      out += "\\u";
      append_hex(out, cp, 4);
    } else {
      out += "\\U";
      append_hex(out, cp, 8);
    }
  }
  out += quote;
  return out;
}

std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<size_t>(r.ptr - buf));
  // sci = [-]d[.ddd]e(+|-)XX
  std::string_view mant = sci.substr(0, sci.find('e'));
  const int exp10 = std::stoi(std::string(sci.substr(sci.find('e') + 1)));
  std::string out;
  if (!mant.empty() && mant[0] == '-') {
    out += '-';
    mant.remove_prefix(1);
  }
  std::string digits;
  for (const char c : mant)
    if (c != '.') digits += c;
  const int n = static_cast<int>(digits.size());
  const int decpt = exp10 + 1;  // value = 0.digits * 10^decpt
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) {
      out += "0.";
      out.append(static_cast<size_t>(-decpt), '0');
      out += digits;
    } else if (decpt < n) {
      out.append(digits, 0, static_cast<size_t>(decpt));
      out += '.';
      out.append(digits, static_cast<size_t>(decpt), std::string::npos);
    } else {
      out += digits;
      out.append(static_cast<size_t>(decpt - n), '0');
      out += ".0";
    }
    return out;
  }
  out += digits[0];
  if (n > 1) {
    out += '.';
    out.append(digits, 1, std::string::npos);
  }
  out += exp10 < 0 ? "e-" : "e+";
  const int a = exp10 < 0 ? -exp10 : exp10;
  if (a < 10) out += '0';
  out += std::to_string(a);
  return out;
}

std::string json_string(std::string_view s, bool ensure_ascii) {
  std::string out = "\"";
  for (size_t i = 0, len = 0; i < s.size(); i += len) {
    const uint32_t cp = cp_at(s, i, len);
    switch (cp) {
      case '"':
        out += "\\\"";
        continue;
      case '\\':
        out += "\\\\";
        continue;
      case '\n':
        out += "\\n";
        continue;
      case '\r':
        out += "\\r";
        continue;
      case '\t':
        out += "\\t";
        continue;
      case '\b':
        out += "\\b";
        continue;
      case '\f':
        out += "\\f";
        continue;
      default:
        break;
    }
    if (cp < 0x20 || (ensure_ascii && cp > 0x7E)) {
      auto esc = [&](uint32_t u) {
        out += "\\u";
        append_hex(out, u, 4);
      };
      if (cp > 0xFFFF) {
        const uint32_t v = cp - 0x10000;
        esc(0xD800 | (v >> 10));
        esc(0xDC00 | (v & 0x3FF));
      } else {
        esc(cp);
      }
    } else {
      out += s.substr(i, len);
    }
  }
  out += '"';
  return out;
}

}  // namespace pystr
}  // namespace resp
