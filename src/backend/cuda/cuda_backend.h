// The CUDA backend: cuBLAS for matrix products, the kernels of kernels/ for everything else,
// all enqueued on one stream owned by the backend.
//
// Memory: plain cudaMalloc per allocate() (no managed memory); the model allocates a few large
// arenas, so allocation speed does not matter. copy() moves data in any direction; copies that
// involve host memory go through two reused pinned staging chunks (double-buffered, so packing
// and DMA overlap; dtype conversion happens on the device chunk by chunk, so a huge bf16 weight
// never needs a full-size f32 device copy) and synchronise the stream (the host buffer may be
// reused or read at once); device-to-device copies are stream-ordered. Every other op is
// asynchronous.
//
// Device-side index checks (token ids, targets, kv_of_head) cannot throw from a kernel: they
// set bits in a mapped pinned status word, and the next synchronising call (copy to or from the
// host, synchronize()) throws ShapeError naming them.
//
// Precision: f32 tensors compute in f32 (cuBLAS with TF32 disabled). A BF16 operand of gemm()
// (weights stored in bf16) switches that product to bf16 inputs with f32 accumulation and f32
// output; the f32 operand is rounded to bf16 in a scratch buffer first.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "backend/backend.h"
#include "backend/cuda/cuda_util.h"

namespace resp {

class CudaBackend final : public Backend {
 public:
  // device < 0: device 0.
  explicit CudaBackend(int device = -1, DType weight_dtype = DType::F32);
  ~CudaBackend() override;

  Device device() const override { return Device::CUDA; }
  std::string name() const override;
  DType weight_dtype() const override { return weight_dtype_; }
  int device_index() const { return device_; }
  cudaStream_t stream() const { return stream_.get(); }
  cublasHandle_t cublas() const { return cublas_.get(); }

  Buffer allocate(size_t bytes) override;
  void copy(const Tensor& dst, const Tensor& src) override;
  void fill(const Tensor& dst, float value) override;
  void synchronize() override;

  void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c,
            float alpha = 1.0f, float beta = 0.0f) override;
  void add_bias(const Tensor& y, const Tensor& bias) override;
  void rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w, float eps) override;
  void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq) override;
  void attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                 const Tensor& kv_of_head, int64_t q_offset, float scale) override;
  // One kernel appends every row's key/value, one more (plus a combine when keys are split)
  // attends: a decode step costs the same few launches per layer at any batch size.
  void attention_decode_batch(const Tensor& out, const Tensor& q, const Tensor& k_new,
                              const Tensor& v_new, const Tensor& k_cache, const Tensor& v_cache,
                              const Tensor& slots, const Tensor& positions,
                              const Tensor& kv_of_head, float scale) override;
  void swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) override;
  void embedding(const Tensor& out, const Tensor& table, const Tensor& ids) override;
  void add(const Tensor& out, const Tensor& a, const Tensor& b) override;
  void scale(const Tensor& x, float alpha) override;
  void softmax(const Tensor& out, const Tensor& x) override;
  void log_softmax(const Tensor& out, const Tensor& x) override;

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

  // Per-row/column sums on the device into scratch, per-group sums by one thread each, then
  // one copy of the group sums to the host (which synchronises the stream).
  void group_reduce(std::span<double> out, GroupReduce kind, const Tensor& a, const Tensor& b,
                    bool by_rows, int64_t per_group, double factor) override;

 private:
  void* scratch(size_t bytes) { return scratch_.get(bytes, stream_.get()); }
  // F32 <-> BF16 of n elements, device to device, on the stream.
  void convert(void* dst, DType dst_dtype, const void* src, int64_t n);
  // Host <-> device transfers through the pinned staging chunks (see staging_).
  void ensure_staging();
  void upload(const Tensor& dst, const Tensor& src);
  void download(const Tensor& dst, const Tensor& src);
  void sync_and_check(const char* op);
  // bf16 copy of an f32 operand (packed rows), placed at `offset` bytes into the scratch.
  const void* to_bf16(const Tensor& t, size_t offset);

  int device_ = 0;
  DType weight_dtype_ = DType::F32;
  cuda::Stream stream_;
  cuda::Cublas cublas_;
  cuda::PinnedPtr status_host_;  // mapped: kernels write it, the host reads it after a sync
  unsigned* status_dev_ = nullptr;
  cuda::Scratch scratch_;
  // Two pinned host chunks, allocated on the first host transfer and reused by every later one
  // (weight uploads from the safetensors slices, logits downloads): a pageable buffer would be
  // staged by the driver synchronously, and two chunks let the host pack one while the DMA
  // engine moves the other. `done` marks the last transfer that used the chunk.
  static constexpr size_t kStagingBytes = size_t{8} << 20;
  struct Staging {
    cuda::PinnedPtr host;
    cuda::Event done;
  };
  Staging staging_[2];
};

}  // namespace resp
