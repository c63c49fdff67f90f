// The attention kernels of CpuBackend::attention, compiled once per ISA level: included by
// kernels_baseline.cpp (RESP_ISA_LEVEL 0), kernels_avx2.cpp (1) and kernels_avx512.cpp (2), each
// with its own RESP_ISA_NS and flags. No standard-library templates in here (see cpu_kernels.h).
//
// Every path computes the same bits: the vector code is written in 8-float GNU vectors with
// explicit FMAs (one rounding whether the hardware or fmaf does it), the files are compiled with
// -ffp-contract=off (no FMA the source does not ask for), and every horizontal sum has a fixed
// order. Only the speed differs: without AVX2+FMA each FMA is a call to fmaf.
#if RESP_ISA_LEVEL >= 1
#include <immintrin.h>
#endif

#include <cstdint>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/fast_math.h"

#if !defined(RESP_ISA_NS) || !defined(RESP_ISA_LEVEL)
#error "define RESP_ISA_NS and RESP_ISA_LEVEL before including attention_impl.h"
#endif

namespace resp::cpu::RESP_ISA_NS {

namespace attention_detail {
namespace {

constexpr int64_t imin(int64_t a, int64_t b) {
  return a < b ? a : b;
}
inline float* row_of(const RowView& v, int64_t r) {
  return v.data + r * v.stride;
}

constexpr int kBlock = kAttnBlock;
constexpr int kTile = kAttnTile;  // 2 vectors of 8

// The two register-tiled kernels below keep their 8 accumulators in named 8-float vectors (GNU
// vector extension, GCC and Clang; lowered to AVX, SSE or NEON as available): with plain arrays
// GCC keeps the accumulators in memory and the loops run at a fraction of FMA throughput.
typedef float F8 __attribute__((vector_size(32)));
inline F8 load8(const float* p) {
  F8 v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store8(float* p, F8 v) {
  __builtin_memcpy(p, &v, sizeof v);
}

// acc + a * b with one rounding. Explicit, because GCC's contraction of a * b + c into an FMA
// depends on how each instantiation was optimised (two attention paths disagreed in the last
// bit when one of them got a multiply and an add).
inline F8 fma8(F8 a, F8 b, F8 acc) {
#if RESP_ISA_LEVEL >= 1
  return __builtin_bit_cast(
      F8, _mm256_fmadd_ps(__builtin_bit_cast(__m256, a), __builtin_bit_cast(__m256, b),
                          __builtin_bit_cast(__m256, acc)));
#else
  F8 r;
  for (int i = 0; i < 8; ++i) r[i] = __builtin_fmaf(a[i], b[i], acc[i]);
  return r;
#endif
}
inline F8 splat8(float x) {
  return F8{x, x, x, x, x, x, x, x};
}

// Horizontal sums, all in the order ((e0 + e1) + (e2 + e3)) + ((e4 + e5) + (e6 + e7)): the
// order a tree of hadds gives, so one and four dot products at a time agree bit for bit.
inline float sum8(F8 v) {
  return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}
inline void sum8x4(const F8* v, float* out) {
#if RESP_ISA_LEVEL >= 1
  const __m256 q = _mm256_hadd_ps(
      _mm256_hadd_ps(__builtin_bit_cast(__m256, v[0]), __builtin_bit_cast(__m256, v[1])),
      _mm256_hadd_ps(__builtin_bit_cast(__m256, v[2]), __builtin_bit_cast(__m256, v[3])));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(q), _mm256_extractf128_ps(q, 1)));
#else
  for (int j = 0; j < 4; ++j) out[j] = sum8(v[j]);
#endif
}

// Keys and values are read a few rows ahead of use: in decoding every K/V row comes from DRAM
// once, in rows of one head strided by the other heads, which the hardware prefetcher follows
// too late (the loads stalled the loop for most of its time).
constexpr int64_t kKeysAhead = 8;
inline void prefetch_row(const float* p, int64_t n) {
  for (int64_t i = 0; i < n; i += 16) __builtin_prefetch(p + i);
}

// sc[r][s] = q[r] . k for R query rows against one key row (one load of the key for all rows).
// Every row is summed the same way whatever R is, so a row's score does not depend on how many
// query heads share its KV head.
template <int R>
inline void dot_rows(const float* const* q, const float* k, int64_t d, float* const* sc,
                     int64_t s) {
  F8 acc[R] = {};
  int64_t i = 0;
  for (; i + 8 <= d; i += 8) {
    const F8 kv = load8(k + i);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r] = fma8(load8(q[r] + i), kv, acc[r]);
  }
  if (i < d) {
    // The last d % 8 elements as one more zero-padded vector step. (A scalar tail loop was
    // auto-vectorised in some instantiations, without FMA, and rows then disagreed in the last
    // bit depending on how many heads shared the call.)
    const size_t rest = static_cast<size_t>(d - i) * sizeof(float);
    F8 kt = {};
    __builtin_memcpy(&kt, k + i, rest);
    for (int r = 0; r < R; ++r) {
      F8 qt = {};
      __builtin_memcpy(&qt, q[r] + i, rest);
      acc[r] = fma8(qt, kt, acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) sc[r][s] = sum8(acc[r]);
}

// sc[r][s0 + j] = q[r] . key(s0 + j) for 4 rows and j < 16; kp is the packed tile of keys
// s0 .. s0 + 15 ([D][16]).
inline void score_tile4(const float* const* q, const float* kp, int64_t d, float* const* sc,
                        int64_t s0) {
  F8 a00 = {}, a01 = {}, a10 = {}, a11 = {}, a20 = {}, a21 = {}, a30 = {}, a31 = {};
  const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
  for (int64_t i = 0; i < d; ++i) {
    const float* kr = kp + i * kTile;
    const F8 k0 = load8(kr), k1 = load8(kr + 8);
    // Explicit FMAs: contraction of a += q * k is up to the compiler and the ISA, and every
    // path must round alike.
    const F8 b0 = splat8(q0[i]), b1 = splat8(q1[i]), b2 = splat8(q2[i]), b3 = splat8(q3[i]);
    a00 = fma8(b0, k0, a00);
    a01 = fma8(b0, k1, a01);
    a10 = fma8(b1, k0, a10);
    a11 = fma8(b1, k1, a11);
    a20 = fma8(b2, k0, a20);
    a21 = fma8(b2, k1, a21);
    a30 = fma8(b3, k0, a30);
    a31 = fma8(b3, k1, a31);
  }
  store8(sc[0] + s0, a00);
  store8(sc[0] + s0 + 8, a01);
  store8(sc[1] + s0, a10);
  store8(sc[1] + s0 + 8, a11);
  store8(sc[2] + s0, a20);
  store8(sc[2] + s0 + 8, a21);
  store8(sc[3] + s0, a30);
  store8(sc[3] + s0 + 8, a31);
}

// ac[r][i0 + j] = sum_{s < n} p[r][s] * value(s)[i0 + j] for R rows and j < 8 * C; v points at
// dimension i0 of value 0, rows vs apart. With ahead > 0 it also prefetches that many floats of
// the value row kKeysAhead rows on (the first pass over the values does it for all of D).
// Every output element is the same sequence of FMAs over s whatever R and C are.
template <int R, int C>
inline void value_chunk(const float* const* p, const float* v, int64_t vs, int64_t n,
                        float* const* ac, int64_t i0, int64_t ahead) {
  F8 acc[R][C] = {};
  for (int64_t s = 0; s < n; ++s) {
    const float* vr = v + s * vs;
    if (ahead > 0 && s + kKeysAhead < n) prefetch_row(vr + kKeysAhead * vs, ahead);
    F8 vv[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) vv[c] = load8(vr + 8 * c);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const F8 w = splat8(p[r][s]);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[r][c] = fma8(w, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) store8(ac[r] + i0 + 8 * c, acc[r][c]);
}

// Vectors per value chunk: R * C accumulators, C loaded values and the broadcast weight fit the
// 16 AVX registers, so a decode step passes over the values about D / (8 C) times.
template <int R>
constexpr int kValueVectors = 15 / (R + 1);

// The last (d - i0) / 8 < C vectors of the values in one more pass.
template <int R, int C>
inline void value_rest(int64_t rest, const float* const* p, const float* v, int64_t vs, int64_t n,
                       float* const* ac, int64_t i0, int64_t ahead) {
  if constexpr (C > 1) {
    if (rest == C - 1) return value_chunk<R, C - 1>(p, v, vs, n, ac, i0, ahead);
    value_rest<R, C - 1>(rest, p, v, vs, n, ac, i0, ahead);
  }
}

// p[j] = exp(scale * p[j] - max) over n scores; returns 1 / sum of them. The sum runs over 8
// fixed lanes and then the sum8 tree, in double: one order whatever the vector width the compiler
// picks, so every ISA path (and both attention paths) gives the same bits. (An `omp simd`
// reduction splits the sum by the target's vector width.) Not inlined: one copy, one order.
[[gnu::noinline]] float softmax_numerators(float* p, int64_t n, float scale) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) p[j] *= scale;
  const float m = row_max(p, n);
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int l = 0; l < 8; ++l) {
      const float e = exp_f32(p[j + l] - m);
      p[j + l] = e;
      lane[l] += static_cast<double>(e);
    }
  for (int l = 0; j < n; ++j, ++l) {
    const float e = exp_f32(p[j] - m);
    p[j] = e;
    lane[l] += static_cast<double>(e);
  }
  const double sum =
      ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
  return static_cast<float>(1.0 / sum);
}

template <int R>
void attend_rows_n(const AttnArgs& A, const RowSet& set, float* scores, int64_t s_cap, float* acc) {
  const int64_t d = A.d;
  const int64_t g = A.kv_of_head[set.h[0]];
  const float* kbase = A.k.data + g * d;
  const float* vbase = A.v.data + g * d;
  const float* kpg = A.kp != nullptr ? A.kp + g * A.kp_tiles * d * kTile : nullptr;
  const int64_t ks = A.k.stride, vs = A.v.stride;
  const float* qr[R];
  float* sc[R];
  float* ac[R];
  int64_t lim[R];
  for (int r = 0; r < R; ++r) {
    qr[r] = row_of(A.q, set.t[r]) + set.h[r] * d;
    sc[r] = scores + r * s_cap;
    ac[r] = acc + r * d;
    lim[r] = A.q_offset + set.t[r] + 1;
  }
  const int64_t common = lim[0];  // rows ascend, so the first row's keys are everyone's

  // 1. Scores.
  int64_t s = 0;
  if constexpr (R == kBlock) {
    if (kpg != nullptr)
      for (; s + kTile <= common; s += kTile) score_tile4(qr, kpg + s * d, d, sc, s);
  }
  for (; s < common; ++s) {
    if (s + kKeysAhead < common) prefetch_row(kbase + (s + kKeysAhead) * ks, d);
    dot_rows<R>(qr, kbase + s * ks, d, sc, s);
  }
  for (int r = 0; r < R; ++r)
    for (int64_t j = s; j < lim[r]; ++j) dot_rows<1>(&qr[r], kbase + j * ks, d, &sc[r], j);

  // 2. Softmax numerators; 1 / denominators.
  float inv[R];
  for (int r = 0; r < R; ++r) inv[r] = softmax_numerators(sc[r], lim[r], A.scale);

  // 3. Weighted sum of values: tiles over the common keys (packed values), then the rest of D,
  // then the extra keys of the later rows.
  int64_t i0 = 0;
  if constexpr (R == kBlock) {
    if (A.vp != nullptr) {
      const float* vpg = A.vp + g * (d / kTile) * A.n_keys * kTile;
      for (; i0 + kTile <= d; i0 += kTile)
        value_chunk<R, kTile / 8>(sc, vpg + (i0 / kTile) * A.n_keys * kTile, kTile, common, ac, i0,
                                  0);
    }
  }
  constexpr int C = kValueVectors<R>;
  for (; i0 + 8 * C <= d; i0 += 8 * C)
    value_chunk<R, C>(sc, vbase + i0, vs, common, ac, i0, i0 == 0 ? d : 0);
  if (i0 + 8 <= d) {
    value_rest<R, C>((d - i0) / 8, sc, vbase + i0, vs, common, ac, i0, i0 == 0 ? d : 0);
    i0 += (d - i0) / 8 * 8;
  }
  if (i0 < d) {
    for (int r = 0; r < R; ++r)
      for (int64_t i = i0; i < d; ++i) ac[r][i] = 0.0f;
    for (int64_t j = 0; j < common; ++j) {
      const float* vr = vbase + j * vs;
      for (int r = 0; r < R; ++r) {
        float* c = ac[r];
        const float w = sc[r][j];
        for (int64_t i = i0; i < d; ++i) c[i] = __builtin_fmaf(w, vr[i], c[i]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    float* c = ac[r];
    for (int64_t j = common; j < lim[r]; ++j) {
      const float* vr = vbase + j * vs;
      const float w = sc[r][j];
#pragma omp simd
      for (int64_t i = 0; i < d; ++i) c[i] = __builtin_fmaf(w, vr[i], c[i]);
    }
  }

  // 4. Normalise into out (every q row of this block has been read, so out may alias q).
  for (int r = 0; r < R; ++r) {
    float* o = row_of(A.out, set.t[r]) + set.h[r] * d;
    const float* c = ac[r];
    const float f = inv[r];
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) o[i] = c[i] * f;
  }
}

// One query row (a decode step) against all its keys, for heads [h0, h1): the keys, then the
// values, are streamed once in position order, each [Hkv, D] row whole, instead of once per KV
// head at a stride of Hkv * D (which left the loop waiting on memory). Every head's arithmetic
// is that of attend_rows (the same dot, softmax and in-order FMA sums), so the two paths agree
// bit for bit. scratch: (h1 - h0) * (n_keys + D + 1) floats.
void attend_one_row_impl(const AttnArgs& A, int64_t h0, int64_t h1, float* scratch) {
  const int64_t d = A.d, n = A.q_offset + 1, heads = h1 - h0;
  float* scores = scratch;          // [heads][n]
  float* acc = scores + heads * n;  // [heads][d]
  float* inv = acc + heads * d;     // [heads]
  const int64_t ks = A.k.stride, vs = A.v.stride;
  const int64_t row_floats = A.k.cols;  // Hkv * D
  const float* q = row_of(A.q, 0);
  // Scores, four keys at a time: each query vector is loaded once for four key rows.
  int64_t s = 0;
  for (; s + 4 <= n; s += 4) {
    const float* kr = A.k.data + s * ks;
    if (s + 4 + kKeysAhead <= n)
      for (int j = 0; j < 4; ++j) prefetch_row(kr + (kKeysAhead + j) * ks, row_floats);
    for (int64_t h = h0; h < h1; ++h) {
      const float* qh = q + h * d;
      const float* kh = kr + A.kv_of_head[h] * d;
      F8 a[4] = {};
      int64_t i = 0;
      for (; i + 8 <= d; i += 8) {
        const F8 qv = load8(qh + i);
        for (int j = 0; j < 4; ++j) a[j] = fma8(qv, load8(kh + j * ks + i), a[j]);
      }
      if (i < d) {  // as dot_rows: the last d % 8 elements as one zero-padded step
        const size_t rest = static_cast<size_t>(d - i) * sizeof(float);
        F8 qt = {};
        __builtin_memcpy(&qt, qh + i, rest);
        for (int j = 0; j < 4; ++j) {
          F8 kt = {};
          __builtin_memcpy(&kt, kh + j * ks + i, rest);
          a[j] = fma8(qt, kt, a[j]);
        }
      }
      sum8x4(a, scores + (h - h0) * n + s);
    }
  }
  for (; s < n; ++s) {
    const float* kr = A.k.data + s * ks;
    for (int64_t h = h0; h < h1; ++h) {
      const float* qh = q + h * d;
      float* sh = scores + (h - h0) * n;
      dot_rows<1>(&qh, kr + A.kv_of_head[h] * d, d, &sh, s);
    }
  }
  for (int64_t h = 0; h < heads; ++h) inv[h] = softmax_numerators(scores + h * n, n, A.scale);
  for (int64_t i = 0; i < heads * d; ++i) acc[i] = 0.0f;
  const int64_t dv = d / 8 * 8;
  for (s = 0; s < n; ++s) {
    const float* vr = A.v.data + s * vs;
    if (s + kKeysAhead < n) prefetch_row(vr + kKeysAhead * vs, row_floats);
    for (int64_t h = 0; h < heads; ++h) {
      const float w = scores[h * n + s];
      const F8 w8 = splat8(w);
      const float* vh = vr + A.kv_of_head[h0 + h] * d;
      float* c = acc + h * d;
      for (int64_t i = 0; i < dv; i += 8) store8(c + i, fma8(w8, load8(vh + i), load8(c + i)));
      for (int64_t i = dv; i < d; ++i) c[i] = __builtin_fmaf(w, vh[i], c[i]);
    }
  }
  float* o = row_of(A.out, 0);
  for (int64_t h = 0; h < heads; ++h) {
    const float* c = acc + h * d;
    float* oh = o + (h0 + h) * d;
    const float f = inv[h];
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) oh[i] = c[i] * f;
  }
}

}  // namespace
}  // namespace attention_detail

void attend_rows(const AttnArgs& args, const RowSet& set, float* scores, int64_t s_cap,
                 float* acc) {
  using namespace attention_detail;
  switch (set.n) {
    case 4:
      return attend_rows_n<4>(args, set, scores, s_cap, acc);
    case 3:
      return attend_rows_n<3>(args, set, scores, s_cap, acc);
    case 2:
      return attend_rows_n<2>(args, set, scores, s_cap, acc);
    default:
      return attend_rows_n<1>(args, set, scores, s_cap, acc);
  }
}

void attend_one_row(const AttnArgs& args, int64_t h0, int64_t h1, float* scratch) {
  attention_detail::attend_one_row_impl(args, h0, h1, scratch);
}

}  // namespace resp::cpu::RESP_ISA_NS
