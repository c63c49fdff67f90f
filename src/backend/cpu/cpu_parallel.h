// When the CPU backend's ops start OpenMP threads (and let OpenBLAS start its own).
//
// Starting a parallel region and joining it costs a few microseconds on an idle machine and far
// more on a busy one: a worker that the kernel has descheduled keeps the whole team waiting at
// the closing barrier. Most ops of a small model's decode step are microsecond ops, so an op
// goes parallel only above a measured amount of work, one threshold per op family, all here.
// The values are the crossovers `resp bench threads` measured (docs/performance.md): the
// smallest size from which two threads beat one on every larger size, rounded up to a power of
// two. Below a threshold the op runs on the calling thread; results never depend on the choice
// (every op splits work so that each output is computed in the same order either way).
#pragma once

#include <cstdint>

namespace resp::cpu {

struct ParallelThresholds {
  // Elements written by the memory-bound ops: fill, add, scale, add_bias, embedding,
  // embedding_backward, sum_rows.
  int64_t elementwise;
  // Elements of the ops with an exp per element: swiglu, swiglu_backward, softmax,
  // log_softmax, cross_entropy.
  int64_t transcendental;
  // Elements of the row-normalising ops: rmsnorm, rmsnorm_backward, rope, rope_backward.
  int64_t rowwise;
  // Multiply-adds (m * n * k) of the few-rows GEMM (decode steps).
  int64_t gemm;
  // Multiply-adds of an OpenBLAS sgemm / sgemv: below it OpenBLAS runs on one thread (its own
  // cut-off is 64^3 multiply-adds, far below what pays on a shared machine).
  int64_t blas;
  // Multiply-adds of attention (q.k and p.v: 2 * query rows * heads * keys seen * D), forward
  // and backward (5 products there).
  int64_t attention;
};

// Measured with `resp bench threads` on the 2-core AVX-512 development machine
// (docs/performance.md, "Threads"), one table per OpenMP wait policy, because what a parallel
// region costs depends on it: with passive waits (resp's default) waking the team costs ~50 us
// even on an idle machine, and on a busy one no family gained from a second thread below
// ~2^20 units; with spinning waits (OMP_WAIT_POLICY=active, a machine to oneself) a region
// costs 1-3 us and most families gain from 2^16 on. Each value is the low end of its family's
// measured crossover.
inline constexpr ParallelThresholds kParallelThresholds{
    .elementwise = int64_t{1} << 22,
    .transcendental = int64_t{1} << 20,
    .rowwise = int64_t{1} << 22,
    .gemm = int64_t{1} << 20,
    .blas = int64_t{1} << 22,
    .attention = int64_t{1} << 22,
};
inline constexpr ParallelThresholds kSpinningThresholds{
    .elementwise = int64_t{1} << 16,
    .transcendental = int64_t{1} << 16,
    .rowwise = int64_t{1} << 16,
    .gemm = int64_t{1} << 16,
    .blas = int64_t{1} << 20,
    .attention = int64_t{1} << 16,
};

// The table for this process's wait policy: kSpinningThresholds when its threads spin before
// sleeping (OMP_WAIT_POLICY "active", any case, or a positive GOMP_SPINCOUNT without
// OMP_WAIT_POLICY "passive": what resp chooses on idle CPUs, src/app/omp_wait.h), else
// kParallelThresholds. (Reads the environment; defined in cpu_backend.cpp.)
const ParallelThresholds& default_parallel_thresholds();

// Every threshold 0: each op uses all its threads whatever its size (what `resp bench threads`
// compares against one thread).
inline constexpr ParallelThresholds kAlwaysParallel{0, 0, 0, 0, 0, 0};

// The thread count for `work` units of an op family with `threshold`: `threads` at or above
// it, else 1.
constexpr int threads_for(int threads, int64_t work, int64_t threshold) {
  return work >= threshold ? threads : 1;
}

// OpenBLAS (the OpenMP build) runs on the thread count last set process-wide; this sets it for
// one scope and then puts back the backend's count, so a small product stays on the calling
// thread. (Defined in cpu_backend.cpp, which includes cblas.h.)
class BlasThreads {
 public:
  BlasThreads(int call, int backend);
  ~BlasThreads();
  BlasThreads(const BlasThreads&) = delete;
  BlasThreads& operator=(const BlasThreads&) = delete;

 private:
  int backend_;
};

}  // namespace resp::cpu
