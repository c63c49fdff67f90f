// The syntax tree of a parsed Jinja template: expressions and statements as jinja2's parser
// builds them (same precedence, same node kinds, minus what chat templates never use).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/jinja_value.h"

namespace resp::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Expr {
  enum class Kind {
    Const,     // value
    Name,      // name
    ListLit,   // args
    TupleLit,  // args
    DictLit,   // args: key, value, key, value, ...
    GetAttr,   // args[0].name
    GetItem,   // args[0][args[1]]
    Slice,     // args[0][args[1]:args[2]:args[3]] (null parts are omitted)
    Call,      // args[0](args[1:], kwargs)
    Filter,    // args[0] | name(args[1:], kwargs)
    Test,      // args[0] is [not] name(args[1:], kwargs); negated
    Neg,       // -args[0]
    Pos,       // +args[0]
    Not,       // not args[0]
    And,       // args[0] and args[1]
    Or,        // args[0] or args[1]
    Binary,    // args[0] op args[1]: + - * / // % ** ~
    Compare,   // args[0] ops[0] args[1] ops[1] args[2] ...: == != < <= > >= in notin
    Cond       // args[1] if args[0] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0, col = 0;
  Value value;       // Const
  std::string name;  // Name, GetAttr, Filter, Test; Binary: the operator
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // Compare
  bool negated = false;          // Test

  Expr(Kind k, int l, int c) : kind(k), line(l), col(c) {}
};

// An assignment target: a name, a tuple of targets (for a, b in ...), or namespace.attr.
struct Target {
  std::string name;           // a name, or the namespace variable
  std::string attr;           // namespace attribute (set ns.attr = ...)
  std::vector<Target> items;  // tuple unpacking when not empty
};

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // may be null
};

struct Stmt {
  enum class Kind {
    Text,      // text
    Print,     // expr
    If,        // branches (expr = condition), else_body
    For,       // target, expr = iterable, filter, body, else_body
    Set,       // target, expr
    SetBlock,  // target, body, filters (expr: a Filter chain on a placeholder, may be null)
    Macro,     // text = name, params, body
    Break,
    Continue,
    FilterBlock,  // expr = Filter chain applied to the rendered body
    With,         // targets + values, body
    CallBlock,    // expr = the call, params = caller's params, body = caller
    Generation    // body (transformers' {% generation %}: rendered as is)
  };
  Kind kind;
  int line = 0, col = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  Target target;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<std::pair<Target, ExprPtr>> assignments;  // With
  std::vector<MacroParam> params;
  Body body, else_body;

  Stmt(Kind k, int l, int c) : kind(k), line(l), col(c) {}
};

}  // namespace resp::jinja
