// Host-side launchers of the CUDA kernels in this folder. Only the CUDA backend includes this
// header. Launchers take raw device pointers plus explicit sizes and leading strides (in
// elements) and enqueue on `stream`; they never synchronise and never validate shapes (the
// backend does that on the host). Index checks that need device data (token ids, targets,
// kv_of_head) set bits in `status`, a word of mapped pinned host memory the backend reads after
// the next synchronisation, because a kernel cannot throw.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace resp::kernels {

// Bits of the status word.
enum StatusBit : unsigned {
  kBadTokenId = 1u << 0,
  kBadTarget = 1u << 1,
  kBadKvHead = 1u << 2,
  kBadCacheRow = 1u << 3,
  kDuplicateSlot = 1u << 4,
};

// `rows` rows of `cols` contiguous floats, `ld` elements apart (ld >= cols).
struct Rows {
  float* p;
  int64_t rows;
  int64_t cols;
  int64_t ld;
};

// Raises the dynamic shared-memory limit of the attention kernels (once per device/process).
void init_attention(int device);
// Largest head dim the attention kernels support.
constexpr int kMaxHeadDim = 256;

// ---- elementwise --------------------------------------------------------------------------
void fill(Rows x, float value, cudaStream_t s);
void scale(Rows x, float alpha, cudaStream_t s);
void add(Rows out, Rows a, Rows b, cudaStream_t s);
void add_bias(Rows y, const float* bias, cudaStream_t s);
void swiglu(Rows out, Rows gate, Rows up, cudaStream_t s);
void swiglu_backward(float* dgate, float* dup, const float* dout, const float* gate,
                     const float* up, int64_t n, cudaStream_t s);
void embedding(Rows out, const float* table, int64_t vocab, const int32_t* ids, unsigned* status,
               cudaStream_t s);
void embedding_backward(float* dtable, int64_t vocab, const float* dout, int64_t T, int64_t H,
                        const int32_t* ids, unsigned* status, cudaStream_t s);
void f32_to_bf16(uint16_t* dst, const float* src, int64_t n, cudaStream_t s);
void bf16_to_f32(float* dst, const uint16_t* src, int64_t n, cudaStream_t s);
// Rows of f32 `src` (ld_src) to a packed bf16 [rows, cols] matrix (GEMM operand staging).
void f32_rows_to_bf16(uint16_t* dst, Rows src, cudaStream_t s);

// Column sums out[c] += sum_r a[r, c] * (b ? b[r, c] : 1) * (row_scale ? row_scale[r] : 1) of
// [R, C] matrices (contiguous rows). Deterministic two-stage reduction; `partial` needs
// column_sum_partials(R) * C floats.
int64_t column_sum_partials(int64_t R);
void column_sum(float* out, const float* a, const float* b, const float* row_scale, int64_t R,
                int64_t C, float* partial, cudaStream_t s);

// ---- normalisation and rotary embedding ---------------------------------------------------
void rmsnorm(Rows out, Rows x, const float* w, float eps, cudaStream_t s);
// dx [R, D] (may alias dy) overwritten, dw [D] (nullable) accumulated; x, dy contiguous.
// `scratch` needs rmsnorm_backward_scratch(R, D) floats.
int64_t rmsnorm_backward_scratch(int64_t R, int64_t D);
void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w,
                      int64_t R, int64_t D, float eps, float* scratch, cudaStream_t s);
// In place on x [T, H, D] (row stride ld for dimension 0, heads contiguous); `sign` -1 rotates
// by the negative angle (the backward op).
void rope(float* x, int64_t T, int64_t H, int64_t D, int64_t ld, const int32_t* positions,
          const float* inv_freq, float sign, cudaStream_t s);

// ---- softmax family -----------------------------------------------------------------------
void softmax(Rows out, Rows x, bool log, cudaStream_t s);
void cross_entropy(float* losses, float* logits, int64_t R, int64_t V, const int32_t* targets,
                   const float* weights, unsigned* status, cudaStream_t s);

// ---- attention ----------------------------------------------------------------------------
struct AttnArgs {
  const float* q;  // [T, Hq, D], row stride ldq
  const float* k;  // [S, Hkv, D], row stride ldk
  const float* v;  // [S, Hkv, D], row stride ldv
  const int32_t* kv_of_head;
  int64_t T, Hq, Hkv, D, S;
  int64_t ldq, ldk, ldv;
  int64_t q_offset;
  float scale;
};
// Scratch floats attention() needs for the decode (split-key) path, 0 for prefill.
int64_t attention_scratch(const AttnArgs& a);
// out [T, Hq, D] (row stride ldo). lse (nullable) receives log-sum-exp of the scaled scores
// per (t, h) ([T, Hq]); when it is requested the prefill kernel is always used.
void attention(float* out, int64_t ldo, float* lse, const AttnArgs& a, float* scratch,
               unsigned* status, cudaStream_t s);
// dq [T, Hq, D], dk/dv [S, Hkv, D] (contiguous), overwritten. o and lse come from a forward
// with lse; delta is scratch [T, Hq].
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* o,
                        const float* lse, float* delta, const AttnArgs& a, cudaStream_t s);

// One decode step of B sequences against a KV cache layer (Backend::attention_decode_batch).
struct DecodeBatchArgs {
  const float* q;      // [B, Hq, D], row stride ldq
  const float* k_new;  // [B, Hkv, D], row stride ldkn
  const float* v_new;  // [B, Hkv, D], row stride ldvn
  float* k_cache;      // [N, L, Hkv, D], contiguous
  float* v_cache;
  const int32_t* slots;       // [B]
  const int32_t* positions;   // [B]
  const int32_t* kv_of_head;  // [Hq]
  int64_t B, Hq, Hkv, D, N, L;
  int64_t ldq, ldkn, ldvn;
  float scale;
};
// Scratch floats attention_decode_batch() needs (split-key partials), possibly 0.
int64_t attention_decode_batch_scratch(const DecodeBatchArgs& a);
// Appends each row's key/value to its slot (one kernel), then attends (one kernel, plus the
// combine when keys are split). out [B, Hq, D] with row stride ldo. A slot or position outside
// the cache sets kBadCacheRow and gives that row zeros; a slot used by two rows sets
// kDuplicateSlot (the rows race on it, so the step's results are void).
void attention_decode_batch(float* out, int64_t ldo, const DecodeBatchArgs& a, float* scratch,
                            unsigned* status, cudaStream_t s);

// ---- importance reductions ----------------------------------------------------------------
// The summed term of Backend::group_reduce (GroupReduce there; this header stays CUDA-only).
enum class ReduceTerm { AbsProduct, Product, Square, Abs };
// Scratch doubles (`lines`) group_reduce() needs for [R, C] operands: a sum per row, or a sum
// per column and fixed chunk of rows.
int64_t group_reduce_lines(int64_t R, int64_t C, bool by_rows);
// out[g] = factor * the sum of the term over the rows (by_rows) or columns [g * per_group,
// (g + 1) * per_group) of a (f32, or bf16 when a_bf16) and b (f32; nullptr when the term reads
// none), both contiguous [R, C] with R, C > 0. out: device memory, ceil(R or C / per_group)
// doubles. Fixed-order two-stage sums (no atomics): the result depends on the inputs only.
void group_reduce(double* out, double* lines, ReduceTerm term, const void* a, bool a_bf16,
                  const float* b, int64_t R, int64_t C, int64_t per_group, bool by_rows,
                  double factor, cudaStream_t s);

}  // namespace resp::kernels
