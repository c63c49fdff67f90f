// The CPU backend's hot kernels, compiled once per ISA level into their own namespaces
// (kernels_baseline.cpp, kernels_avx2.cpp, kernels_avx512.cpp: each includes the *_impl.h
// sources with its own compiler flags), and the table that picks one set at run time.
//
// Why separate objects with separate namespaces: an inline function or template instantiated in
// an AVX-512 object is a weak symbol that the linker may pick for baseline code too, which then
// dies with SIGILL on an AVX2 node. So the ISA objects define nothing outside their namespace
// (tests/backend/check_isa_symbols.cmake checks it) and use no standard-library templates; all
// they share with the rest of the program is this header's plain structs and declarations.
#pragma once

#include <cstdint>

#include "backend/cpu/cpu_isa.h"

namespace resp::cpu {

// A row view: row r starts at data + r * stride and holds cols contiguous floats.
struct RowView {
  float* data;
  int64_t stride;
  int64_t cols;
};

inline constexpr int kAttnBlock = 4;  // query rows per attention work item (share K/V loads)
inline constexpr int kAttnTile = 16;  // keys per packed key tile / dims per packed value tile

// One attention call (CpuBackend::attention documents the algorithm).
struct AttnArgs {
  RowView q, k, v, out;  // [T, Hq * D], [S, Hkv * D], [S, Hkv * D], [T, Hq * D]
  const int32_t* kv_of_head;
  const float* kp;   // packed keys [Hkv][tiles][D][kAttnTile], or null
  int64_t kp_tiles;  // full key tiles packed per KV head
  const float* vp;   // packed values [Hkv][D / kAttnTile][n_keys][kAttnTile], or null
  int64_t n_keys;
  int64_t t_len, d, q_offset;
  float scale;
};

// Query (row, head) pairs that share one KV head; rows in ascending order.
struct RowSet {
  int64_t t[kAttnBlock];
  int64_t h[kAttnBlock];
  int n;
};

// C = alpha A B^T + beta C (gemm_few_rows.h); `packed` holds
// min(m, kGemmFewRowsMax) * ceil(k / width) * width floats, 64-byte aligned.
using GemmFewRowsFn = void (*)(const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                               int64_t ldc, int64_t m, int64_t n, int64_t k, float alpha,
                               float beta, int threads, float* packed);
// The rows of `set` against their keys; scores: kAttnBlock * s_cap floats, acc: kAttnBlock * D.
using AttendRowsFn = void (*)(const AttnArgs& args, const RowSet& set, float* scores, int64_t s_cap,
                              float* acc);
// One query row (T == 1) for heads [h0, h1); scratch: (h1 - h0) * (n_keys + D + 1) floats.
using AttendOneRowFn = void (*)(const AttnArgs& args, int64_t h0, int64_t h1, float* scratch);

struct CpuKernels {
  CpuIsa isa;
  int gemm_width;      // floats per vector of the few-rows GEMM; 0: none (use BLAS)
  GemmFewRowsFn gemm;  // null when gemm_width == 0
  AttendRowsFn attend_rows;
  AttendOneRowFn attend_one_row;
};

// The kernels of `isa` (whether this CPU can run them is the caller's check: cpu_isa_supported).
const CpuKernels& cpu_kernels(CpuIsa isa);

// Per-ISA entry points (defined in the kernels_*.cpp objects).
#define RESP_CPU_ATTENTION_KERNELS                                                        \
  void attend_rows(const AttnArgs& args, const RowSet& set, float* scores, int64_t s_cap, \
                   float* acc);                                                           \
  void attend_one_row(const AttnArgs& args, int64_t h0, int64_t h1, float* scratch);
#define RESP_CPU_GEMM_KERNELS                                                               \
  extern const int gemm_width;                                                              \
  void gemm_few_rows(const float* a, int64_t lda, const float* b, int64_t ldb, float* c,    \
                     int64_t ldc, int64_t m, int64_t n, int64_t k, float alpha, float beta, \
                     int threads, float* packed);

namespace isa_baseline {
RESP_CPU_ATTENTION_KERNELS
}  // namespace isa_baseline
namespace isa_avx2 {
RESP_CPU_ATTENTION_KERNELS
RESP_CPU_GEMM_KERNELS
}  // namespace isa_avx2
namespace isa_avx512 {
RESP_CPU_ATTENTION_KERNELS
RESP_CPU_GEMM_KERNELS
}  // namespace isa_avx512

#undef RESP_CPU_ATTENTION_KERNELS
#undef RESP_CPU_GEMM_KERNELS

}  // namespace resp::cpu
