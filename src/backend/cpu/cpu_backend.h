// The CPU backend: OpenBLAS sgemm for matrix products, OpenMP loops for everything else.
// All math is f32 on f32 tensors; reductions that decide accuracy (rmsnorm's mean of squares,
// softmax denominators) accumulate in double, and rope angles are computed in double, so the
// engine tracks a float64 reference model closely.
//
// Threading: one thread count `threads()` is used both for OpenBLAS (openblas_set_num_threads,
// a process-wide setting) and for every OpenMP region here (num_threads clause), so BLAS and
// our own loops never oversubscribe the cores. An op uses them only above its family's work
// threshold (cpu_parallel.h); smaller ops, OpenBLAS calls included, run on the calling thread.
//
// Tensors: the forward ops accept row-major views whose leading dimension may be padded
// (stride(0) > the size of one row); all inner dimensions must be contiguous. copy() needs fully
// contiguous tensors. Host (Device::CPU) tensors only; anything else is a ShapeError.
#pragma once

#include <string>

#include "backend/backend.h"
#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/cpu_parallel.h"

namespace resp {

namespace cpu {
struct CpuKernels;

// This process's OpenMP wait policy in words, for benchmark reports: "active", "passive",
// "spin N" (GOMP_SPINCOUNT) or "libgomp default" (default_parallel_thresholds() follows it).
std::string omp_wait_name();
}  // namespace cpu

class CpuBackend final : public Backend {
 public:
  // threads <= 0: omp_get_max_threads(). The hot kernels (few-rows GEMM, attention) are those
  // of `isa` (default: active_cpu_isa()); an ISA this CPU lacks is an UnsupportedError.
  explicit CpuBackend(int threads = 0);
  CpuBackend(int threads, CpuIsa isa);
  // Work thresholds: default_parallel_thresholds() unless given (`resp bench threads`).
  CpuBackend(int threads, CpuIsa isa, const cpu::ParallelThresholds& thresholds);

  Device device() const override { return Device::CPU; }
  std::string name() const override { return "cpu"; }
  int threads() const { return threads_; }
  CpuIsa isa() const { return isa_; }

  Buffer allocate(size_t bytes) override;
  void copy(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& dst, float value) override;
  void synchronize() override {}

  void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c,
            float alpha = 1.0f, float beta = 0.0f) override;
  void add_bias(const Tensor& y, const Tensor& bias) override;
  void rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w, float eps) override;
  void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq) override;
  // out may alias q exactly (each (t, head) row of q is read completely before it is written);
  // it must not overlap k or v.
  void attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                 const Tensor& kv_of_head, int64_t q_offset, float scale) override;
  void swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) override;
  void embedding(const Tensor& out, const Tensor& table, const Tensor& ids) override;
  void add(const Tensor& out, const Tensor& a, const Tensor& b) override;
  void scale(const Tensor& x, float alpha) override;
  void softmax(const Tensor& out, const Tensor& x) override;
  void log_softmax(const Tensor& out, const Tensor& x) override;

  // Backward ops live in cpu_backward.cpp.
  void sum_rows(const Tensor& out, const Tensor& x) override;
  void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy, const Tensor& x,
                        const Tensor& w, float eps) override;
  void rope_backward(const Tensor& dx, const Tensor& positions, const Tensor& inv_freq) override;
  void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                          const Tensor& q, const Tensor& k, const Tensor& v,
                          const Tensor& kv_of_head, int64_t q_offset, float scale) override;
  void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                       const Tensor& gate, const Tensor& up) override;
  void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& ids) override;
  void cross_entropy(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                     const Tensor& weights) override;
  void group_reduce(std::span<double> out, GroupReduce kind, const Tensor& a, const Tensor& b,
                    bool by_rows, int64_t per_group, double factor) override;  // cpu_reductions.cpp

 private:
  // The thread count for `work` units of an op family with `threshold` (one of thresholds_).
  int threads_for(int64_t work, int64_t threshold) const {
    return cpu::threads_for(threads_, work, threshold);
  }

  int threads_;
  CpuIsa isa_;
  const cpu::CpuKernels* kernels_;
  cpu::ParallelThresholds thresholds_;
};

}  // namespace resp
