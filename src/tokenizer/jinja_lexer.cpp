#include "tokenizer/jinja_lexer.h"

#include <algorithm>
#include <cctype>

#include "core/error.h"
#include "tokenizer/pystr.h"
#include "tokenizer/unicode.h"

namespace resp::jinja {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

class Lexer {
 public:
  Lexer(std::string_view source, const std::string& name) : name_(name) {
    // jinja2 first turns \r\n and \r into \n and drops one trailing newline.
    src_.reserve(source.size());
    for (size_t i = 0; i < source.size(); ++i) {
      if (source[i] == '\r') {
        src_ += '\n';
        if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
      } else {
        src_ += source[i];
      }
    }
    if (!src_.empty() && src_.back() == '\n') src_.pop_back();
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    const size_t n = src_.size();
    size_t pos = 0;
    while (pos < n) {
      size_t t = pos;
      while (true) {
        t = src_.find('{', t);
        if (t == std::string::npos || t + 1 >= n) {
          t = std::string::npos;
          break;
        }
        const char k = src_[t + 1];
        if (k == '{' || k == '%' || k == '#') break;
        ++t;
      }
      if (t == std::string::npos) {
        data(pos, src_.substr(pos));
        break;
      }
      const char kind = src_[t + 1];
      size_t after = t + 2;
      char sign = 0;
      if (after < n && (src_[after] == '-' || src_[after] == '+')) sign = src_[after++];
      size_t raw_end = 0;
      const bool raw = kind == '%' && match_raw_begin(after, raw_end);
      std::string text = src_.substr(pos, t - pos);
      strip_before(text, sign, kind != '{');
      data(pos, std::move(text));
      if (raw) {
        pos = lex_raw(raw_end);
      } else if (kind == '#') {
        pos = lex_comment(after, t);
      } else {
        pos = lex_tag(kind == '%', t, after);
      }
    }
    Token eof;
    eof.type = Token::Type::Eof;
    position(eof, n);
    tokens_.push_back(eof);
    return std::move(tokens_);
  }

 private:
  [[noreturn]] void error(size_t at, const std::string& what) const {
    int line, col;
    line_col(at, line, col);
    throw ConfigError(cat(name_, " line ", line, " column ", col, ": ", what));
  }

  void line_col(size_t at, int& line, int& col) const {
    const auto it = std::upper_bound(line_starts_.begin(), line_starts_.end(), at);
    const size_t l = static_cast<size_t>(it - line_starts_.begin());
    line = static_cast<int>(l);
    col = static_cast<int>(at - line_starts_[l - 1]) + 1;
  }

  void position(Token& tok, size_t at) const { line_col(at, tok.line, tok.col); }

  void data(size_t at, std::string text) {
    if (text.empty()) return;
    Token tok;
    tok.type = Token::Type::Data;
    tok.text = std::move(text);
    position(tok, at);
    tokens_.push_back(std::move(tok));
  }

  void push(Token::Type type, size_t at, std::string text = {}) {
    Token tok;
    tok.type = type;
    tok.text = std::move(text);
    position(tok, at);
    tokens_.push_back(std::move(tok));
  }

  bool space_at(size_t i, size_t& len) const {
    if (i >= src_.size()) return false;
    return pystr::is_space(unicode::decode_utf8(src_.data(), i, len));
  }

  size_t skip_space(size_t i) const {
    size_t len;
    while (space_at(i, len)) i += len;
    return i;
  }

  // The whitespace rules for the text before a tag: "-" strips all trailing whitespace;
  // otherwise lstrip_blocks removes the spaces between the line start and a block or comment
  // tag (unless the tag says "+").
  void strip_before(std::string& text, char sign, bool lstrip_applies) const {
    if (sign == '-') {
      text = pystr::strip(text, std::nullopt, false, true);
      return;
    }
    if (sign == '+' || !lstrip_applies) return;
    const size_t nl = text.rfind('\n');
    const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if (l_pos == 0 && !line_starting_) return;
    if (l_pos == text.size()) return;
    for (size_t i = l_pos; i < text.size();) {
      size_t len;
      if (!pystr::is_space(unicode::decode_utf8(text.data(), i, len))) return;
      i += len;
    }
    text.resize(l_pos);
  }

  // The end of a block or comment tag at `i` ("+%}", "-%}" + whitespace, "%}" + one newline);
  // returns the position after it or npos.
  size_t block_end(size_t i, char close) const {
    const size_t n = src_.size();
    if (i + 2 < n && src_[i] == '+' && src_[i + 1] == close && src_[i + 2] == '}') return i + 3;
    if (i + 2 < n && src_[i] == '-' && src_[i + 1] == close && src_[i + 2] == '}')
      return skip_space(i + 3);
    if (i + 1 < n && src_[i] == close && src_[i + 1] == '}')
      return i + 2 < n && src_[i + 2] == '\n' ? i + 3 : i + 2;
    return std::string::npos;
  }

  void set_line_starting(size_t end) { line_starting_ = end > 0 && src_[end - 1] == '\n'; }

  bool match_raw_begin(size_t i, size_t& end) const {
    i = skip_space(i);
    if (src_.compare(i, 3, "raw") != 0) return false;
    i = skip_space(i + 3);
    if (src_.compare(i, 3, "-%}") == 0) {
      end = skip_space(i + 3);
      return true;
    }
    if (src_.compare(i, 2, "%}") == 0) {
      end = i + 2;
      return true;
    }
    return false;
  }

  size_t lex_raw(size_t start) {
    set_line_starting(start);
    for (size_t t = src_.find("{%", start); t != std::string::npos; t = src_.find("{%", t + 1)) {
      size_t i = t + 2;
      char sign = 0;
      if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) sign = src_[i++];
      i = skip_space(i);
      if (src_.compare(i, 6, "endraw") != 0) continue;
      const size_t end = block_end(skip_space(i + 6), '%');
      if (end == std::string::npos) continue;
      std::string text = src_.substr(start, t - start);
      strip_before(text, sign, true);
      data(start, std::move(text));
      set_line_starting(end);
      return end;
    }
    error(start, "missing end of raw directive");
  }

  size_t lex_comment(size_t i, size_t begin) {
    for (; i < src_.size(); ++i) {
      const size_t end = block_end(i, '#');
      if (end != std::string::npos) {
        set_line_starting(end);
        return end;
      }
    }
    error(begin, "missing end of comment tag");
  }

  size_t lex_tag(bool block, size_t begin, size_t i) {
    push(block ? Token::Type::BlockBegin : Token::Type::VarBegin, begin);
    std::vector<char> balance;
    const size_t n = src_.size();
    while (true) {
      if (i >= n)
        error(begin, block ? "unexpected end of template, expected end of statement block"
                           : "unexpected end of template, expected end of print statement");
      if (balance.empty()) {
        size_t end = std::string::npos;
        if (block) {
          end = block_end(i, '%');
        } else if (src_.compare(i, 3, "-}}") == 0) {
          end = skip_space(i + 3);
        } else if (src_.compare(i, 2, "}}") == 0) {
          end = i + 2;
        }
        if (end != std::string::npos) {
          push(block ? Token::Type::BlockEnd : Token::Type::VarEnd, i);
          set_line_starting(end);
          return end;
        }
      }
      size_t len;
      if (space_at(i, len)) {
        i = skip_space(i);
        continue;
      }
      const char c = src_[i];
      if (is_digit(c)) {
        i = lex_number(i);
      } else if (c == '\'' || c == '"') {
        i = lex_string(i);
      } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' ||
                 static_cast<unsigned char>(c) >= 0x80) {
        i = lex_name(i);
      } else {
        i = lex_operator(i, balance);
      }
    }
  }

  // (\d+_)*\d+ at i; returns the end or npos.
  size_t digits(size_t i) const {
    if (i >= src_.size() || !is_digit(src_[i])) return std::string::npos;
    while (true) {
      while (i < src_.size() && is_digit(src_[i])) ++i;
      if (i + 1 < src_.size() && src_[i] == '_' && is_digit(src_[i + 1])) {
        ++i;
        continue;
      }
      return i;
    }
  }

  size_t lex_number(size_t i) {
    const size_t n = src_.size();
    // Float first, as jinja2 does; never right after a '.' (so x.0.1 is two subscripts).
    if (i == 0 || src_[i - 1] != '.') {
      const size_t d = digits(i);
      size_t end = std::string::npos;
      size_t frac = std::string::npos;
      if (d < n && src_[d] == '.') frac = digits(d + 1);
      const size_t e = frac != std::string::npos ? frac : d;
      if (e < n && (src_[e] == 'e' || src_[e] == 'E')) {
        size_t x = e + 1;
        if (x < n && (src_[x] == '+' || src_[x] == '-')) ++x;
        end = digits(x);
      }
      if (end == std::string::npos) end = frac;
      if (end != std::string::npos) {
        std::string text;
        for (size_t k = i; k < end; ++k)
          if (src_[k] != '_') text += src_[k];
        Token tok;
        tok.type = Token::Type::Float;
        tok.float_value = std::strtod(text.c_str(), nullptr);
        tok.text = src_.substr(i, end - i);
        position(tok, i);
        tokens_.push_back(std::move(tok));
        return end;
      }
    }
    int base = 10;
    size_t start = i, end = i;
    if (src_[i] == '0' && i + 1 < n) {
      const char p = static_cast<char>(std::tolower(static_cast<unsigned char>(src_[i + 1])));
      if (p == 'b' || p == 'o' || p == 'x') {
        base = p == 'b' ? 2 : (p == 'o' ? 8 : 16);
        auto ok = [&](char ch) {
          const int v = std::isxdigit(static_cast<unsigned char>(ch))
                            ? (is_digit(ch) ? ch - '0' : std::tolower(ch) - 'a' + 10)
                            : 99;
          return v < base;
        };
        size_t k = i + 2;
        while (k < n) {
          if (src_[k] == '_' && k + 1 < n && ok(src_[k + 1])) {
            k += 2;
          } else if (ok(src_[k])) {
            ++k;
          } else {
            break;
          }
        }
        if (k > i + 2) {
          start = i + 2;
          end = k;
        } else {
          base = 10;
        }
      }
    }
    if (end == i) {
      if (src_[i] == '0') {
        end = i + 1;
        while (end < n &&
               (src_[end] == '0' || (src_[end] == '_' && end + 1 < n && src_[end + 1] == '0')))
          end += src_[end] == '_' ? 2 : 1;
      } else {
        end = digits(i);
      }
    }
    int64_t v = 0;
    for (size_t k = start; k < end; ++k) {
      const char ch = src_[k];
      if (ch == '_') continue;
      const int d = is_digit(ch) ? ch - '0' : std::tolower(ch) - 'a' + 10;
      if (__builtin_mul_overflow(v, base, &v) || __builtin_add_overflow(v, d, &v))
        error(i, "integer literal too large");
    }
    Token tok;
    tok.type = Token::Type::Int;
    tok.int_value = v;
    tok.text = src_.substr(i, end - i);
    position(tok, i);
    tokens_.push_back(std::move(tok));
    return end;
  }

  size_t lex_name(size_t i) {
    const size_t start = i;
    while (i < src_.size()) {
      const char c = src_[i];
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '_') {
        ++i;
        continue;
      }
      if (static_cast<unsigned char>(c) < 0x80) break;
      size_t len;
      const uint32_t cp = unicode::decode_utf8(src_.data(), i, len);
      if (!(unicode::char_flags(cp) & unicode::kWord)) break;
      i += len;
    }
    if (i == start) error(i, cat("unexpected char '", src_.substr(i, 1), "'"));
    push(Token::Type::Name, start, src_.substr(start, i - start));
    return i;
  }

  size_t lex_string(size_t i) {
    const char q = src_[i];
    size_t k = i + 1;
    while (k < src_.size() && src_[k] != q) k += src_[k] == '\\' ? 2 : 1;
    if (k >= src_.size()) error(i, cat("unexpected char '", std::string(1, q), "'"));
    push(Token::Type::String, i, unescape(src_.substr(i + 1, k - i - 1), i));
    return k + 1;
  }

  // Python's "unicode-escape" decoding of a string literal's body (what jinja2 applies).
  std::string unescape(const std::string& s, size_t at) const {
    std::string out;
    out.reserve(s.size());
    auto hex = [&](size_t p, int count) -> uint32_t {
      uint32_t v = 0;
      for (int k = 0; k < count; ++k) {
        if (p + static_cast<size_t>(k) >= s.size() ||
            !std::isxdigit(static_cast<unsigned char>(s[p + static_cast<size_t>(k)])))
          error(at, cat("truncated \\", s[p - 1], " escape in a string literal"));
        const char c = s[p + static_cast<size_t>(k)];
        v = v * 16 + static_cast<uint32_t>(is_digit(c) ? c - '0' : std::tolower(c) - 'a' + 10);
      }
      return v;
    };
    uint32_t high_surrogate = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] != '\\' || i + 1 >= s.size()) {
        out += s[i];
        continue;
      }
      const char e = s[++i];
      uint32_t cp = 0;
      switch (e) {
        case '\n':
          continue;
        case '\\':
        case '\'':
        case '"':
          out += e;
          continue;
        case 'a':
          out += '\a';
          continue;
        case 'b':
          out += '\b';
          continue;
        case 'f':
          out += '\f';
          continue;
        case 'n':
          out += '\n';
          continue;
        case 'r':
          out += '\r';
          continue;
        case 't':
          out += '\t';
          continue;
        case 'v':
          out += '\v';
          continue;
        case 'x':
          cp = hex(i + 1, 2);
          i += 2;
          break;
        case 'u':
          cp = hex(i + 1, 4);
          i += 4;
          break;
        case 'U':
          cp = hex(i + 1, 8);
          i += 8;
          break;
        case 'N':
          throw UnsupportedError(
              cat(name_, ": \\N{...} escapes in string literals are not supported"));
        default:
          if (e >= '0' && e <= '7') {
            cp = static_cast<uint32_t>(e - '0');
            for (int k = 0; k < 2 && i + 1 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7'; ++k)
              cp = cp * 8 + static_cast<uint32_t>(s[++i] - '0');
            break;
          }
          out += '\\';
          out += e;
          continue;
      }
      if (cp > 0x10FFFF) error(at, "illegal Unicode character in a string literal");
      if (cp >= 0xD800 && cp < 0xDC00) {
        high_surrogate = cp;
        continue;
      }
      if (cp >= 0xDC00 && cp < 0xE000) {
        if (!high_surrogate) error(at, "lone surrogate escape in a string literal");
        cp = 0x10000 + ((high_surrogate - 0xD800) << 10) + (cp - 0xDC00);
        high_surrogate = 0;
      }
      unicode::append_utf8(out, cp);
    }
    if (high_surrogate) error(at, "lone surrogate escape in a string literal");
    return out;
  }

  size_t lex_operator(size_t i, std::vector<char>& balance) {
    static const char* const two[] = {"//", "**", "==", "!=", ">=", "<="};
    for (const char* op : two) {
      if (src_.compare(i, 2, op) == 0) {
        push(Token::Type::Op, i, op);
        return i + 2;
      }
    }
    const char c = src_[i];
    if (std::string_view("+-/*%~[](){}><=.:|,;").find(c) == std::string_view::npos)
      error(i, cat("unexpected char '", src_.substr(i, 1), "'"));
    if (c == '(' || c == '[' || c == '{') {
      balance.push_back(c == '(' ? ')' : (c == '[' ? ']' : '}'));
    } else if (c == ')' || c == ']' || c == '}') {
      if (balance.empty()) error(i, cat("unexpected '", std::string(1, c), "'"));
      if (balance.back() != c)
        error(i, cat("unexpected '", std::string(1, c), "', expected '",
                     std::string(1, balance.back()), "'"));
      balance.pop_back();
    }
    push(Token::Type::Op, i, std::string(1, c));
    return i + 1;
  }

  const std::string& name_;
  std::string src_;
  std::vector<size_t> line_starts_;
  std::vector<Token> tokens_;
  bool line_starting_ = true;
};

}  // namespace

std::vector<Token> lex(std::string_view source, const std::string& name) {
  return Lexer(source, name).run();
}

std::string describe(const Token& t) {
  switch (t.type) {
    case Token::Type::Data:
      return "template data";
    case Token::Type::VarBegin:
      return "begin of print statement";
    case Token::Type::VarEnd:
      return "end of print statement";
    case Token::Type::BlockBegin:
      return "begin of statement block";
    case Token::Type::BlockEnd:
      return "end of statement block";
    case Token::Type::Eof:
      return "end of template";
    case Token::Type::String:
      return "string";
    default:  // numbers, names, operators: their text
      return "'" + t.text + "'";
  }
}

}  // namespace resp::jinja
