#include "core/rng.h"

#include <cmath>

namespace resp {

namespace {
constexpr uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
constexpr uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;

Philox4 keyed(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  Philox4 ctr = {static_cast<uint32_t>(a), static_cast<uint32_t>(a >> 32), static_cast<uint32_t>(b),
                 static_cast<uint32_t>(b >> 32)};
  // c is folded into the key so (a, b) keep their full 64 bits each.
  const uint64_t k = seed ^ (c * 0x9E3779B97F4A7C15ull);
  return philox4x32(ctr, {static_cast<uint32_t>(k), static_cast<uint32_t>(k >> 32)});
}
}  // namespace

Philox4 philox4x32(Philox4 x, std::array<uint32_t, 2> key) {
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kMul0) * x[0];
    const uint64_t p1 = static_cast<uint64_t>(kMul1) * x[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    x = {hi1 ^ x[1] ^ key[0], lo1, hi0 ^ x[3] ^ key[1], lo0};
    key[0] += kWeyl0;
    key[1] += kWeyl1;
  }
  return x;
}

float uniform01(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  return static_cast<float>(keyed(seed, a, b, c)[0] >> 8) * (1.0f / 16777216.0f);
}

uint64_t random_u64(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  const Philox4 r = keyed(seed, a, b, c);
  return (static_cast<uint64_t>(r[0]) << 32) | r[1];
}

double normal01(uint64_t seed, uint64_t a, uint64_t b, uint64_t c) {
  const Philox4 r = keyed(seed, a, b, c);
  const uint64_t u = (static_cast<uint64_t>(r[0]) << 32) | r[1];
  const double u1 = (static_cast<double>(u >> 11) + 1.0) * (1.0 / 9007199254740993.0);
  const double u2 = static_cast<double>(r[2]) * (1.0 / 4294967296.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

}  // namespace resp
