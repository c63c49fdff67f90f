#include "backend/cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "backend/cpu/fast_math.h"
#include "backend/cpu/gemm_few_rows.h"
#include "core/error.h"
#include "core/log.h"

namespace resp {

namespace {

// Below these amounts of work an op runs on the calling thread: starting an OpenMP region costs
// microseconds, which matters for single-token decoding.
constexpr int64_t kParallelElems = 1 << 15;  // cheap elementwise ops
constexpr int64_t kChunkElems = 1 << 14;     // chunk size of flat elementwise loops

// ---- validation -------------------------------------------------------------------------------

void check_cpu(const char* op, const char* what, const Tensor& t) {
  if (t.device() != Device::CPU)
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " is not host memory (cpu backend)"));
  if (t.data() == nullptr && t.numel() != 0)
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " has no data"));
}

void check_dtype(const char* op, const char* what, const Tensor& t, DType want) {
  check_cpu(op, what, t);
  if (t.dtype() != want)
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " must be ", dtype_name(want)));
}

void check_rank(const char* op, const char* what, const Tensor& t, int rank) {
  if (t.rank() != rank)
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " must have rank ", rank));
}

// A tensor seen as `rows` rows (dimension 0) of `cols` contiguous elements, `stride` elements
// apart (stride >= cols; padded leading dimension allowed).
struct Rows {
  float* data;
  int64_t rows;
  int64_t cols;
  int64_t stride;
  bool contiguous() const { return rows <= 1 || stride == cols; }
  float* row(int64_t r) const { return data + r * stride; }
};

Rows rows_of(const char* op, const char* what, const Tensor& t) {
  if (t.rank() == 0) return {static_cast<float*>(t.data()), 1, 1, 1};
  int64_t expect = 1;
  for (int i = t.rank() - 1; i >= 1; --i) {
    if (t.dim(i) != 1 && t.stride(i) != expect)
      throw ShapeError(cat(op, ": ", what, " ", t.str(), " has non-contiguous inner dimensions"));
    expect *= t.dim(i);
  }
  const int64_t rows = t.dim(0);
  const int64_t stride = rows <= 1 ? expect : t.stride(0);
  if (stride < expect)
    throw ShapeError(
        cat(op, ": ", what, " ", t.str(), " has row stride ", stride, " < row size ", expect));
  return {static_cast<float*>(t.data()), rows, expect, stride};
}

// F32 on the host, viewed as rows.
Rows f32_rows(const char* op, const char* what, const Tensor& t) {
  check_dtype(op, what, t, DType::F32);
  return rows_of(op, what, t);
}

// Byte range [begin, end) a row view touches.
struct Span {
  const char* begin;
  const char* end;
};
Span span_of(const Rows& r) {
  const char* b = reinterpret_cast<const char*>(r.data);
  if (r.rows == 0 || r.cols == 0) return {b, b};
  return {b, b + ((r.rows - 1) * r.stride + r.cols) * static_cast<int64_t>(sizeof(float))};
}
bool overlaps(const Rows& x, const Rows& y) {
  const Span a = span_of(x), b = span_of(y);
  return a.begin < b.end && b.begin < a.end;
}
bool same_view(const Rows& x, const Rows& y) {
  return x.data == y.data && x.rows == y.rows && x.cols == y.cols && x.stride == y.stride;
}
// `out` may be exactly `in` (in-place) but must not partly overlap it.
void check_alias(const char* op, const char* out_name, const Rows& out, const char* in_name,
                 const Rows& in, const Tensor& out_t, const Tensor& in_t) {
  if (overlaps(out, in) && !same_view(out, in))
    throw ShapeError(cat(op, ": ", out_name, " ", out_t.str(), " partially overlaps ", in_name, " ",
                         in_t.str()));
}

// ---- math helpers -----------------------------------------------------------------------------

// Runs body(begin, end) over [0, n) in chunks, in parallel when the work is large enough.
template <typename Body>
void parallel_chunks(int threads, int64_t n, int64_t work, Body&& body) {
  const int64_t chunks = (n + kChunkElems - 1) / kChunkElems;
#pragma omp parallel for num_threads(threads) if (work >= kParallelElems && chunks > 1) \
    schedule(static)
  for (int64_t c = 0; c < chunks; ++c) body(c * kChunkElems, std::min(n, (c + 1) * kChunkElems));
}

}  // namespace

// ---- construction and memory --------------------------------------------------------------------

CpuBackend::CpuBackend(int threads) : threads_(threads > 0 ? threads : omp_get_max_threads()) {
  if (threads < 0) throw UsageError(cat("threads must be >= 0 (0: all cores), got ", threads));
  // More threads than cores only adds fork/join and barrier cost; far more (100000) overflowed
  // libgomp's stack. Clamp, and say so.
  const int cores = std::max(1, omp_get_num_procs());
  if (threads_ > cores) {
    log_warn("threads ", threads_, " exceeds the ", cores, " cores available; using ", cores);
    threads_ = cores;
  }
  if (threads_ < 1) threads_ = 1;
  openblas_set_num_threads(threads_);
}

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

Buffer CpuBackend::allocate(size_t bytes) {
  return allocate_host(bytes);
}

void CpuBackend::copy(const Tensor& dst, const Tensor& src) {
  check_cpu("copy", "dst", dst);
  check_cpu("copy", "src", src);
  RESP_CHECK_SHAPE(dst.dtype() == src.dtype() && dst.numel() == src.numel(), "dst ", dst.str(),
                   " and src ", src.str(), " differ in dtype or element count");
  RESP_CHECK_SHAPE(dst.is_contiguous() && src.is_contiguous(), "dst ", dst.str(), " and src ",
                   src.str(), " must be contiguous");
  if (dst.nbytes() == 0 || dst.data() == src.data()) return;
  std::memmove(dst.data(), src.data(), dst.nbytes());
}

void CpuBackend::fill(const Tensor& dst, float value) {
  const Rows d = f32_rows("fill", "dst", dst);
  if (d.contiguous()) {
    float* p = d.data;
    parallel_chunks(threads_, d.rows * d.cols, d.rows * d.cols,
                    [&](int64_t b, int64_t e) { std::fill(p + b, p + e, value); });
    return;
  }
#pragma omp parallel for num_threads(threads_) if (d.rows * d.cols >= kParallelElems)
  for (int64_t r = 0; r < d.rows; ++r) std::fill(d.row(r), d.row(r) + d.cols, value);
}

// ---- gemm ---------------------------------------------------------------------------------------

void CpuBackend::gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c,
                      float alpha, float beta) {
  check_dtype("gemm", "A", a, DType::F32);
  check_dtype("gemm", "B", b, DType::F32);
  check_dtype("gemm", "C", c, DType::F32);
  const auto [m, n, k] = check_gemm_args(a, trans_a, b, trans_b, c);
  const Rows ra = rows_of("gemm", "A", a);
  const Rows rb = rows_of("gemm", "B", b);
  const Rows rc = rows_of("gemm", "C", c);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // C = beta * C (and exactly 0 when beta == 0, whatever C held)
    for (int64_t r = 0; r < rc.rows; ++r) {
      float* p = rc.row(r);
      for (int64_t j = 0; j < rc.cols; ++j) p[j] = beta == 0.0f ? 0.0f : beta * p[j];
    }
    return;
  }
  // Leading dimensions: at least the row length (BLAS requires ld >= max(1, cols)).
  const int64_t lda = std::max<int64_t>({ra.stride, ra.cols, 1});
  const int64_t ldb = std::max<int64_t>({rb.stride, rb.cols, 1});
  const int64_t ldc = std::max<int64_t>({rc.stride, rc.cols, 1});
  constexpr int64_t kMax = INT_MAX;
  RESP_CHECK_SHAPE(m <= kMax && n <= kMax && k <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax,
                   "dimensions exceed the BLAS integer range: A ", a.str(), ", B ", b.str(), ", C ",
                   c.str());
  // A few rows against a weight matrix (decode steps, short prompts): dot products straight from
  // the weight rows, no copy of the weights, and each row's result independent of how many rows
  // share the call (see gemm_few_rows.h).
  if (!trans_a && trans_b && m <= kGemmFewRowsMax && gemm_few_rows_available()) {
    gemm_few_rows(ra.data, lda, rb.data, ldb, rc.data, ldc, m, n, k, alpha, beta, threads_);
    return;
  }
  // The OpenBLAS thread count is process-wide; re-assert ours in case another backend changed it.
  if (openblas_get_num_threads() != threads_) openblas_set_num_threads(threads_);
  // A few rows (decoding a handful of sequences): sgemv per row streams the weights once,
  // where sgemm would first copy (pack) every weight block for a 1-row product.
  if (!trans_a && m <= 4) {
    for (int64_t r = 0; r < m; ++r)
      cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans,
                  static_cast<blasint>(trans_b ? n : k), static_cast<blasint>(trans_b ? k : n),
                  alpha, rb.data, static_cast<blasint>(ldb), ra.data + r * lda, 1, beta,
                  rc.data + r * ldc, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, ra.data, static_cast<blasint>(lda), rb.data,
              static_cast<blasint>(ldb), beta, rc.data, static_cast<blasint>(ldc));
}

// ---- row-wise ops -------------------------------------------------------------------------------

void CpuBackend::add_bias(const Tensor& y, const Tensor& bias) {
  const Rows ry = f32_rows("add_bias", "y", y);
  const Rows rbias = f32_rows("add_bias", "bias", bias);
  RESP_CHECK_SHAPE(y.rank() == 2 && bias.rank() == 1 && bias.dim(0) == y.dim(1), "y ", y.str(),
                   " must be [R, N] and bias ", bias.str(), " [N]");
  RESP_CHECK_SHAPE(!overlaps(ry, rbias), "y ", y.str(), " overlaps bias ", bias.str());
  const float* bp = rbias.data;
#pragma omp parallel for num_threads(threads_) if (ry.rows * ry.cols >= kParallelElems)
  for (int64_t r = 0; r < ry.rows; ++r) {
    float* p = ry.row(r);
#pragma omp simd
    for (int64_t j = 0; j < ry.cols; ++j) p[j] += bp[j];
  }
}

void CpuBackend::rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w, float eps) {
  const Rows ro = f32_rows("rmsnorm", "out", out);
  const Rows rx = f32_rows("rmsnorm", "x", x);
  const Rows rw = f32_rows("rmsnorm", "w", w);
  RESP_CHECK_SHAPE(
      x.rank() == 2 && out.shape() == x.shape() && w.rank() == 1 && w.dim(0) == x.dim(1), "x ",
      x.str(), " and out ", out.str(), " must be [R, D] and w ", w.str(), " [D]");
  check_alias("rmsnorm", "out", ro, "x", rx, out, x);
  RESP_CHECK_SHAPE(!overlaps(ro, rw), "out ", out.str(), " overlaps w ", w.str());
  const int64_t d = rx.cols;
  if (d == 0) return;
  const float* wp = rw.data;
#pragma omp parallel for num_threads(threads_) if (rx.rows * d >= kParallelElems)
  for (int64_t r = 0; r < rx.rows; ++r) {
    const float* xp = rx.row(r);
    float* op = ro.row(r);
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xp[i]) * static_cast<double>(xp[i]);
    const float inv =
        static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + static_cast<double>(eps)));
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) op[i] = (xp[i] * inv) * wp[i];
  }
}

void CpuBackend::rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq) {
  const Rows rx = f32_rows("rope", "x", x);
  check_dtype("rope", "positions", positions, DType::I32);
  const Rows rf = f32_rows("rope", "inv_freq", inv_freq);
  check_rank("rope", "x [T, H, D]", x, 3);
  const int64_t t_len = x.dim(0), heads = x.dim(1), d = x.dim(2);
  RESP_CHECK_SHAPE(d % 2 == 0, "x ", x.str(), ": head dim must be even");
  RESP_CHECK_SHAPE(positions.rank() == 1 && positions.dim(0) == t_len, "positions ",
                   positions.str(), " must be [T] for x ", x.str());
  RESP_CHECK_SHAPE(positions.is_contiguous(), "positions ", positions.str(), " must be contiguous");
  RESP_CHECK_SHAPE(inv_freq.rank() == 1 && inv_freq.dim(0) == d / 2, "inv_freq ", inv_freq.str(),
                   " must be [D/2] for x ", x.str());
  const int64_t half = d / 2;
  if (t_len == 0 || heads == 0 || half == 0) return;
  const int32_t* pos = positions.i32();
  const float* freq = rf.data;
#pragma omp parallel num_threads(threads_) if (t_len * heads * d >= kParallelElems)
  {
    std::vector<float> cs(static_cast<size_t>(2 * half));
    float* cosv = cs.data();
    float* sinv = cs.data() + half;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < t_len; ++t) {
      const double p = static_cast<double>(pos[t]);
      for (int64_t i = 0; i < half; ++i) {
        const double angle = p * static_cast<double>(freq[i]);
        cosv[i] = static_cast<float>(std::cos(angle));
        sinv[i] = static_cast<float>(std::sin(angle));
      }
      float* row = rx.row(t);
      for (int64_t h = 0; h < heads; ++h) {
        float* lo = row + h * d;
        float* hi = lo + half;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float a = lo[i], b = hi[i];
          lo[i] = a * cosv[i] - b * sinv[i];
          hi[i] = b * cosv[i] + a * sinv[i];
        }
      }
    }
  }
}

// ---- attention ----------------------------------------------------------------------------------
//
// Work item: a set of up to kBlock (query row t, query head h) pairs that read the same KV head,
// so they share every key and value load. With T >= kBlock a set is kBlock consecutive rows of
// one head (prefill); with fewer rows it is one row of up to kBlock heads of a GQA group
// (decoding). Query row t attends keys [0, lim), lim = q_offset + t + 1; the smallest lim of a
// set is common to all its rows, and the rest are per-row extra keys (at most kBlock - 1). Per
// set:
//   1. scores = q . k: register tiles of (rows x 16 keys) over the common keys, reading K packed
//      per tile of 16 keys as [D][16] (made once per call, from keys [0, q_offset + T) only),
//      then plain dot products for the remaining keys;
//   2. stable softmax numerators in place (max-subtract, vectorised exp), sums in double;
//   3. out = (p v) / sum: register tiles of (rows x 16 dims) over the common keys, reading V
//      packed per tile of 16 dims as [keys][16], then the later rows' extra keys.
// No score or weighted sum of a row involves a key or value past that row's causal limit, and
// nothing at position q_offset + T or later is read at all (those cache rows may be garbage).

namespace {

constexpr int kBlock = 4;  // query rows per work item (they share every K/V load)
constexpr int kTile = 16;  // keys per score tile / head dims per output tile (2 AVX vectors)

struct AttnArgs {
  const Rows* q;
  const Rows* k;
  const Rows* v;
  const Rows* out;
  const int32_t* kv_of_head;
  const float* kp;   // packed keys [Hkv][tiles][D][kTile] (key tile * kTile + j), or null
  int64_t kp_tiles;  // full key tiles packed per KV head
  const float* vp;   // packed values [Hkv][D / kTile][n_keys][kTile], or null
  int64_t n_keys;
  int64_t t_len, d, q_offset;
  float scale;
};

// Query (row, head) pairs that share one KV head; rows in ascending order.
struct RowSet {
  int64_t t[kBlock];
  int64_t h[kBlock];
  int n;
};

// The two register-tiled kernels below keep their 8 accumulators in named 8-float vectors (GNU
// vector extension, GCC and Clang; lowered to AVX, SSE or NEON as available): with plain arrays
// GCC keeps the accumulators in memory and the loops run at a fraction of FMA throughput.
typedef float F8 __attribute__((vector_size(32)));
inline F8 load8(const float* p) {
  F8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store8(float* p, F8 v) {
  std::memcpy(p, &v, sizeof v);
}

// acc + a * b with one rounding. Explicit, because GCC's contraction of a * b + c into an FMA
// depends on how each instantiation was optimised (two attention paths disagreed in the last
// bit when one of them got a multiply and an add).
inline F8 fma8(F8 a, F8 b, F8 acc) {
#if defined(__FMA__)
  __m256 r = _mm256_fmadd_ps(std::bit_cast<__m256>(a), std::bit_cast<__m256>(b),
                             std::bit_cast<__m256>(acc));
  return std::bit_cast<F8>(r);
#else
  F8 r;
  for (int i = 0; i < 8; ++i) r[i] = std::fma(a[i], b[i], acc[i]);
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
#if defined(__AVX__)
  const __m256 q =
      _mm256_hadd_ps(_mm256_hadd_ps(std::bit_cast<__m256>(v[0]), std::bit_cast<__m256>(v[1])),
                     _mm256_hadd_ps(std::bit_cast<__m256>(v[2]), std::bit_cast<__m256>(v[3])));
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
    std::memcpy(&kt, k + i, rest);
    for (int r = 0; r < R; ++r) {
      F8 qt = {};
      std::memcpy(&qt, q[r] + i, rest);
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
    a00 += q0[i] * k0;
    a01 += q0[i] * k1;
    a10 += q1[i] * k0;
    a11 += q1[i] * k1;
    a20 += q2[i] * k0;
    a21 += q2[i] * k1;
    a30 += q3[i] * k0;
    a31 += q3[i] * k1;
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

// p[j] = exp(scale * p[j] - max) over n scores; returns 1 / sum of them. Not inlined: the simd
// reduction may be split differently in each inlined copy, and both attention paths must sum in
// the same order.
[[gnu::noinline]] float softmax_numerators(float* p, int64_t n, float scale) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) p[j] *= scale;
  return static_cast<float>(1.0 / exp_minus_max(p, p, n));
}

template <int R>
void attend_rows(const AttnArgs& A, const RowSet& set, float* scores, int64_t s_cap, float* acc) {
  const int64_t d = A.d;
  const int64_t g = A.kv_of_head[set.h[0]];
  const float* kbase = A.k->data + g * d;
  const float* vbase = A.v->data + g * d;
  const float* kpg = A.kp != nullptr ? A.kp + g * A.kp_tiles * d * kTile : nullptr;
  const int64_t ks = A.k->stride, vs = A.v->stride;
  const float* qr[R];
  float* sc[R];
  float* ac[R];
  int64_t lim[R];
  for (int r = 0; r < R; ++r) {
    qr[r] = A.q->row(set.t[r]) + set.h[r] * d;
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
    for (int r = 0; r < R; ++r) std::fill(ac[r] + i0, ac[r] + d, 0.0f);
    for (int64_t j = 0; j < common; ++j) {
      const float* vr = vbase + j * vs;
      for (int r = 0; r < R; ++r) {
        float* c = ac[r];
        const float w = sc[r][j];
        for (int64_t i = i0; i < d; ++i) c[i] = std::fma(w, vr[i], c[i]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    float* c = ac[r];
    for (int64_t j = common; j < lim[r]; ++j) {
      const float* vr = vbase + j * vs;
      const float w = sc[r][j];
#pragma omp simd
      for (int64_t i = 0; i < d; ++i) c[i] = std::fma(w, vr[i], c[i]);
    }
  }

  // 4. Normalise into out (every q row of this block has been read, so out may alias q).
  for (int r = 0; r < R; ++r) {
    float* o = A.out->row(set.t[r]) + set.h[r] * d;
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
void attend_one_row(const AttnArgs& A, int64_t h0, int64_t h1, float* scratch) {
  const int64_t d = A.d, n = A.q_offset + 1, heads = h1 - h0;
  float* scores = scratch;          // [heads][n]
  float* acc = scores + heads * n;  // [heads][d]
  float* inv = acc + heads * d;     // [heads]
  const int64_t ks = A.k->stride, vs = A.v->stride;
  const int64_t row_floats = A.k->cols;  // Hkv * D
  const float* q = A.q->row(0);
  // Scores, four keys at a time: each query vector is loaded once for four key rows.
  int64_t s = 0;
  for (; s + 4 <= n; s += 4) {
    const float* kr = A.k->data + s * ks;
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
        std::memcpy(&qt, qh + i, rest);
        for (int j = 0; j < 4; ++j) {
          F8 kt = {};
          std::memcpy(&kt, kh + j * ks + i, rest);
          a[j] = fma8(qt, kt, a[j]);
        }
      }
      sum8x4(a, scores + (h - h0) * n + s);
    }
  }
  for (; s < n; ++s) {
    const float* kr = A.k->data + s * ks;
    for (int64_t h = h0; h < h1; ++h) {
      const float* qh = q + h * d;
      float* sh = scores + (h - h0) * n;
      dot_rows<1>(&qh, kr + A.kv_of_head[h] * d, d, &sh, s);
    }
  }
  for (int64_t h = 0; h < heads; ++h) inv[h] = softmax_numerators(scores + h * n, n, A.scale);
  std::fill(acc, acc + heads * d, 0.0f);
  const int64_t dv = d / 8 * 8;
  for (s = 0; s < n; ++s) {
    const float* vr = A.v->data + s * vs;
    if (s + kKeysAhead < n) prefetch_row(vr + kKeysAhead * vs, row_floats);
    for (int64_t h = 0; h < heads; ++h) {
      const float w = scores[h * n + s];
      const F8 w8 = splat8(w);
      const float* vh = vr + A.kv_of_head[h0 + h] * d;
      float* c = acc + h * d;
      for (int64_t i = 0; i < dv; i += 8) store8(c + i, fma8(w8, load8(vh + i), load8(c + i)));
      for (int64_t i = dv; i < d; ++i) c[i] = std::fma(w, vh[i], c[i]);
    }
  }
  float* o = A.out->row(0);
  for (int64_t h = 0; h < heads; ++h) {
    const float* c = acc + h * d;
    float* oh = o + (h0 + h) * d;
    const float f = inv[h];
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) oh[i] = c[i] * f;
  }
}

}  // namespace

void CpuBackend::attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor& kv_of_head, int64_t q_offset, float scale) {
  const Rows ro = f32_rows("attention", "out", out);
  const Rows rq = f32_rows("attention", "q", q);
  const Rows rk = f32_rows("attention", "k", k);
  const Rows rv = f32_rows("attention", "v", v);
  check_dtype("attention", "kv_of_head", kv_of_head, DType::I32);
  RESP_CHECK_SHAPE(q.rank() == 3 && k.rank() == 3 && v.rank() == 3, "q ", q.str(), ", k ", k.str(),
                   ", v ", v.str(), " must be [T, Hq, D], [S, Hkv, D], [S, Hkv, D]");
  const int64_t t_len = q.dim(0), hq = q.dim(1), d = q.dim(2);
  const int64_t s_len = k.dim(0), hkv = k.dim(1);
  RESP_CHECK_SHAPE(k.shape() == v.shape() && k.dim(2) == d, "k ", k.str(), " and v ", v.str(),
                   " must both be [S, Hkv, D] with D of q ", q.str());
  RESP_CHECK_SHAPE(out.shape() == q.shape(), "out ", out.str(), " must match q ", q.str());
  RESP_CHECK_SHAPE(kv_of_head.rank() == 1 && kv_of_head.dim(0) == hq && kv_of_head.is_contiguous(),
                   "kv_of_head ", kv_of_head.str(), " must be [Hq] for q ", q.str());
  RESP_CHECK_SHAPE(q_offset >= 0 && s_len >= q_offset + t_len, "S = ", s_len, " of k ", k.str(),
                   " must be >= q_offset ", q_offset, " + T ", t_len, " (q ", q.str(), ")");
  check_alias("attention", "out", ro, "q", rq, out, q);
  RESP_CHECK_SHAPE(!overlaps(ro, rk) && !overlaps(ro, rv), "out ", out.str(), " overlaps k ",
                   k.str(), " or v ", v.str());
  const int32_t* kvh = kv_of_head.i32();
  for (int64_t h = 0; h < hq; ++h)
    RESP_CHECK_SHAPE(kvh[h] >= 0 && kvh[h] < hkv, "kv_of_head[", h, "] = ", kvh[h],
                     " is not a KV head of k ", k.str());
  if (t_len == 0 || hq == 0 || d == 0) return;

  const int64_t n_keys = q_offset + t_len;  // keys any query row may see
  AttnArgs args{};
  args.q = &rq;
  args.k = &rk;
  args.v = &rv;
  args.out = &ro;
  args.kv_of_head = kvh;
  args.n_keys = n_keys;
  args.t_len = t_len;
  args.d = d;
  args.q_offset = q_offset;
  args.scale = scale;
  if (t_len == 1) {  // decoding: stream the cache once for all heads (see attend_one_row)
    const int parts =
        hq * n_keys * d >= kParallelElems ? static_cast<int>(std::min<int64_t>(threads_, hq)) : 1;
#pragma omp parallel for num_threads(parts) schedule(static) if (parts > 1)
    for (int part = 0; part < parts; ++part) {
      const int64_t h0 = hq * part / parts, h1 = hq * (part + 1) / parts;
      std::vector<float> scratch(static_cast<size_t>((h1 - h0) * (n_keys + d + 1)));
      attend_one_row(args, h0, h1, scratch.data());
    }
    return;
  }
  std::vector<RowSet> sets;
  if (t_len >= kBlock) {
    // Blocks of consecutive rows of one head, latest (largest) blocks first so that dynamic
    // scheduling balances the causal triangle.
    const int64_t blocks = (t_len + kBlock - 1) / kBlock;
    sets.reserve(static_cast<size_t>(blocks * hq));
    for (int64_t blk = blocks - 1; blk >= 0; --blk)
      for (int64_t h = 0; h < hq; ++h) {
        RowSet set{};
        for (int64_t t = blk * kBlock; t < std::min(t_len, (blk + 1) * kBlock); ++t) {
          set.t[set.n] = t;
          set.h[set.n++] = h;
        }
        sets.push_back(set);
      }
  } else {
    // Few rows: group the query heads of each KV head.
    for (int64_t t = 0; t < t_len; ++t)
      for (int64_t g = 0; g < hkv; ++g) {
        RowSet set{};
        for (int64_t h = 0; h < hq; ++h) {
          if (kvh[h] != g) continue;
          set.t[set.n] = t;
          set.h[set.n++] = h;
          if (set.n == kBlock) {
            sets.push_back(set);
            set = RowSet{};
          }
        }
        if (set.n > 0) sets.push_back(set);
      }
  }
  const int64_t items = static_cast<int64_t>(sets.size());
  // Work ~ (keys attended) * D per query row; start threads only when it pays.
  const int64_t work = hq * t_len * (q_offset + (t_len + 1) / 2) * d;
  const bool parallel = work >= kParallelElems;
  // Packed keys pay off once enough query rows share them; a few rows (decoding) use plain dot
  // products against the key rows instead.
  const int64_t kp_tiles = n_keys / kTile;
  constexpr int64_t kMaxPackedFloats = int64_t{64} << 20;  // 256 MiB; longer contexts use dots
  const bool use_kp =
      kp_tiles > 0 && t_len >= 2 * kBlock && hkv * kp_tiles * d * kTile <= kMaxPackedFloats;
  std::vector<float> kp(use_kp ? static_cast<size_t>(hkv * kp_tiles * d * kTile) : 0);
  const int64_t vp_tiles = d / kTile;
  const bool use_vp =
      vp_tiles > 0 && t_len >= 2 * kBlock && hkv * vp_tiles * n_keys * kTile <= kMaxPackedFloats;
  std::vector<float> vp(use_vp ? static_cast<size_t>(hkv * vp_tiles * n_keys * kTile) : 0);
  args.kp = use_kp ? kp.data() : nullptr;
  args.kp_tiles = kp_tiles;
  args.vp = use_vp ? vp.data() : nullptr;

#pragma omp parallel num_threads(threads_) if (parallel)
  {
    if (use_kp) {
#pragma omp for schedule(static) collapse(2)
      for (int64_t g = 0; g < hkv; ++g)
        for (int64_t tile = 0; tile < kp_tiles; ++tile) {
          float* dst = kp.data() + (g * kp_tiles + tile) * d * kTile;
          for (int64_t j = 0; j < kTile; ++j) {
            const float* src = rk.row(tile * kTile + j) + g * d;
            for (int64_t i = 0; i < d; ++i) dst[i * kTile + j] = src[i];
          }
        }
    }
    if (use_vp) {
#pragma omp for schedule(static) collapse(2)
      for (int64_t g = 0; g < hkv; ++g)
        for (int64_t tile = 0; tile < vp_tiles; ++tile) {
          float* dst = vp.data() + (g * vp_tiles + tile) * n_keys * kTile;
          for (int64_t s = 0; s < n_keys; ++s)
            std::memcpy(dst + s * kTile, rv.row(s) + g * d + tile * kTile, kTile * sizeof(float));
        }
    }
    std::vector<float> scratch(static_cast<size_t>(kBlock * (n_keys + d)));
    float* scores = scratch.data();
    float* acc = scores + kBlock * n_keys;
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it) {
      const RowSet& set = sets[static_cast<size_t>(it)];
      switch (set.n) {
        case 4:
          attend_rows<4>(args, set, scores, n_keys, acc);
          break;
        case 3:
          attend_rows<3>(args, set, scores, n_keys, acc);
          break;
        case 2:
          attend_rows<2>(args, set, scores, n_keys, acc);
          break;
        default:
          attend_rows<1>(args, set, scores, n_keys, acc);
          break;
      }
    }
  }
}

// ---- elementwise ops ----------------------------------------------------------------------------

void CpuBackend::swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) {
  const Rows ro = f32_rows("swiglu", "out", out);
  const Rows rg = f32_rows("swiglu", "gate", gate);
  const Rows ru = f32_rows("swiglu", "up", up);
  RESP_CHECK_SHAPE(out.shape() == gate.shape() && up.shape() == gate.shape(), "out ", out.str(),
                   ", gate ", gate.str(), ", up ", up.str(), " must have the same shape");
  check_alias("swiglu", "out", ro, "gate", rg, out, gate);
  check_alias("swiglu", "out", ro, "up", ru, out, up);
  auto kernel = [](float* o, const float* g, const float* u, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float gv = g[i];
      o[i] = gv / (1.0f + exp_f32(-gv)) * u[i];
    }
  };
  const int64_t total = ro.rows * ro.cols;
  if (ro.contiguous() && rg.contiguous() && ru.contiguous()) {
    parallel_chunks(threads_, total, total * 4, [&](int64_t b, int64_t e) {
      kernel(ro.data + b, rg.data + b, ru.data + b, e - b);
    });
    return;
  }
#pragma omp parallel for num_threads(threads_) if (total * 4 >= kParallelElems)
  for (int64_t r = 0; r < ro.rows; ++r) kernel(ro.row(r), rg.row(r), ru.row(r), ro.cols);
}

void CpuBackend::embedding(const Tensor& out, const Tensor& table, const Tensor& ids) {
  const Rows ro = f32_rows("embedding", "out", out);
  const Rows rt = f32_rows("embedding", "table", table);
  check_dtype("embedding", "ids", ids, DType::I32);
  RESP_CHECK_SHAPE(table.rank() == 2 && ids.rank() == 1 && ids.is_contiguous() && out.rank() == 2 &&
                       out.dim(0) == ids.dim(0) && out.dim(1) == table.dim(1),
                   "table ", table.str(), " must be [V, H], ids ", ids.str(), " [T], out ",
                   out.str(), " [T, H]");
  RESP_CHECK_SHAPE(!overlaps(ro, rt), "out ", out.str(), " overlaps table ", table.str());
  const int64_t t_len = ids.dim(0), vocab = table.dim(0), h = table.dim(1);
  const int32_t* id = ids.i32();
  for (int64_t t = 0; t < t_len; ++t)
    RESP_CHECK_SHAPE(id[t] >= 0 && id[t] < vocab, "token id ", id[t], " at position ", t,
                     " is out of range for vocab size ", vocab, " (table ", table.str(), ")");
  if (h == 0) return;
#pragma omp parallel for num_threads(threads_) if (t_len * h >= kParallelElems)
  for (int64_t t = 0; t < t_len; ++t)
    std::memcpy(ro.row(t), rt.row(id[t]), static_cast<size_t>(h) * sizeof(float));
}

void CpuBackend::add(const Tensor& out, const Tensor& a, const Tensor& b) {
  const Rows ro = f32_rows("add", "out", out);
  const Rows ra = f32_rows("add", "a", a);
  const Rows rb = f32_rows("add", "b", b);
  RESP_CHECK_SHAPE(out.shape() == a.shape() && b.shape() == a.shape(), "out ", out.str(), ", a ",
                   a.str(), ", b ", b.str(), " must have the same shape");
  check_alias("add", "out", ro, "a", ra, out, a);
  check_alias("add", "out", ro, "b", rb, out, b);
  auto kernel = [](float* o, const float* x, const float* y, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
  };
  const int64_t total = ro.rows * ro.cols;
  if (ro.contiguous() && ra.contiguous() && rb.contiguous()) {
    parallel_chunks(threads_, total, total, [&](int64_t s, int64_t e) {
      kernel(ro.data + s, ra.data + s, rb.data + s, e - s);
    });
    return;
  }
#pragma omp parallel for num_threads(threads_) if (total >= kParallelElems)
  for (int64_t r = 0; r < ro.rows; ++r) kernel(ro.row(r), ra.row(r), rb.row(r), ro.cols);
}

void CpuBackend::scale(const Tensor& x, float alpha) {
  const Rows rx = f32_rows("scale", "x", x);
  auto kernel = [alpha](float* p, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) p[i] *= alpha;
  };
  const int64_t total = rx.rows * rx.cols;
  if (rx.contiguous()) {
    parallel_chunks(threads_, total, total,
                    [&](int64_t s, int64_t e) { kernel(rx.data + s, e - s); });
    return;
  }
#pragma omp parallel for num_threads(threads_) if (total >= kParallelElems)
  for (int64_t r = 0; r < rx.rows; ++r) kernel(rx.row(r), rx.cols);
}

// ---- softmax ------------------------------------------------------------------------------------

void CpuBackend::softmax(const Tensor& out, const Tensor& x) {
  const Rows ro = f32_rows("softmax", "out", out);
  const Rows rx = f32_rows("softmax", "x", x);
  RESP_CHECK_SHAPE(x.rank() == 2 && out.shape() == x.shape(), "x ", x.str(), " and out ", out.str(),
                   " must be the same [R, N]");
  check_alias("softmax", "out", ro, "x", rx, out, x);
  const int64_t n = rx.cols;
  if (n == 0) return;
#pragma omp parallel for num_threads(threads_) if (rx.rows * n * 4 >= kParallelElems)
  for (int64_t r = 0; r < rx.rows; ++r) {
    float* op = ro.row(r);
    const float inv = static_cast<float>(1.0 / exp_minus_max(rx.row(r), op, n));
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) op[i] *= inv;
  }
}

void CpuBackend::log_softmax(const Tensor& out, const Tensor& x) {
  const Rows ro = f32_rows("log_softmax", "out", out);
  const Rows rx = f32_rows("log_softmax", "x", x);
  RESP_CHECK_SHAPE(x.rank() == 2 && out.shape() == x.shape(), "x ", x.str(), " and out ", out.str(),
                   " must be the same [R, N]");
  check_alias("log_softmax", "out", ro, "x", rx, out, x);
  const int64_t n = rx.cols;
  if (n == 0) return;
#pragma omp parallel for num_threads(threads_) if (rx.rows * n * 4 >= kParallelElems)
  for (int64_t r = 0; r < rx.rows; ++r) {
    const float* xp = rx.row(r);
    float* op = ro.row(r);
    const float m = row_max(xp, n);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(exp_f32(xp[i] - m));
    // log-sum-exp in double; each output is rounded to f32 once.
    const double shift = static_cast<double>(m) + std::log(sum);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) op[i] = static_cast<float>(static_cast<double>(xp[i]) - shift);
  }
}

}  // namespace resp
