// Branch-free f32 helpers shared by the CPU forward and backward ops: loops calling them
// vectorise, which glibc's expf and a float `?:` prevent.
//
// Also included by the per-ISA kernel objects (attention_impl.h), hence `static` and builtins
// instead of std::bit_cast / numeric_limits: every copy stays private to its object, so no
// AVX-512 build of these functions can stand in for the baseline one at link time.
#pragma once

#include <cstdint>

namespace resp {

// c ? a : b without a branch. GCC (with the default -ftrapping-math) turns a float `?:` that
// feeds further arithmetic into control flow and then refuses to vectorise the loop.
static inline float select(bool c, float a, float b) {
  const uint32_t m = 0u - static_cast<uint32_t>(c);
  return __builtin_bit_cast(
      float, (__builtin_bit_cast(uint32_t, a) & m) | (__builtin_bit_cast(uint32_t, b) & ~m));
}

// exp(x) in f32 within 1.5 ulp (Cephes expf polynomial), branch-free so that loops calling it
// vectorise (glibc's expf does not). Returns 0 below -87.3 (where the result would be
// subnormal), +inf above 88.3, NaN for NaN.
static inline float exp_f32(float x) {
  constexpr float kLo = -87.3f, kHi = 88.3f;
  float xc = select(x < kLo, kLo, x);
  xc = select(xc > kHi, kHi, xc);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting rounds to integer
  const float kf = (xc * 1.44269504088896341f + kRound) - kRound;   // round(x / ln 2)
  const float r = (xc - kf * 0.693359375f) - kf * -2.12194440e-4f;  // x - k ln 2 (two parts)
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = (p * (r * r) + r) + 1.0f;
  const int32_t k =
      static_cast<int32_t>(select(kf == kf, kf, 0.0f));           // NaN must not reach the cast
  const float pow2 = __builtin_bit_cast(float, (k + 127) << 23);  // 2^k
  const float res = select(x < kLo, 0.0f, y * pow2);
  return select(x > kHi, __builtin_huge_valf(), res);
}

// Max over x[0, n) (vectorised).
static inline float row_max(const float* x, int64_t n) {
  float m = -__builtin_huge_valf();
#pragma omp simd reduction(max : m)
  for (int64_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

// out[i] = exp(in[i] - max(in)) over n floats (out may be in); returns their sum in double, and
// the max in *max_out when given. The numerically stable core of every softmax.
static inline double exp_minus_max(const float* in, float* out, int64_t n,
                                   float* max_out = nullptr) {
  const float m = row_max(in, n);
  if (max_out != nullptr) *max_out = m;
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) {
    const float e = exp_f32(in[i] - m);
    out[i] = e;
    sum += static_cast<double>(e);
  }
  return sum;
}

}  // namespace resp
