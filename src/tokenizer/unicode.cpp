#include "tokenizer/unicode.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/ustring.h>

#include <memory>

#include "core/error.h"

namespace resp::unicode {

namespace {

constexpr uint32_t kNumCodePoints = 0x110000;

std::unique_ptr<uint8_t[]> build_table() {
  auto t = std::make_unique<uint8_t[]>(kNumCodePoints);
  for (uint32_t cp = 0; cp < kNumCodePoints; ++cp) {
    const auto c = static_cast<UChar32>(cp);
    uint8_t f = 0;
    const uint32_t mask = U_GET_GC_MASK(c);
    if (mask & U_GC_L_MASK) f |= kLetter;
    if (mask & U_GC_N_MASK) f |= kNumber;
    if (u_isUWhiteSpace(c)) f |= kSpace;
    if (u_hasBinaryProperty(c, UCHAR_ALPHABETIC) ||
        (mask & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) ||
        u_hasBinaryProperty(c, UCHAR_JOIN_CONTROL))
      f |= kWord;
    const UCharDirection dir = u_charDirection(c);
    if (dir == U_WHITE_SPACE_NEUTRAL || dir == U_BLOCK_SEPARATOR || dir == U_SEGMENT_SEPARATOR ||
        (mask & U_GC_ZS_MASK))
      f |= kPythonSpace;
    const bool ascii_punct =
        cp < 0x80 && cp > 0x20 && cp != 0x7F &&
        !((cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z'));
    if ((mask & U_GC_P_MASK) || ascii_punct) f |= kPunct;
    t[cp] = f;
  }
  return t;
}

const icu::Normalizer2& normalizer_instance(NormalForm form) {
  auto load = [](NormalForm f) {
    UErrorCode err = U_ZERO_ERROR;
    const icu::Normalizer2* n = nullptr;
    switch (f) {
      case NormalForm::NFC:
        n = icu::Normalizer2::getNFCInstance(err);
        break;
      case NormalForm::NFD:
        n = icu::Normalizer2::getNFDInstance(err);
        break;
      case NormalForm::NFKC:
        n = icu::Normalizer2::getNFKCInstance(err);
        break;
      case NormalForm::NFKD:
        n = icu::Normalizer2::getNFKDInstance(err);
        break;
    }
    if (U_FAILURE(err) || n == nullptr)
      throw Error(cat("ICU: cannot load a Unicode normaliser: ", u_errorName(err)));
    return n;
  };
  static const icu::Normalizer2* inst[4] = {load(NormalForm::NFC), load(NormalForm::NFD),
                                            load(NormalForm::NFKC), load(NormalForm::NFKD)};
  return *inst[static_cast<int>(form)];
}

// The length of the maximal valid prefix of a UTF-8 sequence starting at p[0] (p[0] >= 0x80),
// looking at most at `avail` bytes. Returns {consumed, complete}: complete == true means a whole
// valid code point of `consumed` bytes; otherwise `consumed` bytes form a maximal invalid subpart
// (consumed >= 1) or, when it ran out of input, a still-incomplete prefix.
struct Step {
  size_t consumed;
  bool complete;
  bool truncated;  // ran out of input while the prefix was still valid
};

Step utf8_step(const unsigned char* p, size_t avail) {
  const unsigned c = p[0];
  size_t need;
  unsigned lo = 0x80, hi = 0xBF;  // range for the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return {1, false, false};
  }
  for (size_t k = 1; k < need; ++k) {
    if (k >= avail) return {k, false, true};
    const unsigned b = p[k];
    const unsigned l = (k == 1) ? lo : 0x80u, h = (k == 1) ? hi : 0xBFu;
    if (b < l || b > h) return {k, false, false};
  }
  return {need, true, false};
}

}  // namespace

const uint8_t* flag_table() {
  static const std::unique_ptr<uint8_t[]> table = build_table();
  return table.get();
}

uint8_t char_flags(uint32_t cp) {
  return cp < kNumCodePoints ? flag_table()[cp] : 0;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const Step st = utf8_step(p + i, n - i);
    if (!st.complete) return i;
    i += st.consumed;
  }
  return std::string_view::npos;
}

size_t append_lossy_utf8(std::string& out, std::string_view in, bool final) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  const size_t n = in.size();
  size_t i = 0, run = 0;  // [run, i) is valid and not yet copied
  while (i < n) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    const Step st = utf8_step(p + i, n - i);
    if (st.complete) {
      i += st.consumed;
      continue;
    }
    out.append(in.data() + run, i - run);
    if (st.truncated && !final) return i;  // hold back the incomplete tail
    out.append(kReplacement, 3);
    i += st.consumed;
    run = i;
  }
  out.append(in.data() + run, i - run);
  return i;
}

bool nfc(std::string_view in, std::string& out) {
  return normalize(NormalForm::NFC, in, out);
}

bool normalize(NormalForm form, std::string_view in, std::string& out) {
  // ASCII is stable under every form. For NFC, code points below U+0300 are also stable and
  // never combine with what precedes them, so text made only of them (Latin-1 in particular) is
  // already NFC. (Latin-1 letters decompose under NFD, and U+00A0 etc. under NFKC.)
  const unsigned limit = form == NormalForm::NFC ? 0xCC : 0x80;
  bool simple = true;
  for (const char ch : in) {
    if (static_cast<unsigned char>(ch) >= limit) {
      simple = false;
      break;
    }
  }
  if (simple) return false;
  const icu::Normalizer2& norm = normalizer_instance(form);
  UErrorCode err = U_ZERO_ERROR;
  const icu::StringPiece sp(in.data(), static_cast<int32_t>(in.size()));
  if (norm.isNormalizedUTF8(sp, err) && U_SUCCESS(err)) return false;
  err = U_ZERO_ERROR;
  std::string result;
  result.reserve(in.size() + in.size() / 8);
  icu::StringByteSink<std::string> sink(&result);
  norm.normalizeUTF8(0, sp, sink, nullptr, err);
  if (U_FAILURE(err)) throw FormatError(cat("Unicode normalisation failed: ", u_errorName(err)));
  out = std::move(result);
  return true;
}

bool lowercase(std::string_view in, std::string& out) {
  std::string result;
  bool changed = false;
  size_t i = 0;
  const size_t n = in.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      const char lower = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : static_cast<char>(c);
      changed = changed || lower != in[i];
      result.push_back(lower);
      ++i;
      continue;
    }
    size_t len;
    const uint32_t cp = decode_utf8(in.data(), i, len);
    // The full mapping of a code point on its own: the only context-dependent rule of the root
    // locale (final sigma) needs a preceding cased letter, which a lone character lacks.
    UChar src[2], dst[8];
    int32_t src_len = 0;
    U16_APPEND_UNSAFE(src, src_len, static_cast<UChar32>(cp));
    UErrorCode err = U_ZERO_ERROR;
    const int32_t dst_len = u_strToLower(dst, 8, src, src_len, "", &err);
    if (U_FAILURE(err)) throw FormatError(cat("lowercasing failed: ", u_errorName(err)));
    const size_t before = result.size();
    for (int32_t k = 0; k < dst_len;) {
      UChar32 lc;
      U16_NEXT_UNSAFE(dst, k, lc);
      append_utf8(result, static_cast<uint32_t>(lc));
    }
    changed = changed || result.compare(before, std::string::npos, in.substr(i, len)) != 0;
    i += len;
  }
  if (!changed) return false;
  out = std::move(result);
  return true;
}

std::string to_nfc(std::string_view in) {
  std::string out;
  if (nfc(in, out)) return out;
  return std::string(in);
}

}  // namespace resp::unicode
