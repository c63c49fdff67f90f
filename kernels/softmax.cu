// Row-wise softmax / log-softmax and the fused weighted cross-entropy. One block per row:
// vocabulary rows are long (32k..152k), so the whole block shares a row's max and sum.
#include "common.cuh"
#include "kernels.h"

namespace resp::kernels {

namespace {

constexpr int kThreads = 512;

__global__ void softmax_kernel(Rows out, Rows x, bool log) {
  __shared__ float red[32];
  for (int64_t r = blockIdx.x; r < x.rows; r += gridDim.x) {
    const float* xr = x.p + r * x.ld;
    float* orow = out.p + r * out.ld;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < x.cols; i += blockDim.x) m = fmaxf(m, xr[i]);
    m = block_max(m, red);
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < x.cols; i += blockDim.x) sum += expf(xr[i] - m);
    sum = block_sum(sum, red);
    // Every read of this row is complete (block_sum ends with a barrier): out may alias x.
    if (log) {
      const float shift = m + logf(sum);
      for (int64_t i = threadIdx.x; i < x.cols; i += blockDim.x) orow[i] = xr[i] - shift;
    } else {
      const float inv = 1.0f / sum;
      for (int64_t i = threadIdx.x; i < x.cols; i += blockDim.x) orow[i] = expf(xr[i] - m) * inv;
    }
    __syncthreads();
  }
}

__global__ void cross_entropy_kernel(float* losses, float* logits, int64_t R, int64_t V,
                                     const int32_t* __restrict__ targets,
                                     const float* __restrict__ weights, unsigned* status) {
  __shared__ float red[32];
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    float* row = logits + r * V;
    const int32_t tg = targets[r];
    const bool ok = tg >= 0 && tg < V;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) m = fmaxf(m, row[i]);
    m = block_max(m, red);
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) sum += expf(row[i] - m);
    sum = block_sum(sum, red);  // barrier: row[tg] below is read before anyone writes
    const float w = weights[r];
    if (threadIdx.x == 0) {
      if (ok) {
        losses[r] = m + logf(sum) - row[tg];
      } else {
        losses[r] = NAN;
        atomicOr(status, kBadTarget);
      }
    }
    __syncthreads();
    const float f = w / sum;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const float g = expf(row[i] - m) * f;
      row[i] = (ok && i == tg) ? g - w : g;
    }
    __syncthreads();
  }
}

unsigned row_grid(int64_t rows) {
  return static_cast<unsigned>(rows < 65535 ? rows : 65535);
}

}  // namespace

void softmax(Rows out, Rows x, bool log, cudaStream_t s) {
  if (x.rows == 0 || x.cols == 0) return;
  const int threads = x.cols >= 4096 ? kThreads : 128;
  softmax_kernel<<<row_grid(x.rows), threads, 0, s>>>(out, x, log);
}

void cross_entropy(float* losses, float* logits, int64_t R, int64_t V, const int32_t* targets,
                   const float* weights, unsigned* status, cudaStream_t s) {
  if (R == 0) return;
  const int threads = V >= 4096 ? kThreads : 128;
  cross_entropy_kernel<<<row_grid(R), threads, 0, s>>>(losses, logits, R, V, targets, weights,
                                                       status);
}

}  // namespace resp::kernels
