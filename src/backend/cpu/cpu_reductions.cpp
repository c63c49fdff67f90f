// group_reduce() of the CPU backend (contract in backend.h). Each row's (or column's) sum of
// terms is computed by one thread in index order, and each group adds its rows' (columns')
// sums in index order, so the result is the same bits whatever the thread count.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace resp {

namespace {

// Columns one thread accumulates over all rows (the column direction): a row's slice of them is
// one contiguous read, and the accumulators stay in L1.
constexpr int64_t kColumnBlock = 256;
// Below this many elements the reduction runs on one thread (no parallel-region start-up).
constexpr int64_t kParallelMin = int64_t{1} << 16;

template <GroupReduce K>
double term(const float* a, const float* b, int64_t i) {
  const double x = a[i];
  if constexpr (K == GroupReduce::AbsProduct)
    return std::fabs(x * b[i]);
  else if constexpr (K == GroupReduce::Product)
    return x * b[i];
  else if constexpr (K == GroupReduce::Square)
    return x * x;
  else
    return std::fabs(x);
}

// lines[i] = sum of the terms of row i (by_rows) or column i of the [R, C] operands.
template <GroupReduce K>
void line_sums(std::vector<double>& lines, const float* a, const float* b, int64_t R, int64_t C,
               bool by_rows, int threads) {
  const int nt = R * C >= kParallelMin ? threads : 1;
  if (by_rows) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      const float* ar = a + r * C;
      const float* br = b ? b + r * C : nullptr;
      double s = 0;
      for (int64_t c = 0; c < C; ++c) s += term<K>(ar, br, c);
      lines[static_cast<size_t>(r)] = s;
    }
    return;
  }
  const int64_t blocks = (C + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t c0 = blk * kColumnBlock, n = std::min(kColumnBlock, C - c0);
    double acc[kColumnBlock] = {};
    for (int64_t r = 0; r < R; ++r) {
      const float* ar = a + r * C + c0;
      const float* br = b ? b + r * C + c0 : nullptr;
      for (int64_t j = 0; j < n; ++j) acc[j] += term<K>(ar, br, j);
    }
    std::copy(acc, acc + n, lines.begin() + c0);
  }
}

}  // namespace

void CpuBackend::group_reduce(std::span<double> out, GroupReduce kind, const Tensor& a,
                              const Tensor& b, bool by_rows, int64_t per_group, double factor) {
  const GroupReduceDims d = check_group_reduce_args(out, kind, a, b, by_rows, per_group);
  if (a.device() != Device::CPU || a.dtype() != DType::F32)
    throw ShapeError(cat("group_reduce: a ", a.str(),
                         " must be F32 host memory (the CPU backend stores F32 only)"));
  if (b.data() && b.device() != Device::CPU)
    throw ShapeError(cat("group_reduce: b ", b.str(), " is not host memory"));
  if (d.rows == 0 || d.cols == 0) return;
  const float* ap = a.f32();
  const float* bp = group_reduce_reads_b(kind) ? b.f32() : nullptr;
  const int64_t n = by_rows ? d.rows : d.cols;
  std::vector<double> lines(static_cast<size_t>(n));
  switch (kind) {
    case GroupReduce::AbsProduct:
      line_sums<GroupReduce::AbsProduct>(lines, ap, bp, d.rows, d.cols, by_rows, threads_);
      break;
    case GroupReduce::Product:
      line_sums<GroupReduce::Product>(lines, ap, bp, d.rows, d.cols, by_rows, threads_);
      break;
    case GroupReduce::Square:
      line_sums<GroupReduce::Square>(lines, ap, bp, d.rows, d.cols, by_rows, threads_);
      break;
    case GroupReduce::Abs:
      line_sums<GroupReduce::Abs>(lines, ap, bp, d.rows, d.cols, by_rows, threads_);
      break;
  }
  for (int64_t g = 0; g < d.groups; ++g) {
    double s = 0;
    for (int64_t i = g * per_group; i < std::min(n, (g + 1) * per_group); ++i)
      s += lines[static_cast<size_t>(i)];
    out[static_cast<size_t>(g)] += factor * s;
  }
}

}  // namespace resp
