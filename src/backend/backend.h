// The device abstraction. The model code calls only these methods and never learns whether it
// runs on the CPU or a GPU. All float ops compute in f32 on f32 tensors unless stated.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "core/tensor.h"

namespace resp {

// The term group_reduce() sums over each group's elements of a (and b).
enum class GroupReduce {
  AbsProduct,  // |a * b|: first-order Taylor importance (weights times their gradients)
  Product,     // a * b: signed dot products (activations times their gradients)
  Square,      // a^2: weight magnitudes, squared activation norms
  Abs,         // |a|: column sums of |W| (wanda-sp)
};
const char* group_reduce_name(GroupReduce kind);
// Whether the term reads the second operand b.
bool group_reduce_reads_b(GroupReduce kind);

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Device device() const = 0;
  virtual std::string name() const = 0;
  // The dtype the model should store its weight matrices in. gemm() accepts it as an operand
  // and copy() converts to and from F32 host staging; everything else stays F32. The CPU
  // backend keeps F32; the CUDA backend may use BF16 (see make_cuda_backend).
  virtual DType weight_dtype() const { return DType::F32; }

  // ---- memory -------------------------------------------------------------------------------
  virtual Buffer allocate(size_t bytes) = 0;
  // Copies numel elements between tensors of the same dtype and element count; either side may
  // be host or device memory. Both must be contiguous.
  virtual void copy(const Tensor& dst, const Tensor& src) = 0;
  virtual void fill(const Tensor& dst, float value) = 0;  // F32 tensors
  virtual void synchronize() = 0;

  // Allocates a tensor-sized buffer on this backend (convenience over allocate()).
  Buffer allocate_tensor(DType dtype, Shape shape) {
    return allocate(static_cast<size_t>(shape.numel()) * dtype_size(dtype));
  }

  // ---- math ---------------------------------------------------------------------------------
  // C = alpha * op(A) @ op(B) + beta * C for 2-D f32 views; op(X) = X^T when trans_x.
  // Row strides (stride(0)) may exceed the row length; the last dimension must be contiguous.
  virtual void gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c,
                    float alpha = 1.0f, float beta = 0.0f) = 0;

  // y[T, out] = x[T, in] @ w[out, in]^T (+ bias[out] when bias is non-empty). beta = 1 adds into y.
  void linear(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias = {},
              float beta = 0.0f);

  // y[r, :] += bias[:] for every row r of y[R, N].
  virtual void add_bias(const Tensor& y, const Tensor& bias) = 0;

  // out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * w[:], x/out [R, D], w [D]. out may alias x.
  virtual void rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w, float eps) = 0;

  // In-place rotary embedding, Hugging Face "rotate_half" convention on x [T, H, D] (D even):
  // for i < D/2, angle = positions[t] * inv_freq[i],
  //   x'[i]       = x[i] * cos - x[i + D/2] * sin
  //   x'[i + D/2] = x[i + D/2] * cos + x[i] * sin
  // positions: I32 [T]; inv_freq: F32 [D/2] (already scaled, e.g. llama3 rope scaling).
  virtual void rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq) = 0;

  // Causal grouped-query attention.
  // q [T, Hq, D]; k, v [S, Hkv, D] hold keys/values for positions 0..S-1 of this sequence;
  // query row t sits at position q_offset + t and attends keys 0..q_offset + t (S >= q_offset + T).
  // kv_of_head: I32 [Hq], the KV head each query head reads (explicit, because pruning leaves
  // groups of unequal size). out [T, Hq, D] = softmax(scale * q k^T) v.
  virtual void attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                         const Tensor& kv_of_head, int64_t q_offset, float scale) = 0;

  // One decode step of B sequences with one new token each, against one layer of a KV cache.
  // q [B, Hq, D], k_new and v_new [B, Hkv, D]: the new tokens' queries, keys and values.
  // k_cache, v_cache [N, L, Hkv, D] (contiguous): N slots of L positions (KvCache's layout).
  // slots, positions: I32 [B] in this backend's memory (uploaded once per step, not per
  // layer); row b's token sits at position positions[b] of slot slots[b], slots distinct.
  // Writes k_new[b] and v_new[b] at that position, then out[b] [Hq, D] = attention() of q[b]
  // over keys 0..positions[b] of its slot (q_offset = positions[b]).
  // The default does exactly that row by row with copy() and attention(), so a backend that
  // keeps it computes what per-sequence calls compute, bit for bit; a GPU backend overrides it
  // with one launch for the whole batch (per-row launches dominate a decode step otherwise).
  virtual void attention_decode_batch(const Tensor& out, const Tensor& q, const Tensor& k_new,
                                      const Tensor& v_new, const Tensor& k_cache,
                                      const Tensor& v_cache, const Tensor& slots,
                                      const Tensor& positions, const Tensor& kv_of_head,
                                      float scale);

  // out = silu(gate) * up, all [T, F]. out may alias gate or up.
  virtual void swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) = 0;

  // out[t, :] = table[ids[t], :]; table [V, H] F32, ids I32 [T] (each in [0, V)), out [T, H].
  virtual void embedding(const Tensor& out, const Tensor& table, const Tensor& ids) = 0;

  // out = a + b elementwise (same shapes; out may alias a or b).
  virtual void add(const Tensor& out, const Tensor& a, const Tensor& b) = 0;
  // x *= alpha.
  virtual void scale(const Tensor& x, float alpha) = 0;

  // Row-wise softmax / log-softmax over the last dim of x [R, N] (numerically stable).
  // out may alias x.
  virtual void softmax(const Tensor& out, const Tensor& x) = 0;
  virtual void log_softmax(const Tensor& out, const Tensor& x) = 0;

  // ---- backward ops -------------------------------------------------------------------------
  // Conventions: activation gradients (dx, dq, ...) are OVERWRITTEN; weight gradients (dw, db)
  // are ACCUMULATED (+=), so gradients sum over samples without extra buffers. Linear layers
  // need no op of their own: dX = dY W and dW += dY^T X are gemm calls (see linear_backward).

  // dW += dY^T X (when dw non-empty), dX = dY W (when dx non-empty), db += column sums of dY.
  void linear_backward(const Tensor& dx, const Tensor& dw, const Tensor& db, const Tensor& dy,
                       const Tensor& x, const Tensor& w, float dx_beta = 0.0f);

  // out[n] += sum_r x[r, n] for x [R, N] (bias gradients).
  virtual void sum_rows(const Tensor& out, const Tensor& x) = 0;

  // Backward of rmsnorm: x [R, D], w [D], dy [R, D] -> dx [R, D] (overwritten; may alias dy),
  // dw [D] += sum_r dy * x / rms (skipped when dw is empty).
  virtual void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy,
                                const Tensor& x, const Tensor& w, float eps) = 0;

  // Backward of rope (in place on dx [T, H, D]): the transpose of the rotation, i.e. rotation
  // by the negative angle.
  virtual void rope_backward(const Tensor& dx, const Tensor& positions, const Tensor& inv_freq) = 0;

  // Backward of attention() with the same arguments plus dout [T, Hq, D]. Overwrites
  // dq [T, Hq, D], dk and dv [S, Hkv, D] (rows of keys no query saw are zeroed). Recomputes the
  // probabilities from q and k.
  virtual void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                  const Tensor& dout, const Tensor& q, const Tensor& k,
                                  const Tensor& v, const Tensor& kv_of_head, int64_t q_offset,
                                  float scale) = 0;

  // Backward of out = silu(gate) * up: dgate, dup [T, F] overwritten; they must not alias gate
  // or up (both are read), but dgate may alias dout.
  virtual void swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                               const Tensor& gate, const Tensor& up) = 0;

  // dtable[ids[t], :] += dout[t, :] (duplicate ids accumulate).
  virtual void embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& ids) = 0;

  // Fused weighted cross-entropy on a block of rows. logits [R, V] is read and OVERWRITTEN with
  // d(loss)/d(logits) = weights[r] * (softmax(logits[r]) - onehot(targets[r])); losses[r] =
  // -log softmax(logits[r])[targets[r]] (unweighted). targets I32 [R], weights F32 [R]
  // (weight 0 = masked position, e.g. a prompt token under the decode-only loss).
  virtual void cross_entropy(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                             const Tensor& weights) = 0;

  // ---- reductions for importance scores -----------------------------------------------------
  // out[g] += factor * sum of the `kind` term over the elements of group g, where a (and b, of
  // a's shape, for the product terms; empty otherwise) are [R, C] matrices on this backend and
  // group g is rows [g * per_group, (g + 1) * per_group) (by_rows) or those columns (a last
  // group may be short). out is host memory with exactly ceil(R or C / per_group) entries: only
  // these doubles leave the device. Sums are in double, in an order fixed by the shape alone
  // (never by thread count or launch timing), so equal inputs give equal bits. a may be in
  // weight_dtype(); b is F32; both contiguous.
  // The default throws UnsupportedError: a backend (or a wrapper of one) must provide it.
  virtual void group_reduce(std::span<double> out, GroupReduce kind, const Tensor& a,
                            const Tensor& b, bool by_rows, int64_t per_group, double factor);
};

// Argument checks shared by the backends' gemm(), so CPU and CUDA refuse the same calls: 2-D
// operands whose op(A) @ op(B) fits C, and C overlapping neither A nor B (cuBLAS and BLAS read
// the inputs while writing C, so an overlap gives garbage rather than an error). Dtypes are the
// backend's business. Returns {m, n, k}. ShapeError naming the tensors otherwise.
struct GemmDims {
  int64_t m, n, k;
};
GemmDims check_gemm_args(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                         const Tensor& c);
// Whether the memory two views touch (first to last element, strides included) intersects.
bool tensors_overlap(const Tensor& x, const Tensor& y);
// `out` may be exactly `in` (an in-place op: same data and row layout) but must not partly
// overlap it, which would read inputs the op has already overwritten. ShapeError naming `op`
// and both tensors otherwise. Shared by the backends' element-wise and row-wise ops.
void check_in_place_or_disjoint(const char* op, const char* out_name, const Tensor& out,
                                const char* in_name, const Tensor& in);

// Shape and dtype checks of attention_decode_batch() shared by its implementations (ShapeError
// naming the offending tensor). The values of slots/positions are checked where they are read:
// on the host by check_decode_slots_distinct(), on a GPU by the kernel (same message).
void check_decode_batch_args(const Tensor& out, const Tensor& q, const Tensor& k_new,
                             const Tensor& v_new, const Tensor& k_cache, const Tensor& v_cache,
                             const Tensor& slots, const Tensor& positions,
                             const Tensor& kv_of_head);
// Argument checks of group_reduce() shared by its implementations (ShapeError naming the
// tensors): contiguous 2-D a of F32 or BF16, b like a but F32 exactly when the term reads it
// (empty otherwise), per_group > 0 and out sized to the group count. Devices are the backend's
// business.
struct GroupReduceDims {
  int64_t rows, cols, groups;
};
GroupReduceDims check_group_reduce_args(std::span<const double> out, GroupReduce kind,
                                        const Tensor& a, const Tensor& b, bool by_rows,
                                        int64_t per_group);

// A tensor seen as `rows` rows (dimension 0) of `cols` contiguous elements, `stride` elements
// apart: the view every backend's row-wise ops take. Inner dimensions must be contiguous;
// dimension 0 may be padded (stride >= cols). A rank-0 tensor is one row of one element.
// ShapeError naming `op` and `what` otherwise. Device and dtype are the caller's checks.
struct RowLayout {
  int64_t rows, cols, stride;
};
RowLayout row_layout(const char* op, const char* what, const Tensor& t);

// Shape checks of attention() and attention_backward() shared by the backends (ShapeError
// naming `op` and the tensors): q [T, Hq, D], k and v [S, Hkv, D], kv_of_head [Hq],
// S >= q_offset + T. The values of kv_of_head are checked where they can be read. Dtypes and
// memory are the backend's checks.
struct AttentionDims {
  int64_t t, hq, d, s, hkv;
};
AttentionDims check_attention_args(const char* op, const Tensor& q, const Tensor& k,
                                   const Tensor& v, const Tensor& kv_of_head, int64_t q_offset);
// The above for "attention_backward", plus dq and dout shaped like q, dk and dv like k.
AttentionDims check_attention_backward_args(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                            const Tensor& dout, const Tensor& q, const Tensor& k,
                                            const Tensor& v, const Tensor& kv_of_head,
                                            int64_t q_offset);

// Two rows of one decode batch writing the same KV-cache slot race on it; ShapeError.
void check_decode_slots_distinct(const int32_t* slots, int64_t n);
inline constexpr const char* kDuplicateSlotMessage =
    "attention_decode_batch: a slot appears twice in one batch";

// The CPU backend (OpenBLAS + OpenMP). `threads` <= 0 means "all available cores".
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);

// The CUDA backend on `device` (< 0: device 0), storing weight matrices as `weight_dtype` (F32
// or BF16). Throws UnsupportedError when this build has no CUDA, DeviceError when the device
// cannot be used.
std::unique_ptr<Backend> make_cuda_backend(int device = -1, DType weight_dtype = DType::F32);
// What probing for CUDA devices found. An old driver is not "no GPU": the machine has a GPU this
// build cannot use, which `--device auto` must say and `--device cuda` and GPU tests must not
// hide behind a skip.
struct CudaProbe {
  enum class State {
    Available,     // devices > 0
    NoDevice,      // no driver installed or no device visible: a CPU machine
    NotBuilt,      // this build has no CUDA backend
    DriverTooOld,  // a driver is installed but older than this build's CUDA runtime needs
    Error,         // any other failure of the runtime (driver/library mismatch, devices busy)
  };
  State state = State::NotBuilt;
  int devices = 0;
  std::string reason;  // one line; empty when Available
  bool available() const { return state == State::Available; }
  // A GPU seems present but cannot be used: worth a warning even where CPU is a fallback.
  bool broken() const { return state == State::DriverTooOld || state == State::Error; }
};
CudaProbe probe_cuda();
// Visible CUDA devices: 0 without CUDA support in the build, without a usable driver or device.
int cuda_device_count();

}  // namespace resp
