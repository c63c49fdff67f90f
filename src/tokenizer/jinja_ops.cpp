#include "tokenizer/jinja_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include "core/error.h"
#include "tokenizer/pystr.h"

namespace resp::jinja {

namespace {

[[noreturn]] void fail_undefined(const Value& v) {
  fail(v.undef().hint.empty() ? "value is undefined" : v.undef().hint);
}

void check_size(size_t bytes) {
  if (bytes > kMaxValueBytes) fail(cat("value too large (", bytes, " bytes)"));
}

[[noreturn]] void bad_operands(const std::string& op, const Value& a, const Value& b) {
  fail(cat("unsupported operand type(s) for ", op, ": '", a.type_name(), "' and '", b.type_name(),
           "'"));
}

int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t py_mod(int64_t a, int64_t b) {
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

double py_fmod(double a, double b) {
  double r = std::fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  if (r == 0) r = std::copysign(0.0, b);
  return r;
}

Value repeat(const Value& seq, int64_t n) {
  if (n < 0) n = 0;
  if (seq.is_string()) {
    check_size(seq.str().size() * static_cast<size_t>(n));
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value(std::move(out));
  }
  const auto& items = seq.list()->items;
  check_size(items.size() * static_cast<size_t>(n) * sizeof(Value));
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return make_list(std::move(out), seq.list()->tuple);
}

// ---- slicing ----------------------------------------------------------------------------------

int64_t slice_index(const Value& v) {
  if (v.is_int() || v.is_bool()) return v.as_int();
  fail("slice indices must be integers or None or have an __index__ method");
}

// The positions obj[start:stop:step] visits (Python's PySlice_AdjustIndices).
std::vector<size_t> slice_positions(size_t size, const Value& start_v, const Value& stop_v,
                                    const Value& step_v) {
  const auto len = static_cast<int64_t>(size);
  const bool no_start = start_v.is_none() || start_v.is_undefined();
  const bool no_stop = stop_v.is_none() || stop_v.is_undefined();
  const int64_t step = step_v.is_none() || step_v.is_undefined() ? 1 : slice_index(step_v);
  if (step == 0) fail("slice step cannot be zero");
  auto adjust = [&](int64_t i) {
    if (i < 0) {
      i += len;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= len) {
      i = step < 0 ? len - 1 : len;
    }
    return i;
  };
  const int64_t start = no_start ? (step < 0 ? len - 1 : 0) : adjust(slice_index(start_v));
  const int64_t stop = no_stop ? (step < 0 ? -1 : len) : adjust(slice_index(stop_v));
  std::vector<size_t> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
    out.push_back(static_cast<size_t>(i));
  return out;
}

// ---- methods ----------------------------------------------------------------------------------

const std::set<std::string>& str_methods() {
  static const std::set<std::string> k = {
      "startswith",  "endswith",   "strip",        "lstrip",       "rstrip",    "split",
      "rsplit",      "splitlines", "replace",      "upper",        "lower",     "title",
      "capitalize",  "swapcase",   "find",         "rfind",        "index",     "rindex",
      "count",       "join",       "isdigit",      "isalpha",      "isalnum",   "isspace",
      "islower",     "isupper",    "removeprefix", "removesuffix", "center",    "ljust",
      "rjust",       "zfill",      "format",       "casefold",     "isdecimal", "isnumeric",
      "partition",   "rpartition", "encode",       "expandtabs",   "istitle",   "isidentifier",
      "isprintable", "isascii",    "translate",    "maketrans",    "format_map"};
  return k;
}

// Methods that modify their object; the sandbox refuses them.
bool is_mutating(const Value& obj, const std::string& name) {
  static const std::set<std::string> list_m = {"append", "extend",  "insert", "pop",
                                               "remove", "reverse", "sort",   "clear"};
  static const std::set<std::string> dict_m = {"clear", "pop", "popitem", "setdefault", "update"};
  if (obj.is_list() && !obj.list()->tuple) return list_m.count(name) != 0;
  if (obj.is_mapping()) return dict_m.count(name) != 0;
  return false;
}

// The substring s[start:end] of code points, for the optional start/end of find() and friends.
std::string sub_range(const std::string& s, const ArgReader& r, size_t i) {
  if (!r.has(i) && !r.has(i + 1)) return s;
  const auto pos = slice_positions(pystr::length(s), r.get(i, Value::none()),
                                   r.get(i + 1, Value::none()), Value::none());
  if (pos.empty()) return {};
  const size_t b = pystr::byte_offset(s, pos.front());
  const size_t e = pystr::byte_offset(s, pos.back() + 1);
  return s.substr(b, e - b);
}

int64_t start_offset(const std::string& s, const ArgReader& r, size_t i) {
  if (!r.has(i)) return 0;
  const auto pos =
      slice_positions(pystr::length(s), r.get(i, Value::none()), Value::none(), Value::none());
  return pos.empty() ? 0 : static_cast<int64_t>(pos.front());
}

std::string pad(const std::string& s, int64_t width, const std::string& fill, int where) {
  const auto len = static_cast<int64_t>(pystr::length(s));
  if (width <= len) return s;
  const int64_t total = width - len;
  int64_t left = where < 0 ? 0 : (where > 0 ? total : total / 2 + (total & width & 1));
  const int64_t right = total - left;
  check_size(static_cast<size_t>(width) * fill.size());
  std::string out;
  for (int64_t i = 0; i < left; ++i) out += fill;
  out += s;
  for (int64_t i = 0; i < right; ++i) out += fill;
  return out;
}

std::string str_format(const std::string& fmt, const CallArgs& a);

Value str_method(const std::string& s, const std::string& m, CallArgs& a) {
  auto want_str = [&](const Value& v, const char* what) -> std::string {
    if (!v.is_string()) fail(cat(m, "(): ", what, " must be str, not ", v.type_name()));
    return v.str();
  };
  if (m == "startswith" || m == "endswith") {
    ArgReader r(a, m, {"prefix", "start", "end"});
    if (!r.has(0)) fail(cat(m, "() takes at least 1 argument (0 given)"));
    const std::string sub = sub_range(s, r, 1);
    const Value p = r.get(0);
    std::vector<Value> options =
        p.is_list() && p.list()->tuple ? p.list()->items : std::vector<Value>{p};
    for (const Value& o : options) {
      const std::string x = want_str(o, "the prefix");
      const bool hit = m == "startswith" ? sub.compare(0, x.size(), x) == 0
                                         : sub.size() >= x.size() &&
                                               sub.compare(sub.size() - x.size(), x.size(), x) == 0;
      if (hit) return Value(true);
    }
    return Value(false);
  }
  if (m == "strip" || m == "lstrip" || m == "rstrip") {
    ArgReader r(a, m, {"chars"});
    return Value(pystr::strip(s, r.get_str(0), m != "rstrip", m != "lstrip"));
  }
  if (m == "split" || m == "rsplit") {
    ArgReader r(a, m, {"sep", "maxsplit"});
    const auto sep = r.get_str(0);
    if (sep && sep->empty()) fail("empty separator");
    const int64_t maxsplit = r.get_int(1, -1);
    std::vector<std::string> parts =
        m == "split" ? pystr::split(s, sep, maxsplit) : pystr::rsplit(s, sep, maxsplit);
    std::vector<Value> out(parts.begin(), parts.end());
    return make_list(std::move(out));
  }
  if (m == "splitlines") {
    ArgReader r(a, m, {"keepends"});
    const auto parts = pystr::splitlines(s, r.get_bool(0, false));
    return make_list(std::vector<Value>(parts.begin(), parts.end()));
  }
  if (m == "replace") {
    ArgReader r(a, m, {"old", "new", "count"});
    if (!r.has(1)) fail("replace() takes at least 2 arguments");
    const std::string out =
        pystr::replace(s, want_str(r.get(0), "old"), want_str(r.get(1), "new"), r.get_int(2, -1));
    check_size(out.size());
    return Value(out);
  }
  if (m == "upper" || m == "lower" || m == "title" || m == "capitalize" || m == "swapcase" ||
      m == "casefold") {
    ArgReader r(a, m, {});
    if (m == "upper") return Value(pystr::upper(s));
    if (m == "lower" || m == "casefold") return Value(pystr::lower(s));
    if (m == "title") return Value(pystr::title(s));
    if (m == "capitalize") return Value(pystr::capitalize(s));
    return Value(pystr::swapcase(s));
  }
  if (m == "find" || m == "rfind" || m == "index" || m == "rindex" || m == "count") {
    ArgReader r(a, m, {"sub", "start", "end"});
    if (!r.has(0)) fail(cat(m, "() takes at least 1 argument (0 given)"));
    const std::string sub = want_str(r.get(0), "the substring");
    const std::string hay = sub_range(s, r, 1);
    if (m == "count") return Value(pystr::count(hay, sub));
    int64_t i = (m == "find" || m == "index") ? pystr::find(hay, sub) : pystr::rfind(hay, sub);
    if (i < 0 && (m == "index" || m == "rindex")) fail("substring not found");
    if (i >= 0) i += start_offset(s, r, 1);
    return Value(i);
  }
  if (m == "join") {
    ArgReader r(a, m, {"iterable"});
    if (!r.has(0)) fail("join() takes exactly one argument (0 given)");
    std::string out;
    const auto items = iterate(r.get(0));
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string())
        fail(cat("sequence item ", i, ": expected str instance, ", items[i].type_name(), " found"));
      if (i) out += s;
      out += items[i].str();
      check_size(out.size());
    }
    return Value(std::move(out));
  }
  if (m == "isdigit" || m == "isdecimal" || m == "isnumeric") return Value(pystr::isdigit(s));
  if (m == "isalpha") return Value(pystr::isalpha(s));
  if (m == "isalnum") return Value(pystr::isalnum(s));
  if (m == "isspace") return Value(pystr::isspace(s));
  if (m == "islower") return Value(pystr::islower(s));
  if (m == "isupper") return Value(pystr::isupper(s));
  if (m == "removeprefix" || m == "removesuffix") {
    ArgReader r(a, m, {"affix"});
    const std::string x = want_str(r.get(0), "the argument");
    if (m == "removeprefix") return Value(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
    return Value(s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0
                     ? s.substr(0, s.size() - x.size())
                     : s);
  }
  if (m == "center" || m == "ljust" || m == "rjust") {
    ArgReader r(a, m, {"width", "fillchar"});
    const std::string fill = r.get_str(1).value_or(" ");
    if (pystr::length(fill) != 1) fail("The fill character must be exactly one character long");
    return Value(pad(s, r.get_int(0, 0), fill, m == "ljust" ? -1 : (m == "rjust" ? 1 : 0)));
  }
  if (m == "zfill") {
    ArgReader r(a, m, {"width"});
    const int64_t width = r.get_int(0, 0);
    const bool sign = !s.empty() && (s[0] == '+' || s[0] == '-');
    const std::string body = pad(sign ? s.substr(1) : s, width - (sign ? 1 : 0), "0", 1);
    return Value(sign ? s.substr(0, 1) + body : body);
  }
  if (m == "format") return Value(str_format(s, a));
  unsupported(cat("the str method '", m, "'"));
}

Value dict_method(const std::shared_ptr<Dict>& d, const std::string& m, CallArgs& a) {
  if (m == "get") {
    ArgReader r(a, m, {"key", "default"});
    if (!r.has(0)) fail("get expected at least 1 argument, got 0");
    const Value* v = d->find(r.get(0));
    return v ? *v : r.get(1, Value::none());
  }
  ArgReader r(a, m, {});
  std::vector<Value> out;
  for (const auto& [k, v] : d->items) {
    if (m == "keys") {
      out.push_back(k);
    } else if (m == "values") {
      out.push_back(v);
    } else {
      out.push_back(make_list({k, v}, true));
    }
  }
  return make_list(std::move(out));
}

Value list_method(const std::shared_ptr<List>& l, const std::string& m, CallArgs& a) {
  ArgReader r(a, m, {"value"});
  if (!r.has(0)) fail(cat(m, "() takes exactly one argument (0 given)"));
  const Value x = r.get(0);
  int64_t n = 0;
  for (size_t i = 0; i < l->items.size(); ++i) {
    if (equals(l->items[i], x)) {
      if (m == "index") return Value(static_cast<int64_t>(i));
      ++n;
    }
  }
  if (m == "index") fail(cat(x.repr(), " is not in list"));
  return Value(n);
}

// Undefined for a missing attribute, worded as jinja2 does.
Value missing_attr(const Value& obj, const std::string& name) {
  if (obj.is_none()) return Value::undefined(cat("'None' has no attribute '", name, "'"));
  return Value::undefined(cat("'", obj.type_name(), " object' has no attribute '", name, "'"));
}

// ---- str.format -------------------------------------------------------------------------------

std::string str_format(const std::string& fmt, const CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  bool manual = false, automatic = false;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '}') {
      if (i + 1 < fmt.size() && fmt[i + 1] == '}') {
        out += '}';
        ++i;
        continue;
      }
      fail("Single '}' encountered in format string");
    }
    if (c != '{') {
      out += c;
      continue;
    }
    if (i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) fail("Single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    char conv = 's';
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size() || (field[bang + 1] != 'r' && field[bang + 1] != 's'))
        unsupported("this str.format() conversion");
      conv = field[bang + 1];
      field.resize(bang);
    }
    if (field.find(':') != std::string::npos || field.find('.') != std::string::npos ||
        field.find('[') != std::string::npos)
      unsupported("str.format() with format specs or attribute access");
    const Value* v = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), ::isdigit)) {
      size_t idx;
      if (field.empty()) {
        if (manual)
          fail("cannot switch from manual field specification to automatic field numbering");
        automatic = true;
        idx = auto_index++;
      } else {
        if (automatic)
          fail("cannot switch from automatic field numbering to manual field specification");
        manual = true;
        idx = std::stoul(field);
      }
      if (idx >= a.args.size()) fail(cat("Replacement index ", idx, " out of range"));
      v = &a.args[idx];
    } else {
      for (const auto& [k, x] : a.kwargs)
        if (k == field) v = &x;
      if (!v) fail(cat("KeyError: '", field, "'"));
    }
    out += conv == 'r' ? v->repr() : v->to_string();
    check_size(out.size());
  }
  return out;
}

}  // namespace

// ---- operators ----------------------------------------------------------------------------------

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  // str % x formats whatever x is (an Undefined argument is an empty mapping to Python).
  if (op == "%" && a.is_string()) return Value(percent_format(a.str(), b));
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  const bool nums = a.is_number() && b.is_number();
  const bool ints = nums && !a.is_float() && !b.is_float();
  if (op == "+") {
    if (ints) {
      int64_t r;
      if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) fail("integer overflow");
      return Value(r);
    }
    if (nums) return Value(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      check_size(a.str().size() + b.str().size());
      return Value(a.str() + b.str());
    }
    if (a.is_list() && b.is_list() && a.list()->tuple == b.list()->tuple) {
      std::vector<Value> items = a.list()->items;
      items.insert(items.end(), b.list()->items.begin(), b.list()->items.end());
      return make_list(std::move(items), a.list()->tuple);
    }
    if (a.is_string()) fail(cat("can only concatenate str (not \"", b.type_name(), "\") to str"));
    bad_operands(op, a, b);
  }
  if (op == "-") {
    if (ints) {
      int64_t r;
      if (__builtin_sub_overflow(a.as_int(), b.as_int(), &r)) fail("integer overflow");
      return Value(r);
    }
    if (nums) return Value(a.as_double() - b.as_double());
    bad_operands(op, a, b);
  }
  if (op == "*") {
    if (ints) {
      int64_t r;
      if (__builtin_mul_overflow(a.as_int(), b.as_int(), &r)) fail("integer overflow");
      return Value(r);
    }
    if (nums) return Value(a.as_double() * b.as_double());
    if ((a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) return repeat(a, b.as_int());
    if ((b.is_string() || b.is_list()) && (a.is_int() || a.is_bool())) return repeat(b, a.as_int());
    bad_operands(op, a, b);
  }
  if (op == "/") {
    if (!nums) bad_operands(op, a, b);
    if (b.as_double() == 0) fail("division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (op == "//") {
    if (!nums) bad_operands(op, a, b);
    if (ints) {
      if (b.as_int() == 0) fail("integer division or modulo by zero");
      return Value(floor_div(a.as_int(), b.as_int()));
    }
    if (b.as_double() == 0) fail("float floor division by zero");
    return Value(std::floor(a.as_double() / b.as_double()));
  }
  if (op == "%") {
    if (a.is_string()) return Value(percent_format(a.str(), b));
    if (!nums) bad_operands(op, a, b);
    if (ints) {
      if (b.as_int() == 0) fail("integer division or modulo by zero");
      return Value(py_mod(a.as_int(), b.as_int()));
    }
    if (b.as_double() == 0) fail("float modulo");
    return Value(py_fmod(a.as_double(), b.as_double()));
  }
  if (op == "**") {
    if (!nums) bad_operands(op, a, b);
    if (ints && b.as_int() >= 0) {
      int64_t r = 1, base = a.as_int();
      for (int64_t e = b.as_int(); e > 0; --e)
        if (__builtin_mul_overflow(r, base, &r)) fail("integer overflow");
      return Value(r);
    }
    if (a.as_double() == 0 && b.as_double() < 0) fail("0.0 cannot be raised to a negative power");
    return Value(std::pow(a.as_double(), b.as_double()));
  }
  fail(cat("unknown operator ", op));
}

Value negate(const Value& a) {
  if (a.is_undefined()) fail_undefined(a);
  if (a.is_float()) return Value(-a.as_double());
  if (a.is_int() || a.is_bool()) {
    if (a.as_int() == INT64_MIN) fail("integer overflow");
    return Value(-a.as_int());
  }
  fail(cat("bad operand type for unary -: '", a.type_name(), "'"));
}

Value concat(const Value& a, const Value& b) {
  std::string out = a.to_string();
  out += b.to_string();
  check_size(out.size());
  return Value(std::move(out));
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::Undefined:
      return false;
    case Value::Kind::String:
      if (!item.is_string())
        fail(cat("'in <string>' requires string as left operand, not ", item.type_name()));
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::List:
      for (const Value& x : container.list()->items)
        if (equals(x, item)) return true;
      return false;
    case Value::Kind::Dict:
      if (container.dict()->type != Dict::Type::Dict) break;
      if ((item.is_list() && !item.list()->tuple) || item.is_dict())
        fail(cat("unhashable type: '", item.type_name(), "'"));
      return container.dict()->find(item) != nullptr;
    default:
      break;
  }
  fail(cat("argument of type '", container.type_name(), "' is not iterable"));
}

// ---- attributes and items -----------------------------------------------------------------------

Value get_attr(const Value& obj, const std::string& name) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (is_mutating(obj, name))
    fail(cat("access to attribute '", name, "' of '", obj.type_name(), "' object is unsafe."));
  if (obj.is_string()) {
    if (str_methods().count(name)) {
      const std::string& s = obj.str();
      return make_function(name, [s, name](CallArgs& a) { return str_method(s, name, a); });
    }
    return missing_attr(obj, name);
  }
  if (obj.is_dict()) {
    const auto& d = obj.dict();
    if (d->type == Dict::Type::Dict &&
        (name == "get" || name == "items" || name == "keys" || name == "values"))
      return make_function(name, [d, name](CallArgs& a) { return dict_method(d, name, a); });
    if (const Value* v = d->find(std::string_view(name))) return *v;
    return missing_attr(obj, name);
  }
  if (obj.is_list() && (name == "count" || name == "index")) {
    const auto& l = obj.list();
    return make_function(name, [l, name](CallArgs& a) { return list_method(l, name, a); });
  }
  return missing_attr(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_mapping()) {
    if (const Value* v = obj.dict()->find(key)) return *v;
  } else if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    const size_t n = obj.is_list() ? obj.list()->items.size() : pystr::length(obj.str());
    int64_t i = key.as_int();
    if (i < 0) i += static_cast<int64_t>(n);
    if (i >= 0 && static_cast<size_t>(i) < n) {
      if (obj.is_list()) return obj.list()->items[static_cast<size_t>(i)];
      const std::string& s = obj.str();
      const size_t b = pystr::byte_offset(s, static_cast<size_t>(i));
      const size_t e = pystr::byte_offset(s, static_cast<size_t>(i) + 1);
      return Value(s.substr(b, e - b));
    }
    return Value::undefined(cat(obj.type_name(), " object has no element ", key.to_string()));
  }
  if (key.is_string()) {
    Value v = get_attr(obj, key.str());
    if (!v.is_undefined() || obj.is_dict()) return v;
  }
  if (obj.is_none()) return Value::undefined(cat("'None' has no attribute ", key.repr()));
  return Value::undefined(key.is_string()
                              ? cat("'", obj.type_name(), " object' has no attribute ", key.repr())
                              : cat(obj.type_name(), " object has no element ", key.repr()));
}

Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (obj.is_undefined()) fail_undefined(obj);
  if (obj.is_list()) {
    const auto& items = obj.list()->items;
    std::vector<Value> out;
    for (const size_t i : slice_positions(items.size(), start, stop, step)) out.push_back(items[i]);
    return make_list(std::move(out), obj.list()->tuple);
  }
  if (obj.is_string()) {
    const auto cps = pystr::code_points(obj.str());
    std::vector<uint32_t> out;
    for (const size_t i : slice_positions(cps.size(), start, stop, step)) out.push_back(cps[i]);
    return Value(pystr::from_code_points(out.data(), out.size()));
  }
  fail(cat("'", obj.type_name(), "' object is not subscriptable"));
}

// ---- printf-style formatting --------------------------------------------------------------------

std::string percent_format(const std::string& fmt, const Value& args) {
  std::vector<Value> positional;
  const Dict* mapping = nullptr;
  // CPython skips the "not all arguments converted" check for an argument that supports
  // subscripting (a dict or a list), whether or not the format uses %(name)s.
  bool subscriptable = false;
  if (args.is_list() && args.list()->tuple) {
    positional = args.list()->items;
  } else {
    if (args.is_mapping()) mapping = args.dict().get();
    subscriptable = args.is_list() || args.is_dict() || args.is_undefined();
    positional.push_back(args);
  }
  size_t next = 0;
  bool used_mapping = false;
  auto take = [&]() -> const Value& {
    if (next >= positional.size()) fail("not enough arguments for format string");
    return positional[next++];
  };
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) fail("incomplete format");
    const Value* arg = nullptr;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos) fail("incomplete format key");
      if (!mapping) fail("format requires a mapping");
      const Value* v = mapping->find(std::string_view(fmt).substr(i + 1, close - i - 1));
      if (!v) fail(cat("KeyError: '", fmt.substr(i + 1, close - i - 1), "'"));
      arg = v;
      used_mapping = true;
      i = close + 1;
    }
    std::string flags;
    while (i < fmt.size() && std::string_view("#0- +").find(fmt[i]) != std::string_view::npos)
      flags += fmt[i++];
    std::string width, precision;
    bool has_precision = false;
    while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i]))) width += fmt[i++];
    if (i < fmt.size() && fmt[i] == '*') unsupported("'*' widths in % formatting");
    if (i < fmt.size() && fmt[i] == '.') {
      has_precision = true;
      ++i;
      while (i < fmt.size() && std::isdigit(static_cast<unsigned char>(fmt[i])))
        precision += fmt[i++];
    }
    while (i < fmt.size() && (fmt[i] == 'h' || fmt[i] == 'l' || fmt[i] == 'L')) ++i;
    if (i >= fmt.size()) fail("incomplete format");
    const char conv = fmt[i];
    if (conv == '%') {
      out += '%';
      continue;
    }
    if (width.size() > 6 || precision.size() > 6) fail("format width too large");
    const Value& v = arg ? *arg : take();
    const std::string spec = "%" + flags + width + (has_precision ? "." + precision : "");
    char buf[512];
    switch (conv) {
      case 's':
      case 'r':
      case 'a': {
        std::string s = conv == 's' ? v.to_string() : v.repr();
        if (has_precision) {
          const size_t p = precision.empty() ? 0 : std::stoul(precision);
          s = s.substr(0, pystr::byte_offset(s, p));
        }
        const int64_t w = width.empty() ? 0 : std::stoll(width);
        out += pad(s, w, " ", flags.find('-') != std::string::npos ? -1 : 1);
        break;
      }
      case 'd':
      case 'i':
      case 'u':
      case 'x':
      case 'X':
      case 'o': {
        long long n;
        if (v.is_int() || v.is_bool()) {
          n = v.as_int();
        } else if (v.is_float() && (conv == 'd' || conv == 'i' || conv == 'u')) {
          n = static_cast<long long>(std::trunc(v.as_double()));
        } else {
          fail(cat("%", conv, " format: a number is required, not ", v.type_name()));
        }
        const char c = conv == 'i' || conv == 'u' ? 'd' : conv;
        std::snprintf(buf, sizeof buf, (spec + "ll" + c).c_str(), n);
        std::string s = buf;
        if (conv == 'o' && flags.find('#') != std::string::npos) {
          // Python's alternate octal form is 0o17, C's is 017.
          const size_t z = s.find('0');
          if (z != std::string::npos) s.insert(z + 1, 1, 'o');
        }
        out += s;
        break;
      }
      case 'e':
      case 'E':
      case 'f':
      case 'F':
      case 'g':
      case 'G': {
        if (!v.is_number()) fail(cat("must be real number, not ", v.type_name()));
        std::snprintf(buf, sizeof buf, (spec + conv).c_str(), v.as_double());
        out += buf;
        break;
      }
      case 'c': {
        if (v.is_string() && pystr::length(v.str()) == 1) {
          out += v.str();
        } else if (v.is_int()) {
          const std::vector<uint32_t> cp = {static_cast<uint32_t>(v.as_int())};
          if (v.as_int() < 0 || v.as_int() > 0x10FFFF) fail("%c arg not in range(0x110000)");
          out += pystr::from_code_points(cp.data(), 1);
        } else {
          fail("%c requires int or char");
        }
        break;
      }
      default:
        fail(cat("unsupported format character '", std::string(1, conv), "'"));
    }
    check_size(out.size());
  }
  if (!used_mapping && !subscriptable && next < positional.size())
    fail("not all arguments converted during string formatting");
  return out;
}

}  // namespace resp::jinja
