#include "tokenizer/jinja_parser.h"

#include <algorithm>
#include <initializer_list>
#include <set>

#include "core/error.h"

namespace resp::jinja {

namespace {

using TT = Token::Type;
using EK = Expr::Kind;
using SK = Stmt::Kind;

// Deep nesting is refused rather than allowed to exhaust the stack.
constexpr int kMaxDepth = 200;

class Parser {
 public:
  Parser(const std::vector<Token>& tokens, const std::string& name) : toks_(tokens), name_(name) {}

  Body run() {
    Body body = subparse({});
    if (cur().type != TT::Eof) error(cur(), cat("unexpected ", describe(cur())));
    return body;
  }

 private:
  // ---- token stream ----

  const Token& cur() const { return toks_[pos_]; }
  const Token& look() const { return toks_[std::min(pos_ + 1, toks_.size() - 1)]; }
  const Token& next() {
    const Token& t = toks_[pos_];
    if (pos_ + 1 < toks_.size()) ++pos_;
    return t;
  }
  bool is_op(const char* op) const { return cur().type == TT::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().type == TT::Name && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    next();
    return true;
  }
  const Token& expect_op(const char* op) {
    if (!is_op(op)) error(cur(), cat("expected token '", op, "', got ", describe(cur())));
    return next();
  }
  const Token& expect_name() {
    if (cur().type != TT::Name) error(cur(), cat("expected a name, got ", describe(cur())));
    return next();
  }
  const Token& expect_name(const char* n) {
    if (!is_name(n)) error(cur(), cat("expected token '", n, "', got ", describe(cur())));
    return next();
  }
  void expect_block_end() {
    if (cur().type != TT::BlockEnd)
      error(cur(), cat("expected token 'end of statement block', got ", describe(cur())));
    next();
  }

  [[noreturn]] void error(const Token& t, const std::string& what) const {
    throw ConfigError(cat(name_, " line ", t.line, " column ", t.col, ": ", what));
  }
  [[noreturn]] void unsupported_at(const Token& t, const std::string& what) const {
    throw UnsupportedError(
        cat(name_, " line ", t.line, " column ", t.col, ": ", what, " is not supported"));
  }

  ExprPtr make(EK k, const Token& t) { return std::make_unique<Expr>(k, t.line, t.col); }

  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser) : p(parser) {
      if (++p.depth_ > kMaxDepth) p.error(p.cur(), "template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
  };

  // ---- statements ----

  // Statements until a block whose first name is in `end_tokens` (left unconsumed, after its
  // "{%") or the end of the template.
  Body subparse(std::initializer_list<const char*> end_tokens) {
    DepthGuard guard(*this);
    Body body;
    while (cur().type != TT::Eof) {
      const Token& t = cur();
      if (t.type == TT::Data) {
        auto s = std::make_unique<Stmt>(SK::Text, t.line, t.col);
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == TT::VarBegin) {
        next();
        auto s = std::make_unique<Stmt>(SK::Print, t.line, t.col);
        s->expr = parse_tuple(false, true, {}, false);
        if (cur().type != TT::VarEnd)
          error(cur(), cat("expected token 'end of print statement', got ", describe(cur())));
        next();
        body.push_back(std::move(s));
      } else if (t.type == TT::BlockBegin) {
        next();
        if (cur().type == TT::Name) {
          for (const char* e : end_tokens)
            if (cur().text == e) return body;
        }
        body.push_back(parse_statement());
        expect_block_end();
      } else {
        error(t, cat("unexpected ", describe(t)));
      }
    }
    return body;
  }

  // parse_statements of jinja2: the rest of the opening tag, then the body up to an end tag.
  Body parse_statements(std::initializer_list<const char*> end_tokens, bool drop_needle,
                        const Token& opener) {
    skip_op(":");
    expect_block_end();
    Body body = subparse(end_tokens);
    if (cur().type == TT::Eof) {
      std::string want;
      for (const char* e : end_tokens)
        want += std::string(want.empty() ? "" : " or ") + "'" + e + "'";
      error(opener, cat("unexpected end of template: '", opener.text,
                        "' is never closed (expected ", want, ")"));
    }
    if (drop_needle) next();
    return body;
  }

  StmtPtr parse_statement() {
    const Token& t = cur();
    if (t.type != TT::Name) error(t, "tag name expected");
    const std::string& n = t.text;
    if (n == "if") return parse_if();
    if (n == "for") return parse_for();
    if (n == "set") return parse_set();
    if (n == "macro") return parse_macro();
    if (n == "print") {
      next();
      auto s = std::make_unique<Stmt>(SK::Print, t.line, t.col);
      s->expr = parse_tuple(false, true, {}, false);
      return s;
    }
    if (n == "break" || n == "continue") {
      if (loop_depth_ == 0) error(t, cat("'", n, "' outside of a for loop"));
      next();
      return std::make_unique<Stmt>(n == "break" ? SK::Break : SK::Continue, t.line, t.col);
    }
    if (n == "filter") return parse_filter_block();
    if (n == "with") return parse_with();
    if (n == "generation") {
      next();
      auto s = std::make_unique<Stmt>(SK::Generation, t.line, t.col);
      s->body = parse_statements({"endgeneration"}, true, t);
      return s;
    }
    if (n == "call") return parse_call_block();
    if (n == "block" || n == "extends" || n == "include" || n == "from" || n == "import" ||
        n == "autoescape")
      unsupported_at(t, cat("the '", n, "' tag"));
    error(t, cat("encountered unknown tag '", n, "'"));
  }

  StmtPtr parse_if() {
    const Token& t = next();
    auto s = std::make_unique<Stmt>(SK::If, t.line, t.col);
    while (true) {
      ExprPtr cond = parse_tuple(false, false, {}, false);
      Body body = parse_statements({"elif", "else", "endif"}, false, t);
      s->branches.emplace_back(std::move(cond), std::move(body));
      const Token& e = next();
      if (e.text == "elif") continue;
      if (e.text == "else") s->else_body = parse_statements({"endif"}, true, t);
      break;
    }
    return s;
  }

  StmtPtr parse_for() {
    const Token& t = next();
    auto s = std::make_unique<Stmt>(SK::For, t.line, t.col);
    s->target = parse_assign_target(true, false, {"in"});
    expect_name("in");
    s->expr = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) s->filter = parse_expression(true);
    if (is_name("recursive")) unsupported_at(cur(), "a recursive for loop");
    ++loop_depth_;
    s->body = parse_statements({"endfor", "else"}, false, t);
    --loop_depth_;
    if (next().text == "else") s->else_body = parse_statements({"endfor"}, true, t);
    return s;
  }

  StmtPtr parse_set() {
    const Token& t = next();
    Target target = parse_assign_target(true, true, {});
    if (skip_op("=")) {
      auto s = std::make_unique<Stmt>(SK::Set, t.line, t.col);
      s->target = std::move(target);
      s->expr = parse_tuple(false, true, {}, false);
      return s;
    }
    auto s = std::make_unique<Stmt>(SK::SetBlock, t.line, t.col);
    if (!target.items.empty() || !target.attr.empty())
      error(t, "a block set needs a single name as its target");
    s->target = std::move(target);
    if (is_op("|")) s->filter = parse_filter(make(EK::Const, cur()), false);
    s->body = parse_statements({"endset"}, true, t);
    return s;
  }

  StmtPtr parse_macro() {
    const Token& t = next();
    auto s = std::make_unique<Stmt>(SK::Macro, t.line, t.col);
    s->text = expect_name().text;
    parse_signature(*s);
    const int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = parse_statements({"endmacro"}, true, t);
    loop_depth_ = saved;
    return s;
  }

  void parse_signature(Stmt& s) {
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      MacroParam p;
      p.name = expect_name().text;
      if (skip_op("=")) {
        p.default_value = parse_expression(true);
      } else if (!s.params.empty() && s.params.back().default_value) {
        error(cur(), "non-default argument follows default argument");
      }
      s.params.push_back(std::move(p));
    }
    expect_op(")");
  }

  StmtPtr parse_filter_block() {
    const Token& t = next();
    auto s = std::make_unique<Stmt>(SK::FilterBlock, t.line, t.col);
    s->expr = parse_filter(make(EK::Const, t), true);
    s->body = parse_statements({"endfilter"}, true, t);
    return s;
  }

  StmtPtr parse_with() {
    const Token& t = next();
    auto s = std::make_unique<Stmt>(SK::With, t.line, t.col);
    while (cur().type != TT::BlockEnd) {
      if (!s->assignments.empty()) expect_op(",");
      Target target = parse_assign_target(true, false, {});
      expect_op("=");
      s->assignments.emplace_back(std::move(target), parse_expression(true));
    }
    s->body = parse_statements({"endwith"}, true, t);
    return s;
  }

  StmtPtr parse_call_block() { unsupported_at(cur(), "the 'call' tag"); }

  Target parse_assign_target(bool with_tuple, bool with_namespace,
                             std::initializer_list<const char*> extra_end) {
    if (with_namespace && cur().type == TT::Name && look().type == TT::Op && look().text == ".") {
      Target t;
      t.name = next().text;
      next();
      t.attr = expect_name().text;
      return t;
    }
    std::vector<Target> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      items.push_back(parse_target_primary());
      if (with_tuple && is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (items.empty()) error(cur(), cat("can't assign to ", describe(cur())));
    if (!is_tuple) return std::move(items[0]);
    Target t;
    t.items = std::move(items);
    return t;
  }

  Target parse_target_primary() {
    if (cur().type == TT::Name) {
      const std::string& n = cur().text;
      if (n == "true" || n == "false" || n == "True" || n == "False" || n == "none" || n == "None")
        error(cur(), "can't assign to 'const'");
      Target t;
      t.name = next().text;
      return t;
    }
    if (is_op("(")) {
      next();
      Target t = parse_assign_target(true, false, {});
      expect_op(")");
      return t;
    }
    error(cur(), cat("can't assign to ", describe(cur())));
  }

  bool tuple_end(std::initializer_list<const char*> extra_end) const {
    const Token& t = cur();
    if (t.type == TT::VarEnd || t.type == TT::BlockEnd || (t.type == TT::Op && t.text == ")"))
      return true;
    if (t.type == TT::Name)
      for (const char* e : extra_end)
        if (t.text == e) return true;
    return false;
  }

  // ---- expressions ----

  ExprPtr parse_expression(bool with_condexpr) {
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    DepthGuard guard(*this);
    ExprPtr e1 = parse_or();
    while (is_name("if")) {
      const Token& t = next();
      ExprPtr cond = parse_or();
      ExprPtr e3;
      if (skip_name("else")) e3 = parse_condexpr();
      auto c = make(EK::Cond, t);
      c->args.push_back(std::move(cond));
      c->args.push_back(std::move(e1));
      c->args.push_back(std::move(e3));
      e1 = std::move(c);
    }
    return e1;
  }

  ExprPtr binary(EK k, const Token& t, ExprPtr a, ExprPtr b, std::string op = {}) {
    auto e = make(k, t);
    e->name = std::move(op);
    e->args.push_back(std::move(a));
    e->args.push_back(std::move(b));
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      const Token& t = next();
      left = binary(EK::Or, t, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      const Token& t = next();
      left = binary(EK::And, t, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      const Token& t = next();
      auto e = make(EK::Not, t);
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Token& start = cur();
    ExprPtr expr = parse_math1();
    std::unique_ptr<Expr> cmp;
    while (true) {
      std::string op;
      if (cur().type == TT::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                   cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        op = next().text;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && look().type == TT::Name && look().text == "in") {
        next();
        next();
        op = "notin";
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(EK::Compare, start);
        cmp->args.push_back(std::move(expr));
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? std::move(cmp) : std::move(expr);
  }

  ExprPtr parse_math1() {
    ExprPtr left = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      left = binary(EK::Binary, t, std::move(left), parse_concat(), t.text);
    }
    return left;
  }

  ExprPtr parse_concat() {
    ExprPtr left = parse_math2();
    while (is_op("~")) {
      const Token& t = next();
      left = binary(EK::Binary, t, std::move(left), parse_math2(), "~");
    }
    return left;
  }

  ExprPtr parse_math2() {
    ExprPtr left = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      left = binary(EK::Binary, t, std::move(left), parse_pow(), t.text);
    }
    return left;
  }

  ExprPtr parse_pow() {
    ExprPtr left = parse_unary(true);
    while (is_op("**")) {
      const Token& t = next();
      left = binary(EK::Binary, t, std::move(left), parse_unary(true), "**");
    }
    return left;
  }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      node = make(t.text == "-" ? EK::Neg : EK::Pos, t);
      node->args.push_back(parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node));
    if (with_filter) node = parse_filter_expr(std::move(node));
    return node;
  }

  ExprPtr parse_primary() {
    DepthGuard guard(*this);
    const Token& t = cur();
    if (t.type == TT::Name) {
      next();
      auto e = make(EK::Const, t);
      if (t.text == "true" || t.text == "True") {
        e->value = Value(true);
      } else if (t.text == "false" || t.text == "False") {
        e->value = Value(false);
      } else if (t.text == "none" || t.text == "None") {
        e->value = Value::none();
      } else {
        e->kind = EK::Name;
        e->name = t.text;
      }
      return e;
    }
    if (t.type == TT::String) {
      std::string s;
      while (cur().type == TT::String) s += next().text;  // adjacent literals concatenate
      auto e = make(EK::Const, t);
      e->value = Value(std::move(s));
      return e;
    }
    if (t.type == TT::Int || t.type == TT::Float) {
      next();
      auto e = make(EK::Const, t);
      e->value = t.type == TT::Int ? Value(t.int_value) : Value(t.float_value);
      return e;
    }
    if (is_op("(")) {
      next();
      ExprPtr e = parse_tuple(false, true, {}, true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      next();
      auto e = make(EK::ListLit, t);
      while (!is_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("]")) break;
        e->args.push_back(parse_expression(true));
      }
      expect_op("]");
      return e;
    }
    if (is_op("{")) {
      next();
      auto e = make(EK::DictLit, t);
      while (!is_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (is_op("}")) break;
        e->args.push_back(parse_expression(true));
        expect_op(":");
        e->args.push_back(parse_expression(true));
      }
      expect_op("}");
      return e;
    }
    error(t, cat("unexpected ", describe(t)));
  }

  ExprPtr parse_tuple(bool simplified, bool with_condexpr,
                      std::initializer_list<const char*> extra_end, bool explicit_parens) {
    const Token& start = cur();
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      args.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (is_op(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) error(cur(), cat("expected an expression, got ", describe(cur())));
    }
    auto e = make(EK::TupleLit, start);
    e->args = std::move(args);
    return e;
  }

  ExprPtr parse_postfix(ExprPtr node) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        node = parse_subscript(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node) {
    while (true) {
      if (is_op("|")) {
        node = parse_filter(std::move(node), false);
      } else if (is_name("is")) {
        node = parse_test(std::move(node));
      } else if (is_op("(")) {
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    DepthGuard guard(*this);
    const Token& t = next();
    if (t.text == ".") {
      const Token& a = next();
      if (a.type == TT::Name) {
        auto e = make(EK::GetAttr, t);
        e->name = a.text;
        e->args.push_back(std::move(node));
        return e;
      }
      if (a.type != TT::Int) error(a, "expected name or number");
      auto e = make(EK::GetItem, t);
      auto k = make(EK::Const, a);
      k->value = Value(a.int_value);
      e->args.push_back(std::move(node));
      e->args.push_back(std::move(k));
      return e;
    }
    std::vector<ExprPtr> subs;
    while (!is_op("]")) {
      if (!subs.empty()) expect_op(",");
      subs.push_back(parse_subscribed());
    }
    expect_op("]");
    if (subs.size() == 1 && subs[0]->kind == EK::Slice) {
      subs[0]->args.insert(subs[0]->args.begin(), std::move(node));
      return std::move(subs[0]);
    }
    auto e = make(EK::GetItem, t);
    e->args.push_back(std::move(node));
    if (subs.size() == 1) {
      e->args.push_back(std::move(subs[0]));
    } else {
      for (const auto& s : subs)
        if (s->kind == EK::Slice) unsupported_at(t, "a subscript with several slices");
      auto tup = make(EK::TupleLit, t);
      tup->args = std::move(subs);
      e->args.push_back(std::move(tup));
    }
    return e;
  }

  // One subscript: an expression or a slice [start]:[stop][:[step]].
  ExprPtr parse_subscribed() {
    const Token& t = cur();
    std::vector<ExprPtr> parts;
    if (is_op(":")) {
      next();
      parts.push_back(nullptr);
    } else {
      ExprPtr node = parse_expression(true);
      if (!is_op(":")) return node;
      next();
      parts.push_back(std::move(node));
    }
    const bool stop_given = !is_op(":") && !is_op("]") && !is_op(",");
    parts.push_back(stop_given ? parse_expression(true) : nullptr);
    if (is_op(":")) {
      next();
      parts.push_back(!is_op("]") && !is_op(",") ? parse_expression(true) : nullptr);
    } else {
      parts.push_back(nullptr);
    }
    auto e = make(EK::Slice, t);
    e->args = std::move(parts);
    return e;
  }

  void parse_call_args(Expr& e) {
    const Token& open = expect_op("(");
    bool require_comma = false;
    while (!is_op(")")) {
      if (require_comma) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) unsupported_at(cur(), "*args / **kwargs in a call");
      if (cur().type == TT::Name && look().type == TT::Op && look().text == "=") {
        std::string key = next().text;
        next();
        e.kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e.kwargs.empty()) error(open, "invalid syntax for function call expression");
        e.args.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect_op(")");
  }

  ExprPtr parse_call(ExprPtr node) {
    DepthGuard guard(*this);
    auto e = make(EK::Call, cur());
    e->args.push_back(std::move(node));
    parse_call_args(*e);
    return e;
  }

  ExprPtr parse_filter(ExprPtr node, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      const Token& t = expect_name();
      std::string n = t.text;
      while (is_op(".")) {
        next();
        n += "." + expect_name().text;
      }
      if (!is_jinja_filter(n)) error(t, cat("no filter named '", n, "'"));
      auto e = make(EK::Filter, t);
      e->name = n;
      e->args.push_back(std::move(node));
      if (is_op("(")) parse_call_args(*e);
      node = std::move(e);
    }
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const Token& is = next();
    auto e = make(EK::Test, is);
    if (skip_name("not")) e->negated = true;
    const Token& t = expect_name();
    std::string n = t.text;
    while (is_op(".")) {
      next();
      n += "." + expect_name().text;
    }
    if (!is_jinja_test(n)) error(t, cat("no test named '", n, "'"));
    e->name = n;
    e->args.push_back(std::move(node));
    if (is_op("(")) {
      parse_call_args(*e);
    } else if ((cur().type == TT::Name || cur().type == TT::String || cur().type == TT::Int ||
                cur().type == TT::Float || is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) error(cur(), "You cannot chain multiple tests with is");
      e->args.push_back(parse_postfix(parse_primary()));
    }
    return e;
  }

  const std::vector<Token>& toks_;
  const std::string& name_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse(const std::vector<Token>& tokens, const std::string& name) {
  return Parser(tokens, name).run();
}

bool is_jinja_filter(const std::string& name) {
  static const std::set<std::string> k = {
      "abs",       "attr",       "batch",       "capitalize", "center",  "count",
      "d",         "default",    "dictsort",    "e",          "escape",  "filesizeformat",
      "first",     "float",      "forceescape", "format",     "groupby", "indent",
      "int",       "join",       "last",        "length",     "list",    "lower",
      "items",     "map",        "min",         "max",        "pprint",  "random",
      "reject",    "rejectattr", "replace",     "reverse",    "round",   "safe",
      "select",    "selectattr", "slice",       "sort",       "string",  "striptags",
      "sum",       "title",      "trim",        "truncate",   "unique",  "upper",
      "urlencode", "urlize",     "wordcount",   "wordwrap",   "xmlattr", "tojson"};
  return k.count(name) != 0;
}

bool is_jinja_test(const std::string& name) {
  static const std::set<std::string> k = {
      "odd",         "even",    "divisibleby", "defined",  "undefined", "filter",   "test",
      "none",        "boolean", "false",       "true",     "integer",   "float",    "lower",
      "upper",       "string",  "mapping",     "number",   "sequence",  "iterable", "callable",
      "sameas",      "escaped", "in",          "eq",       "equalto",   "ne",       "gt",
      "greaterthan", "ge",      "lt",          "lessthan", "le"};
  return k.count(name) != 0;
}

}  // namespace resp::jinja
