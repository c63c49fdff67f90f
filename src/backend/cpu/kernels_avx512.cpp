// The CPU kernels for ISA level avx512: -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma (CMake
// sets them on this file only).
#define RESP_ISA_NS isa_avx512
#define RESP_ISA_LEVEL 2

#if !defined(__AVX512F__) || !defined(__FMA__)
#error "kernels_avx512.cpp must be compiled with -mavx512f ... -mfma"
#endif

#include "backend/cpu/attention_impl.h"
#include "backend/cpu/gemm_few_rows_impl.h"
