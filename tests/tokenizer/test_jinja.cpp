// The Jinja interpreter (src/tokenizer/jinja_*): each construct chat templates use against the
// text jinja2 3.1 renders for it (in transformers' environment: trim_blocks, lstrip_blocks,
// loopcontrols, its tojson), errors for malformed templates and missing features, and no crash
// on garbage (seeded mutations of real templates).
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "tok_fixtures.h"
#include "tokenizer/jinja_template.h"
#include "tokenizer/pystr.h"

namespace resp {
namespace {

using jinja::Template;
using jinja::Value;
using ojson = nlohmann::ordered_json;

// The variables most cases use, as JSON (objects keep their order).
const char* kVars = R"({
  "xs": [1, 2, 3], "d": {"a": 1, "b": 2}, "s": "héllo wörld", "e": [], "n": null, "f": 2.5,
  "t": true, "m": {"role": "user", "content": "hi"},
  "msgs": [{"role": "system", "content": "sys"}, {"role": "user", "content": "q1"},
           {"role": "assistant", "content": "<think>r</think>a1"}]
})";

std::string render(const std::string& src, const char* vars = kVars) {
  std::vector<std::pair<std::string, Value>> v;
  const ojson j = ojson::parse(vars);
  for (auto it = j.begin(); it != j.end(); ++it) v.emplace_back(it.key(), jinja::from_json(*it));
  return Template(src, "test").render(v);
}

TEST(Jinja, TextOutputAndComments) {
  EXPECT_EQ(render("plain text"), "plain text");
  EXPECT_EQ(render("a{# comment #}b"), "ab");
  EXPECT_EQ(render("{{ 'x' }}{{ \"y\" }}{{ 1 }}{{ 2.5 }}{{ none }}{{ true }}{{ False }}"),
            "xy12.5NoneTrueFalse");
  EXPECT_EQ(render("{{ undefined_name }}|{{ n }}"), "|None");
  EXPECT_EQ(render("{% raw %}{{ not rendered }}{% endraw %}"), "{{ not rendered }}");
  EXPECT_EQ(render("{{ '{' }}{{ '}' }}{{ {'a': '}}'} }}"), "{}{'a': '}}'}");
  // One trailing newline of the template is dropped (keep_trailing_newline off); \r\n -> \n.
  EXPECT_EQ(render("a\r\nb\n"), "a\nb");
  EXPECT_EQ(render("a\n\n"), "a\n");
}

TEST(Jinja, WhitespaceControl) {
  // trim_blocks removes the newline after a block tag; lstrip_blocks the indentation before.
  EXPECT_EQ(render("  {% if true %}\n    yes\n  {% endif %}\n  {{ 'x' }}\n  {# c #}\n  z"),
            "    yes\n  x\n  z");
  EXPECT_EQ(render("a  {%- if true %} b {% endif -%}   c"), "a b c");
  EXPECT_EQ(render("{{ 'a' }}\n{{- 'b' }}\n  {{ 'c' -}}\n  d"), "ab\n  cd");
  EXPECT_EQ(render("{# comment #}  x  {#- c2 -#}  y"), "  xy");
  EXPECT_EQ(render("{%- for m in msgs -%}\n  {{- m.role }}: {{ m.content -}}\n{%- endfor %}"),
            "system: sysuser: q1assistant: <think>r</think>a1");
  // "+" keeps the indentation lstrip_blocks would remove.
  EXPECT_EQ(render("  {%+ if true %}x{% endif %}"), "  x");
  EXPECT_EQ(render("{% for i in xs %}\n  {% if i > 1 %}\n    {{ i }}\n  {% endif %}\n{% endfor %}"),
            "    2\n    3\n");
}

TEST(Jinja, Conditionals) {
  EXPECT_EQ(render("{% if false %}a{% elif true %}b{% else %}c{% endif %}"), "b");
  EXPECT_EQ(render("{% if true %}{% elif false %}x{% else %}y{% endif %}"), "");
  EXPECT_EQ(render("{{ 'a' if false }}|{{ 1 if true }}|{{ 1 if n else 2 }}"), "|1|2");
  EXPECT_EQ(render("{{ not u is defined }}{{ u is not defined }}{{ 1 if u is defined else 2 }}"),
            "TrueTrue2");
  EXPECT_EQ(render("{{ xs|length > 2 and xs[0] == 1 }}{{ 1 < 2 < 3 }}{{ 'a' not in 'bcd' }}"),
            "TrueTrueTrue");
  // and / or return an operand, as in Python.
  EXPECT_EQ(render("{{ 0 or 'x' }}{{ 'a' and 'b' }}{{ [] and 1 }}"), "xb[]");
}

TEST(Jinja, Loops) {
  EXPECT_EQ(render("{% for m in msgs %}\n{{ loop.index }}/{{ loop.length }} {{ loop.revindex }} "
                   "{{ loop.first }} {{ loop.last }} {{ loop.index0 }}\n{% endfor %}"),
            "1/3 3 True False 0\n2/3 2 False False 1\n3/3 1 False True 2\n");
  EXPECT_EQ(render("{% for x in xs if x > 1 %}{{ loop.index }}{{ x }}{% else %}none{% endfor %}"
                   "{% for x in e %}{{ x }}{% else %}empty{% endfor %}"),
            "1223empty");
  EXPECT_EQ(render("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}"
                   "{% if x == 3 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
            "1");
  EXPECT_EQ(render("{% for a, b in d.items() %}{{ a }}={{ b }};{% endfor %}"
                   "{% for k in d %}{{ k }}{% endfor %}{% for c in 'ab' %}{{ c }}{% endfor %}"
                   "{% for a, b in d|items %}{{ b }}{% endfor %}"),
            "a=1;b=2;abab12");
  EXPECT_EQ(
      render("{% for m in msgs[::-1] %}{{ m.role[0] }}{% endfor %}"
             "{% for x in xs %}{{ loop.previtem|default('-') }}{{ loop.nextitem|default('-') }}"
             "{{ loop.cycle('a', 'b') }} {% endfor %}"),
      "aus-2a 13b 2-a ");
  EXPECT_EQ(render("{% for x in u %}x{% endfor %}ok"), "ok");  // undefined iterates as empty
}

TEST(Jinja, ScopingAndNamespaces) {
  // A set in a loop body is local to the iteration; in an if it is not scoped.
  EXPECT_EQ(render("{% set x = 0 %}{% for i in xs %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}"
                   "{{ x }}"),
            "0101010");
  EXPECT_EQ(render("{% set x = 0 %}{% if true %}{% set x = 5 %}{% endif %}{{ x }}"), "5");
  EXPECT_EQ(render("{% for i in xs %}{% if loop.first %}{% set y = 1 %}{% endif %}{{ y }}"
                   "{% endfor %}"),
            "1");
  EXPECT_EQ(render("{% set ns = namespace(found=false, n=0) %}{% for m in msgs %}"
                   "{% if m.role == 'user' %}{% set ns.found = true %}{% set ns.n = ns.n + 1 %}"
                   "{% endif %}{% endfor %}{{ ns.found }}{{ ns.n }}{{ ns }}"),
            "True1<Namespace {'found': True, 'n': 1}>");
  EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}"), "12");
  EXPECT_EQ(render("{% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}]"
                   "{% set y | upper %}abc{% endset %}{{ y }}"),
            "[block 2]ABC");
  EXPECT_EQ(render("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}"), "3");
  EXPECT_EQ(render("{% filter upper %}hello {{ s }}{% endfilter %}"), "HELLO HÉLLO WÖRLD");
  EXPECT_EQ(render("{% set messages = msgs[1:] %}{{ messages|length }}"), "2");
}

TEST(Jinja, Macros) {
  EXPECT_EQ(render("{% macro f(a, b=2) %}[{{ a }}{{ b }}{{ g }}{{ h }}]{% endmacro %}"
                   "{% set g = 7 %}{{ f(1) }}{% for h in [5] %}{{ f(3, b=4) }}{% endfor %}"),
            "[127][347]");
  EXPECT_EQ(render("{% for i in xs %}{% macro mm() %}{{ i }}{% endmacro %}{{ mm() }}{% endfor %}"),
            "123");
  EXPECT_EQ(
      render("{% macro v() %}{{ varargs|length }}{{ kwargs.k }}{% endmacro %}{{ v(1, 2, k=3) }}"),
      "23");
  EXPECT_EQ(render("{% generation %}kept{% endgeneration %}"), "kept");
}

TEST(Jinja, Operators) {
  EXPECT_EQ(render("{{ 1/2 }} {{ 4/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 2**10 }} {{ 1e20 }} "
                   "{{ 0.1+0.2 }} {{ 1e16 }} {{ 1e15 }}"),
            "0.5 2.0 3 -4 2 1024 1e+20 0.30000000000000004 1e+16 1000000000000000.0");
  EXPECT_EQ(render("{{ 2 ** -1 }}{{ 2.0 ** 2 }}{{ -7.5 // 2 }}{{ -7.5 % 2 }}{{ 7 % -3 }}"
                   "{{ 'ab' * 3 }}{{ [1] * 2 }}{{ 3 * 'x' }}"),
            "0.54.0-4.00.5-2ababab[1, 1]xxx");
  EXPECT_EQ(render("{{ 3 == 3.0 }}{{ true == 1 }}{{ [1] == [1] }}{{ none == none }}{{ x == y }}"
                   "{{ -2**2 }}{{ 2**3**2 }}"),
            "TrueTrueTrueTrueTrue464");
  EXPECT_EQ(render("{{ f }}{{ f * 2 }}{{ -f }}{{ 10 / 4 }}{{ 10 // 4 }}{{ 10 % 4 }}{{ 1 + 2 * 3 }}"
                   "{{ (1 + 2) * 3 }}{{ 'a' ~ 1 ~ none ~ u }}"),
            "2.55.0-2.52.52279a1None");
  EXPECT_EQ(render("{{ xs[0:2] + [9] }}{{ 'é' in s }}{{ 2 in xs }}{{ 'a' in d }}{{ 'x' in u }}"),
            "[1, 2, 9]TrueTrueTrueFalse");
  EXPECT_EQ(render("{{ 'abc' < 'abd' }}{{ [1, 2] < [1, 3] }}{{ 1.5e300 * 1e10 }}{{ -0.0 }}"
                   "{{ 1e-5 }}{{ 0.0001 }}{{ 123456789012345678 }}"),
            "TrueTrueinf-0.01e-050.0001123456789012345678");
  EXPECT_EQ(render("{{ '%s-%d' % ('a', 3) }}{{ '%s' % 'x' }}{{ '%05.1f|%x' % (3.14159, 255) }}"
                   "{{ '%(a)s-%(b)d' % {'a': 'x', 'b': 2} }}{{ '%d%%' % 50 }}"),
            "a-3x003.1|ffx-250%");
}

TEST(Jinja, LiteralsAndSubscripts) {
  EXPECT_EQ(render("{{ [1, 'a', none, true, 1.5, {'k': (1, 2)}] }}"),
            "[1, 'a', None, True, 1.5, {'k': (1, 2)}]");
  EXPECT_EQ(render("{{ 'it''s' }}{{ \"it's\" }}{{ ['it\\'s', 'a\"b', 'x\\ny'] }}"),
            "itsit's[\"it's\", 'a\"b', 'x\\ny']");
  EXPECT_EQ(render("{{ (1,) }}{{ () }}{{ 1, 2 }}"), "(1,)()(1, 2)");
  EXPECT_EQ(render("{{ '\\u00e9\\x41\\101\\\\' }}"), "éAA\\");
  // Strings index by code point.
  EXPECT_EQ(
      render("{{ s[1:3] }}|{{ s[::-1] }}|{{ s|length }}|{{ '日本語'[1] }}{{ '日本語'[-1:] }}"),
      "él|dlröw olléh|11|本語");
  EXPECT_EQ(
      render("{{ xs[1:] }}{{ xs[::-1] }}{{ xs[-1] }}{{ xs[5:1:-2] }}{{ s[-3:] }}{{ xs[true] }}"),
      "[2, 3][3, 2, 1]3[3]rld2");
  EXPECT_EQ(render("{{ msgs[0]['role'] }}{{ msgs[0].role }}{{ m.get('role') }}{{ m.get('x', 5) }}"
                   "{{ m.keys()|list }}{{ d.values()|list }}{{ xs.0 }}"),
            "systemsystemuser5['role', 'content'][1, 2]1");
  EXPECT_EQ(render("{{ m.foo }}|{{ xs[10] }}|{{ m.nope is defined }}|{{ msgs[9] is defined }}"),
            "||False|False");
}

TEST(Jinja, StringMethods) {
  EXPECT_EQ(render("{% set c = msgs[2].content %}{{ c.split('</think>')[-1].lstrip('\\n') }}|"
                   "{{ c.split('</think>')[0].rstrip('\\n').split('<think>')[-1] }}|"
                   "{{ '</think>' in c }}"),
            "a1|r|True");
  EXPECT_EQ(render("{{ '  a  b  '.split() }}{{ 'a,b,,c'.split(',') }}{{ 'a,b,c'.split(',', 1) }}"
                   "{{ 'a,b,c'.rsplit(',', 1) }}{{ ' a b c '.rsplit(none, 1) }}"
                   "{{ 'a\\nb\\r\\nc'.splitlines() }}"),
            "['a', 'b']['a', 'b', '', 'c']['a', 'b,c']['a,b', 'c'][' a b', 'c']['a', 'b', 'c']");
  EXPECT_EQ(render("{{ 'xxhixx'.strip('x') }}{{ '  hi '.lstrip() }}|{{ 'hi  '.rstrip() }}|"
                   "{{ 'Hello'.startswith('He') }}{{ 'Hello'.endswith(('lo', 'x')) }}"
                   "{{ 'hello world'.title() }}{{ 'abcabc'.find('c') }}{{ 'abcabc'.count('b') }}"
                   "{{ 'abc'.replace('b', 'B') }}{{ 'a'.join(['x', 'y']) }}{{ 'ABC'.lower() }}"
                   "{{ 'abc'.upper() }}"),
            "hihi |hi|TrueTrueHello World22aBcxayabcABC");
  EXPECT_EQ(
      render("{{ 'ß'.upper() }}{{ 'hello wORLD'.capitalize() }}{{ \"they're bill's\".title() }}"
             "{{ '{} {}'.format(1, 'a') }}{{ '{0}{0}'.format('x') }}"),
      "SSHello worldThey'Re Bill'S1 axx");
  // Python whitespace: str.strip() removes U+3000 and U+0085 too.
  EXPECT_EQ(render("[{{ '\\u3000 x \\x85'.strip() }}]"), "[x]");
}

TEST(Jinja, Filters) {
  EXPECT_EQ(render("{{ xs|tojson }}{{ d|tojson(indent=2) }}{{ {'é': [1.0, 2.5e-7]}|tojson }}"),
            "[1, 2, 3]{\n  \"a\": 1,\n  \"b\": 2\n}{\"é\": [1.0, 2.5e-07]}");
  EXPECT_EQ(
      render(
          "{{ (1, 2)|tojson }}|{{ {'a': [1, {'b': []}], 'c': {}}|tojson(indent=2) }}|"
          "{{ {1: 2, true: 3}|tojson }}|{{ [none, true, 'é\\u2028']|tojson(ensure_ascii=true) }}"),
      "[1, 2]|{\n  \"a\": [\n    1,\n    {\n      \"b\": []\n    }\n  ],\n  \"c\": {}\n}|"
      "{\"1\": 3}|[null, true, \"\\u00e9\\u2028\"]");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2}|tojson(sort_keys=true, separators=(',', ':')) }}"
                   "{{ 'x'|tojson(indent='\\t') }}{{ [1, [2]]|tojson(indent=0) }}"
                   "{{ 'q\"\\\\\\n\\x01'|tojson }}"),
            "{\"a\":2,\"b\":1}\"x\"[\n1,\n[\n2\n]\n]\"q\\\"\\\\\\n\\u0001\"");
  EXPECT_EQ(
      render("{{ xs|map('string')|join(',') }}{{ [m]|map(attribute='role')|list }}"
             "{{ msgs|map(attribute='role')|join(', ') }}"
             "{{ msgs|selectattr('role', 'equalto', 'user')|map(attribute='content')|first }}"),
      "1,2,3['user']system, user, assistantq1");
  EXPECT_EQ(render("{{ 1.0 }}{{ 3.0|round }}{{ 2.5|round }}{{ 2.675|round(2) }}{{ 7|round }}"
                   "{{ 2.5|round(0, 'floor') }}"),
            "1.03.02.02.6772.0");
  EXPECT_EQ(
      render("{{ 'x'|int }}{{ '3.7'|int }}{{ '12'|float }}{{ 3.9|int }}{{ '12'|int(base=16) }}"
             "{{ ' 0x1A '|int(0, 16) }}{{ '1_000'|int }}{{ 'nan'|float }}{{ 'x'|float }}"
             "{{ none|int }}{{ 'inf'|int }}"),
      "0312.0318261000nan0.000");
  EXPECT_EQ(render("{{ [3, 1, 2]|sort }}{{ ['b', 'A', 'c']|sort }}{{ [{'a': 2}, {'a': "
                   "1}]|sort(attribute='a') }}"
                   "{{ [1, 2, 3]|sum }}{{ []|max }}|{{ ['a', 'B']|max }}{{ [1, 1, 2]|unique|list }}"
                   "{{ ['A', 'a']|unique|list }}{{ [3, 1]|min }}"),
            "[1, 2, 3]['A', 'b', 'c'][{'a': 1}, {'a': 2}]6|B[1, 2]['A']1");
  EXPECT_EQ(render("{{ 'ab\\ncd\\n\\nef'|indent(2) }}|{{ 'ab\\ncd'|indent(2, true) }}|"
                   "{{ 'x\\n\\ny'|indent(2, blank=true) }}|{{ ''|indent }}|"),
            "ab\n  cd\n\n  ef|  ab\n  cd|x\n  \n  y||");
  EXPECT_EQ(render("{{ {'b': 1, 'a': 2}|dictsort }}{{ d|items|list }}{{ none|default('x') }}"
                   "{{ ''|default('y', true) }}{{ u|d('z') }}{{ d|attr('a') }}"),
            "[('a', 2), ('b', 1)][('a', 1), ('b', 2)]Noneyz");
  EXPECT_EQ(render("{{ xs|select('odd')|list }}{{ xs|reject('odd')|list }}"
                   "{{ [m]|selectattr('role', 'equalto', 'user')|list|length }}{{ xs|select|list }}"
                   "{{ msgs|rejectattr('role', 'eq', 'user')|list|length }}"),
            "[1, 3][2]1[1, 2, 3]2");
  EXPECT_EQ(render("{{ '<a href=\"x\">&</a>'|e }}{{ xs|reverse|list }}{{ 'abc'|reverse }}"
                   "{{ 3.5|abs }}{{ -3|abs }}"),
            "&lt;a href=&#34;x&#34;&gt;&amp;&lt;/a&gt;[3, 2, 1]cba3.53");
  EXPECT_EQ(render("{{ 'hello-world (foo) [bar]<baz>x y'|title }}{{ '  a b '|wordcount }}"
                   "{{ ' x '|trim }}{{ 'xxyxx'|trim('x') }}{{ s|upper }}{{ 'ABC'|lower }}"
                   "{{ 'abc'|capitalize }}{{ 'x'|center(5) }}|{{ 'a  b'|replace(' ', '_') }}"
                   "{{ 'aaa'|replace('a', 'b', 2) }}{{ 5|string }}{{ 'x'|safe }}"),
            "Hello-World (Foo) [Bar]<Baz>x Y2xyHÉLLO WÖRLDabcAbc  x  |a__bbba5x");
  EXPECT_EQ(render("{{ xs|first }}{{ xs|last }}{{ 'ab'|list }}{{ d|list }}{{ xs|count }}"
                   "{{ d|length }}{{ u|length }}{{ '%s, %s!'|format('a', 'b') }}"),
            "13['a', 'b']['a', 'b']320a, b!");
}

TEST(Jinja, Tests) {
  EXPECT_EQ(render("{{ t is true }}{{ t is false }}{{ n is none }}{{ u is defined }}"
                   "{{ u is undefined }}{{ s is string }}{{ d is mapping }}{{ xs is iterable }}"
                   "{{ xs is sequence }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is float }}"
                   "{{ 3 is odd }}{{ 4 is even }}{{ 6 is divisibleby 3 }}{{ 'a' is in 'abc' }}"
                   "{{ 2 is eq 2 }}{{ 2 is equalto 3 }}{{ 3 is gt 2 }}{{ t is boolean }}"
                   "{{ 'abc' is lower }}{{ n is sameas none }}{{ 'upper' is filter }}"),
            "TrueFalseTrueFalseTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueFalseTrueTrue"
            "TrueTrueTrue");
  EXPECT_EQ(render("{{ m is mapping }}{{ namespace() is mapping }}{{ s is iterable }}"
                   "{{ 1 is iterable }}{{ u is string }}"),
            "TrueFalseTrueFalseFalse");
}

TEST(Jinja, Globals) {
  EXPECT_EQ(render("{{ range(3)|list }}{{ range(1, 10, 3)|list }}{% for i in range(2) %}{{ i }}"
                   "{% endfor %}{{ dict(a=1, b=2) }}{{ namespace(d).a }}"),
            "[0, 1, 2][1, 4, 7]01{'a': 1, 'b': 2}1");
  EXPECT_EQ(render("{%- set tools = none %}{% if tools is not none %}x{% endif %}"
                   "{% if tools %}y{% endif %}ok"),
            "ok");
  std::vector<std::pair<std::string, Value>> vars = {
      {"strftime_now", jinja::make_function("strftime_now", [](jinja::CallArgs& a) {
         return Value("date:" + a.args.at(0).str());
       })}};
  EXPECT_EQ(Template("{{ strftime_now('%d %b %Y') }}").render(vars), "date:%d %b %Y");
}

// What a failure says: a one-line error naming the template, the position and the problem.
std::string error_of(const std::string& src, bool unsupported = false) {
  try {
    render(src);
  } catch (const UnsupportedError& e) {
    EXPECT_TRUE(unsupported) << src << ": " << e.what();
    return e.what();
  } catch (const ConfigError& e) {
    EXPECT_FALSE(unsupported) << src << ": " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for " << src;
  return {};
}

void expect_has(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
  EXPECT_EQ(text.find('\n'), std::string::npos) << "multi-line error: " << text;
}

TEST(Jinja, SyntaxErrorsNameThePosition) {
  expect_has(error_of("{% for %}"), "test line 1 column 8: can't assign to");
  expect_has(error_of("ab\n{{ 1 +* }}"), "line 2 column 7: unexpected '*'");
  expect_has(error_of("{% if x %}"), "'if' is never closed");
  expect_has(error_of("{% endfor %}"), "unknown tag 'endfor'");
  expect_has(error_of("{{ 'abc' "), "unexpected end of template");
  expect_has(error_of("{{ 'abc }}"), "unexpected char");
  expect_has(error_of("{# open"), "missing end of comment tag");
  expect_has(error_of("{{ (1 }}"), "unexpected '}', expected ')'");
  expect_has(error_of("{{ x|nofilter }}"), "no filter named 'nofilter'");
  expect_has(error_of("{{ x is notatest }}"), "no test named 'notatest'");
  expect_has(error_of("{% break %}"), "'break' outside of a for loop");
  expect_has(error_of("{% macro f(a=1, b) %}{% endmacro %}"), "non-default argument");
  expect_has(error_of("{{ " + std::string(400, '(') + "1" + std::string(400, ')') + " }}"),
             "nested too deeply");
  std::string blocks;
  for (int i = 0; i < 300; ++i) blocks += "{% if 1 %}";
  expect_has(error_of(blocks), "nested too deeply");
}

TEST(Jinja, MissingFeaturesAreUnsupported) {
  expect_has(error_of("{% include 'x.jinja' %}", true), "the 'include' tag is not supported");
  expect_has(error_of("{% extends 'x' %}", true), "'extends'");
  expect_has(error_of("{% call f() %}x{% endcall %}", true), "'call'");
  expect_has(error_of("{% for x in xs recursive %}{% endfor %}", true), "recursive");
  expect_has(error_of("{{ xs|groupby('a') }}", true), "line 1 column 7: the filter 'groupby'");
  expect_has(error_of("{{ f(*xs) }}", true), "*args");
}

TEST(Jinja, RuntimeErrorsAsJinja2Raises) {
  expect_has(error_of("{{ x.y }}"), "test line 1 column 5: 'x' is undefined");
  expect_has(error_of("{{ m.foo.bar }}"), "'dict object' has no attribute 'foo'");
  expect_has(error_of("{{ xs[10].a }}"), "list object has no element 10");
  expect_has(error_of("{{ u + 1 }}"), "'u' is undefined");
  expect_has(error_of("{{ 1 + 'a' }}"), "unsupported operand type(s) for +: 'int' and 'str'");
  expect_has(error_of("{{ 'a' < 1 }}"), "'<' not supported between instances of 'str' and 'int'");
  expect_has(error_of("{{ 1 in 'abc' }}"), "'in <string>' requires string as left operand");
  expect_has(error_of("{% for x in n %}{% endfor %}"), "'NoneType' object is not iterable");
  expect_has(error_of("{{ 5 // 0 }}"), "integer division or modulo by zero");
  expect_has(error_of("{{ u|tojson }}"), "Object of type Undefined is not JSON serializable");
  expect_has(error_of("{{ xs.append(1) }}"), "'append' of 'list' object is unsafe");
  expect_has(error_of("{{ nothing() }}"), "'nothing' is undefined");
  expect_has(error_of("{{ s() }}"), "'str' object is not callable");
  expect_has(error_of("{% set ns = namespace() %}{% set ns._x = 1 %}"), "underscore-prefixed");
  expect_has(error_of("{% set x = 1 %}{% set x.a = 1 %}"), "non-namespace object");
  expect_has(error_of("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"), "recursion depth");
  expect_has(error_of("{% for i in range(1000000) %}{% endfor %}"), "MAX_RANGE");
  expect_has(error_of("{% for a, b in xs %}{% endfor %}"), "'int' object is not iterable");
  expect_has(error_of("{{ 'x' * 100000000000 }}"), "too large");
  expect_has(error_of("{% set ns = namespace() %}{% set ns.x = [ns] %}{{ ns }}"),
             "nested too deeply (or recursive)");
  // raise_exception: the template's own message.
  try {
    render("{% if true %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}");
    ADD_FAILURE() << "raise_exception did not raise";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "test: Conversation roles must alternate");
  }
}

TEST(Jinja, InvalidUtf8IsRefused) {
  EXPECT_THROW(Template("ok {{ 'a\xff' }}"), ConfigError);
  const Template t("{{ x }}");
  EXPECT_THROW(t.render({{"x", Value("\xe4\xb8")}}), UsageError);
  EXPECT_THROW(t.render({{"x", jinja::make_list({Value("ok"), Value("\xc0\x80")})}}), UsageError);
  EXPECT_EQ(t.render({{"x", Value("\xe4\xb8\xad")}}), "\xe4\xb8\xad");
}

TEST(Jinja, ReferencesAndThreadSafeReuse) {
  const Template t("{% if enable_thinking is defined %}{{ x }}{% endif %}{{ ns.a if ns }}", "t");
  EXPECT_TRUE(t.references("enable_thinking"));
  EXPECT_TRUE(t.references("x"));
  EXPECT_FALSE(t.references("a"));
  EXPECT_EQ(t.render({{"x", Value(1)}}), "");
  EXPECT_EQ(t.render({{"x", Value(1)}, {"enable_thinking", Value(false)}}), "1");
}

TEST(Jinja, PythonFloatRepr) {
  EXPECT_EQ(pystr::float_repr(0.1), "0.1");
  EXPECT_EQ(pystr::float_repr(1e22), "1e+22");
  EXPECT_EQ(pystr::float_repr(123456789.0), "123456789.0");
  EXPECT_EQ(pystr::float_repr(1.5e-7), "1.5e-07");
  EXPECT_EQ(pystr::float_repr(-2.0), "-2.0");
  EXPECT_EQ(pystr::float_repr(5e-324), "5e-324");
  EXPECT_EQ(pystr::repr("a'b"), "\"a'b\"");
  EXPECT_EQ(pystr::repr("\x01\t\xc2\xa0é"), "'\\x01\\t\\xa0é'");
}

// Seeded mutations of the real templates (characters and tag fragments deleted, duplicated,
// inserted): every one either renders or fails with one of resp's errors, never crashes.
TEST(Jinja, MutatedTemplatesNeverCrash) {
  const auto fx = ojson::parse(toktest::slurp(toktest::tok_fixtures() / "jinja_cases.json"));
  std::vector<std::string> sources;
  for (const auto& [name, t] : fx["templates"].items())
    if (t["template"].is_string()) sources.push_back(t["template"].get<std::string>());
  ASSERT_GE(sources.size(), 4u);
  const std::vector<std::pair<std::string, Value>> vars = {
      {"messages", jinja::from_json(fx["conversations"]["multi_turn"])},
      {"add_generation_prompt", Value(true)},
      {"bos_token", Value("<s>")},
      {"tools", Value::none()}};
  static const char* kFragments[] = {
      "{%",   "%}", "{{",           "}}",    "{#", "#}",   "-",     "(",       ")",  "[",
      "]",    "'",  "\"",           "|",     ".",  " if ", " for ", " endif ", "\\", "\xc3\xa9",
      "\xff", "\n", "{% endfor %}", "[::-1]"};
  std::mt19937 rng(1234);
  int rendered = 0, refused = 0;
  for (int iter = 0; iter < 1500; ++iter) {
    std::string s = sources[static_cast<size_t>(iter) % sources.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < edits && !s.empty(); ++k) {
      const size_t at = rng() % s.size();
      switch (rng() % 3) {
        case 0:
          s.erase(at, 1 + rng() % 8);
          break;
        case 1:
          s.insert(at, s.substr(rng() % s.size(), 1 + rng() % 16));
          break;
        default:
          s.insert(at, kFragments[rng() % (sizeof kFragments / sizeof *kFragments)]);
      }
    }
    try {
      Template t(s, "mutant");
      const std::string out = t.render(vars);
      ++rendered;
    } catch (const Error&) {
      ++refused;
    }
  }
  std::cout << "[ mutants  ] " << rendered << " rendered, " << refused << " refused\n";
  EXPECT_GT(rendered, 0);
  EXPECT_GT(refused, 0);
}

}  // namespace
}  // namespace resp
