// Jinja's built-in filters and tests, as jinja2 3.1 defines them, with transformers' tojson
// (json.dumps with ensure_ascii=False, indent, separators, sort_keys; no HTML escaping).
// Filters that only produce iterators in jinja2 (map, select, unique, ...) return lists here.
#pragma once

#include <string>

#include "tokenizer/jinja_value.h"

namespace resp::jinja {

// value | name(args). A Fault for bad arguments; an Unsupported Fault for the jinja2 filters
// this interpreter does not implement (groupby, batch, slice, truncate, wordwrap, urlize, ...).
Value apply_filter(const std::string& name, const Value& value, const CallArgs& args);

// value is name(args).
bool apply_test(const std::string& name, const Value& value, const CallArgs& args);

}  // namespace resp::jinja
