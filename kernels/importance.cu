// Importance reductions on the device (Backend::group_reduce): sums of |W*G|, W*G, W^2 or |W|
// over the rows or columns that make up a head or an MLP channel, so only one double per
// head/channel crosses to the host instead of the weight and gradient matrices. Sums are in
// double: they add millions of terms of very different magnitudes.
//
// No atomics: every row's sum (one block, fixed tree) or every column's sum over a fixed chunk
// of rows (one thread, in row order) goes to scratch, and one thread per group adds its lines
// in index order. The chunking depends on the shape alone, so equal inputs give equal bits on
// every run, whatever the scheduling of the blocks.
#include "common.cuh"
#include "kernels.h"

namespace resp::kernels {

namespace {

constexpr int kRowThreads = 256;
constexpr int kColThreads = 128;
constexpr int kGroupThreads = 128;
constexpr int64_t kMinChunkRows = 256;
constexpr int64_t kMaxChunks = 65535;  // gridDim.y

// Rows per chunk of the column direction: at least kMinChunkRows, and few enough chunks for
// gridDim.y.
int64_t chunk_rows(int64_t R) {
  const int64_t need = ceil_div(R, kMaxChunks);
  return need > kMinChunkRows ? need : kMinChunkRows;
}

__device__ __forceinline__ double load(const float* p, int64_t i) {
  return p[i];
}
__device__ __forceinline__ double load(const uint16_t* p, int64_t i) {
  return __uint_as_float(static_cast<unsigned>(p[i]) << 16);  // bf16 -> f32 is exact
}

template <ReduceTerm K, typename A>
__device__ __forceinline__ double term(const A* a, const float* b, int64_t i) {
  const double x = load(a, i);
  if constexpr (K == ReduceTerm::AbsProduct)
    return fabs(x * static_cast<double>(b[i]));
  else if constexpr (K == ReduceTerm::Product)
    return x * static_cast<double>(b[i]);
  else if constexpr (K == ReduceTerm::Square)
    return x * x;
  else
    return fabs(x);
}

// lines[r] = sum over row r (one block per row).
template <ReduceTerm K, typename A>
__global__ void row_sums_kernel(double* lines, const A* __restrict__ a, const float* __restrict__ b,
                                int64_t C) {
  __shared__ double red[kRowThreads / 32];
  const int64_t r = blockIdx.x;
  const A* ar = a + r * C;
  const float* br = b ? b + r * C : nullptr;
  double s = 0.0;
  for (int64_t c = threadIdx.x; c < C; c += kRowThreads) s += term<K>(ar, br, c);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(kFullMask, s, o);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
  __syncthreads();
  if (threadIdx.x == 0) {
    double t = 0.0;
    for (int i = 0; i < kRowThreads / 32; ++i) t += red[i];
    lines[r] = t;
  }
}

// lines[k * C + c] = sum over column c of the rows of chunk k (blockIdx.y), in row order.
template <ReduceTerm K, typename A>
__global__ void column_chunk_sums_kernel(double* lines, const A* __restrict__ a,
                                         const float* __restrict__ b, int64_t R, int64_t C,
                                         int64_t rows_per_chunk) {
  const int64_t c = blockIdx.x * int64_t{kColThreads} + threadIdx.x;
  if (c >= C) return;
  const int64_t r0 = blockIdx.y * rows_per_chunk;
  const int64_t r1 = r0 + rows_per_chunk < R ? r0 + rows_per_chunk : R;
  double s = 0.0;
  for (int64_t r = r0; r < r1; ++r) s += term<K>(a, b, r * C + c);
  lines[blockIdx.y * C + c] = s;
}

// out[g] = factor * sum over lines i of group g and chunks k of lines[k * n + i], in order.
__global__ void group_sums_kernel(double* out, const double* __restrict__ lines, int64_t n,
                                  int64_t chunks, int64_t per_group, int64_t groups,
                                  double factor) {
  for (int64_t g = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; g < groups;
       g += int64_t{gridDim.x} * blockDim.x) {
    const int64_t end = (g + 1) * per_group < n ? (g + 1) * per_group : n;
    double s = 0.0;
    for (int64_t i = g * per_group; i < end; ++i)
      for (int64_t k = 0; k < chunks; ++k) s += lines[k * n + i];
    out[g] = factor * s;
  }
}

template <ReduceTerm K, typename A>
void launch_line_sums(double* lines, const A* a, const float* b, int64_t R, int64_t C, bool by_rows,
                      cudaStream_t s) {
  if (by_rows) {
    row_sums_kernel<K, A><<<static_cast<unsigned>(R), kRowThreads, 0, s>>>(lines, a, b, C);
    return;
  }
  const int64_t rows = chunk_rows(R);
  const dim3 grid(static_cast<unsigned>(ceil_div(C, kColThreads)),
                  static_cast<unsigned>(ceil_div(R, rows)));
  column_chunk_sums_kernel<K, A><<<grid, kColThreads, 0, s>>>(lines, a, b, R, C, rows);
}

template <typename A>
void line_sums(ReduceTerm term, double* lines, const A* a, const float* b, int64_t R, int64_t C,
               bool by_rows, cudaStream_t s) {
  switch (term) {
    case ReduceTerm::AbsProduct:
      return launch_line_sums<ReduceTerm::AbsProduct>(lines, a, b, R, C, by_rows, s);
    case ReduceTerm::Product:
      return launch_line_sums<ReduceTerm::Product>(lines, a, b, R, C, by_rows, s);
    case ReduceTerm::Square:
      return launch_line_sums<ReduceTerm::Square>(lines, a, b, R, C, by_rows, s);
    case ReduceTerm::Abs:
      return launch_line_sums<ReduceTerm::Abs>(lines, a, b, R, C, by_rows, s);
  }
}

}  // namespace

int64_t group_reduce_lines(int64_t R, int64_t C, bool by_rows) {
  return by_rows ? R : ceil_div(R, chunk_rows(R)) * C;
}

void group_reduce(double* out, double* lines, ReduceTerm term, const void* a, bool a_bf16,
                  const float* b, int64_t R, int64_t C, int64_t per_group, bool by_rows,
                  double factor, cudaStream_t s) {
  const int64_t n = by_rows ? R : C;
  const int64_t groups = ceil_div(n, per_group);
  if (a_bf16)
    line_sums(term, lines, static_cast<const uint16_t*>(a), b, R, C, by_rows, s);
  else
    line_sums(term, lines, static_cast<const float*>(a), b, R, C, by_rows, s);
  const int64_t chunks = by_rows ? 1 : group_reduce_lines(R, C, false) / C;
  group_sums_kernel<<<grid_for(groups, kGroupThreads), kGroupThreads, 0, s>>>(
      out, lines, n, chunks, per_group, groups, factor);
}

}  // namespace resp::kernels
