#include "backend/cpu/cpu_kernels.h"

namespace resp::cpu {

const CpuKernels& cpu_kernels(CpuIsa isa) {
  // The baseline has no few-rows GEMM: without FMA and wide vectors OpenBLAS (which dispatches
  // on the CPU itself) is faster than a generic build of it.
  static const CpuKernels kBaseline{CpuIsa::Baseline, 0, nullptr, &isa_baseline::attend_rows,
                                    &isa_baseline::attend_one_row};
#if defined(RESP_CPU_DISPATCH_X86)
  static const CpuKernels kAvx2{CpuIsa::Avx2, isa_avx2::gemm_width, &isa_avx2::gemm_few_rows,
                                &isa_avx2::attend_rows, &isa_avx2::attend_one_row};
  static const CpuKernels kAvx512{CpuIsa::Avx512, isa_avx512::gemm_width,
                                  &isa_avx512::gemm_few_rows, &isa_avx512::attend_rows,
                                  &isa_avx512::attend_one_row};
  if (isa == CpuIsa::Avx512) return kAvx512;
  if (isa == CpuIsa::Avx2) return kAvx2;
#else
  (void)isa;  // off x86 only the baseline kernels exist (and cpu_isa_supported says so)
#endif
  return kBaseline;
}

}  // namespace resp::cpu
