// Python semantics of what Jinja expressions do to values: arithmetic and comparison operators,
// `in`, attribute and item access as jinja2's sandboxed environment performs them (dict keys
// reachable as attributes, methods before keys, missing things Undefined), slicing, the str /
// dict / list methods templates call, and printf-style `%` formatting. Failures are Faults.
#pragma once

#include <string>

#include "tokenizer/jinja_value.h"

namespace resp::jinja {

// Largest string or list an operation may build (guards `'x' * 10**12` and the like).
constexpr size_t kMaxValueBytes = size_t{64} << 20;

// a op b for + - * / // % ** (~ is concat()).
Value binary_op(const std::string& op, const Value& a, const Value& b);
Value negate(const Value& a);
Value concat(const Value& a, const Value& b);
// `item in container`.
bool contains(const Value& container, const Value& item);

// obj.name and obj[key] as jinja2's sandbox resolves them.
Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step]; undefined / none parts are omitted parts.
Value slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

// fmt % args (printf-style); `args` a tuple, a dict (for %(name)s) or a single value.
std::string percent_format(const std::string& fmt, const Value& args);

}  // namespace resp::jinja
