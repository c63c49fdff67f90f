// The values a Jinja template computes with, modelled on the Python objects jinja2 sees when
// transformers renders a chat template: None, bool, int, float, str, list/tuple, dict (insertion
// ordered), jinja2's namespace, callables (macros, globals, bound methods) and jinja2's default
// Undefined (falsy, renders empty, iterates as empty, fails on arithmetic and attribute access).
// Lists and dicts are shared by reference, as in Python; only namespaces are ever mutated (the
// sandbox forbids list.append and friends).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace resp::jinja {

class Value;
struct List;
struct Dict;
struct Function;

// A failure while rendering, without a position yet; the renderer adds the position of the
// expression that raised it and turns it into a ConfigError / UnsupportedError.
struct Fault {
  enum class Kind {
    Error,        // what Python would raise (TypeError, UndefinedError, ...): ConfigError
    Unsupported,  // valid Jinja this interpreter does not implement: UnsupportedError
    Raised        // the template's raise_exception(msg): ConfigError carrying msg
  };
  Kind kind = Kind::Error;
  std::string message;
  int line = 0, col = 0;  // 0: not positioned yet
};
[[noreturn]] void fail(std::string message);
[[noreturn]] void unsupported(std::string message);

struct Undefined {
  std::string
      hint;  // why it is undefined: "'x' is undefined", "'dict object' has no attribute 'y'"
};

// Positional and keyword arguments of a call.
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
};

class Value {
 public:
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Function };

  Value() : v_(Undefined{}) {}
  static Value undefined(std::string hint = {}) { return Value(Undefined{std::move(hint)}); }
  static Value none() { return Value(std::monostate{}); }
  Value(bool b) : v_(b) {}
  Value(int64_t i) : v_(i) {}
  Value(int i) : v_(static_cast<int64_t>(i)) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::shared_ptr<List> l) : v_(std::move(l)) {}
  Value(std::shared_ptr<Dict> d) : v_(std::move(d)) {}
  Value(std::shared_ptr<Function> f) : v_(std::move(f)) {}

  Kind kind() const { return static_cast<Kind>(v_.index()); }
  bool is_undefined() const { return kind() == Kind::Undefined; }
  bool is_none() const { return kind() == Kind::None; }
  bool is_bool() const { return kind() == Kind::Bool; }
  bool is_int() const { return kind() == Kind::Int; }
  bool is_float() const { return kind() == Kind::Float; }
  // int, float or bool (Python's bool is an int).
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::String; }
  bool is_list() const { return kind() == Kind::List; }
  bool is_dict() const { return kind() == Kind::Dict; }  // includes namespaces and loop objects
  bool is_mapping() const;                               // a real dict (not a namespace)
  bool is_namespace() const;
  bool is_function() const { return kind() == Kind::Function; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;    // int or bool
  double as_double() const;  // any number
  const std::string& str() const { return std::get<std::string>(v_); }
  const Undefined& undef() const { return std::get<Undefined>(v_); }
  const std::shared_ptr<List>& list() const { return std::get<std::shared_ptr<List>>(v_); }
  const std::shared_ptr<Dict>& dict() const { return std::get<std::shared_ptr<Dict>>(v_); }
  const std::shared_ptr<Function>& function() const {
    return std::get<std::shared_ptr<Function>>(v_);
  }

  // Python's bool(x).
  bool truthy() const;
  // Python's str(x) (Undefined renders as "").
  std::string to_string() const;
  // Python's repr(x).
  std::string repr() const;
  // Python's type name, for error messages ("str", "int", "NoneType", "dict", ...).
  const char* type_name() const;

 private:
  explicit Value(Undefined u) : v_(std::move(u)) {}
  explicit Value(std::monostate) : v_(std::monostate{}) {}

  std::variant<Undefined, std::monostate, bool, int64_t, double, std::string, std::shared_ptr<List>,
               std::shared_ptr<Dict>, std::shared_ptr<Function>>
      v_;
};

struct List {
  std::vector<Value> items;
  bool tuple = false;  // repr as (a, b)
};

// An insertion-ordered dict. Keys are compared with Python equality (1 == 1.0 == True).
struct Dict {
  enum class Type { Dict, Namespace, Loop };
  std::vector<std::pair<Value, Value>> items;
  Type type = Type::Dict;

  const Value* find(const Value& key) const;
  const Value* find(std::string_view key) const;
  const Value* find(const char* key) const { return find(std::string_view(key)); }
  void set(Value key, Value value);
};

struct Function {
  std::string name;
  std::function<Value(CallArgs&)> call;
};

// Binds a call's arguments to a Python-style signature: parameter i is the i-th positional
// argument or the keyword argument of its name. Too many positional arguments, unknown or
// repeated keywords are Faults naming `fname`.
class ArgReader {
 public:
  ArgReader(const CallArgs& args, std::string fname, std::vector<std::string> params);
  bool has(size_t i) const { return slots_[i] != nullptr; }
  // The argument bound to parameter i, or `def` when the call did not pass it.
  Value get(size_t i, const Value& def = Value()) const { return has(i) ? *slots_[i] : def; }
  // Typed access: a Fault naming the parameter when the argument has the wrong type.
  int64_t get_int(size_t i, int64_t def) const;
  bool get_bool(size_t i, bool def) const;
  std::optional<std::string> get_str(size_t i) const;  // nullopt when absent or None

 private:
  std::string fname_;
  std::vector<std::string> params_;
  std::vector<const Value*> slots_;
};

Value make_list(std::vector<Value> items, bool tuple = false);
Value make_dict(std::vector<std::pair<Value, Value>> items = {},
                Dict::Type type = Dict::Type::Dict);
Value make_function(std::string name, std::function<Value(CallArgs&)> fn);

// Python ==, and <, <=, >, >= (a Fault for types Python cannot order).
bool equals(const Value& a, const Value& b);
int compare(const Value& a, const Value& b, const char* op);

// The items a for loop visits: list items, dict keys, string characters; nothing for
// Undefined. A Fault for anything else.
std::vector<Value> iterate(const Value& v);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as transformers' tojson filter.
struct JsonOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: one line
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonOptions& opts = {});

// A value from parsed JSON (objects keep their order with nlohmann::ordered_json).
template <typename Json>
Value from_json(const Json& j) {
  if (j.is_null()) return Value::none();
  if (j.is_boolean()) return Value(j.template get<bool>());
  if (j.is_number_integer()) return Value(j.template get<int64_t>());
  if (j.is_number()) return Value(j.template get<double>());
  if (j.is_string()) return Value(j.template get<std::string>());
  if (j.is_array()) {
    std::vector<Value> items;
    for (const auto& x : j) items.push_back(from_json(x));
    return make_list(std::move(items));
  }
  std::vector<std::pair<Value, Value>> items;
  for (auto it = j.begin(); it != j.end(); ++it)
    items.emplace_back(Value(it.key()), from_json(*it));
  return make_dict(std::move(items));
}

}  // namespace resp::jinja
