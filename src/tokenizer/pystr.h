// Python `str` semantics on UTF-8 text, for the Jinja interpreter and the chat formats: chat
// templates are Python code in disguise, and their output must match CPython's string methods
// exactly (indices and lengths count code points, whitespace is str.isspace(), case mapping is
// Unicode's full mapping, repr() and json.dumps() quote like CPython). Inputs must be valid UTF-8.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resp {

// Python's str.strip() / lstrip() / rstrip() with the default (whitespace) and with a character.
std::string py_strip(std::string_view s);
std::string_view py_strip_char(std::string_view s, char c, bool left, bool right);

namespace pystr {

// Code points of `s`, and back.
std::vector<uint32_t> code_points(std::string_view s);
std::string from_code_points(const uint32_t* cps, size_t n);
// Number of code points.
size_t length(std::string_view s);
// Byte offset of code point `index` (index <= length(s)).
size_t byte_offset(std::string_view s, size_t index);

bool is_space(uint32_t cp);  // str.isspace() for one code point

// s.strip(chars) / lstrip / rstrip; `chars` nullopt = whitespace.
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                  bool right);
// s.split(sep, maxsplit) and s.rsplit(sep, maxsplit); sep nullopt = runs of whitespace.
// An empty separator is the caller's error to report (Python raises ValueError).
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               int64_t maxsplit);
std::vector<std::string> rsplit(std::string_view s, const std::optional<std::string>& sep,
                                int64_t maxsplit);
// s.splitlines(keepends): the line boundaries of Python (\n \r \r\n \v \f \x1c-\x1e \x85
// \u2028 \u2029).
std::vector<std::string> splitlines(std::string_view s, bool keepends = false);
// s.replace(old, new, count); count < 0 = all. An empty `old` inserts between code points.
std::string replace(std::string_view s, std::string_view old, std::string_view repl,
                    int64_t count = -1);
// s.find(sub) / s.rfind(sub) in code points (-1 when absent); s.count(sub).
int64_t find(std::string_view s, std::string_view sub);
int64_t rfind(std::string_view s, std::string_view sub);
int64_t count(std::string_view s, std::string_view sub);

// Case mappings (full Unicode mappings, as CPython).
std::string upper(std::string_view s);
std::string lower(std::string_view s);
std::string title(std::string_view s);       // str.title()
std::string capitalize(std::string_view s);  // str.capitalize()
std::string swapcase(std::string_view s);

// Character-class predicates over the whole string (false for "").
bool isdigit(std::string_view s);
bool isalpha(std::string_view s);
bool isalnum(std::string_view s);
bool isspace(std::string_view s);
bool islower(std::string_view s);
bool isupper(std::string_view s);

// repr(s) of a Python str (quotes chosen and characters escaped as CPython does).
std::string repr(std::string_view s);
// repr(x) / str(x) of a Python float: the shortest round-trip digits, "1e+16", "0.0001", "inf".
std::string float_repr(double x);
// json.dumps(s, ensure_ascii=...) of a string.
std::string json_string(std::string_view s, bool ensure_ascii);

}  // namespace pystr
}  // namespace resp
