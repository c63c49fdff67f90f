// The public few-rows GEMM: picks the kernel of the active (or requested) ISA level; the kernels
// themselves are in gemm_few_rows_impl.h, compiled per level (cpu_kernels.h).
#include "backend/cpu/gemm_few_rows.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"

namespace resp {

bool gemm_few_rows_available(CpuIsa isa) {
  return cpu::cpu_kernels(isa).gemm != nullptr && cpu_isa_supported(isa);
}

bool gemm_few_rows_available() {
  return gemm_few_rows_available(active_cpu_isa());
}

int gemm_few_rows_width(CpuIsa isa) {
  return gemm_few_rows_available(isa) ? cpu::cpu_kernels(isa).gemm_width : 0;
}

int gemm_few_rows_width() {
  return gemm_few_rows_width(active_cpu_isa());
}

void gemm_few_rows(CpuIsa isa, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
                   int64_t ldc, int64_t m, int64_t n, int64_t k, float alpha, float beta,
                   int threads) {
  const cpu::CpuKernels& kernels = cpu::cpu_kernels(isa);
  if (kernels.gemm == nullptr)
    throw UnsupportedError(cat("gemm_few_rows: no ", cpu_isa_name(isa),
                               " kernel (the few-rows GEMM needs avx2 or avx512)"));
  if (!cpu_isa_supported(isa))
    throw UnsupportedError(cat("gemm_few_rows: this CPU does not support ", cpu_isa_name(isa)));
  if (m <= 0 || n <= 0) return;
  const int64_t width = kernels.gemm_width;
  const int64_t steps = (k + width - 1) / width;
  // 64-byte aligned: a vector load straddling two cache lines costs a second access.
  std::vector<float> packed_storage(
      static_cast<size_t>(std::min(m, kGemmFewRowsMax) * steps * width + 16));
  float* const packed = reinterpret_cast<float*>(
      (reinterpret_cast<uintptr_t>(packed_storage.data()) + 63) & ~uintptr_t{63});
  kernels.gemm(a, lda, b, ldb, c, ldc, m, n, k, alpha, beta, threads, packed);
}

void gemm_few_rows(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                   int64_t m, int64_t n, int64_t k, float alpha, float beta, int threads) {
  gemm_few_rows(active_cpu_isa(), a, lda, b, ldb, c, ldc, m, n, k, alpha, beta, threads);
}

}  // namespace resp
