#include "tokenizer/jinja_value.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "tokenizer/pystr.h"

namespace resp::jinja {

void fail(std::string message) {
  throw Fault{Fault::Kind::Error, std::move(message)};
}

void unsupported(std::string message) {
  throw Fault{Fault::Kind::Unsupported, std::move(message)};
}

// ---- Value ------------------------------------------------------------------------------------

bool Value::is_mapping() const {
  return is_dict() && dict()->type == Dict::Type::Dict;
}

bool Value::is_namespace() const {
  return is_dict() && dict()->type == Dict::Type::Namespace;
}

int64_t Value::as_int() const {
  return is_bool() ? static_cast<int64_t>(as_bool()) : std::get<int64_t>(v_);
}

double Value::as_double() const {
  return is_float() ? std::get<double>(v_) : static_cast<double>(as_int());
}

bool Value::truthy() const {
  switch (kind()) {
    case Kind::Undefined:
    case Kind::None:
      return false;
    case Kind::Bool:
      return as_bool();
    case Kind::Int:
      return as_int() != 0;
    case Kind::Float:
      return as_double() != 0.0;
    case Kind::String:
      return !str().empty();
    case Kind::List:
      return !list()->items.empty();
    case Kind::Dict:
      return dict()->type != Dict::Type::Dict || !dict()->items.empty();
    case Kind::Function:
      return true;
  }
  return false;
}

const char* Value::type_name() const {
  switch (kind()) {
    case Kind::Undefined:
      return "Undefined";
    case Kind::None:
      return "NoneType";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::List:
      return list()->tuple ? "tuple" : "list";
    case Kind::Dict:
      switch (dict()->type) {
        case Dict::Type::Dict:
          return "dict";
        case Dict::Type::Namespace:
          return "Namespace";
        case Dict::Type::Loop:
          return "LoopContext";
      }
      return "dict";
    case Kind::Function:
      return "function";
  }
  return "?";
}

namespace {

// Containers nest this deep at most when printed (a namespace can hold itself).
constexpr int kMaxPrintDepth = 100;

std::string format(const Value& v, bool repr, int depth);

std::string dict_repr(const Dict& d, int depth) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : d.items) {
    if (!first) out += ", ";
    first = false;
    out += format(k, true, depth + 1);
    out += ": ";
    out += format(v, true, depth + 1);
  }
  return out + "}";
}

// str(v), or repr(v) with `repr`.
std::string format(const Value& v, bool repr, int depth) {
  if (depth > kMaxPrintDepth) fail("value nested too deeply (or recursive) to print");
  using Kind = Value::Kind;
  switch (v.kind()) {
    case Kind::Undefined:
      return repr ? "Undefined" : "";
    case Kind::None:
      return "None";
    case Kind::Bool:
      return v.as_bool() ? "True" : "False";
    case Kind::Int:
      return std::to_string(v.as_int());
    case Kind::Float:
      return pystr::float_repr(v.as_double());
    case Kind::String:
      return repr ? pystr::repr(v.str()) : v.str();
    case Kind::List: {
      const List& l = *v.list();
      std::string out = l.tuple ? "(" : "[";
      for (size_t i = 0; i < l.items.size(); ++i) {
        if (i) out += ", ";
        out += format(l.items[i], true, depth + 1);
      }
      if (l.tuple && l.items.size() == 1) out += ",";
      return out + (l.tuple ? ")" : "]");
    }
    case Kind::Dict: {
      const Dict& d = *v.dict();
      if (d.type == Dict::Type::Namespace) return "<Namespace " + dict_repr(d, depth) + ">";
      if (d.type == Dict::Type::Loop) {
        const Value* i = d.find("index");
        const Value* n = d.find("length");
        return "<LoopContext " + (i ? i->to_string() : "?") + "/" + (n ? n->to_string() : "?") +
               ">";
      }
      return dict_repr(d, depth);
    }
    case Kind::Function:
      return "<function " + v.function()->name + ">";
  }
  return {};
}

}  // namespace

std::string Value::to_string() const {
  return format(*this, false, 0);
}

std::string Value::repr() const {
  return format(*this, true, 0);
}

// ---- ArgReader ----------------------------------------------------------------------------------

ArgReader::ArgReader(const CallArgs& args, std::string fname, std::vector<std::string> params)
    : fname_(std::move(fname)), params_(std::move(params)), slots_(params_.size(), nullptr) {
  if (args.args.size() > params_.size())
    fail(cat(fname_, "() takes at most ", params_.size(), " argument(s) (", args.args.size(),
             " given)"));
  for (size_t i = 0; i < args.args.size(); ++i) slots_[i] = &args.args[i];
  for (const auto& [key, value] : args.kwargs) {
    const auto it = std::find(params_.begin(), params_.end(), key);
    if (it == params_.end()) fail(cat(fname_, "() got an unexpected keyword argument '", key, "'"));
    const size_t i = static_cast<size_t>(it - params_.begin());
    if (slots_[i]) fail(cat(fname_, "() got multiple values for argument '", key, "'"));
    slots_[i] = &value;
  }
}

int64_t ArgReader::get_int(size_t i, int64_t def) const {
  if (!has(i)) return def;
  const Value& v = *slots_[i];
  if (v.is_int() || v.is_bool()) return v.as_int();
  fail(cat(fname_, "(): '", params_[i], "' must be an integer, not ", v.type_name()));
}

bool ArgReader::get_bool(size_t i, bool def) const {
  return has(i) ? slots_[i]->truthy() : def;
}

std::optional<std::string> ArgReader::get_str(size_t i) const {
  if (!has(i) || slots_[i]->is_none()) return std::nullopt;
  const Value& v = *slots_[i];
  if (!v.is_string())
    fail(cat(fname_, "(): '", params_[i], "' must be a string, not ", v.type_name()));
  return v.str();
}

// ---- containers ---------------------------------------------------------------------------------

const Value* Dict::find(const Value& key) const {
  if (key.is_string()) return find(std::string_view(key.str()));
  for (const auto& kv : items)
    if (equals(kv.first, key)) return &kv.second;
  return nullptr;
}

const Value* Dict::find(std::string_view key) const {
  for (const auto& kv : items)
    if (kv.first.is_string() && kv.first.str() == key) return &kv.second;
  return nullptr;
}

void Dict::set(Value key, Value value) {
  if (key.is_string()) {
    for (auto& kv : items) {
      if (kv.first.is_string() && kv.first.str() == key.str()) {
        kv.second = std::move(value);
        return;
      }
    }
    items.emplace_back(std::move(key), std::move(value));
    return;
  }
  for (auto& kv : items) {
    if (equals(kv.first, key)) {
      kv.second = std::move(value);
      return;
    }
  }
  items.emplace_back(std::move(key), std::move(value));
}

Value make_list(std::vector<Value> items, bool tuple) {
  auto l = std::make_shared<List>();
  l->items = std::move(items);
  l->tuple = tuple;
  return Value(std::move(l));
}

Value make_dict(std::vector<std::pair<Value, Value>> items, Dict::Type type) {
  auto d = std::make_shared<Dict>();
  d->type = type;
  for (auto& kv : items) d->set(std::move(kv.first), std::move(kv.second));
  return Value(std::move(d));
}

Value make_function(std::string name, std::function<Value(CallArgs&)> fn) {
  auto f = std::make_shared<Function>();
  f->name = std::move(name);
  f->call = std::move(fn);
  return Value(std::move(f));
}

// ---- comparison ---------------------------------------------------------------------------------

bool equals(const Value& a, const Value& b) {
  using K = Value::Kind;
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() == b.as_double();
    return a.as_int() == b.as_int();
  }
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case K::Undefined:
    case K::None:
      return true;
    case K::String:
      return a.str() == b.str();
    case K::List: {
      const List& x = *a.list();
      const List& y = *b.list();
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!equals(x.items[i], y.items[i])) return false;
      return true;
    }
    case K::Dict: {
      const Dict& x = *a.dict();
      const Dict& y = *b.dict();
      if (x.type != Dict::Type::Dict || y.type != Dict::Type::Dict) return &x == &y;
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* w = y.find(k);
        if (!w || !equals(v, *w)) return false;
      }
      return true;
    }
    case K::Function:
      return a.function() == b.function();
    default:
      return false;
  }
}

int compare(const Value& a, const Value& b, const char* op) {
  if (a.is_undefined()) fail(a.undef().hint);
  if (b.is_undefined()) fail(b.undef().hint);
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) {
      const double x = a.as_double(), y = b.as_double();
      return x < y ? -1 : (x > y ? 1 : 0);
    }
    const int64_t x = a.as_int(), y = b.as_int();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    // UTF-8 byte order is code point order.
    const int c = a.str().compare(b.str());
    return c < 0 ? -1 : (c > 0 ? 1 : 0);
  }
  if (a.is_list() && b.is_list() && a.list()->tuple == b.list()->tuple) {
    const auto& x = a.list()->items;
    const auto& y = b.list()->items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equals(x[i], y[i])) return compare(x[i], y[i], op);
    return x.size() < y.size() ? -1 : (x.size() > y.size() ? 1 : 0);
  }
  fail(cat("'", op, "' not supported between instances of '", a.type_name(), "' and '",
           b.type_name(), "'"));
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined:
      return {};
    case Value::Kind::List:
      return v.list()->items;
    case Value::Kind::Dict: {
      if (v.dict()->type != Dict::Type::Dict)
        fail(cat("'", v.type_name(), "' object is not iterable"));
      std::vector<Value> keys;
      for (const auto& kv : v.dict()->items) keys.push_back(kv.first);
      return keys;
    }
    case Value::Kind::String: {
      std::vector<Value> chars;
      const std::string& s = v.str();
      for (size_t i = 0; i < s.size();) {
        size_t n = 1;
        while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
        chars.emplace_back(s.substr(i, n));
        i += n;
      }
      return chars;
    }
    default:
      fail(cat("'", v.type_name(), "' object is not iterable"));
  }
}

// ---- JSON ---------------------------------------------------------------------------------------

namespace {

std::string json_float(double x) {
  if (std::isnan(x)) return "NaN";
  if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
  return pystr::float_repr(x);
}

std::string json_key(const Value& k) {
  switch (k.kind()) {
    case Value::Kind::String:
      return k.str();
    case Value::Kind::Bool:
      return k.as_bool() ? "true" : "false";
    case Value::Kind::None:
      return "null";
    case Value::Kind::Int:
      return std::to_string(k.as_int());
    case Value::Kind::Float:
      return json_float(k.as_double());
    default:
      fail(cat("keys must be str, int, float, bool or None, not ", k.type_name()));
  }
}

void dump(const Value& v, const JsonOptions& o, int level, std::string& out) {
  const std::string item_sep = o.separators ? o.separators->first : (o.indent ? "," : ", ");
  const std::string key_sep = o.separators ? o.separators->second : ": ";
  auto newline = [&](int lvl) {
    out += '\n';
    for (int i = 0; i < lvl; ++i) out += *o.indent;
  };
  if (level > 200) fail("JSON nesting too deep");
  switch (v.kind()) {
    case Value::Kind::None:
      out += "null";
      return;
    case Value::Kind::Bool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Value::Kind::Int:
      out += std::to_string(v.as_int());
      return;
    case Value::Kind::Float:
      out += json_float(v.as_double());
      return;
    case Value::Kind::String:
      out += pystr::json_string(v.str(), o.ensure_ascii);
      return;
    case Value::Kind::List: {
      const auto& items = v.list()->items;
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        if (o.indent) newline(level + 1);
        dump(items[i], o, level + 1, out);
      }
      if (o.indent) newline(level);
      out += ']';
      return;
    }
    case Value::Kind::Dict: {
      if (v.dict()->type != Dict::Type::Dict)
        fail(cat("Object of type ", v.type_name(), " is not JSON serializable"));
      std::vector<std::pair<std::string, const Value*>> items;
      for (const auto& [k, x] : v.dict()->items) items.emplace_back(json_key(k), &x);
      if (items.empty()) {
        out += "{}";
        return;
      }
      if (o.sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += item_sep;
        if (o.indent) newline(level + 1);
        out += pystr::json_string(items[i].first, o.ensure_ascii);
        out += key_sep;
        dump(*items[i].second, o, level + 1, out);
      }
      if (o.indent) newline(level);
      out += '}';
      return;
    }
    default:
      fail(cat("Object of type ", v.type_name(), " is not JSON serializable"));
  }
}

}  // namespace

std::string to_json(const Value& v, const JsonOptions& opts) {
  std::string out;
  dump(v, opts, 0, out);
  return out;
}

}  // namespace resp::jinja
