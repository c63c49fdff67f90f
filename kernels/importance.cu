// Importance reductions on the device: sums of |W * G| over the rows or columns that make up a
// head or an MLP channel (Taylor scores), so only one double per head/channel crosses to the
// host instead of the weight and gradient matrices. Sums are in double: they add millions of
// products of very different magnitudes.
#include "common.cuh"
#include "kernels.h"

namespace resp::kernels {

namespace {

__global__ void abs_rows_kernel(double* out, const float* __restrict__ w,
                                const float* __restrict__ g, int64_t C, int64_t rows_per_group,
                                double factor) {
  __shared__ double red[32];
  const int64_t r = blockIdx.x;
  double s = 0.0;
  for (int64_t c = threadIdx.x; c < C; c += blockDim.x)
    s += fabs(static_cast<double>(w[r * C + c]) * static_cast<double>(g[r * C + c]));
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(kFullMask, s, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) red[warp] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int i = 0; i < static_cast<int>(blockDim.x >> 5); ++i) t += red[i];
    atomicAdd(out + r / rows_per_group, t * factor);
  }
}

__global__ void abs_cols_kernel(double* out, const float* __restrict__ w,
                                const float* __restrict__ g, int64_t R, int64_t C,
                                int64_t cols_per_group, double factor) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= C) return;
  double s = 0.0;
  for (int64_t r = 0; r < R; ++r)
    s += fabs(static_cast<double>(w[r * C + c]) * static_cast<double>(g[r * C + c]));
  atomicAdd(out + c / cols_per_group, s * factor);
}

}  // namespace

void abs_product_row_groups(double* out, const float* w, const float* gr, int64_t R, int64_t C,
                            int64_t rows_per_group, double factor, cudaStream_t s) {
  if (R == 0 || C == 0) return;
  abs_rows_kernel<<<static_cast<unsigned>(R), 256, 0, s>>>(out, w, gr, C, rows_per_group, factor);
}

void abs_product_col_groups(double* out, const float* w, const float* gr, int64_t R, int64_t C,
                            int64_t cols_per_group, double factor, cudaStream_t s) {
  if (R == 0 || C == 0) return;
  abs_cols_kernel<<<static_cast<unsigned>(ceil_div(C, 128)), 128, 0, s>>>(out, w, gr, R, C,
                                                                          cols_per_group, factor);
}

}  // namespace resp::kernels
