// Elementwise and gather/scatter kernels: fill, scale, add, bias, SwiGLU (+backward),
// embedding (+backward), bf16 conversion, column sums. All take padded row views (Rows) where
// the model may pass them; grid-stride loops make every size legal.
#include <cuda_bf16.h>

#include "common.cuh"
#include "kernels.h"

namespace resp::kernels {

namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float& at(const Rows& r, int64_t i) {
  const int64_t row = i / r.cols;
  return r.p[row * r.ld + (i - row * r.cols)];
}

__global__ void fill_kernel(Rows x, float v) {
  const int64_t n = x.rows * x.cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    at(x, i) = v;
}

__global__ void scale_kernel(Rows x, float a) {
  const int64_t n = x.rows * x.cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    at(x, i) *= a;
}

__global__ void add_kernel(Rows o, Rows a, Rows b) {
  const int64_t n = o.rows * o.cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    at(o, i) = at(a, i) + at(b, i);
}

__global__ void add_bias_kernel(Rows y, const float* __restrict__ bias) {
  const int64_t n = y.rows * y.cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    at(y, i) += bias[i % y.cols];
}

__device__ __forceinline__ float sigmoid(float g) {
  return 1.0f / (1.0f + expf(-g));
}

__global__ void swiglu_kernel(Rows o, Rows g, Rows u) {
  const int64_t n = o.rows * o.cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float gv = at(g, i), uv = at(u, i);
    at(o, i) = gv * sigmoid(gv) * uv;
  }
}

__global__ void swiglu_backward_kernel(float* dg, float* du, const float* d, const float* g,
                                       const float* u, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float gv = g[i], s = sigmoid(gv), di = d[i];  // di read first: dgate may alias dout
    du[i] = di * gv * s;
    dg[i] = di * u[i] * s * (1.0f + gv * (1.0f - s));
  }
}

// One block row per token; an id outside the table writes zeros and flags the status word.
__global__ void embedding_kernel(Rows out, const float* __restrict__ table, int64_t vocab,
                                 const int32_t* __restrict__ ids, unsigned* status) {
  for (int64_t t = blockIdx.y; t < out.rows; t += gridDim.y) {
    const int32_t id = ids[t];
    const bool ok = id >= 0 && id < vocab;
    if (!ok && threadIdx.x == 0 && blockIdx.x == 0) atomicOr(status, kBadTokenId);
    float* o = out.p + t * out.ld;
    const float* src = table + (ok ? static_cast<int64_t>(id) : 0) * out.cols;
    for (int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; c < out.cols;
         c += int64_t{gridDim.x} * blockDim.x)
      o[c] = ok ? src[c] : 0.0f;
  }
}

// One thread per column, looping over tokens in order: duplicate ids accumulate
// deterministically (no atomics), as on the CPU.
__global__ void embedding_backward_kernel(float* dtable, int64_t vocab, const float* dout,
                                          int64_t T, int64_t H, const int32_t* ids,
                                          unsigned* status) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= H) return;
  for (int64_t t = 0; t < T; ++t) {
    const int32_t id = ids[t];
    if (id < 0 || id >= vocab) {
      if (c == 0) atomicOr(status, kBadTokenId);
      continue;
    }
    dtable[static_cast<int64_t>(id) * H + c] += dout[t * H + c];
  }
}

__global__ void f32_to_bf16_kernel(__nv_bfloat16* dst, const float* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ void bf16_to_f32_kernel(float* dst, const __nv_bfloat16* src, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = __bfloat162float(src[i]);
}

__global__ void rows_to_bf16_kernel(__nv_bfloat16* dst, Rows src) {
  const int64_t n = src.rows * src.cols;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x)
    dst[i] = __float2bfloat16_rn(at(src, i));
}

// Column sums, stage 1: block (32 columns x 8 row lanes) over a chunk of kRowsPerChunk rows.
constexpr int64_t kRowsPerChunk = 256;

__global__ void column_partial_kernel(float* partial, const float* __restrict__ a,
                                      const float* __restrict__ b,
                                      const float* __restrict__ row_scale, int64_t R, int64_t C) {
  __shared__ float red[8][33];
  const int64_t c = blockIdx.x * int64_t{32} + threadIdx.x;
  const int64_t r0 = blockIdx.y * kRowsPerChunk;
  const int64_t r1 = min(R, r0 + kRowsPerChunk);
  float acc = 0.0f;
  if (c < C) {
    for (int64_t r = r0 + threadIdx.y; r < r1; r += 8) {
      float v = a[r * C + c];
      if (b) v *= b[r * C + c];
      if (row_scale) v *= row_scale[r];
      acc += v;
    }
  }
  red[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float s = 0.0f;
    for (int i = 0; i < 8; ++i) s += red[i][threadIdx.x];
    partial[blockIdx.y * C + c] = s;
  }
}

// Stage 2: add the chunk partials in chunk order.
__global__ void column_finish_kernel(float* out, const float* partial, int64_t chunks, int64_t C) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= C) return;
  float s = 0.0f;
  for (int64_t k = 0; k < chunks; ++k) s += partial[k * C + c];
  out[c] += s;
}

}  // namespace

void fill(Rows x, float value, cudaStream_t s) {
  if (x.rows * x.cols == 0) return;
  fill_kernel<<<grid_for(x.rows * x.cols, kThreads), kThreads, 0, s>>>(x, value);
}

void scale(Rows x, float alpha, cudaStream_t s) {
  if (x.rows * x.cols == 0) return;
  scale_kernel<<<grid_for(x.rows * x.cols, kThreads), kThreads, 0, s>>>(x, alpha);
}

void add(Rows out, Rows a, Rows b, cudaStream_t s) {
  if (out.rows * out.cols == 0) return;
  add_kernel<<<grid_for(out.rows * out.cols, kThreads), kThreads, 0, s>>>(out, a, b);
}

void add_bias(Rows y, const float* bias, cudaStream_t s) {
  if (y.rows * y.cols == 0) return;
  add_bias_kernel<<<grid_for(y.rows * y.cols, kThreads), kThreads, 0, s>>>(y, bias);
}

void swiglu(Rows out, Rows gate, Rows up, cudaStream_t s) {
  if (out.rows * out.cols == 0) return;
  swiglu_kernel<<<grid_for(out.rows * out.cols, kThreads), kThreads, 0, s>>>(out, gate, up);
}

void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  swiglu_backward_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(dgate, dup, dout, gate, up, n);
}

void embedding(Rows out, const float* table, int64_t vocab, const int32_t* ids, unsigned* status,
               cudaStream_t s) {
  if (out.rows == 0 || out.cols == 0) return;
  const dim3 grid(static_cast<unsigned>(ceil_div(out.cols, kThreads)),
                  static_cast<unsigned>(out.rows < 65535 ? out.rows : 65535));
  embedding_kernel<<<grid, kThreads, 0, s>>>(out, table, vocab, ids, status);
}

void embedding_backward(float* dtable, int64_t vocab, const float* dout, int64_t T, int64_t H,
                        const int32_t* ids, unsigned* status, cudaStream_t s) {
  if (T == 0 || H == 0) return;
  embedding_backward_kernel<<<static_cast<unsigned>(ceil_div(H, 128)), 128, 0, s>>>(
      dtable, vocab, dout, T, H, ids, status);
}

void f32_to_bf16(uint16_t* dst, const float* src, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  f32_to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(
      reinterpret_cast<__nv_bfloat16*>(dst), src, n);
}

void bf16_to_f32(float* dst, const uint16_t* src, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  bf16_to_f32_kernel<<<grid_for(n, kThreads), kThreads, 0, s>>>(
      dst, reinterpret_cast<const __nv_bfloat16*>(src), n);
}

void f32_rows_to_bf16(uint16_t* dst, Rows src, cudaStream_t s) {
  if (src.rows * src.cols == 0) return;
  rows_to_bf16_kernel<<<grid_for(src.rows * src.cols, kThreads), kThreads, 0, s>>>(
      reinterpret_cast<__nv_bfloat16*>(dst), src);
}

int64_t column_sum_partials(int64_t R) {
  return ceil_div(R, kRowsPerChunk) < 1 ? 1 : ceil_div(R, kRowsPerChunk);
}

void column_sum(float* out, const float* a, const float* b, const float* row_scale, int64_t R,
                int64_t C, float* partial, cudaStream_t s) {
  if (R == 0 || C == 0) return;
  const int64_t chunks = column_sum_partials(R);
  const dim3 grid(static_cast<unsigned>(ceil_div(C, 32)), static_cast<unsigned>(chunks));
  column_partial_kernel<<<grid, dim3(32, 8), 0, s>>>(partial, a, b, row_scale, R, C);
  column_finish_kernel<<<static_cast<unsigned>(ceil_div(C, kThreads)), kThreads, 0, s>>>(
      out, partial, chunks, C);
}

}  // namespace resp::kernels
