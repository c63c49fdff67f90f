#include "config/yaml_schema.h"

#include <filesystem>
#include <set>
#include <sstream>

#include <yaml-cpp/eventhandler.h>

namespace resp::yaml_schema {

namespace {

// Overlays `user` onto `base`, refusing keys the schema does not have.
void merge(YAML::Node base, const YAML::Node& user, const std::string& path,
           const std::string& src) {
  if (!user.IsMap())
    throw ConfigError(cat(src, ": ", path.empty() ? "the file" : path, " must be a mapping"));
  std::set<std::string> seen;
  for (auto it = user.begin(); it != user.end(); ++it) {
    if (!it->first.IsScalar())  // "? [a, b]: 1" is YAML, but no key of ours
      throw ConfigError(cat(src, ": a key", path.empty() ? "" : " in " + path,
                            " is not a plain name (line ", it->first.Mark().line + 1, ")"));
    const std::string key = it->first.as<std::string>();
    const std::string full = path.empty() ? key : path + "." + key;
    // YAML forbids repeated keys; a parser that keeps one of them silently runs another config.
    if (!seen.insert(key).second)
      throw ConfigError(
          cat(src, ": duplicate key \"", full, "\" (line ", it->first.Mark().line + 1, ")"));
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

// `root` by value on purpose: a YAML::Node is a handle, and the override is written through a
// copy of it into the caller's tree (a const reference could not index-create the key).
// NOLINTNEXTLINE(performance-unnecessary-value-param)
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

// Sees the document boundaries only; the events themselves are not needed.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// The number of YAML documents in `text`. Not YAML::LoadAll: on some malformed text (a lone
// ",") yaml-cpp 0.7 returns an empty document without consuming anything, forever, and LoadAll
// collects them until memory runs out.
size_t count_documents(const std::string& text, const std::string& src) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  DocumentStarts docs;
  while (parser.HandleNextDocument(docs)) {
    const auto& s = docs.starts;
    if (s.size() >= 2 && s[s.size() - 1].pos == s[s.size() - 2].pos)
      throw ConfigError(cat(src, ": malformed YAML (no progress at line ", s.back().line + 1, ")"));
  }
  return docs.starts.size();
}

}  // namespace

YAML::Node load_with_schema(const char* defaults, const std::string& text,
                            const std::vector<std::string>& overrides, const std::string& src) {
  YAML::Node root = YAML::Load(defaults);
  try {
    const size_t docs = count_documents(text, src);
    if (docs > 1)
      throw ConfigError(
          cat(src, ": holds ", docs, " YAML documents (---); a config is exactly one"));
    const YAML::Node user = YAML::Load(text);
    if (user && !user.IsNull()) merge(root, user, "", src);
  } catch (const YAML::Exception& e) {
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
