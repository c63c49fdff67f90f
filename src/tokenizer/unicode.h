// Unicode helpers for the tokenizer: UTF-8 decoding, the character classes the pre-tokenizer
// regexes use (\p{L}, \p{N}, \s), NFC normalisation (ICU) and lossy UTF-8 repair.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace resp::unicode {

// Character class bits, one byte per code point (see char_flags()).
enum : uint8_t {
  kLetter = 1,        // general category L* (\p{L})
  kNumber = 2,        // general category N* (\p{N})
  kSpace = 4,         // White_Space property (\s in Oniguruma, Rust char::is_whitespace)
  kWord = 8,          // \w of Rust's regex crate: Alphabetic, M*, Nd, Pc, Join_Control
  kPythonSpace = 16,  // Python str.isspace() (what Jinja's trim / str.strip() remove)
  kPunct = 32         // tokenizers' Punctuation pre-tokenizer: general category P* or ASCII
                      // punctuation (which adds symbols such as $ + < = > ^ ` | ~)
};

// Flags of code point `cp` (0 for values above U+10FFFF). The table is built once, on first use.
uint8_t char_flags(uint32_t cp);

// A table of 0x110000 flag bytes; char_flags(cp) == flag_table()[cp].
const uint8_t* flag_table();

// Decodes the code point at s[i] (the input must be valid UTF-8); sets `len` to its byte length.
inline uint32_t decode_utf8(const char* s, size_t i, size_t& len) {
  const auto* p = reinterpret_cast<const unsigned char*>(s) + i;
  const unsigned c = p[0];
  if (c < 0x80) {
    len = 1;
    return c;
  }
  if (c < 0xE0) {
    len = 2;
    return ((c & 0x1Fu) << 6) | (p[1] & 0x3Fu);
  }
  if (c < 0xF0) {
    len = 3;
    return ((c & 0x0Fu) << 12) | ((p[1] & 0x3Fu) << 6) | (p[2] & 0x3Fu);
  }
  len = 4;
  return ((c & 0x07u) << 18) | ((p[1] & 0x3Fu) << 12) | ((p[2] & 0x3Fu) << 6) | (p[3] & 0x3Fu);
}

// Appends the UTF-8 encoding of `cp` to `out`.
void append_utf8(std::string& out, uint32_t cp);

// Returns the byte offset of the first invalid UTF-8 sequence in `s`, or npos when `s` is valid.
size_t find_invalid_utf8(std::string_view s);

// Appends `in` to `out` as valid UTF-8, replacing each maximal invalid subsequence with U+FFFD
// (the rule Rust's String::from_utf8_lossy and Python's errors="replace" follow). With
// final == false an incomplete but so far valid sequence at the end of `in` is left unconsumed.
// Returns the number of bytes of `in` consumed.
size_t append_lossy_utf8(std::string& out, std::string_view in, bool final);

// NFC normalisation (ICU). Returns false and leaves `out` untouched when `in` is already NFC.
bool nfc(std::string_view in, std::string& out);
// NFC normalisation returning the result.
std::string to_nfc(std::string_view in);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
// Unicode normalisation to `form` (ICU). Returns false and leaves `out` untouched when `in` is
// already normalised.
bool normalize(NormalForm form, std::string_view in, std::string& out);

// Lowercases each code point on its own with its full (possibly multi-character) mapping, as
// Rust's char::to_lowercase and so tokenizers' Lowercase normalizer do: U+0130 becomes "i" + U+0307
// and capital sigma always becomes U+03C3 (no final-sigma context). Returns false and leaves
// `out` untouched when nothing changes.
bool lowercase(std::string_view in, std::string& out);

}  // namespace resp::unicode
