// The YAML configuration files of `resp prune` and `resp train`: a schema given as a YAML text
// of defaults, a user file overlaid on it (unknown keys are errors naming the key), then
// `--set section.key=value` overrides. Typed reads name the key when the type is wrong.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <type_traits>
#include <vector>

#include "core/error.h"

namespace resp::yaml_schema {

// The defaults with `text` (named `src` in errors) and the overrides applied.
YAML::Node load_with_schema(const char* defaults, const std::string& text,
                            const std::vector<std::string>& overrides, const std::string& src);

template <typename T>
T get(const YAML::Node& n, const std::string& key, const std::string& src) {
  // An empty value (`key:` or `--set key=`) is YAML null; for a string that means "".
  if constexpr (std::is_same_v<T, std::string>)
    if (n.IsNull()) return std::string();
  // yaml-cpp wraps "-1" into an unsigned type; seeds and counts are never negative.
  if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T> && !std::is_same_v<T, bool>)
    if (n.IsScalar() && n.Scalar().find('-') != std::string::npos)
      throw ConfigError(
          cat(src, ": \"", key, "\" must be a non-negative integer (", n.Scalar(), ")"));
  try {
    return n.as<T>();
  } catch (const YAML::Exception&) {
    throw ConfigError(cat(src, ": \"", key, "\" has the wrong type (", YAML::Dump(n), ")"));
  }
}

// The scalar "auto" (take the value from the model / data).
bool is_auto(const YAML::Node& n);

// `p` made absolute against `base` unless empty or already absolute.
std::string absolute(const std::string& p, const std::string& base);

}  // namespace resp::yaml_schema
