// Jinja parser: tokens -> statements, a recursive descent that follows jinja2's grammar
// (parser.py) rule for rule, so precedence and the odd corners (filters bind tighter than unary
// minus, `is` tests take one bare argument, `for x in xs if cond`) come out the same.
#pragma once

#include <string>
#include <vector>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"

namespace resp::jinja {

// Parses the tokens of `name`. Syntax errors are ConfigErrors naming the position; valid Jinja
// this interpreter does not implement ({% include %}, {% extends %}, {% call %}, ...) is an
// UnsupportedError naming the construct and the position.
Body parse(const std::vector<Token>& tokens, const std::string& name);

// The names of jinja2's built-in filters and tests (a name outside these is a template error,
// as in jinja2; a name inside them that this interpreter lacks fails only when it runs).
bool is_jinja_filter(const std::string& name);
bool is_jinja_test(const std::string& name);

}  // namespace resp::jinja
