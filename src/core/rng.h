// Counter-based RNG (Philox-4x32-10). A random number is a pure function of
// (seed, stream ids, counter), so sampling results do not depend on batch size, slot order or
// rank count: the generator keys each draw by (seed, prompt id, step).
#pragma once

#include <array>
#include <cstdint>

namespace resp {

using Philox4 = std::array<uint32_t, 4>;

Philox4 philox4x32(Philox4 counter, std::array<uint32_t, 2> key);

// Uniform float in [0, 1) with 24 random bits, keyed by (seed, a, b, c).
float uniform01(uint64_t seed, uint64_t a, uint64_t b, uint64_t c = 0);
// Uniform 64-bit value keyed the same way.
uint64_t random_u64(uint64_t seed, uint64_t a, uint64_t b, uint64_t c = 0);
// Standard normal (Box-Muller over two keyed uniforms).
double normal01(uint64_t seed, uint64_t a, uint64_t b, uint64_t c = 0);

}  // namespace resp
