// The few-rows GEMM kernel (gemm_few_rows.h), compiled once per ISA level: included by
// kernels_avx2.cpp (RESP_ISA_LEVEL 1, -mavx2 -mfma) and kernels_avx512.cpp (RESP_ISA_LEVEL 2,
// -mavx512f/bw/vl/dq -mfma), each with its own RESP_ISA_NS. No standard-library templates in
// here (see cpu_kernels.h): their instantiations would be weak symbols shared with baseline code.
//
// Paths of different widths sum each output in different orders (the lane a k lands in depends
// on the width), so AVX2 and AVX-512 results agree to rounding, not bit for bit.
#include <immintrin.h>
#include <omp.h>

#include <cstdint>
#include <utility>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/gemm_few_rows.h"

#if !defined(RESP_ISA_NS) || !defined(RESP_ISA_LEVEL)
#error "define RESP_ISA_NS and RESP_ISA_LEVEL before including gemm_few_rows_impl.h"
#endif

namespace resp::cpu::RESP_ISA_NS {

namespace {

constexpr int64_t imin(int64_t a, int64_t b) {
  return a < b ? a : b;
}
constexpr int64_t imax(int64_t a, int64_t b) {
  return a < b ? b : a;
}

// K is walked in near-equal blocks of at most kKBlockMax floats: a tile's rows of A and B (7 or 8
// rows x block) then stay in a 32 KiB L1 while every row block of A passes over the same rows of
// B. Equal blocks, because a short last block pays the per-tile overhead (zeroing and reducing
// the accumulators) for little work. Each block is a multiple of the vector width, so only the
// last block of a row has a partial vector: the lane every k lands in depends on K alone.
constexpr int64_t kKBlockMax = 768;

// Up to this many rows of A (batch 1 and 2 decode steps), against a B of at least
// kStreamMinFloats, B is read as kCols sequential streams without software prefetch: B's rows are
// cut into kCols contiguous parts and a column block takes the same row of each part, so every
// part is read front to back, a pattern the hardware prefetcher follows, and several parts keep
// more lines in flight than one. One stream already beat the prefetched blocks of adjacent rows
// (SmolLM2-135M decode step GEMMs 25-31 instead of 41-42 ms at one row, AVX-512); more streams
// beat one (the same step, 25 alternating rounds: median 44 ms as 1 stream, 42 as 2, 40 as 3, 36
// as 4 on AVX-512; AVX2 38 as 1, 36 as 3; docs/performance.md). From 4 rows on the wider tiles
// win by reusing each B vector across rows, and a small B (likely cached: the tiny model's whole
// decode step) costs more in per-row overhead than streaming saves. The tile shape never changes
// what an output sums or in which order.
constexpr int64_t kStreamRowsMax = 2;
constexpr int64_t kStreamMinFloats = int64_t{1} << 18;  // 1 MiB of weights

#if RESP_ISA_LEVEL == 2
struct Vec {
  using Reg = __m512;
  static constexpr int kWidth = 16;
  // 32 registers: a 4 x 4 tile keeps 16 accumulators, 4 rows of B and one row of A live.
  static constexpr int kRows = 4;
  static constexpr int kCols = 4;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg load_first(const float* p, int count) {
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1u), p);
  }
  static Reg fma(Reg a, Reg b, Reg acc) { return _mm512_fmadd_ps(a, b, acc); }
  // out[i] = horizontal sum of v[i], i < count, sixteen at a time through a shuffle network:
  // every level adds each vector's lanes l and l + w (w = 8, 4, 2, 1) for two vectors at once,
  // so each sum is the tree ((e0 + e8) + (e4 + e12)) + ... whatever its position in the group
  // (absent vectors are zeros and only ever meet each other). One reduction per vector through
  // memory cost as much as a 4 x 4 tile's FMAs at K = 576.
  // The shuffles through their mask forms: GCC 12's plain forms read _mm512_undefined_ps() and
  // trip -Wuninitialized in its own header.
  template <int Imm>
  static Reg quarters(Reg a, Reg b) {
    return _mm512_maskz_shuffle_f32x4(0xFFFF, a, b, Imm);
  }
  template <int Imm>
  static Reg lanes(Reg a, Reg b) {
    return _mm512_maskz_shuffle_ps(0xFFFF, a, b, Imm);
  }
  static void sums(const Reg* v, int count, float* out) {
    for (int g = 0; g < count; g += 16) {
      Reg x[16];
      for (int i = 0; i < 16; ++i) x[i] = g + i < count ? v[g + i] : _mm512_setzero_ps();
      // w = 8: y[p] = [x[2p] lanes 0-7 + 8-15 | x[2p+1] lanes 0-7 + 8-15].
      Reg y[8];
      for (int p = 0; p < 8; ++p)
        y[p] = _mm512_add_ps(quarters<0x44>(x[2 * p], x[2 * p + 1]),
                             quarters<0xEE>(x[2 * p], x[2 * p + 1]));
      // w = 4: z[q] holds, per 128-bit quarter, lanes l + (l + 4) of x[4q], x[4q+1], x[4q+2],
      // x[4q+3] in that order.
      Reg z[4];
      for (int q = 0; q < 4; ++q)
        z[q] = _mm512_add_ps(quarters<0x88>(y[2 * q], y[2 * q + 1]),
                             quarters<0xDD>(y[2 * q], y[2 * q + 1]));
      // w = 2 and w = 1 inside each 128-bit quarter.
      Reg u[2];
      for (int r = 0; r < 2; ++r)
        u[r] =
            _mm512_add_ps(lanes<0x44>(z[2 * r], z[2 * r + 1]), lanes<0xEE>(z[2 * r], z[2 * r + 1]));
      const Reg s = _mm512_add_ps(lanes<0x88>(u[0], u[1]), lanes<0xDD>(u[0], u[1]));
      alignas(64) float t[16];
      _mm512_store_ps(t, s);
      // Quarter c of s holds x[c], x[4 + c], x[8 + c], x[12 + c] (lanes 4c .. 4c + 3).
      for (int i = 0; i < 16 && g + i < count; ++i) out[g + i] = t[(i % 4) * 4 + i / 4];
    }
  }
};
#elif RESP_ISA_LEVEL == 1
struct Vec {
  using Reg = __m256;
  static constexpr int kWidth = 8;
  // 16 registers: a 4 x 3 tile keeps 12 accumulators, 3 rows of B and one row of A live.
  static constexpr int kRows = 4;
  static constexpr int kCols = 3;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg load_first(const float* p, int count) {
    // Masked-off lanes read as 0 and are never touched in memory (no overrun past a row's end).
    alignas(32) static constexpr int32_t kMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                      0,  0,  0,  0,  0,  0,  0,  0};
    const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMask + 8 - count));
    return _mm256_maskload_ps(p, mask);
  }
  static Reg fma(Reg a, Reg b, Reg acc) { return _mm256_fmadd_ps(a, b, acc); }
  // out[i] = horizontal sum of v[i], i < count, eight at a time through a tree of hadds: each
  // sum is ((e0 + e1) + (e2 + e3)) + ((e4 + e5) + (e6 + e7)) whatever its position in the group
  // (absent vectors are zeros), in a tenth of the instructions of one reduction per vector.
  static void sums(const Reg* v, int count, float* out) {
    for (int g = 0; g < count; g += 8) {
      Reg x[8];
      for (int i = 0; i < 8; ++i) x[i] = g + i < count ? v[g + i] : _mm256_setzero_ps();
      const __m256 q0 = _mm256_hadd_ps(_mm256_hadd_ps(x[0], x[1]), _mm256_hadd_ps(x[2], x[3]));
      const __m256 q1 = _mm256_hadd_ps(_mm256_hadd_ps(x[4], x[5]), _mm256_hadd_ps(x[6], x[7]));
      // Lane 128-bit halves hold the sums over elements 0..3 and 4..7 of each vector.
      const __m256 s =
          _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
      alignas(32) float t[8];
      _mm256_store_ps(t, s);
      for (int i = 0; i < 8 && g + i < count; ++i) out[g + i] = t[i];
    }
  }
};
#else
#error "gemm_few_rows_impl.h: RESP_ISA_LEVEL must be 1 (AVX2) or 2 (AVX-512)"
#endif

// Walks the 64-byte lines of the next column block's rows of B, column-major (the order they
// will be used), issuing software prefetches a few at a time.
struct NextRows {
  const float* base = nullptr;
  int64_t ldb = 0;
  int64_t rows = 0;
  int64_t left = 0;  // lines not yet requested
  int64_t row = 0;
  int64_t col = 0;
  void fetch_one() {
    if (left == 0) return;
    _mm_prefetch(reinterpret_cast<const char*>(base + row * ldb + col), _MM_HINT_T0);
    if (++row == rows) row = 0, col += 16;
    --left;
  }
};

// part[i][j] (+)= over k in [k0, k1) of a[i][k] * b[j][k], for an MR x NR tile. `ap` is
// this row block's packed A from k0 on (see pack_rows). The first K block stores, later ones
// add: every output sees the same sequence of operations whatever tile shape it was computed in.
// It also requests `budget` lines of `next`, one every few steps of its loop: a burst of
// prefetches ahead of the tile stalled on the full miss queue instead of overlapping.
template <int MR, int NR>
void tile(const float* ap, const float* b, int64_t ldb, int64_t k0, int64_t k1, float* part,
          bool first, NextRows* next, int64_t budget) {
  using Reg = Vec::Reg;
  const int64_t steps = (k1 - k0) / Vec::kWidth;
  const int64_t every = budget > 0 ? imax(1, steps / budget) : steps + 1;
  int64_t countdown = every;
  Reg acc[MR][NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) acc[i][j] = Vec::zero();
  int64_t k = k0;
  for (; k + Vec::kWidth <= k1; k += Vec::kWidth, ap += MR * Vec::kWidth) {
    if (--countdown == 0) {
      countdown = every;
      next->fetch_one();
    }
    Reg bv[NR];
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) {
      bv[j] = Vec::load(b + j * ldb + k);
      // Opaque to the optimiser (here and for A below): otherwise GCC re-reads one operand as
      // a memory operand of every FMA (MR x NR loads per step instead of MR + NR), and the
      // loads, not the FMAs, set the pace.
      asm("" : "+x"(bv[j]));
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      Reg av = Vec::load(ap + i * Vec::kWidth);
      asm("" : "+x"(av));
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) acc[i][j] = Vec::fma(av, bv[j], acc[i][j]);
    }
  }
  if (k < k1) {  // the row's last partial vector: B masked, A already zero-padded
    const int rest = static_cast<int>(k1 - k);
    Reg bv[NR];
#pragma GCC unroll 16
    for (int j = 0; j < NR; ++j) bv[j] = Vec::load_first(b + j * ldb + k, rest);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const Reg av = Vec::load(ap + i * Vec::kWidth);
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) acc[i][j] = Vec::fma(av, bv[j], acc[i][j]);
    }
  }
  float s[MR * NR];
  Vec::sums(&acc[0][0], MR * NR, s);
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j)
      part[i * Vec::kCols + j] = first ? s[i * NR + j] : part[i * Vec::kCols + j] + s[i * NR + j];
}

using TileFn = void (*)(const float*, const float*, int64_t, int64_t, int64_t, float*, bool,
                        NextRows*, int64_t);

// Every tile shape up to kRows x kCols, indexed [(mr - 1) * kCols + (nr - 1)]: edge tiles use
// the smaller shapes instead of padding.
struct Tiles {
  TileFn fn[Vec::kRows * Vec::kCols];
};
template <int... I>
constexpr Tiles make_tiles(std::integer_sequence<int, I...>) {
  return {{&tile<I / Vec::kCols + 1, I % Vec::kCols + 1>...}};
}
constexpr Tiles kTiles = make_tiles(std::make_integer_sequence<int, Vec::kRows * Vec::kCols>{});

// Packs rows [0, mc) of A for the tiles: row block r (kRows rows, fewer in the last) holds, for
// each vector step of K, its rows' vectors side by side, zero-padded past K. The tiles then read
// A as one sequential stream: no power-of-two row strides aliasing in L1, and the hardware
// prefetcher follows it (four scattered row segments per tile defeated it).
void pack_rows(const float* a, int64_t lda, int64_t mc, int64_t k, int64_t steps, float* packed) {
  for (int64_t i0 = 0; i0 < mc; i0 += Vec::kRows) {
    const int64_t mr = imin(Vec::kRows, mc - i0);
    float* block = packed + i0 * steps * Vec::kWidth;
    for (int64_t s = 0; s < steps; ++s)
      for (int64_t i = 0; i < mr; ++i) {
        const float* src = a + (i0 + i) * lda + s * Vec::kWidth;
        float* dst = block + (s * mr + i) * Vec::kWidth;
        const int64_t count = imin(Vec::kWidth, k - s * Vec::kWidth);
        for (int64_t j = 0; j < count; ++j) dst[j] = src[j];
        for (int64_t j = count; j < Vec::kWidth; ++j) dst[j] = 0.0f;
      }
  }
}

// One chunk of at most kGemmFewRowsMax rows of a call, with its K blocking worked out once.
struct Chunk {
  const float* packed;  // the chunk's rows of A (pack_rows)
  const float* b;
  int64_t ldb;
  float* c;  // the chunk's first row of C
  int64_t ldc;
  int64_t mc, n, k;
  int64_t steps;    // vector steps per row of A: ceil(k / width)
  int64_t k_block;  // floats per K block (a multiple of the width)
  int64_t k_blocks;
  int64_t stride;  // rows of B between a block's kCols columns: 1, or a stream's length
  int64_t blocks;  // column blocks covering B
  float alpha, beta;
};

Chunk make_chunk(const float* packed, const float* b, int64_t ldb, float* c, int64_t ldc,
                 int64_t mc, int64_t n, int64_t k, int64_t steps, float alpha, float beta) {
  const int64_t k_blocks = (k + kKBlockMax - 1) / kKBlockMax;
  const int64_t k_block =
      ((k + k_blocks - 1) / k_blocks + Vec::kWidth - 1) / Vec::kWidth * Vec::kWidth;
  // Streaming: a stride of one stream's rows (so `stride` blocks); otherwise adjacent rows.
  const bool streaming = mc <= kStreamRowsMax && n * k >= kStreamMinFloats;
  const int64_t stride = streaming ? (n + Vec::kCols - 1) / Vec::kCols : 1;
  const int64_t blocks = streaming ? stride : (n + Vec::kCols - 1) / Vec::kCols;
  return {packed, b, ldb, c, ldc, mc, n, k, steps, k_block, k_blocks, stride, blocks, alpha, beta};
}

// The chunk's rows against column block `blk`: rows j0, j0 + stride, ... of B (at most kCols).
void column_block(const Chunk& x, int64_t blk) {
  const int64_t j0 = x.stride == 1 ? blk * Vec::kCols : blk;
  // Columns past n: only in the last block (stride 1), or in the last stream (stride > 1, whose
  // rows all come after the other streams' rows).
  const int64_t nr = imin(Vec::kCols, (x.n - j0 + x.stride - 1) / x.stride);
  const int64_t ldb = x.ldb * x.stride;  // the tiles' distance between columns
  float part[kGemmFewRowsMax * Vec::kCols];
  const float* bj = x.b + j0 * x.ldb;
  // The next column block's rows of B come from DRAM (each weight is read once per call): fetch
  // them while this block computes, spread evenly over its tiles, so memory and arithmetic
  // overlap without flushing this block's rows from L1. (Not when streaming.)
  NextRows next;
  next.base = bj + nr * x.ldb;
  next.ldb = x.ldb;
  next.rows = x.stride != 1 ? 0 : imax(0, imin(Vec::kCols, x.n - j0 - nr));
  next.left = next.rows * ((x.k + 15) / 16);
  const int64_t tiles = x.k_blocks * ((x.mc + Vec::kRows - 1) / Vec::kRows);
  const int64_t per_tile = (next.left + tiles - 1) / tiles;
  for (int64_t k0 = 0; k0 < x.k; k0 += x.k_block) {
    const int64_t k1 = imin(x.k, k0 + x.k_block);
    for (int64_t i0 = 0; i0 < x.mc; i0 += Vec::kRows) {
      const int64_t mr = imin(Vec::kRows, x.mc - i0);
      const float* ap =
          x.packed + i0 * x.steps * Vec::kWidth + (k0 / Vec::kWidth) * mr * Vec::kWidth;
      kTiles.fn[(mr - 1) * Vec::kCols + (nr - 1)](ap, bj, ldb, k0, k1, part + i0 * Vec::kCols,
                                                  k0 == 0, &next, per_tile);
    }
  }
  while (next.left > 0) next.fetch_one();  // tiles too short to place them all
  for (int64_t i = 0; i < x.mc; ++i) {
    float* ci = x.c + i * x.ldc + j0;
    const float* pi = part + i * Vec::kCols;
    for (int64_t j = 0; j < nr; ++j) {
      float& out = ci[j * x.stride];
      out = x.beta == 0.0f ? x.alpha * pi[j] : x.alpha * pi[j] + x.beta * out;
    }
  }
}

}  // namespace

const int gemm_width = Vec::kWidth;

void gemm_few_rows(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                   int64_t m, int64_t n, int64_t k, float alpha, float beta, int threads,
                   float* packed) {
  if (m <= 0 || n <= 0) return;
  const int64_t steps = (k + Vec::kWidth - 1) / Vec::kWidth;
  // Chunks of at most kGemmFewRowsMax rows keep A's rows in L2 while B streams past once per chunk.
  for (int64_t m0 = 0; m0 < m; m0 += kGemmFewRowsMax) {
    const int64_t mc = imin(kGemmFewRowsMax, m - m0);
    pack_rows(a + m0 * lda, lda, mc, k, steps, packed);
    const Chunk chunk = make_chunk(packed, b, ldb, c + m0 * ldc, ldc, mc, n, k, steps, alpha, beta);
    // The caller decides whether the call is worth threads (cpu_parallel.h).
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
    for (int64_t blk = 0; blk < chunk.blocks; ++blk) column_block(chunk, blk);
  }
}

}  // namespace resp::cpu::RESP_ISA_NS
