#include "tokenizer/jinja_template.h"

#include "core/error.h"
#include "tokenizer/jinja_filters.h"
#include "tokenizer/jinja_lexer.h"
#include "tokenizer/jinja_ops.h"
#include "tokenizer/jinja_parser.h"
#include "tokenizer/unicode.h"

namespace resp::jinja {

namespace {

// Work limits: a template that loops forever or recurses without end fails instead of hanging.
constexpr int64_t kMaxSteps = 20'000'000;
constexpr int kMaxCallDepth = 100;
constexpr int64_t kMaxRange = 100'000;  // jinja2's sandbox MAX_RANGE

struct Frame;
using FramePtr = std::shared_ptr<Frame>;

// One scope: the template's top level, a loop iteration, a macro call, a with block.
struct Frame {
  FramePtr parent;
  std::vector<std::pair<std::string, Value>> vars;

  void set(const std::string& n, Value v) {
    for (auto& kv : vars) {
      if (kv.first == n) {
        kv.second = std::move(v);
        return;
      }
    }
    vars.emplace_back(n, std::move(v));
  }
};

const Value* lookup(const Frame* f, const std::string& n) {
  for (; f; f = f->parent.get())
    for (auto it = f->vars.rbegin(); it != f->vars.rend(); ++it)
      if (it->first == n) return &it->second;
  return nullptr;
}

void collect_names(const Expr* e, std::set<std::string>& out);
void collect_names(const Body& b, std::set<std::string>& out);

void collect_names(const Expr* e, std::set<std::string>& out) {
  if (!e) return;
  if (e->kind == Expr::Kind::Name) out.insert(e->name);
  for (const auto& a : e->args) collect_names(a.get(), out);
  for (const auto& kw : e->kwargs) collect_names(kw.second.get(), out);
}

void collect_names(const Body& b, std::set<std::string>& out) {
  for (const auto& s : b) {
    collect_names(s->expr.get(), out);
    collect_names(s->filter.get(), out);
    for (const auto& [cond, body] : s->branches) {
      collect_names(cond.get(), out);
      collect_names(body, out);
    }
    for (const auto& [t, v] : s->assignments) collect_names(v.get(), out);
    for (const auto& p : s->params) collect_names(p.default_value.get(), out);
    if (!s->target.attr.empty()) out.insert(s->target.name);
    collect_names(s->body, out);
    collect_names(s->else_body, out);
  }
}

Value global_range(CallArgs& a) {
  if (!a.kwargs.empty()) fail("range() takes no keyword arguments");
  std::vector<int64_t> n;
  for (const Value& v : a.args) {
    if (!v.is_int() && !v.is_bool())
      fail(cat("'", v.type_name(), "' object cannot be interpreted as an integer"));
    n.push_back(v.as_int());
  }
  if (n.empty() || n.size() > 3) fail(cat("range expected 1 to 3 arguments, got ", n.size()));
  const int64_t start = n.size() == 1 ? 0 : n[0];
  const int64_t stop = n.size() == 1 ? n[0] : n[1];
  const int64_t step = n.size() == 3 ? n[2] : 1;
  if (step == 0) fail("range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (static_cast<int64_t>(out.size()) >= kMaxRange)
      fail("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    out.emplace_back(i);
  }
  return make_list(std::move(out));
}

// dict(mapping_or_pairs, **kwargs) and namespace(...): the items of the arguments.
std::vector<std::pair<Value, Value>> dict_items(const CallArgs& a, const char* fname) {
  if (a.args.size() > 1) fail(cat(fname, " expected at most 1 argument, got ", a.args.size()));
  std::vector<std::pair<Value, Value>> items;
  if (!a.args.empty()) {
    const Value& src = a.args[0];
    if (src.is_mapping()) {
      items = src.dict()->items;
    } else {
      for (const Value& p : iterate(src)) {
        const auto pair = iterate(p);
        if (pair.size() != 2)
          fail(cat(fname, ": dictionary update sequence element has length ", pair.size(),
                   "; 2 is required"));
        items.emplace_back(pair[0], pair[1]);
      }
    }
  }
  for (const auto& [k, v] : a.kwargs) items.emplace_back(Value(k), v);
  return items;
}

void check_namespace_name(const std::string& n) {
  if (!n.empty() && n[0] == '_')
    fail(cat("Chat templates cannot store underscore-prefixed attributes on a namespace, but got '",
             n, "'"));
}

class Renderer {
 public:
  std::string run(const Body& body, const std::vector<std::pair<std::string, Value>>& variables) {
    auto globals = std::make_shared<Frame>();
    globals->set("range", make_function("range", global_range));
    globals->set("dict", make_function(
                             "dict", [](CallArgs& a) { return make_dict(dict_items(a, "dict")); }));
    globals->set("namespace", make_function("namespace", [](CallArgs& a) {
                   auto items = dict_items(a, "namespace");
                   for (const auto& kv : items)
                     if (kv.first.is_string()) check_namespace_name(kv.first.str());
                   return make_dict(std::move(items), Dict::Type::Namespace);
                 }));
    globals->set(
        "raise_exception", make_function("raise_exception", [](CallArgs& a) -> Value {
          throw Fault{Fault::Kind::Raised, a.args.empty() ? std::string() : a.args[0].to_string()};
        }));
    for (const char* g : {"lipsum", "cycler", "joiner"}) {
      const std::string gname = g;
      globals->set(gname, make_function(gname, [gname](CallArgs&) -> Value {
                     unsupported(cat("the global '", gname, "'"));
                   }));
    }
    auto root = std::make_shared<Frame>();
    root->parent = globals;
    for (const auto& [k, v] : variables) root->set(k, v);
    std::string out;
    exec_body(body, root, out);
    return out;
  }

 private:
  enum class Flow { Normal, Break, Continue };

  void tick() {
    if (++steps_ > kMaxSteps) fail("the template ran too long (an endless loop?)");
  }

  static void check_output(const std::string& out) {
    if (out.size() > kMaxValueBytes) fail("the rendered text is too large");
  }

  Flow exec_body(const Body& body, const FramePtr& f, std::string& out) {
    for (const auto& s : body) {
      const Flow flow = exec(*s, f, out);
      if (flow != Flow::Normal) return flow;
    }
    return Flow::Normal;
  }

  Flow exec(const Stmt& s, const FramePtr& f, std::string& out) {
    try {
      return exec_inner(s, f, out);
    } catch (Fault& fault) {
      if (fault.line == 0) {
        fault.line = s.line;
        fault.col = s.col;
      }
      throw;
    }
  }

  Flow exec_inner(const Stmt& s, const FramePtr& f, std::string& out) {
    tick();
    switch (s.kind) {
      case Stmt::Kind::Text:
        out += s.text;
        check_output(out);
        return Flow::Normal;
      case Stmt::Kind::Print:
        out += eval(*s.expr, f).to_string();
        check_output(out);
        return Flow::Normal;
      case Stmt::Kind::If:
        for (const auto& [cond, body] : s.branches)
          if (eval(*cond, f).truthy()) return exec_body(body, f, out);
        return exec_body(s.else_body, f, out);
      case Stmt::Kind::For:
        return exec_for(s, f, out);
      case Stmt::Kind::Set:
        assign(s.target, eval(*s.expr, f), f);
        return Flow::Normal;
      case Stmt::Kind::SetBlock: {
        std::string buf;
        exec_body(s.body, f, buf);
        Value v(std::move(buf));
        if (s.filter) v = apply_chain(*s.filter, v, f);
        assign(s.target, v, f);
        return Flow::Normal;
      }
      case Stmt::Kind::Macro: {
        const Stmt* m = &s;
        std::weak_ptr<Frame> closure = f;
        f->set(s.text, make_function(s.text, [this, m, closure](CallArgs& a) {
                 return call_macro(*m, closure, a);
               }));
        return Flow::Normal;
      }
      case Stmt::Kind::Break:
        return Flow::Break;
      case Stmt::Kind::Continue:
        return Flow::Continue;
      case Stmt::Kind::FilterBlock: {
        std::string buf;
        exec_body(s.body, f, buf);
        out += apply_chain(*s.expr, Value(std::move(buf)), f).to_string();
        check_output(out);
        return Flow::Normal;
      }
      case Stmt::Kind::With: {
        auto inner = std::make_shared<Frame>();
        inner->parent = f;
        std::vector<Value> values;
        for (const auto& [target, expr] : s.assignments) values.push_back(eval(*expr, f));
        for (size_t i = 0; i < values.size(); ++i) assign(s.assignments[i].first, values[i], inner);
        return exec_body(s.body, inner, out);
      }
      case Stmt::Kind::Generation:
        return exec_body(s.body, f, out);
      case Stmt::Kind::CallBlock:
        unsupported("the 'call' tag");
    }
    return Flow::Normal;
  }

  Flow exec_for(const Stmt& s, const FramePtr& f, std::string& out) {
    std::vector<Value> items = iterate(eval(*s.expr, f));
    if (s.filter) {
      std::vector<Value> kept;
      for (const Value& item : items) {
        tick();
        auto probe = std::make_shared<Frame>();
        probe->parent = f;
        assign(s.target, item, probe);
        if (eval(*s.filter, probe).truthy()) kept.push_back(item);
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      auto inner = std::make_shared<Frame>();
      inner->parent = f;
      exec_body(s.else_body, inner, out);
      return Flow::Normal;
    }
    const auto n = static_cast<int64_t>(items.size());
    auto index = std::make_shared<int64_t>(0);
    const Value cycle = make_function("cycle", [index](CallArgs& a) -> Value {
      if (a.args.empty()) fail("no items for cycling given");
      return a.args[static_cast<size_t>(*index % static_cast<int64_t>(a.args.size()))];
    });
    for (int64_t i = 0; i < n; ++i) {
      tick();
      *index = i;
      auto inner = std::make_shared<Frame>();
      inner->parent = f;
      const auto u = static_cast<size_t>(i);
      assign(s.target, items[u], inner);
      std::vector<std::pair<Value, Value>> loop = {
          {Value("index"), Value(i + 1)},
          {Value("index0"), Value(i)},
          {Value("revindex"), Value(n - i)},
          {Value("revindex0"), Value(n - i - 1)},
          {Value("first"), Value(i == 0)},
          {Value("last"), Value(i == n - 1)},
          {Value("length"), Value(n)},
          {Value("depth"), Value(1)},
          {Value("depth0"), Value(0)},
          {Value("previtem"), i > 0 ? items[u - 1] : Value::undefined("there is no previous item")},
          {Value("nextitem"), i + 1 < n ? items[u + 1] : Value::undefined("there is no next item")},
          {Value("cycle"), cycle}};
      inner->set("loop", make_dict(std::move(loop), Dict::Type::Loop));
      if (exec_body(s.body, inner, out) == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void assign(const Target& t, const Value& v, const FramePtr& f) {
    if (!t.attr.empty()) {
      const Value* ns = lookup(f.get(), t.name);
      if (!ns || !ns->is_namespace()) fail("cannot assign attribute on non-namespace object");
      check_namespace_name(t.attr);
      ns->dict()->set(Value(t.attr), v);
      return;
    }
    if (t.items.empty()) {
      f->set(t.name, v);
      return;
    }
    const std::vector<Value> parts = iterate(v);
    if (parts.size() < t.items.size())
      fail(cat("not enough values to unpack (expected ", t.items.size(), ", got ", parts.size(),
               ")"));
    if (parts.size() > t.items.size())
      fail(cat("too many values to unpack (expected ", t.items.size(), ")"));
    for (size_t i = 0; i < parts.size(); ++i) assign(t.items[i], parts[i], f);
  }

  Value call_macro(const Stmt& m, const std::weak_ptr<Frame>& closure, CallArgs& a) {
    FramePtr parent = closure.lock();
    if (!parent) fail(cat("macro '", m.text, "' called outside the scope that defined it"));
    struct Depth {
      int& d;
      explicit Depth(int& depth) : d(depth) {
        if (++d > kMaxCallDepth) fail("maximum macro recursion depth exceeded");
      }
      ~Depth() { --d; }
    } depth(depth_);
    std::set<std::string> used;
    collect_names(m.body, used);
    auto frame = std::make_shared<Frame>();
    frame->parent = parent;
    const size_t np = m.params.size();
    std::vector<bool> bound(np, false);
    std::vector<Value> varargs;
    for (size_t i = 0; i < a.args.size(); ++i) {
      if (i < np) {
        frame->set(m.params[i].name, a.args[i]);
        bound[i] = true;
      } else if (used.count("varargs")) {
        varargs.push_back(a.args[i]);
      } else {
        fail(cat("macro '", m.text, "' takes not more than ", np, " argument(s)"));
      }
    }
    std::vector<std::pair<Value, Value>> kwargs;
    for (const auto& [k, v] : a.kwargs) {
      size_t i = 0;
      while (i < np && m.params[i].name != k) ++i;
      if (i < np) {
        if (bound[i]) fail(cat("macro '", m.text, "' got multiple values for argument '", k, "'"));
        frame->set(k, v);
        bound[i] = true;
      } else if (used.count("kwargs")) {
        kwargs.emplace_back(Value(k), v);
      } else {
        fail(cat("macro '", m.text, "' takes no keyword argument '", k, "'"));
      }
    }
    for (size_t i = 0; i < np; ++i) {
      if (bound[i]) continue;
      const MacroParam& p = m.params[i];
      frame->set(p.name, p.default_value
                             ? eval(*p.default_value, frame)
                             : Value::undefined(cat("parameter '", p.name, "' was not provided")));
    }
    if (used.count("varargs")) frame->set("varargs", make_list(std::move(varargs), true));
    if (used.count("kwargs")) frame->set("kwargs", make_dict(std::move(kwargs)));
    std::string out;
    exec_body(m.body, frame, out);
    return Value(std::move(out));
  }

  // A filter chain parsed with a placeholder at its bottom ({% filter %}, {% set x | f %}).
  Value apply_chain(const Expr& chain, const Value& input, const FramePtr& f) {
    if (chain.kind != Expr::Kind::Filter) return input;
    const Value v = apply_chain(*chain.args[0], input, f);
    return apply_filter(chain.name, v, eval_args(chain, f));
  }

  CallArgs eval_args(const Expr& e, const FramePtr& f) {
    CallArgs a;
    for (size_t i = 1; i < e.args.size(); ++i) a.args.push_back(eval(*e.args[i], f));
    for (const auto& [k, x] : e.kwargs) a.kwargs.emplace_back(k, eval(*x, f));
    return a;
  }

  Value eval(const Expr& e, const FramePtr& f) {
    try {
      return eval_inner(e, f);
    } catch (Fault& fault) {
      if (fault.line == 0) {
        fault.line = e.line;
        fault.col = e.col;
      }
      throw;
    }
  }

  bool compare_op(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "<") return compare(a, b, "<") < 0;
    if (op == "<=") return compare(a, b, "<=") <= 0;
    if (op == ">") return compare(a, b, ">") > 0;
    if (op == ">=") return compare(a, b, ">=") >= 0;
    if (op == "in") return contains(b, a);
    return !contains(b, a);  // notin
  }

  Value eval_inner(const Expr& e, const FramePtr& f) {
    using K = Expr::Kind;
    switch (e.kind) {
      case K::Const:
        return e.value;
      case K::Name: {
        if (const Value* v = lookup(f.get(), e.name)) return *v;
        return Value::undefined(cat("'", e.name, "' is undefined"));
      }
      case K::ListLit:
      case K::TupleLit: {
        std::vector<Value> items;
        for (const auto& x : e.args) items.push_back(eval(*x, f));
        return make_list(std::move(items), e.kind == K::TupleLit);
      }
      case K::DictLit: {
        std::vector<std::pair<Value, Value>> items;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2)
          items.emplace_back(eval(*e.args[i], f), eval(*e.args[i + 1], f));
        return make_dict(std::move(items));
      }
      case K::GetAttr:
        return get_attr(eval(*e.args[0], f), e.name);
      case K::GetItem: {
        const Value obj = eval(*e.args[0], f);
        return get_item(obj, eval(*e.args[1], f));
      }
      case K::Slice: {
        const Value obj = eval(*e.args[0], f);
        Value parts[3] = {Value::none(), Value::none(), Value::none()};
        for (size_t i = 0; i < 3; ++i)
          if (e.args[i + 1]) parts[i] = eval(*e.args[i + 1], f);
        return slice(obj, parts[0], parts[1], parts[2]);
      }
      case K::Call: {
        const Value callee = eval(*e.args[0], f);
        CallArgs a = eval_args(e, f);
        if (callee.is_function()) return callee.function()->call(a);
        if (callee.is_undefined()) fail(callee.undef().hint);
        fail(cat("'", callee.type_name(), "' object is not callable"));
      }
      case K::Filter: {
        const Value v = eval(*e.args[0], f);
        return apply_filter(e.name, v, eval_args(e, f));
      }
      case K::Test: {
        const Value v = eval(*e.args[0], f);
        return Value(apply_test(e.name, v, eval_args(e, f)) != e.negated);
      }
      case K::Neg:
        return negate(eval(*e.args[0], f));
      case K::Pos: {
        const Value v = eval(*e.args[0], f);
        if (v.is_undefined()) fail(v.undef().hint);
        if (!v.is_number()) fail(cat("bad operand type for unary +: '", v.type_name(), "'"));
        return v.is_bool() ? Value(v.as_int()) : v;
      }
      case K::Not:
        return Value(!eval(*e.args[0], f).truthy());
      case K::And: {
        Value l = eval(*e.args[0], f);
        return l.truthy() ? eval(*e.args[1], f) : l;
      }
      case K::Or: {
        Value l = eval(*e.args[0], f);
        return l.truthy() ? l : eval(*e.args[1], f);
      }
      case K::Binary: {
        const Value l = eval(*e.args[0], f);
        const Value r = eval(*e.args[1], f);
        return e.name == "~" ? concat(l, r) : binary_op(e.name, l, r);
      }
      case K::Compare: {
        Value left = eval(*e.args[0], f);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1], f);
          if (!compare_op(e.ops[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case K::Cond:
        if (eval(*e.args[0], f).truthy()) return eval(*e.args[1], f);
        if (e.args[2]) return eval(*e.args[2], f);
        return Value::undefined(cat("the inline if-expression on line ", e.line,
                                    " evaluated to false and no else section was defined."));
    }
    return Value();
  }

  int64_t steps_ = 0;
  int depth_ = 0;
};

}  // namespace

namespace {

// The interpreter works on valid UTF-8 only (Python's str cannot hold anything else).
void check_utf8(const Value& v, const std::string& what) {
  if (v.is_string()) {
    const size_t bad = unicode::find_invalid_utf8(v.str());
    if (bad != std::string::npos)
      throw UsageError(cat(what, " is not valid UTF-8 (byte ", bad, ")"));
  } else if (v.is_list()) {
    for (const Value& x : v.list()->items) check_utf8(x, what);
  } else if (v.is_dict()) {
    for (const auto& [k, x] : v.dict()->items) {
      check_utf8(k, what);
      check_utf8(x, what);
    }
  }
}

}  // namespace

Template::Template(std::string_view source, std::string name) : name_(std::move(name)) {
  if (const size_t bad = unicode::find_invalid_utf8(source); bad != std::string::npos)
    throw ConfigError(cat(name_, " is not valid UTF-8 (byte ", bad, ")"));
  const std::vector<Token> tokens = lex(source, name_);
  auto body = std::make_shared<Body>(parse(tokens, name_));
  collect_names(*body, names_);
  body_ = std::move(body);
}

std::string Template::render(const std::vector<std::pair<std::string, Value>>& variables) const {
  for (const auto& [key, value] : variables)
    check_utf8(value, cat("template variable '", key, "'"));
  try {
    return Renderer().run(*body_, variables);
  } catch (const Fault& f) {
    const std::string where =
        f.line > 0 ? cat(name_, " line ", f.line, " column ", f.col, ": ") : name_ + ": ";
    switch (f.kind) {
      case Fault::Kind::Raised:
        throw ConfigError(cat(name_, ": ", f.message));
      case Fault::Kind::Unsupported:
        throw UnsupportedError(where + f.message + " is not supported");
      case Fault::Kind::Error:
        break;
    }
    throw ConfigError(where + f.message);
  }
}

}  // namespace resp::jinja
