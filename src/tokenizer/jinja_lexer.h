// Jinja lexer with the settings transformers renders chat templates with (trim_blocks,
// lstrip_blocks, keep_trailing_newline off): splits a template into text and the tokens of its
// {{ }} and {% %} tags, applying the whitespace rules (-, +, trim_blocks, lstrip_blocks) exactly
// as jinja2's lexer does. Comments and {% raw %} markers are consumed here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace resp::jinja {

struct Token {
  enum class Type {
    Data,
    VarBegin,
    VarEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Int,
    Float,
    Op,
    Eof
  };
  Type type = Type::Eof;
  std::string text;  // Data: the text; Name; String: the unescaped value; Op: the operator
  int64_t int_value = 0;
  double float_value = 0;
  int line = 1, col = 1;
};

// Tokenizes `source`. A malformed template (unclosed tag, comment or string, stray bracket) is
// a ConfigError naming `name` and the position.
std::vector<Token> lex(std::string_view source, const std::string& name);

// How a token reads in an error message: "end of print statement", "'foo'", "end of template".
std::string describe(const Token& t);

}  // namespace resp::jinja
