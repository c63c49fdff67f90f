// Counter-keyed random draws for the synthetic data generators: draw n of stream `domain` for
// problem `index` is a pure function of (seed, index, domain, n), so adding a draw to one
// rendering never shifts another rendering's or another problem's numbers.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace resp {

class KeyedDraws {
 public:
  KeyedDraws(uint64_t seed, uint64_t index, uint64_t domain)
      : seed_(seed), index_(index), domain_(domain) {}
  int64_t uniform(int64_t lo, int64_t hi) {  // inclusive
    const uint64_t span = static_cast<uint64_t>(hi - lo + 1);
    return lo + static_cast<int64_t>(random_u64(seed_, index_, counter_++, domain_) % span);
  }
  bool coin() { return uniform(0, 1) == 1; }
  // True with probability percent / 100.
  bool chance(int percent) { return uniform(0, 99) < percent; }
  template <typename T, size_t N>
  const T& pick(const std::array<T, N>& a) {
    return a[static_cast<size_t>(uniform(0, static_cast<int64_t>(N) - 1))];
  }
  template <typename T>
  const T& pick(const std::vector<T>& a) {
    return a[static_cast<size_t>(uniform(0, static_cast<int64_t>(a.size()) - 1))];
  }

 private:
  uint64_t seed_, index_, domain_, counter_ = 0;
};

}  // namespace resp
