#include "tokenizer/jinja_filters.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "tokenizer/jinja_ops.h"
#include "tokenizer/jinja_parser.h"
#include "tokenizer/pystr.h"
#include "tokenizer/unicode.h"

namespace resp::jinja {

namespace {

// The positional arguments after the first `skip`, as a new CallArgs with the same keywords.
CallArgs rest(const CallArgs& a, size_t skip) {
  CallArgs r;
  if (a.args.size() > skip) r.args.assign(a.args.begin() + static_cast<long>(skip), a.args.end());
  r.kwargs = a.kwargs;
  return r;
}

// len(value).
int64_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return 0;
    case Value::Kind::String:
      return static_cast<int64_t>(pystr::length(v.str()));
    case Value::Kind::List:
      return static_cast<int64_t>(v.list()->items.size());
    case Value::Kind::Dict:
      if (v.dict()->type == Dict::Type::Dict) return static_cast<int64_t>(v.dict()->items.size());
      break;
    default:
      break;
  }
  fail(cat("object of type '", v.type_name(), "' has no len()"));
}

// make_attrgetter: "a.b.0" looked up part by part with getitem semantics.
Value lookup_path(Value item, const Value& attribute, const Value& def = Value()) {
  std::vector<Value> parts;
  if (attribute.is_string()) {
    for (const std::string& p : pystr::split(attribute.str(), std::string("."), -1)) {
      if (!p.empty() && std::all_of(p.begin(), p.end(), ::isdigit))
        parts.emplace_back(static_cast<int64_t>(std::stoll(p)));
      else
        parts.emplace_back(p);
    }
  } else if (!attribute.is_none() && !attribute.is_undefined()) {
    parts.push_back(attribute);
  }
  for (const Value& p : parts) {
    item = get_item(item, p);
    if (!def.is_undefined() && !def.is_none() && item.is_undefined()) item = def;
  }
  return item;
}

Value fold_case(const Value& v, bool case_sensitive) {
  return !case_sensitive && v.is_string() ? Value(pystr::lower(v.str())) : v;
}

std::optional<int64_t> parse_int(const std::string& text, int64_t base) {
  std::string s = pystr::strip(text, std::nullopt, true, true);
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.erase(0, 1);
  }
  auto has_prefix = [&](char p) {
    return s.size() > 2 && s[0] == '0' && std::tolower(static_cast<unsigned char>(s[1])) == p;
  };
  if (base == 0) {
    base = has_prefix('x') ? 16 : has_prefix('o') ? 8 : has_prefix('b') ? 2 : 10;
    if (base == 10 && s.size() > 1 && s[0] == '0' && s.find_first_not_of("0_") != std::string::npos)
      return std::nullopt;
  }
  if ((base == 16 && has_prefix('x')) || (base == 8 && has_prefix('o')) ||
      (base == 2 && has_prefix('b'))) {
    s.erase(0, 2);
    if (!s.empty() && s[0] == '_') s.erase(0, 1);
  }
  if (base < 2 || base > 36 || s.empty() || s.front() == '_' || s.back() == '_')
    return std::nullopt;
  int64_t v = 0;
  char prev = 0;
  for (const char c : s) {
    if (c == '_') {
      if (prev == '_') return std::nullopt;
      prev = c;
      continue;
    }
    prev = c;
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (std::isalpha(static_cast<unsigned char>(c))) {
      d = std::tolower(static_cast<unsigned char>(c)) - 'a' + 10;
    } else {
      return std::nullopt;
    }
    if (d >= base) return std::nullopt;
    if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v))
      return std::nullopt;
  }
  return neg ? -v : v;
}

// Python's float(str).
std::optional<double> parse_float(const std::string& text) {
  std::string s = pystr::strip(text, std::nullopt, true, true);
  std::string t;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 == s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1])))
        return std::nullopt;
      continue;
    }
    t += s[i];
  }
  std::string body = t;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) body.erase(0, 1);
  std::string low = pystr::lower(body);
  if (low == "inf" || low == "infinity" || low == "nan") {
    const double v = low == "nan" ? NAN : INFINITY;
    return !t.empty() && t[0] == '-' ? -v : v;
  }
  size_t i = 0, digits = 0;
  while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i, ++digits;
  if (i < body.size() && body[i] == '.') {
    ++i;
    while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i, ++digits;
  }
  if (digits == 0) return std::nullopt;
  if (i < body.size() && (body[i] == 'e' || body[i] == 'E')) {
    ++i;
    if (i < body.size() && (body[i] == '+' || body[i] == '-')) ++i;
    size_t e = 0;
    while (i < body.size() && std::isdigit(static_cast<unsigned char>(body[i]))) ++i, ++e;
    if (e == 0) return std::nullopt;
  }
  if (i != body.size()) return std::nullopt;
  return std::strtod(t.c_str(), nullptr);
}

// Python's round(x, ndigits) for a float: correctly rounded, ties to even on the exact value.
double py_round(double x, int64_t ndigits) {
  if (!std::isfinite(x)) return x;
  if (ndigits > 300) return x;
  if (ndigits < -300) return 0.0 * x;
  if (ndigits >= 0) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(ndigits), x);
    return std::strtod(buf, nullptr);
  }
  const double p = std::pow(10.0, static_cast<double>(-ndigits));
  const double y = x / p;
  double r = std::nearbyint(y);
  return r * p;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// jinja2's title filter: each run after [-\s({[<] starts upper case, the rest lower case.
std::string jinja_title(const std::string& s) {
  auto is_sep = [](uint32_t cp) {
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || pystr::is_space(cp);
  };
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    size_t len;
    const bool sep = is_sep(unicode::decode_utf8(s.data(), i, len));
    size_t j = i;
    while (j < s.size()) {
      size_t l2;
      if (is_sep(unicode::decode_utf8(s.data(), j, l2)) != sep) break;
      j += l2;
    }
    const std::string item = s.substr(i, j - i);
    size_t first;
    unicode::decode_utf8(item.data(), 0, first);
    out += pystr::upper(item.substr(0, first)) + pystr::lower(item.substr(first));
    i = j;
  }
  return out;
}

std::string indent(const std::string& text, const std::string& ind, bool first, bool blank) {
  const std::string s = text + "\n";
  const std::vector<std::string> lines = pystr::splitlines(s);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + ind : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i)
      rv += "\n" + (lines[i].empty() ? lines[i] : ind + lines[i]);
  }
  return first ? ind + rv : rv;
}

std::vector<Value> sorted(std::vector<Value> items, bool reverse, bool case_sensitive,
                          const Value& attribute) {
  std::vector<std::vector<Value>> keys;
  std::vector<Value> attrs;
  if (attribute.is_string()) {
    for (const std::string& a : pystr::split(attribute.str(), std::string(","), -1))
      attrs.emplace_back(a);
  } else if (!attribute.is_none() && !attribute.is_undefined()) {
    attrs.push_back(attribute);
  }
  for (const Value& it : items) {
    std::vector<Value> k;
    if (attrs.empty()) {
      k.push_back(fold_case(it, case_sensitive));
    } else {
      for (const Value& a : attrs) k.push_back(fold_case(lookup_path(it, a), case_sensitive));
    }
    keys.push_back(std::move(k));
  }
  std::vector<size_t> order(items.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) {
    const Value a = make_list(keys[x]), b = make_list(keys[y]);
    return reverse ? compare(b, a, "<") < 0 : compare(a, b, "<") < 0;
  });
  std::vector<Value> out;
  for (const size_t i : order) out.push_back(items[i]);
  return out;
}

Value select(const Value& value, const CallArgs& a, bool lookup_attr, bool keep) {
  if (!value.truthy()) return make_list({});
  const size_t off = lookup_attr ? 1 : 0;
  if (lookup_attr && a.args.empty()) fail("Missing parameter for attribute name");
  std::vector<Value> out;
  for (const Value& item : iterate(value)) {
    const Value x = lookup_attr ? lookup_path(item, a.args[0]) : item;
    bool t;
    if (a.args.size() > off) {
      if (!a.args[off].is_string()) fail("the test name must be a string");
      t = apply_test(a.args[off].str(), x, rest(a, off + 1));
    } else {
      t = x.truthy();
    }
    if (t == keep) out.push_back(item);
  }
  return make_list(std::move(out));
}

Value min_max(const Value& value, const CallArgs& a, bool want_max, const char* fname) {
  ArgReader r(a, fname, {"case_sensitive", "attribute"});
  const auto items = iterate(value);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  const bool cs = r.get_bool(0, false);
  const Value attr = r.get(1, Value::none());
  size_t best = 0;
  Value best_key = fold_case(lookup_path(items[0], attr), cs);
  for (size_t i = 1; i < items.size(); ++i) {
    const Value k = fold_case(lookup_path(items[i], attr), cs);
    const int c = compare(k, best_key, want_max ? ">" : "<");
    if (want_max ? c > 0 : c < 0) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}

}  // namespace

Value apply_filter(const std::string& name, const Value& value, const CallArgs& a) {
  const std::string& n = name;
  if (n == "tojson") {
    ArgReader r(a, n, {"ensure_ascii", "indent", "separators", "sort_keys"});
    JsonOptions o;
    o.ensure_ascii = r.get_bool(0, false);
    const Value ind = r.get(1, Value::none());
    if (ind.is_string()) {
      o.indent = ind.str();
    } else if (ind.is_int() || ind.is_bool()) {
      o.indent = std::string(static_cast<size_t>(std::max<int64_t>(0, ind.as_int())), ' ');
    } else if (!ind.is_none()) {
      fail("tojson(): indent must be an integer or a string");
    }
    const Value sep = r.get(2, Value::none());
    if (sep.is_list()) {
      const auto& s = sep.list()->items;
      if (s.size() != 2 || !s[0].is_string() || !s[1].is_string())
        fail("tojson(): separators must be a pair of strings");
      o.separators = std::make_pair(s[0].str(), s[1].str());
    } else if (!sep.is_none()) {
      fail("tojson(): separators must be a pair of strings");
    }
    o.sort_keys = r.get_bool(3, false);
    return Value(to_json(value, o));
  }
  if (n == "length" || n == "count") {
    ArgReader r(a, n, {});
    return Value(length_of(value));
  }
  if (n == "default" || n == "d") {
    ArgReader r(a, n, {"default_value", "boolean"});
    if (value.is_undefined() || (r.get_bool(1, false) && !value.truthy()))
      return r.get(0, Value(""));
    return value;
  }
  if (n == "trim") {
    ArgReader r(a, n, {"chars"});
    return Value(pystr::strip(value.to_string(), r.get_str(0), true, true));
  }
  if (n == "upper" || n == "lower" || n == "capitalize" || n == "title") {
    ArgReader r(a, n, {});
    const std::string s = value.to_string();
    if (n == "upper") return Value(pystr::upper(s));
    if (n == "lower") return Value(pystr::lower(s));
    if (n == "capitalize") return Value(pystr::capitalize(s));
    return Value(jinja_title(s));
  }
  if (n == "string" || n == "safe") {
    ArgReader r(a, n, {});
    return Value(value.to_string());
  }
  if (n == "e" || n == "escape") {
    ArgReader r(a, n, {});
    return Value(html_escape(value.to_string()));
  }
  if (n == "join") {
    ArgReader r(a, n, {"d", "attribute"});
    const std::string sep = r.get(0, Value("")).to_string();
    const Value attr = r.get(1, Value::none());
    std::string out;
    const auto items = iterate(value);
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += sep;
      out += (attr.is_none() ? items[i] : lookup_path(items[i], attr)).to_string();
      if (out.size() > kMaxValueBytes) fail("value too large");
    }
    return Value(std::move(out));
  }
  if (n == "first" || n == "last") {
    ArgReader r(a, n, {});
    const auto items = iterate(value);
    if (items.empty())
      return Value::undefined(n == "first" ? "No first item, sequence was empty."
                                           : "No last item, sequence was empty.");
    return n == "first" ? items.front() : items.back();
  }
  if (n == "list") {
    ArgReader r(a, n, {});
    return make_list(iterate(value));
  }
  if (n == "reverse") {
    ArgReader r(a, n, {});
    if (value.is_string()) {
      auto cps = pystr::code_points(value.str());
      std::reverse(cps.begin(), cps.end());
      return Value(pystr::from_code_points(cps.data(), cps.size()));
    }
    auto items = iterate(value);
    std::reverse(items.begin(), items.end());
    return make_list(std::move(items));
  }
  if (n == "int") {
    ArgReader r(a, n, {"default", "base"});
    Value def = r.get(0, Value(0));
    if (value.is_undefined()) fail(value.undef().hint);
    if (value.is_int() || value.is_bool()) return Value(value.as_int());
    if (value.is_float()) {
      const double x = value.as_double();
      if (!std::isfinite(x) || std::fabs(x) >= 9.2e18) return def;
      return Value(static_cast<int64_t>(std::trunc(x)));
    }
    if (value.is_string()) {
      if (auto v = parse_int(value.str(), r.get_int(1, 10))) return Value(*v);
      if (auto f = parse_float(value.str()); f && std::isfinite(*f) && std::fabs(*f) < 9.2e18)
        return Value(static_cast<int64_t>(std::trunc(*f)));
    }
    return def;
  }
  if (n == "float") {
    ArgReader r(a, n, {"default"});
    if (value.is_undefined()) fail(value.undef().hint);
    if (value.is_number()) return Value(value.as_double());
    if (value.is_string())
      if (auto f = parse_float(value.str())) return Value(*f);
    return r.get(0, Value(0.0));
  }
  if (n == "abs") {
    ArgReader r(a, n, {});
    if (value.is_float()) return Value(std::fabs(value.as_double()));
    if (value.is_int() || value.is_bool()) {
      if (value.as_int() == INT64_MIN) fail("integer overflow");
      return Value(value.as_int() < 0 ? -value.as_int() : value.as_int());
    }
    fail(cat("bad operand type for abs(): '", value.type_name(), "'"));
  }
  if (n == "round") {
    ArgReader r(a, n, {"precision", "method"});
    const int64_t precision = r.get_int(0, 0);
    const std::string method = r.get_str(1).value_or("common");
    if (method != "common" && method != "ceil" && method != "floor")
      fail("method must be common, ceil or floor");
    if (!value.is_number()) fail(cat("type ", value.type_name(), " doesn't define __round__"));
    if (method == "common") {
      if (!value.is_float()) return Value(value.as_int());  // round(int, n) stays an int
      return Value(py_round(value.as_double(), precision));
    }
    const double p = std::pow(10.0, static_cast<double>(precision));
    const double x = value.as_double() * p;
    return Value((method == "ceil" ? std::ceil(x) : std::floor(x)) / p);
  }
  if (n == "replace") {
    ArgReader r(a, n, {"old", "new", "count"});
    if (!r.has(1)) fail("replace() needs the old and the new string");
    const Value cnt = r.get(2, Value::none());
    const std::string out =
        pystr::replace(value.to_string(), r.get(0).to_string(), r.get(1).to_string(),
                       cnt.is_none() ? -1 : r.get_int(2, -1));
    if (out.size() > kMaxValueBytes) fail("value too large");
    return Value(out);
  }
  if (n == "indent") {
    ArgReader r(a, n, {"width", "first", "blank"});
    if (value.is_undefined()) fail(value.undef().hint);
    if (!value.is_string())
      fail(cat("unsupported operand type(s) for +=: '", value.type_name(), "' and 'str'"));
    const Value w = r.get(0, Value(4));
    const std::string ind =
        w.is_string()
            ? w.str()
            : std::string(static_cast<size_t>(std::max<int64_t>(0, r.get_int(0, 4))), ' ');
    return Value(indent(value.to_string(), ind, r.get_bool(1, false), r.get_bool(2, false)));
  }
  if (n == "center") {
    ArgReader r(a, n, {"width"});
    CallArgs c;
    c.args.push_back(Value(r.get_int(0, 80)));
    return get_attr(Value(value.to_string()), "center").function()->call(c);
  }
  if (n == "items") {
    ArgReader r(a, n, {});
    if (value.is_undefined()) return make_list({});
    if (!value.is_mapping()) fail("Can only get item pairs from a mapping.");
    std::vector<Value> out;
    for (const auto& [k, v] : value.dict()->items) out.push_back(make_list({k, v}, true));
    return make_list(std::move(out));
  }
  if (n == "dictsort") {
    ArgReader r(a, n, {"case_sensitive", "by", "reverse"});
    if (!value.is_mapping()) fail("dictsort needs a mapping");
    const std::string by = r.get_str(1).value_or("key");
    if (by != "key" && by != "value") fail("You can only sort by either \"key\" or \"value\"");
    std::vector<Value> pairs;
    for (const auto& [k, v] : value.dict()->items) pairs.push_back(make_list({k, v}, true));
    return make_list(sorted(pairs, r.get_bool(2, false), r.get_bool(0, false),
                            Value(static_cast<int64_t>(by == "key" ? 0 : 1))));
  }
  if (n == "sort") {
    ArgReader r(a, n, {"reverse", "case_sensitive", "attribute"});
    return make_list(sorted(iterate(value), r.get_bool(0, false), r.get_bool(1, false),
                            r.get(2, Value::none())));
  }
  if (n == "unique") {
    ArgReader r(a, n, {"case_sensitive", "attribute"});
    const bool cs = r.get_bool(0, false);
    const Value attr = r.get(1, Value::none());
    std::vector<Value> out, seen;
    for (const Value& item : iterate(value)) {
      const Value k = fold_case(lookup_path(item, attr), cs);
      if ((k.is_list() && !k.list()->tuple) || k.is_dict())
        fail(cat("unhashable type: '", k.type_name(), "'"));
      if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
        seen.push_back(k);
        out.push_back(item);
      }
    }
    return make_list(std::move(out));
  }
  if (n == "min" || n == "max") return min_max(value, a, n == "max", n.c_str());
  if (n == "sum") {
    ArgReader r(a, n, {"attribute", "start"});
    const Value attr = r.get(0, Value::none());
    Value total = r.get(1, Value(0));
    for (const Value& item : iterate(value))
      total = binary_op("+", total, attr.is_none() ? item : lookup_path(item, attr));
    return total;
  }
  if (n == "map") {
    std::vector<Value> out;
    if (!value.truthy()) return make_list({});  // jinja2 maps nothing over a falsy value
    const auto items = iterate(value);
    if (a.args.empty()) {
      ArgReader r(a, n, {"attribute", "default"});
      if (!r.has(0)) fail("map requires a filter argument");
      for (const Value& item : items) out.push_back(lookup_path(item, r.get(0), r.get(1)));
    } else {
      if (!a.args[0].is_string()) fail("map(): the filter name must be a string");
      const std::string f = a.args[0].str();
      if (!is_jinja_filter(f)) fail(cat("No filter named '", f, "'"));
      const CallArgs fa = rest(a, 1);
      for (const Value& item : items) out.push_back(apply_filter(f, item, fa));
    }
    return make_list(std::move(out));
  }
  if (n == "select" || n == "reject") return select(value, a, false, n == "select");
  if (n == "selectattr" || n == "rejectattr") return select(value, a, true, n == "selectattr");
  if (n == "attr") {
    ArgReader r(a, n, {"name"});
    const auto attr = r.get_str(0);
    if (!attr) fail("attr(): the name must be a string");
    if (value.is_mapping()) {
      // A dict's keys are not attributes; only its methods are.
      const Value m = get_attr(value, *attr);
      return m.is_function()
                 ? m
                 : Value::undefined(cat("'dict object' has no attribute '", *attr, "'"));
    }
    return get_attr(value, *attr);
  }
  if (n == "format") {
    if (!a.args.empty() && !a.kwargs.empty())
      fail("can't handle positional and keyword arguments at the same time");
    if (!a.kwargs.empty()) {
      std::vector<std::pair<Value, Value>> kv;
      for (const auto& [k, v] : a.kwargs) kv.emplace_back(Value(k), v);
      return Value(percent_format(value.to_string(), make_dict(std::move(kv))));
    }
    return Value(percent_format(value.to_string(), make_list(a.args, true)));
  }
  if (n == "wordcount") {
    ArgReader r(a, n, {});
    const std::string s = value.to_string();
    int64_t words = 0;
    bool in_word = false;
    for (size_t i = 0, len = 0; i < s.size(); i += len) {
      const uint32_t cp = unicode::decode_utf8(s.data(), i, len);
      const bool w = cp == '_' || (unicode::char_flags(cp) & unicode::kWord);
      if (w && !in_word) ++words;
      in_word = w;
    }
    return Value(words);
  }
  unsupported(cat("the filter '", n, "'"));
}

bool apply_test(const std::string& name, const Value& v, const CallArgs& a) {
  const std::string& n = name;
  auto no_args = [&]() { ArgReader r(a, n, {}); };
  auto one_arg = [&]() -> Value {
    ArgReader r(a, n, {"other"});
    if (!r.has(0)) fail(cat("test '", n, "' needs an argument"));
    return r.get(0);
  };
  if (n == "defined" || n == "undefined") {
    no_args();
    return v.is_undefined() == (n == "undefined");
  }
  if (n == "none") {
    no_args();
    return v.is_none();
  }
  if (n == "boolean" || n == "true" || n == "false") {
    no_args();
    if (!v.is_bool()) return false;
    return n == "boolean" || v.as_bool() == (n == "true");
  }
  if (n == "string") {
    no_args();
    return v.is_string();
  }
  if (n == "mapping") {
    no_args();
    return v.is_mapping();
  }
  if (n == "number") {
    no_args();
    return v.is_number();
  }
  if (n == "integer") {
    no_args();
    return v.is_int();
  }
  if (n == "float") {
    no_args();
    return v.is_float();
  }
  if (n == "iterable" || n == "sequence") {
    no_args();
    return v.is_undefined() || v.is_string() || v.is_list() || v.is_mapping();
  }
  if (n == "callable") {
    no_args();
    return v.is_function();
  }
  if (n == "lower" || n == "upper") {
    no_args();
    const std::string s = v.to_string();
    return n == "lower" ? pystr::islower(s) : pystr::isupper(s);
  }
  if (n == "escaped") {
    no_args();
    return false;
  }
  if (n == "odd" || n == "even") {
    no_args();
    return equals(binary_op("%", v, Value(2)), Value(n == "odd" ? 1 : 0));
  }
  if (n == "divisibleby") return !binary_op("%", v, one_arg()).truthy();
  if (n == "eq" || n == "equalto") return equals(v, one_arg());
  if (n == "ne") return !equals(v, one_arg());
  if (n == "lt" || n == "lessthan") return compare(v, one_arg(), "<") < 0;
  if (n == "le") return compare(v, one_arg(), "<=") <= 0;
  if (n == "gt" || n == "greaterthan") return compare(v, one_arg(), ">") > 0;
  if (n == "ge") return compare(v, one_arg(), ">=") >= 0;
  if (n == "in") return contains(one_arg(), v);
  if (n == "sameas") {
    const Value o = one_arg();
    if (v.kind() != o.kind()) return false;
    if (v.is_none() || v.is_undefined()) return true;
    if (v.is_bool()) return v.as_bool() == o.as_bool();
    if (v.is_int()) return v.as_int() == o.as_int() && v.as_int() >= -5 && v.as_int() <= 256;
    if (v.is_list()) return v.list() == o.list();
    if (v.is_dict()) return v.dict() == o.dict();
    if (v.is_function()) return v.function() == o.function();
    return false;
  }
  if (n == "filter" || n == "test") {
    no_args();
    return v.is_string() && (n == "filter" ? is_jinja_filter(v.str()) : is_jinja_test(v.str()));
  }
  unsupported(cat("the test '", n, "'"));
}

}  // namespace resp::jinja
