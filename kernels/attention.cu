// Causal grouped-query attention in f32: prefill (tiled, online softmax), decode (split keys,
// then a combine pass) and backward (recompute with the saved log-sum-exp, FlashAttention-2
// style: one kernel for dQ over key tiles, one for dK/dV over query tiles).
//
// Thread layout shared by the tiled kernels: 4 warps per block, each warp owns 4 rows (query
// rows in the forward/dQ kernels, key rows in the dK/dV kernel); lanes index the other side of
// the score tile (32 keys or 32 queries) while scores are formed, then index head dims while
// the tile is multiplied into the accumulators (probabilities are broadcast with shuffles).
// Head dims are padded to W = 32 * NC in shared memory and registers, so every loop is
// guard-free; NC is 2, 4 or 8 (head_dim <= 64, 128, 256). Odd T, S, D and unequal GQA groups
// (explicit kv_of_head) need no special cases: everything past a size reads zeros and is never
// written back.
#include <cstdint>

#include "common.cuh"
#include "kernels.h"

namespace resp::kernels {

namespace {

constexpr int kWarps = 4;
constexpr int kRows = 4;             // rows per warp
constexpr int kBQ = kWarps * kRows;  // query rows per forward/dQ block
constexpr int kBK = 32;              // keys per tile (one per lane)
constexpr int kThreads = kWarps * 32;

__device__ __forceinline__ int kv_head(const AttnArgs& a, int64_t h, unsigned* status) {
  const int g = a.kv_of_head[h];
  if (g < 0 || g >= a.Hkv) {
    if (status && threadIdx.x == 0) atomicOr(status, kBadKvHead);
    return 0;
  }
  return g;
}

// Loads rows [r0, r0 + n) of a [*, heads, D] tensor's head `hd` into a [n][ld] tile, zero past
// `rows_valid` and past D (up to W).
__device__ __forceinline__ void load_tile(float* dst, int ld, int n, int W, const float* src,
                                          int64_t src_ld, int64_t r0, int64_t rows_valid,
                                          int64_t hd, int D, float mul) {
  for (int idx = threadIdx.x; idx < n * W; idx += blockDim.x) {
    const int r = idx / W, d = idx - r * W;
    const int64_t row = r0 + r;
    dst[r * ld + d] = (row < rows_valid && d < D) ? src[row * src_ld + hd * D + d] * mul : 0.0f;
  }
}

// ---- forward, prefill ---------------------------------------------------------------------

size_t fwd_smem(int D, int W) {
  return sizeof(float) * static_cast<size_t>(kBQ * D + kBK * (W + 1) + kBK * W);
}

template <int NC>
__global__ void __launch_bounds__(kThreads)
    attn_fwd_kernel(AttnArgs a, float* out, int64_t ldo, float* lse, unsigned* status) {
  constexpr int W = NC * 32;
  extern __shared__ float sm[];
  const int D = static_cast<int>(a.D);
  float* sQ = sm;                  // [kBQ][D], pre-scaled
  float* sK = sQ + kBQ * D;        // [kBK][W + 1]
  float* sV = sK + kBK * (W + 1);  // [kBK][W]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t h = blockIdx.y;
  // Latest query tiles (most keys) first, so the causal triangle balances across SMs.
  const int64_t t0 = (gridDim.x - 1 - blockIdx.x) * int64_t{kBQ};
  const int g = kv_head(a, h, status);
  for (int idx = threadIdx.x; idx < kBQ * D; idx += blockDim.x) {
    const int r = idx / D, d = idx - r * D;
    const int64_t t = t0 + r;
    sQ[idx] = t < a.T ? a.q[t * a.ldq + h * D + d] * a.scale : 0.0f;
  }
  const int64_t key_end = a.q_offset + min(a.T, t0 + kBQ);  // exclusive, <= S

  float m[kRows], l[kRows], acc[kRows][NC];
  int64_t lim[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t t = t0 + warp * kRows + r;
    lim[r] = t < a.T ? a.q_offset + t + 1 : 0;
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[r][c] = 0.0f;
  }
  const float* qw = sQ + warp * kRows * D;
  for (int64_t j0 = 0; j0 < key_end; j0 += kBK) {
    __syncthreads();  // the previous tile is consumed (and sQ is visible on the first pass)
    load_tile(sK, W + 1, kBK, W, a.k, a.ldk, j0, key_end, g, D, 1.0f);
    load_tile(sV, W, kBK, W, a.v, a.ldv, j0, key_end, g, D, 1.0f);
    __syncthreads();
    float s[kRows] = {};
    const float* kr = sK + lane * (W + 1);
    for (int d = 0; d < D; ++d) {
      const float kv = kr[d];
#pragma unroll
      for (int r = 0; r < kRows; ++r) s[r] += qw[r * D + d] * kv;
    }
    const int64_t j = j0 + lane;
    float p[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      p[r] = 0.0f;
      if (j0 >= lim[r]) continue;  // warp-uniform: the whole tile is past this row's limit
      const float sr = j < lim[r] ? s[r] : -INFINITY;
      const float mn = fmaxf(m[r], warp_max(sr));  // finite: key j0 is visible
      p[r] = expf(sr - mn);
      const float corr = expf(m[r] - mn);  // 0 on the first visible tile
      l[r] = l[r] * corr + warp_sum(p[r]);
#pragma unroll
      for (int c = 0; c < NC; ++c) acc[r][c] *= corr;
      m[r] = mn;
    }
    for (int jj = 0; jj < kBK; ++jj) {
      float pb[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) pb[r] = __shfl_sync(kFullMask, p[r], jj);
      const float* vr = sV + jj * W + lane;
#pragma unroll
      for (int c = 0; c < NC; ++c) {
        const float vv = vr[32 * c];
#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[r][c] += pb[r] * vv;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t t = t0 + warp * kRows + r;
    if (t >= a.T) continue;
    const float inv = 1.0f / l[r];
    float* o = out + t * ldo + h * D;
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d = lane + 32 * c;
      if (d < D) o[d] = acc[r][c] * inv;
    }
    if (lse && lane == 0) lse[t * a.Hq + h] = m[r] + logf(l[r]);
  }
}

// ---- forward, decode (few query rows, long key range) -----------------------------------

// One block's share of a decode item (a query row and head): keys [jb, je) of the head's KV
// rows k/v (row strides ldk/ldv, KV head g), 4 warps striding over them, merged in shared
// memory. Unsplit (part == nullptr) the normalised row goes to o; split, part [D + 2] receives
// (max, sum, unnormalised row) for the combine kernel. No key at all gives a zero row (or an
// empty partial), never NaN. Every thread of the block must call it.
template <int NC>
__device__ __forceinline__ void decode_block(const float* q, float scale, const float* k,
                                             int64_t ldk, const float* v, int64_t ldv, int g, int D,
                                             int64_t jb, int64_t je, float* o, float* part) {
  constexpr int W = NC * 32;
  __shared__ float sq[W];
  __shared__ float s_m[kWarps], s_l[kWarps];
  __shared__ float s_acc[kWarps][W];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int d = threadIdx.x; d < W; d += blockDim.x) sq[d] = d < D ? q[d] * scale : 0.0f;
  __syncthreads();
  float m = -INFINITY, l = 0.0f, acc[NC];
#pragma unroll
  for (int c = 0; c < NC; ++c) acc[c] = 0.0f;
  for (int64_t j = jb + warp; j < je; j += kWarps) {
    const float* kr = k + j * ldk + g * D;
    const float* vr = v + j * ldv + g * D;
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d = lane + 32 * c;
      if (d < D) s += sq[d] * kr[d];
    }
    s = warp_sum(s);
    const float mn = fmaxf(m, s);
    const float corr = expf(m - mn), p = expf(s - mn);
    l = l * corr + p;
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d = lane + 32 * c;
      acc[c] = acc[c] * corr + (d < D ? p * vr[d] : 0.0f);
    }
    m = mn;
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int c = 0; c < NC; ++c) s_acc[warp][lane + 32 * c] = acc[c];
  __syncthreads();
  float M = -INFINITY;
  for (int w = 0; w < kWarps; ++w) M = fmaxf(M, s_m[w]);
  float f[kWarps], L = 0.0f;
  for (int w = 0; w < kWarps; ++w) {
    f[w] = s_m[w] == -INFINITY ? 0.0f : expf(s_m[w] - M);  // warps that saw no key add nothing
    L += s_l[w] * f[w];
  }
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float val = 0.0f;
    for (int w = 0; w < kWarps; ++w) val += s_acc[w][d] * f[w];
    if (part == nullptr)
      o[d] = L > 0.0f ? val / L : 0.0f;
    else
      part[2 + d] = val;
  }
  if (part != nullptr && threadIdx.x == 0) {
    part[0] = M;
    part[1] = L;
  }
}

// Blocks (split, head, row); each covers `kps` keys.
template <int NC>
__global__ void __launch_bounds__(kThreads)
    attn_decode_kernel(AttnArgs a, int64_t kps, float* part, float* out, int64_t ldo,
                       unsigned* status) {
  const int D = static_cast<int>(a.D);
  const int64_t sp = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
  const int64_t splits = gridDim.x;
  const int g = kv_head(a, h, status);
  const int64_t lim = a.q_offset + t + 1;
  const int64_t jb = sp * kps, je = min(lim, jb + kps);
  float* p = splits > 1 ? part + ((t * a.Hq + h) * splits + sp) * (D + 2) : nullptr;
  decode_block<NC>(a.q + t * a.ldq + h * D, a.scale, a.k, a.ldk, a.v, a.ldv, g, D, jb, je,
                   out + t * ldo + h * D, p);
}

// ---- forward, batched decode (one query row per sequence, each in its own cache slot) ----

__device__ __forceinline__ bool cache_row_ok(const DecodeBatchArgs& a, int64_t b) {
  const int64_t slot = a.slots[b], pos = a.positions[b];
  return slot >= 0 && slot < a.N && pos >= 0 && pos < a.L;
}

// Block b writes row b's new key and value into its slot at its position. Block b also compares
// its slot with those of rows before it: the host never sees the slots (reading them would
// synchronise every layer of every step), and B^2/2 compares are nothing next to the append.
__global__ void kv_append_kernel(DecodeBatchArgs a, unsigned* status) {
  const int64_t b = blockIdx.x;
  if (!cache_row_ok(a, b)) {
    if (threadIdx.x == 0) atomicOr(status, kBadCacheRow);
    return;
  }
  for (int64_t j = threadIdx.x; j < b; j += blockDim.x)
    if (a.slots[j] == a.slots[b]) atomicOr(status, kDuplicateSlot);
  const int64_t row = a.Hkv * a.D;
  const int64_t at = (a.slots[b] * a.L + a.positions[b]) * row;
  for (int64_t i = threadIdx.x; i < row; i += blockDim.x) {
    a.k_cache[at + i] = a.k_new[b * a.ldkn + i];
    a.v_cache[at + i] = a.v_new[b * a.ldvn + i];
  }
}

// Blocks (split, head, row b): keys [sp * kps, ...) of row b's slot, up to its position.
template <int NC>
__global__ void __launch_bounds__(kThreads)
    attn_decode_batch_kernel(DecodeBatchArgs a, int64_t kps, float* part, float* out, int64_t ldo,
                             unsigned* status) {
  const int D = static_cast<int>(a.D);
  const int64_t sp = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int64_t splits = gridDim.x;
  int g = a.kv_of_head[h];
  if (g < 0 || g >= a.Hkv) {
    if (threadIdx.x == 0) atomicOr(status, kBadKvHead);
    g = 0;
  }
  // A bad row (reported by the append kernel) attends nothing: a zero row, no stray reads.
  const bool ok = cache_row_ok(a, b);
  const int64_t lim = ok ? a.positions[b] + 1 : 0;
  const int64_t jb = sp * kps, je = min(lim, jb + kps);
  const int64_t row = a.Hkv * a.D;
  const int64_t base = ok ? a.slots[b] * a.L * row : 0;
  float* p = splits > 1 ? part + ((b * a.Hq + h) * splits + sp) * (D + 2) : nullptr;
  decode_block<NC>(a.q + b * a.ldq + h * D, a.scale, a.k_cache + base, row, a.v_cache + base, row,
                   g, D, jb, je, out + b * ldo + h * D, p);
}

__global__ void attn_combine_kernel(AttnArgs a, int64_t splits, const float* part, float* out,
                                    int64_t ldo) {
  const int64_t h = blockIdx.x, t = blockIdx.y;
  const int D = static_cast<int>(a.D);
  const float* base = part + (t * a.Hq + h) * splits * (D + 2);
  float M = -INFINITY;
  for (int64_t s = 0; s < splits; ++s) M = fmaxf(M, base[s * (D + 2)]);
  float L = 0.0f;
  for (int64_t s = 0; s < splits; ++s) {
    const float ms = base[s * (D + 2)];
    if (ms != -INFINITY) L += base[s * (D + 2) + 1] * expf(ms - M);
  }
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float v = 0.0f;
    for (int64_t s = 0; s < splits; ++s) {
      const float ms = base[s * (D + 2)];
      if (ms != -INFINITY) v += base[s * (D + 2) + 2 + d] * expf(ms - M);
    }
    out[t * ldo + h * D + d] = L > 0.0f ? v / L : 0.0f;
  }
}

// ---- backward -----------------------------------------------------------------------------

// delta[t, h] = sum_d dout * o (one warp per (t, h)).
__global__ void attn_delta_kernel(float* delta, const float* dout, const float* o, int64_t n,
                                  int64_t D) {
  const int64_t item = blockIdx.x * int64_t{kWarps} + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (item >= n) return;
  float s = 0.0f;
  for (int64_t d = lane; d < D; d += 32) s += dout[item * D + d] * o[item * D + d];
  s = warp_sum(s);
  if (lane == 0) delta[item] = s;
}

size_t dq_smem(int D, int W) {
  return sizeof(float) * static_cast<size_t>(2 * kBQ * D + 2 * kBK * (W + 1));
}

template <int NC>
__global__ void __launch_bounds__(kThreads)
    attn_dq_kernel(AttnArgs a, float* dq, const float* dout, const float* lse, const float* delta) {
  constexpr int W = NC * 32;
  extern __shared__ float sm[];
  const int D = static_cast<int>(a.D);
  float* sQ = sm;                  // [kBQ][D], pre-scaled
  float* sO = sQ + kBQ * D;        // [kBQ][D] (dout)
  float* sK = sO + kBQ * D;        // [kBK][W + 1]
  float* sV = sK + kBK * (W + 1);  // [kBK][W + 1]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t h = blockIdx.y;
  const int64_t t0 = (gridDim.x - 1 - blockIdx.x) * int64_t{kBQ};
  const int g = kv_head(a, h, nullptr);
  const int64_t ld = a.Hq * D;  // q, dq, dout are contiguous here
  for (int idx = threadIdx.x; idx < kBQ * D; idx += blockDim.x) {
    const int r = idx / D, d = idx - r * D;
    const int64_t t = t0 + r;
    const bool ok = t < a.T;
    sQ[idx] = ok ? a.q[t * ld + h * D + d] * a.scale : 0.0f;
    sO[idx] = ok ? dout[t * ld + h * D + d] : 0.0f;
  }
  const int64_t key_end = a.q_offset + min(a.T, t0 + kBQ);
  float acc[kRows][NC], lse_r[kRows], del_r[kRows];
  int64_t lim[kRows];
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t t = t0 + warp * kRows + r;
    const bool ok = t < a.T;
    lim[r] = ok ? a.q_offset + t + 1 : 0;
    lse_r[r] = ok ? lse[t * a.Hq + h] : 0.0f;
    del_r[r] = ok ? delta[t * a.Hq + h] : 0.0f;
#pragma unroll
    for (int c = 0; c < NC; ++c) acc[r][c] = 0.0f;
  }
  const float* qw = sQ + warp * kRows * D;
  const float* ow = sO + warp * kRows * D;
  for (int64_t j0 = 0; j0 < key_end; j0 += kBK) {
    __syncthreads();
    load_tile(sK, W + 1, kBK, W, a.k, a.ldk, j0, key_end, g, D, 1.0f);
    load_tile(sV, W + 1, kBK, W, a.v, a.ldv, j0, key_end, g, D, 1.0f);
    __syncthreads();
    float s[kRows] = {}, dp[kRows] = {};
    const float* kr = sK + lane * (W + 1);
    const float* vr = sV + lane * (W + 1);
    for (int d = 0; d < D; ++d) {
      const float kv = kr[d], vv = vr[d];
#pragma unroll
      for (int r = 0; r < kRows; ++r) {
        s[r] += qw[r * D + d] * kv;
        dp[r] += ow[r * D + d] * vv;
      }
    }
    const int64_t j = j0 + lane;
    float ds[kRows];
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
      const float p = j < lim[r] ? expf(s[r] - lse_r[r]) : 0.0f;
      ds[r] = p * (dp[r] - del_r[r]);
    }
    for (int jj = 0; jj < kBK; ++jj) {
      float db[kRows];
#pragma unroll
      for (int r = 0; r < kRows; ++r) db[r] = __shfl_sync(kFullMask, ds[r], jj);
      const float* krow = sK + jj * (W + 1) + lane;
#pragma unroll
      for (int c = 0; c < NC; ++c) {
        const float kv = krow[32 * c];
#pragma unroll
        for (int r = 0; r < kRows; ++r) acc[r][c] += db[r] * kv;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t t = t0 + warp * kRows + r;
    if (t >= a.T) continue;
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d = lane + 32 * c;
      if (d < D) dq[t * ld + h * D + d] = acc[r][c] * a.scale;
    }
  }
}

constexpr int kBKV = kWarps * kRows;  // key rows per dK/dV block
constexpr int kBT = 32;               // query rows per tile (one per lane)

size_t dkv_smem(int W) {
  return sizeof(float) * static_cast<size_t>(2 * kBKV * W + 2 * kBT * (W + 1) + 2 * kBT);
}

template <int NC>
__global__ void __launch_bounds__(kThreads)
    attn_dkv_kernel(AttnArgs a, float* dk, float* dv, const float* dout, const float* lse,
                    const float* delta) {
  constexpr int W = NC * 32;
  extern __shared__ float sm[];
  const int D = static_cast<int>(a.D);
  float* sK = sm;                  // [kBKV][W]
  float* sV = sK + kBKV * W;       // [kBKV][W]
  float* sQ = sV + kBKV * W;       // [kBT][W + 1]
  float* sO = sQ + kBT * (W + 1);  // [kBT][W + 1] (dout)
  float* sL = sO + kBT * (W + 1);  // [kBT] lse
  float* sD = sL + kBT;            // [kBT] delta
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t g = blockIdx.y;
  const int64_t j0 = blockIdx.x * int64_t{kBKV};
  const int64_t n_keys = a.q_offset + a.T;
  const int64_t ldq = a.Hq * D, ldk = a.Hkv * D;
  load_tile(sK, W, kBKV, W, a.k, a.ldk, j0, n_keys, g, D, 1.0f);
  load_tile(sV, W, kBKV, W, a.v, a.ldv, j0, n_keys, g, D, 1.0f);
  float ak[kRows][NC], av[kRows][NC];
#pragma unroll
  for (int r = 0; r < kRows; ++r)
#pragma unroll
    for (int c = 0; c < NC; ++c) ak[r][c] = av[r][c] = 0.0f;
  const float* kw = sK + warp * kRows * W;
  const float* vw = sV + warp * kRows * W;
  // Query row t sees key j iff j <= q_offset + t: this block's first key needs t >= j0 - q_offset.
  const int64_t t_begin = j0 > a.q_offset ? j0 - a.q_offset : 0;
  if (j0 < n_keys) {
    for (int64_t h = 0; h < a.Hq; ++h) {
      if (a.kv_of_head[h] != g) continue;  // uniform over the block
      for (int64_t t0 = t_begin; t0 < a.T; t0 += kBT) {
        __syncthreads();
        load_tile(sQ, W + 1, kBT, W, a.q, ldq, t0, a.T, h, D, 1.0f);
        load_tile(sO, W + 1, kBT, W, dout, ldq, t0, a.T, h, D, 1.0f);
        if (threadIdx.x < kBT) {
          const int64_t t = t0 + threadIdx.x;
          sL[threadIdx.x] = t < a.T ? lse[t * a.Hq + h] : 0.0f;
          sD[threadIdx.x] = t < a.T ? delta[t * a.Hq + h] : 0.0f;
        }
        __syncthreads();
        float s[kRows] = {}, dp[kRows] = {};
        const float* qr = sQ + lane * (W + 1);
        const float* orow = sO + lane * (W + 1);
        for (int d = 0; d < D; ++d) {
          const float qv = qr[d], ov = orow[d];
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            s[r] += kw[r * W + d] * qv;
            dp[r] += vw[r * W + d] * ov;
          }
        }
        const int64_t t = t0 + lane;
        float p[kRows], ds[kRows];
#pragma unroll
        for (int r = 0; r < kRows; ++r) {
          const int64_t j = j0 + warp * kRows + r;
          const bool vis = t < a.T && j <= a.q_offset + t;
          p[r] = vis ? expf(s[r] * a.scale - sL[lane]) : 0.0f;
          ds[r] = p[r] * (dp[r] - sD[lane]);
        }
        for (int tt = 0; tt < kBT; ++tt) {
          float pb[kRows], db[kRows];
#pragma unroll
          for (int r = 0; r < kRows; ++r) {
            pb[r] = __shfl_sync(kFullMask, p[r], tt);
            db[r] = __shfl_sync(kFullMask, ds[r], tt);
          }
          const float* qrow = sQ + tt * (W + 1) + lane;
          const float* orr = sO + tt * (W + 1) + lane;
#pragma unroll
          for (int c = 0; c < NC; ++c) {
            const float qv = qrow[32 * c], ov = orr[32 * c];
#pragma unroll
            for (int r = 0; r < kRows; ++r) {
              av[r][c] += pb[r] * ov;
              ak[r][c] += db[r] * qv;
            }
          }
        }
      }
    }
  }
  // Keys no query saw (j >= q_offset + T) keep zero accumulators: written as zeros.
#pragma unroll
  for (int r = 0; r < kRows; ++r) {
    const int64_t j = j0 + warp * kRows + r;
    if (j >= a.S) continue;
#pragma unroll
    for (int c = 0; c < NC; ++c) {
      const int d = lane + 32 * c;
      if (d < D) {
        dk[j * ldk + g * D + d] = ak[r][c] * a.scale;
        dv[j * ldk + g * D + d] = av[r][c];
      }
    }
  }
}

int nc_for(int64_t D) {
  return D <= 64 ? 2 : (D <= 128 ? 4 : 8);
}

template <int NC>
void set_smem_limits() {
  constexpr int W = NC * 32;
  cudaFuncSetAttribute(attn_fwd_kernel<NC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(fwd_smem(W, W)));
  cudaFuncSetAttribute(attn_dq_kernel<NC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(dq_smem(W, W)));
  cudaFuncSetAttribute(attn_dkv_kernel<NC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(dkv_smem(W)));
}

// Decode geometry: enough (split, head, row) blocks to fill the GPU, at least 64 keys each.
int64_t decode_splits(const AttnArgs& a) {
  const int64_t n_keys = a.q_offset + a.T;
  const int64_t items = a.T * a.Hq;
  int64_t splits = ceil_div(256, items);
  const int64_t max_splits = ceil_div(n_keys, 64);
  if (splits > max_splits) splits = max_splits;
  return splits < 1 ? 1 : splits;
}

constexpr int64_t kDecodeRows = 8;  // at most this many query rows use the decode kernel

template <int NC>
void launch_fwd(float* out, int64_t ldo, float* lse, const AttnArgs& a, float* scratch,
                unsigned* status, cudaStream_t s) {
  if (lse == nullptr && a.T <= kDecodeRows) {
    const int64_t splits = decode_splits(a);
    const int64_t kps = ceil_div(a.q_offset + a.T, splits);
    const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(a.Hq),
                    static_cast<unsigned>(a.T));
    attn_decode_kernel<NC><<<grid, kThreads, 0, s>>>(a, kps, scratch, out, ldo, status);
    if (splits > 1)
      attn_combine_kernel<<<dim3(static_cast<unsigned>(a.Hq), static_cast<unsigned>(a.T)), 128, 0,
                            s>>>(a, splits, scratch, out, ldo);
    return;
  }
  const dim3 grid(static_cast<unsigned>(ceil_div(a.T, kBQ)), static_cast<unsigned>(a.Hq));
  attn_fwd_kernel<NC>
      <<<grid, kThreads, fwd_smem(static_cast<int>(a.D), NC * 32), s>>>(a, out, ldo, lse, status);
}

template <int NC>
void launch_bwd(float* dq, float* dk, float* dv, const float* dout, const float* lse,
                const float* delta, const AttnArgs& a, cudaStream_t s) {
  const dim3 gq(static_cast<unsigned>(ceil_div(a.T, kBQ)), static_cast<unsigned>(a.Hq));
  attn_dq_kernel<NC>
      <<<gq, kThreads, dq_smem(static_cast<int>(a.D), NC * 32), s>>>(a, dq, dout, lse, delta);
  const dim3 gkv(static_cast<unsigned>(ceil_div(a.S, kBKV)), static_cast<unsigned>(a.Hkv));
  attn_dkv_kernel<NC><<<gkv, kThreads, dkv_smem(NC * 32), s>>>(a, dk, dv, dout, lse, delta);
}

// Batched decode geometry: the host does not know the rows' lengths (they are on the device),
// so splits are sized for the cache length L; splits past a row's length exit at once.
int64_t decode_batch_splits(const DecodeBatchArgs& a) {
  const int64_t items = a.B * a.Hq;
  int64_t splits = ceil_div(256, items);
  const int64_t max_splits = ceil_div(a.L, 64);
  if (splits > max_splits) splits = max_splits;
  return splits < 1 ? 1 : splits;
}

template <int NC>
void launch_decode_batch(float* out, int64_t ldo, const DecodeBatchArgs& a, float* scratch,
                         unsigned* status, cudaStream_t s) {
  const int64_t splits = decode_batch_splits(a);
  const int64_t kps = ceil_div(a.L, splits);
  const dim3 grid(static_cast<unsigned>(splits), static_cast<unsigned>(a.Hq),
                  static_cast<unsigned>(a.B));
  attn_decode_batch_kernel<NC><<<grid, kThreads, 0, s>>>(a, kps, scratch, out, ldo, status);
  if (splits > 1) {
    AttnArgs c{};  // what the combine kernel reads: rows, heads, head dim
    c.T = a.B;
    c.Hq = a.Hq;
    c.D = a.D;
    attn_combine_kernel<<<dim3(static_cast<unsigned>(a.Hq), static_cast<unsigned>(a.B)), 128, 0,
                          s>>>(c, splits, scratch, out, ldo);
  }
}

}  // namespace

int64_t attention_decode_batch_scratch(const DecodeBatchArgs& a) {
  const int64_t splits = decode_batch_splits(a);
  return splits > 1 ? a.B * a.Hq * splits * (a.D + 2) : 0;
}

void attention_decode_batch(float* out, int64_t ldo, const DecodeBatchArgs& a, float* scratch,
                            unsigned* status, cudaStream_t s) {
  if (a.B == 0) return;
  if (a.Hkv > 0 && a.D > 0) kv_append_kernel<<<static_cast<unsigned>(a.B), 128, 0, s>>>(a, status);
  if (a.Hq == 0 || a.D == 0) return;
  switch (nc_for(a.D)) {
    case 2:
      launch_decode_batch<2>(out, ldo, a, scratch, status, s);
      break;
    case 4:
      launch_decode_batch<4>(out, ldo, a, scratch, status, s);
      break;
    default:
      launch_decode_batch<8>(out, ldo, a, scratch, status, s);
      break;
  }
}

void init_attention(int device) {
  (void)device;  // attributes are per function; the caller has made `device` current
  set_smem_limits<2>();
  set_smem_limits<4>();
  set_smem_limits<8>();
}

int64_t attention_scratch(const AttnArgs& a) {
  if (a.T > kDecodeRows) return 0;
  const int64_t splits = decode_splits(a);
  return splits > 1 ? a.T * a.Hq * splits * (a.D + 2) : 0;
}

void attention(float* out, int64_t ldo, float* lse, const AttnArgs& a, float* scratch,
               unsigned* status, cudaStream_t s) {
  if (a.T == 0 || a.Hq == 0 || a.D == 0) return;
  switch (nc_for(a.D)) {
    case 2:
      launch_fwd<2>(out, ldo, lse, a, scratch, status, s);
      break;
    case 4:
      launch_fwd<4>(out, ldo, lse, a, scratch, status, s);
      break;
    default:
      launch_fwd<8>(out, ldo, lse, a, scratch, status, s);
      break;
  }
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* o,
                        const float* lse, float* delta, const AttnArgs& a, cudaStream_t s) {
  if (a.S > 0 && a.Hkv > 0 && a.D > 0) {
    cudaMemsetAsync(dk, 0, sizeof(float) * static_cast<size_t>(a.S * a.Hkv * a.D), s);
    cudaMemsetAsync(dv, 0, sizeof(float) * static_cast<size_t>(a.S * a.Hkv * a.D), s);
  }
  if (a.T == 0 || a.Hq == 0 || a.D == 0) return;
  const int64_t items = a.T * a.Hq;
  attn_delta_kernel<<<static_cast<unsigned>(ceil_div(items, kWarps)), kThreads, 0, s>>>(
      delta, dout, o, items, a.D);
  switch (nc_for(a.D)) {
    case 2:
      launch_bwd<2>(dq, dk, dv, dout, lse, delta, a, s);
      break;
    case 4:
      launch_bwd<4>(dq, dk, dv, dout, lse, delta, a, s);
      break;
    default:
      launch_bwd<8>(dq, dk, dv, dout, lse, delta, a, s);
      break;
  }
}

}  // namespace resp::kernels
