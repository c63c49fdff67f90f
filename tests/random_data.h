// Seeded random inputs shared by the op tests (std::mt19937: the same values on every platform
// for a given seed).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace resp::test {

// n floats uniform in [lo, hi).
inline std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

}  // namespace resp::test
