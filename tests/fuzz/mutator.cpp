#include "mutator.h"

#include <algorithm>
#include <cstring>
#include <utility>

namespace resp::fuzz {

namespace {

// Values at which size and count checks break: zero, sign boundaries, all ones, powers of two.
constexpr uint64_t kInteresting[] = {0,
                                     1,
                                     0x7f,
                                     0x80,
                                     0xff,
                                     0x100,
                                     0x7fff,
                                     0x8000,
                                     0xffff,
                                     0x10000,
                                     0x7fffffff,
                                     0x80000000,
                                     0xffffffff,
                                     0x100000000,
                                     0x7fffffffffffffff,
                                     0x8000000000000000,
                                     0xffffffffffffffff,
                                     1ull << 40,
                                     1ull << 48};

// Replacements for a decimal integer found in text (JSON, YAML, Jinja).
const char* const kNumbers[] = {"0",
                                "-1",
                                "1",
                                "2",
                                "-2147483648",
                                "2147483647",
                                "2147483648",
                                "4294967296",
                                "9007199254740993",
                                "9223372036854775807",
                                "9223372036854775808",
                                "18446744073709551616",
                                "1e308",
                                "1e999",
                                "-0",
                                "0.5",
                                "1.0",
                                "NaN",
                                "123456789012345678901234567890"};

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

uint64_t Rng::next() {
  uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Mutator::Mutator(uint64_t seed, std::vector<std::string> dictionary, size_t max_size)
    : rng_(seed), dictionary_(std::move(dictionary)), max_size_(max_size) {}

std::string Mutator::mutate(const std::vector<std::string>& pool) {
  std::string s = pool[rng_.below(pool.size())];
  const std::string& other = pool[rng_.below(pool.size())];
  // Mostly one or two edits (a small change gets past more checks), sometimes a burst.
  const uint64_t n = rng_.chance(4) ? 2 + rng_.below(5) : 1 + rng_.below(2);
  for (uint64_t i = 0; i < n; ++i) edit(s, other);
  if (s.size() > max_size_) s.resize(max_size_);
  return s;
}

void Mutator::edit(std::string& s, const std::string& other) {
  switch (rng_.below(s.empty() ? 2 : 14)) {
    case 0:
      return extend(s);
    case 1:
      return insert_token(s);
    case 2:
    case 3:
      return flip_bit(s);
    case 4:
    case 5:
      return set_interesting(s);
    case 6:
      return nudge(s);
    case 7:
      return truncate(s);
    case 8:
      return duplicate_chunk(s);
    case 9:
      return delete_chunk(s);
    case 10:
      return copy_chunk(s, rng_.chance(2) ? s : other);
    case 11:
      return splice(s, other);
    default:
      return edit_integer(s);
  }
}

void Mutator::flip_bit(std::string& s) {
  const size_t i = rng_.below(s.size());
  s[i] = static_cast<char>(static_cast<uint8_t>(s[i]) ^ (1u << rng_.below(8)));
}

void Mutator::set_interesting(std::string& s) {
  const uint64_t v = kInteresting[rng_.below(std::size(kInteresting))];
  const size_t width = size_t{1} << rng_.below(4);  // 1, 2, 4 or 8 bytes
  if (s.size() < width) {
    s[rng_.below(s.size())] = static_cast<char>(v);
    return;
  }
  const size_t at = rng_.below(s.size() - width + 1);
  for (size_t k = 0; k < width; ++k) s[at + k] = static_cast<char>(v >> (8 * k));  // little-endian
}

void Mutator::nudge(std::string& s) {
  const size_t width = size_t{1} << rng_.below(4);
  if (s.size() < width) return flip_bit(s);
  const size_t at = rng_.below(s.size() - width + 1);
  uint64_t v = 0;
  std::memcpy(&v, s.data() + at, width);
  const uint64_t delta = 1 + rng_.below(35);
  v = rng_.chance(2) ? v + delta : v - delta;
  std::memcpy(s.data() + at, &v, width);
}

void Mutator::truncate(std::string& s) {
  s.resize(rng_.below(s.size()));
}

void Mutator::extend(std::string& s) {
  const size_t n = 1 + rng_.below(64);
  if (!s.empty() && rng_.chance(2)) {
    const size_t at = rng_.below(s.size());
    s += s.substr(at, n);
    return;
  }
  for (size_t k = 0; k < n; ++k) s.push_back(static_cast<char>(rng_.below(256)));
}

void Mutator::duplicate_chunk(std::string& s) {
  const size_t at = rng_.below(s.size());
  const size_t len = 1 + rng_.below(std::min<size_t>(s.size() - at, 256));
  const std::string chunk = s.substr(at, len);
  s.insert(rng_.below(s.size() + 1), chunk);
}

void Mutator::delete_chunk(std::string& s) {
  const size_t at = rng_.below(s.size());
  s.erase(at, 1 + rng_.below(std::min<size_t>(s.size() - at, 256)));
}

void Mutator::copy_chunk(std::string& s, const std::string& from) {
  if (from.empty()) return flip_bit(s);
  const size_t src = rng_.below(from.size());
  const size_t len = 1 + rng_.below(std::min<size_t>(from.size() - src, 128));
  const std::string chunk = from.substr(src, len);  // `from` may be `s`
  const size_t dst = rng_.below(s.size());
  s.replace(dst, std::min(len, s.size() - dst), chunk);
}

void Mutator::splice(std::string& s, const std::string& other) {
  if (other.empty()) return truncate(s);
  const size_t cut_s = rng_.below(s.size() + 1), cut_o = rng_.below(other.size() + 1);
  s = s.substr(0, cut_s) + other.substr(cut_o);
}

void Mutator::edit_integer(std::string& s) {
  // The first digit run at or after a random position (wrapping around), with its sign.
  const size_t start = rng_.below(s.size());
  size_t b = std::string::npos;
  for (size_t k = 0; k < s.size(); ++k) {
    const size_t i = (start + k) % s.size();
    if (is_digit(s[i])) {
      b = i;
      break;
    }
  }
  if (b == std::string::npos) return set_interesting(s);
  while (b > 0 && is_digit(s[b - 1])) --b;
  if (b > 0 && s[b - 1] == '-') --b;
  size_t e = b + (s[b] == '-' ? 1 : 0);
  while (e < s.size() && is_digit(s[e])) ++e;
  std::string repl;
  if (rng_.chance(4)) {  // extra digits: one corrupt character scales a size by 10 or 1000
    s.insert(e, rng_.chance(2) ? "0" : "000");
    return;
  }
  if (rng_.chance(2) && e - b <= 18) {
    long long v = std::stoll(s.substr(b, e - b));
    switch (rng_.below(4)) {
      case 0:
        ++v;
        break;
      case 1:
        --v;
        break;
      case 2:
        v *= 2;
        break;
      default:
        v = -v;
    }
    repl = std::to_string(v);
  } else {
    repl = kNumbers[rng_.below(std::size(kNumbers))];
  }
  s.replace(b, e - b, repl);
}

void Mutator::insert_token(std::string& s) {
  if (dictionary_.empty()) return extend(s);
  const std::string& t = dictionary_[rng_.below(dictionary_.size())];
  const size_t at = rng_.below(s.size() + 1);
  if (!s.empty() && rng_.chance(3))
    s.replace(at == s.size() ? at - 1 : at, std::min(t.size(), s.size() - at), t);
  else
    s.insert(at, t);
}

}  // namespace resp::fuzz
