// Reference GEMM rates of this GPU for tools/device-check.sh: cuBLAS with bf16 inputs and f32
// accumulation (bf16 and f32 outputs; the CUDA backend's bf16 weight path uses the latter) and
// plain f32 without TF32 (the backend's f32 path). Prints one JSON line per case.
//   nvcc -O2 -std=c++17 tools/cublas_gemm_rate.cu -lcublas -o gemm_rate && ./gemm_rate [M N K]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace {

void check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(rc));
    std::exit(1);
  }
}
void check(cublasStatus_t rc, const char* what) {
  if (rc != CUBLAS_STATUS_SUCCESS) {
    std::fprintf(stderr, "%s: cuBLAS status %d\n", what, static_cast<int>(rc));
    std::exit(1);
  }
}

// TFLOP/s of C[M,N] = A[M,K] B[K,N] with the given types, over ~1 s of repetitions.
double rate(cublasHandle_t h, int m, int n, int k, cudaDataType_t in, cudaDataType_t out,
            cublasComputeType_t compute) {
  const size_t in_size = in == CUDA_R_32F ? 4 : 2, out_size = out == CUDA_R_32F ? 4 : 2;
  void *a = nullptr, *b = nullptr, *c = nullptr;
  check(cudaMalloc(&a, in_size * m * k), "cudaMalloc A");
  check(cudaMalloc(&b, in_size * k * n), "cudaMalloc B");
  check(cudaMalloc(&c, out_size * m * n), "cudaMalloc C");
  check(cudaMemset(a, 0, in_size * m * k), "memset");  // zeros: no NaN/denormal effects
  check(cudaMemset(b, 0, in_size * k * n), "memset");
  const float alpha = 1.0f, beta = 0.0f;
  auto run = [&] {
    check(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, b, in, n, a, in, k, &beta, c,
                       out, n, compute, CUBLAS_GEMM_DEFAULT),
          "cublasGemmEx");
  };
  run();
  check(cudaDeviceSynchronize(), "warm-up");
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  int reps = 1;
  float ms = 0;
  for (;;) {  // grow the repetition count until one batch takes >= 0.5 s
    cudaEventRecord(e0);
    for (int i = 0; i < reps; ++i) run();
    cudaEventRecord(e1);
    check(cudaEventSynchronize(e1), "timing");
    cudaEventElapsedTime(&ms, e0, e1);
    if (ms >= 500.0f || reps >= (1 << 16)) break;
    reps *= 2;
  }
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  return 2.0 * m * n * k * reps / (ms * 1e-3) / 1e12;
}

}  // namespace

int main(int argc, char** argv) {
  int m = 8192, n = 8192, k = 8192;
  if (argc == 4) {
    m = std::atoi(argv[1]);
    n = std::atoi(argv[2]);
    k = std::atoi(argv[3]);
  }
  cublasHandle_t h;
  check(cublasCreate(&h), "cublasCreate");
  struct Case {
    const char* name;
    cudaDataType_t in, out;
    cublasComputeType_t compute;
  } cases[] = {{"bf16_in_bf16_out", CUDA_R_16BF, CUDA_R_16BF, CUBLAS_COMPUTE_32F},
               {"bf16_in_f32_out", CUDA_R_16BF, CUDA_R_32F, CUBLAS_COMPUTE_32F},
               {"f32_no_tf32", CUDA_R_32F, CUDA_R_32F, CUBLAS_COMPUTE_32F_PEDANTIC}};
  for (const Case& c : cases)
    std::printf("{\"gemm\": \"%s\", \"m\": %d, \"n\": %d, \"k\": %d, \"tflops\": %.1f}\n", c.name,
                m, n, k, rate(h, m, n, k, c.in, c.out, c.compute));
  cublasDestroy(h);
  return 0;
}
