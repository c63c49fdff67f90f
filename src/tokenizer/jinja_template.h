// A Jinja template, rendered as transformers' apply_chat_template renders chat templates: jinja2's
// ImmutableSandboxedEnvironment with trim_blocks, lstrip_blocks and the loopcontrols extension;
// the globals range, dict, namespace and raise_exception (a ConfigError carrying the template's
// message); transformers' tojson filter; {% generation %} blocks rendered as they are.
//
// Parsing happens once, in the constructor; render() is const and may run on several threads.
// Errors name the template (`name`, e.g. "chat template of models/X") and the line and column.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_value.h"

namespace resp::jinja {

class Template {
 public:
  // Parses `source` (UTF-8): ConfigError for a syntax error or invalid UTF-8, UnsupportedError
  // for valid Jinja this interpreter lacks ({% include %}, {% extends %}, {% call %}, ...).
  explicit Template(std::string_view source, std::string name = "template");

  // Renders with these variables (the template's context; later entries win; strings must be
  // valid UTF-8, else a UsageError). Errors while rendering are ConfigErrors
  // ("<name> line L column C: ...") or UnsupportedErrors.
  std::string render(const std::vector<std::pair<std::string, Value>>& variables) const;

  // Whether the template reads the variable `name` anywhere (e.g. "enable_thinking").
  bool references(const std::string& name) const { return names_.count(name) != 0; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::shared_ptr<const Body> body_;
  std::set<std::string> names_;
};

}  // namespace resp::jinja
