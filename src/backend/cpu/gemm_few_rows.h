// C = alpha * A @ B^T + beta * C for a few rows of A: the shape of a decode step, where A holds
// one activation row per sequence and B is a weight matrix in the Hugging Face [out, in] layout.
//
// Why not sgemm: a GEMM library packs (copies) every block of B before multiplying, and with 32
// rows of A that copy costs as much as the arithmetic (29 % of a batch-32 decode profile). Here
// each output is a dot product of two contiguous rows, so B is read in place, once per call.
//
// Each output element is summed in one fixed order that depends only on K and the vector width:
// a row's results do not change with the number of rows in the call, their position in it, or the
// thread count. Decoding is therefore bit-identical whatever the batch size.
#pragma once

#include <cstdint>

#include "backend/cpu/cpu_isa.h"

namespace resp {

// Largest row count the few-rows kernel is meant for; above it sgemm's packing pays for itself.
inline constexpr int64_t kGemmFewRowsMax = 64;

// True when there is a kernel for `isa` (avx2, avx512; baseline has none: callers use BLAS)
// and this CPU supports it. Without an argument: for active_cpu_isa().
bool gemm_few_rows_available(CpuIsa isa);
bool gemm_few_rows_available();

// Vector width of that kernel in floats (16, 8, or 0 when unavailable).
int gemm_few_rows_width(CpuIsa isa);
int gemm_few_rows_width();

// Row-major A [m, k] (row stride lda), B [n, k] (row stride ldb), C [m, n] (row stride ldc);
// C must not overlap A or B. beta == 0 overwrites C without reading it. Runs on `threads`
// OpenMP threads, splitting the rows of B, whatever the size (1: the calling thread; the CPU
// backend passes 1 below its measured gemm threshold, cpu_parallel.h). Uses the kernel of `isa`
// (default: active_cpu_isa()); throws UnsupportedError unless gemm_few_rows_available(isa).
void gemm_few_rows(CpuIsa isa, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                   int64_t ldc, int64_t m, int64_t n, int64_t k, float alpha, float beta,
                   int threads);
void gemm_few_rows(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                   int64_t m, int64_t n, int64_t k, float alpha, float beta, int threads);

}  // namespace resp
