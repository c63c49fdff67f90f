#include "tokenizer/normalizer.h"

namespace resp {

namespace {

bool is_space_at(std::string_view s, size_t i, size_t& len) {
  return unicode::char_flags(unicode::decode_utf8(s.data(), i, len)) & unicode::kSpace;
}

// Applies one step to `cur`; returns false when nothing changed.
bool apply_step(const NormStep& st, const std::string& cur, std::string& next) {
  switch (st.kind) {
    case NormStep::Kind::Form:
      return unicode::normalize(st.form, cur, next);
    case NormStep::Kind::Lowercase:
      return unicode::lowercase(cur, next);
    case NormStep::Kind::Prepend:
      if (cur.empty() || st.text.empty()) return false;
      next = st.text + cur;
      return true;
    case NormStep::Kind::Replace: {
      if (st.pattern.empty() || cur.find(st.pattern) == std::string::npos) return false;
      next.clear();
      size_t pos = 0;
      for (size_t at = cur.find(st.pattern); at != std::string::npos;
           at = cur.find(st.pattern, pos)) {
        next.append(cur, pos, at - pos).append(st.text);
        pos = at + st.pattern.size();
      }
      next.append(cur, pos, std::string::npos);
      return true;
    }
    case NormStep::Kind::Strip: {
      size_t b = 0, e = cur.size(), len;
      if (st.left)
        while (b < e && is_space_at(cur, b, len)) b += len;
      if (st.right) {
        while (e > b) {
          size_t p = e - 1;
          while (p > b && (static_cast<unsigned char>(cur[p]) & 0xC0) == 0x80) --p;
          if (!is_space_at(cur, p, len)) break;
          e = p;
        }
      }
      if (b == 0 && e == cur.size()) return false;
      next = cur.substr(b, e - b);
      return true;
    }
  }
  return false;
}

}  // namespace

bool Normalizer::apply(std::string_view in, std::string& out) const {
  if (steps_.empty()) return false;
  // The common single-form case avoids copying text that is already normalised.
  if (steps_.size() == 1 && steps_[0].kind == NormStep::Kind::Form)
    return unicode::normalize(steps_[0].form, in, out);
  std::string cur(in), next;
  bool changed = false;
  for (const NormStep& st : steps_) {
    if (apply_step(st, cur, next)) {
      cur.swap(next);
      changed = true;
    }
  }
  if (!changed) return false;
  out = std::move(cur);
  return true;
}

std::string Normalizer::apply_copy(std::string_view in) const {
  std::string out;
  if (apply(in, out)) return out;
  return std::string(in);
}

std::string Normalizer::describe() const {
  if (steps_.empty()) return "none";
  static const char* const kForms[] = {"NFC", "NFD", "NFKC", "NFKD"};
  std::string out;
  for (const NormStep& st : steps_) {
    if (!out.empty()) out += "+";
    switch (st.kind) {
      case NormStep::Kind::Form:
        out += kForms[static_cast<int>(st.form)];
        break;
      case NormStep::Kind::Lowercase:
        out += "lowercase";
        break;
      case NormStep::Kind::Prepend:
        out += "prepend";
        break;
      case NormStep::Kind::Replace:
        out += "replace";
        break;
      case NormStep::Kind::Strip:
        out += "strip";
        break;
    }
  }
  return out;
}

}  // namespace resp
