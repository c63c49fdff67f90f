// RMSNorm forward/backward and rotary embedding. One warp per row: rows are short (hidden size,
// or head_dim for the per-head q/k norms, where there are T * heads rows), so a warp keeps
// every lane busy without block-wide barriers.
#include "common.cuh"
#include "kernels.h"

namespace resp::kernels {

namespace {

constexpr int kWarps = 4;  // rows per block

__global__ void rmsnorm_kernel(Rows out, Rows x, const float* __restrict__ w, float eps) {
  const int64_t r = blockIdx.x * int64_t{kWarps} + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (r >= x.rows) return;
  const float* xr = x.p + r * x.ld;
  float* orow = out.p + r * out.ld;
  float ss = 0.0f;
  for (int64_t i = lane; i < x.cols; i += 32) ss += xr[i] * xr[i];
  ss = warp_sum(ss);
  const float inv = rsqrtf(ss / static_cast<float>(x.cols) + eps);
  // out may alias x: every lane has read its elements for ss, and writes only those.
  for (int64_t i = lane; i < x.cols; i += 32) orow[i] = xr[i] * inv * w[i];
}

// Per row: inv = 1/rms and c = inv^3 * sum(dy*w*x) / D, the two scalars dx needs.
__global__ void rmsnorm_stats_kernel(float* inv_out, float* c_out, const float* __restrict__ dy,
                                     const float* __restrict__ x, const float* __restrict__ w,
                                     int64_t R, int64_t D, float eps) {
  const int64_t r = blockIdx.x * int64_t{kWarps} + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (r >= R) return;
  const float* xr = x + r * D;
  const float* dr = dy + r * D;
  float ss = 0.0f, gx = 0.0f;
  for (int64_t i = lane; i < D; i += 32) {
    ss += xr[i] * xr[i];
    gx += dr[i] * w[i] * xr[i];
  }
  ss = warp_sum(ss);
  gx = warp_sum(gx);
  if (lane == 0) {
    const float inv = rsqrtf(ss / static_cast<float>(D) + eps);
    inv_out[r] = inv;
    c_out[r] = inv * inv * inv * gx / static_cast<float>(D);
  }
}

__global__ void rmsnorm_dx_kernel(float* dx, const float* dy, const float* __restrict__ x,
                                  const float* __restrict__ w, const float* __restrict__ inv,
                                  const float* __restrict__ c, int64_t R, int64_t D) {
  const int64_t n = R * D;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t r = i / D, col = i - r * D;
    dx[i] = inv[r] * dy[i] * w[col] - c[r] * x[i];
  }
}

// One thread per (t, i < D/2), looping over heads: the angle (in double, as on the CPU, because
// positions * inv_freq reaches 1e4..1e5 rad where f32 loses the phase) is computed once.
__global__ void rope_kernel(float* x, int64_t T, int64_t H, int64_t D, int64_t ld,
                            const int32_t* __restrict__ pos, const float* __restrict__ inv_freq,
                            float sign) {
  const int64_t half = D / 2;
  const int64_t n = T * half;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < n;
       idx += int64_t{gridDim.x} * blockDim.x) {
    const int64_t t = idx / half, i = idx - t * half;
    double sd, cd;
    sincos(static_cast<double>(pos[t]) * static_cast<double>(inv_freq[i]), &sd, &cd);
    const float c = static_cast<float>(cd), s = sign * static_cast<float>(sd);
    float* row = x + t * ld;
    for (int64_t h = 0; h < H; ++h) {
      float* lo = row + h * D + i;
      float* hi = lo + half;
      const float a = *lo, b = *hi;
      *lo = a * c - b * s;
      *hi = b * c + a * s;
    }
  }
}

}  // namespace

void rmsnorm(Rows out, Rows x, const float* w, float eps, cudaStream_t s) {
  if (x.rows == 0 || x.cols == 0) return;
  rmsnorm_kernel<<<static_cast<unsigned>(ceil_div(x.rows, kWarps)), kWarps * 32, 0, s>>>(out, x, w,
                                                                                         eps);
}

int64_t rmsnorm_backward_scratch(int64_t R, int64_t D) {
  return 2 * R + column_sum_partials(R) * D;
}

void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      int64_t R, int64_t D, float eps, float* scratch, cudaStream_t s) {
  if (R == 0 || D == 0) return;
  float* inv = scratch;
  float* c = scratch + R;
  rmsnorm_stats_kernel<<<static_cast<unsigned>(ceil_div(R, kWarps)), kWarps * 32, 0, s>>>(
      inv, c, dy, x, w, R, D, eps);
  // dw before dx: dx may overwrite dy.
  if (dw) column_sum(dw, dy, x, inv, R, D, scratch + 2 * R, s);
  rmsnorm_dx_kernel<<<grid_for(R * D, 256), 256, 0, s>>>(dx, dy, x, w, inv, c, R, D);
}

void rope(float* x, int64_t T, int64_t H, int64_t D, int64_t ld, const int32_t* positions,
          const float* inv_freq, float sign, cudaStream_t s) {
  if (T == 0 || H == 0 || D < 2) return;
  rope_kernel<<<grid_for(T * (D / 2), 128), 128, 0, s>>>(x, T, H, D, ld, positions, inv_freq, sign);
}

}  // namespace resp::kernels
