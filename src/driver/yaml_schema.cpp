#include "driver/yaml_schema.h"

#include <filesystem>
#include <sstream>

namespace resp::yaml_schema {

namespace {

// Overlays `user` onto `base`, refusing keys the schema does not have.
void merge(YAML::Node base, const YAML::Node& user, const std::string& path,
           const std::string& src) {
  if (!user.IsMap())
    throw ConfigError(cat(src, ": ", path.empty() ? "the file" : path, " must be a mapping"));
  for (auto it = user.begin(); it != user.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    const std::string full = path.empty() ? key : path + "." + key;
    const YAML::Node& cbase = base;  // const lookup: operator[] on a non-const node inserts
    if (!cbase[key]) throw ConfigError(cat(src, ": unknown key \"", full, "\""));
    YAML::Node b = base[key];
    if (b.IsMap()) {
      merge(b, it->second, full, src);
    } else {
      if (it->second.IsMap())
        throw ConfigError(cat(src, ": \"", full, "\" is a value, not a section"));
      base[key] = it->second;
    }
  }
}

void set_override(YAML::Node root, const std::string& kv) {
  const auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(cat("--set \"", kv, "\": expected section.key=value"));
  const std::string key = kv.substr(0, eq), value = kv.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    throw ConfigError(cat("--set ", key, ": cannot parse value \"", value, "\""));
  }
  // Build the nested mapping {a: {b: value}} and merge it like a file. (Node::reset rebinds;
  // operator= would assign through the reference.)
  YAML::Node leaf = parsed;
  for (size_t i = parts.size(); i-- > 1;) {
    YAML::Node m(YAML::NodeType::Map);
    m[parts[i]] = leaf;
    leaf.reset(m);
  }
  YAML::Node user(YAML::NodeType::Map);
  user[parts[0]] = leaf;
  merge(root, user, "", "--set");
}

}  // namespace

YAML::Node load_with_schema(const char* defaults, const std::string& text,
                            const std::vector<std::string>& overrides, const std::string& src) {
  YAML::Node root = YAML::Load(defaults);
  try {
    const YAML::Node user = YAML::Load(text);
    if (user && !user.IsNull()) merge(root, user, "", src);
  } catch (const YAML::ParserException& e) {
    throw ConfigError(cat(src, ": malformed YAML (", e.msg, " at line ", e.mark.line + 1, ")"));
  }
  for (const auto& o : overrides) set_override(root, o);
  return root;
}

bool is_auto(const YAML::Node& n) {
  return n.IsScalar() && n.as<std::string>() == "auto";
}

std::string absolute(const std::string& p, const std::string& base) {
  if (p.empty()) return p;
  std::filesystem::path path(p);
  if (path.is_absolute()) return p;
  return (std::filesystem::path(base) / path).lexically_normal().string();
}

}  // namespace resp::yaml_schema
