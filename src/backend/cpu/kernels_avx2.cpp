// The CPU kernels for ISA level avx2: -mavx2 -mfma (CMake sets them on this file only).
#define RESP_ISA_NS isa_avx2
#define RESP_ISA_LEVEL 1

#if !defined(__AVX2__) || !defined(__FMA__)
#error "kernels_avx2.cpp must be compiled with -mavx2 -mfma"
#endif

#include "backend/cpu/attention_impl.h"
#include "backend/cpu/gemm_few_rows_impl.h"
