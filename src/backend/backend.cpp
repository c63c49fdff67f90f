#include "backend/backend.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "core/error.h"

namespace resp {

void Backend::linear(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias,
                     float beta) {
  gemm(x, false, w, true, y, 1.0f, beta);
  if (!bias.empty()) add_bias(y, bias);
}

void Backend::linear_backward(const Tensor& dx, const Tensor& dw, const Tensor& db,
                              const Tensor& dy, const Tensor& x, const Tensor& w, float dx_beta) {
  if (!dw.empty()) gemm(dy, true, x, false, dw, 1.0f, 1.0f);
  if (!dx.empty()) gemm(dy, false, w, false, dx, 1.0f, dx_beta);
  if (!db.empty()) sum_rows(db, dy);
}

namespace {
// ShapeError "op: message" unless cond. A macro, like RESP_CHECK_SHAPE, so that the message
// (tensor descriptions are formatted strings) is built only on failure; unlike it, it names the
// op rather than the checking function.
#define RESP_REQUIRE(cond, op, ...)                            \
  do {                                                         \
    if (!(cond)) throw ShapeError(cat(op, ": ", __VA_ARGS__)); \
  } while (0)

// Byte range [begin, end) a view touches, strides included (empty for no elements).
std::pair<const char*, const char*> byte_span(const Tensor& t) {
  const char* b = static_cast<const char*>(t.data());
  if (b == nullptr || t.numel() == 0) return {b, b};
  int64_t last = 0;  // offset in elements of the view's last element
  for (int i = 0; i < t.rank(); ++i) last += (t.dim(i) - 1) * t.stride(i);
  return {b, b + (last + 1) * static_cast<int64_t>(dtype_size(t.dtype()))};
}
}  // namespace

bool tensors_overlap(const Tensor& x, const Tensor& y) {
  const auto [xb, xe] = byte_span(x);
  const auto [yb, ye] = byte_span(y);
  return xb < ye && yb < xe;
}

GemmDims check_gemm_args(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                         const Tensor& c) {
  if (a.rank() != 2 || b.rank() != 2 || c.rank() != 2)
    throw ShapeError(
        cat("gemm: A ", a.str(), ", B ", b.str(), ", C ", c.str(), " must all be 2-D"));
  const int64_t m = trans_a ? a.dim(1) : a.dim(0);
  const int64_t k = trans_a ? a.dim(0) : a.dim(1);
  const int64_t kb = trans_b ? b.dim(1) : b.dim(0);
  const int64_t n = trans_b ? b.dim(0) : b.dim(1);
  if (k != kb || c.dim(0) != m || c.dim(1) != n)
    throw ShapeError(cat("gemm: op(A) [", m, ", ", k, "] @ op(B) [", kb, ", ", n, "] -> C [", m,
                         ", ", n, "] does not fit: A ", a.str(), (trans_a ? "^T" : ""), ", B ",
                         b.str(), (trans_b ? "^T" : ""), ", C ", c.str()));
  if (c.device() == a.device() && tensors_overlap(c, a))
    throw ShapeError(cat("gemm: C ", c.str(), " overlaps an input (A ", a.str(), ")"));
  if (c.device() == b.device() && tensors_overlap(c, b))
    throw ShapeError(cat("gemm: C ", c.str(), " overlaps an input (B ", b.str(), ")"));
  return {m, n, k};
}

const char* group_reduce_name(GroupReduce kind) {
  switch (kind) {
    case GroupReduce::AbsProduct:
      return "sum |a*b|";
    case GroupReduce::Product:
      return "sum a*b";
    case GroupReduce::Square:
      return "sum a^2";
    case GroupReduce::Abs:
      return "sum |a|";
  }
  return "?";
}

bool group_reduce_reads_b(GroupReduce kind) {
  return kind == GroupReduce::AbsProduct || kind == GroupReduce::Product;
}

GroupReduceDims check_group_reduce_args(std::span<const double> out, GroupReduce kind,
                                        const Tensor& a, const Tensor& b, bool by_rows,
                                        int64_t per_group) {
  const char* term = group_reduce_name(kind);
  if (a.rank() != 2 || (a.dtype() != DType::F32 && a.dtype() != DType::BF16))
    throw ShapeError(cat("group_reduce (", term, "): a ", a.str(), " must be 2-D F32 or BF16"));
  if ((a.data() == nullptr && a.numel() != 0) || !a.is_contiguous())
    throw ShapeError(cat("group_reduce (", term, "): a ", a.str(), " must be contiguous data"));
  GroupReduceDims d{a.dim(0), a.dim(1), 0};
  if (group_reduce_reads_b(kind)) {
    if (b.rank() != 2 || b.shape() != a.shape() || b.dtype() != DType::F32)
      throw ShapeError(
          cat("group_reduce (", term, "): b ", b.str(), " must be F32 of a's shape ", a.str()));
    if ((b.data() == nullptr && b.numel() != 0) || !b.is_contiguous())
      throw ShapeError(cat("group_reduce (", term, "): b ", b.str(), " must be contiguous data"));
    if (b.device() != a.device())
      throw ShapeError(cat("group_reduce (", term, "): a ", a.str(), " and b ", b.str(),
                           " are on different devices"));
  } else if (b.data() != nullptr || b.rank() != 0) {
    throw ShapeError(cat("group_reduce (", term, "): reads no b, but b ", b.str(), " was given"));
  }
  if (per_group <= 0)
    throw ShapeError(cat("group_reduce (", term, "): per_group ", per_group, " must be > 0"));
  const int64_t n = by_rows ? d.rows : d.cols;
  d.groups = (n + per_group - 1) / per_group;
  if (static_cast<int64_t>(out.size()) != d.groups)
    throw ShapeError(cat("group_reduce (", term, "): out has ", out.size(), " entries for ",
                         d.groups, " groups of ", per_group, by_rows ? " rows" : " columns",
                         " of a ", a.str()));
  return d;
}

void Backend::group_reduce(std::span<double>, GroupReduce kind, const Tensor&, const Tensor&, bool,
                           int64_t, double) {
  throw UnsupportedError(
      cat("backend ", name(), " does not implement group_reduce (", group_reduce_name(kind), ")"));
}

RowLayout row_layout(const char* op, const char* what, const Tensor& t) {
  if (t.rank() == 0) return {1, 1, 1};
  int64_t expect = 1;
  for (int i = t.rank() - 1; i >= 1; --i) {
    if (t.dim(i) != 1 && t.stride(i) != expect)
      throw ShapeError(cat(op, ": ", what, " ", t.str(), " has non-contiguous inner dimensions"));
    expect *= t.dim(i);
  }
  const int64_t rows = t.dim(0);
  const int64_t stride = rows <= 1 ? expect : t.stride(0);
  if (stride < expect)
    throw ShapeError(
        cat(op, ": ", what, " ", t.str(), " has row stride ", stride, " < row size ", expect));
  return {rows, expect, stride};
}

AttentionDims check_attention_args(const char* op, const Tensor& q, const Tensor& k,
                                   const Tensor& v, const Tensor& kv_of_head, int64_t q_offset) {
  RESP_REQUIRE(q.rank() == 3 && k.rank() == 3 && v.rank() == 3, op, "q ", q.str(), ", k ", k.str(),
               ", v ", v.str(), " must be [T, Hq, D], [S, Hkv, D], [S, Hkv, D]");
  const AttentionDims d{q.dim(0), q.dim(1), q.dim(2), k.dim(0), k.dim(1)};
  RESP_REQUIRE(k.shape() == v.shape() && k.dim(2) == d.d, op, "k ", k.str(), " and v ", v.str(),
               " must both be [S, Hkv, D] with D of q ", q.str());
  RESP_REQUIRE(kv_of_head.dtype() == DType::I32 && kv_of_head.rank() == 1 &&
                   kv_of_head.dim(0) == d.hq && kv_of_head.is_contiguous(),
               op, "kv_of_head ", kv_of_head.str(), " must be I32 [Hq] for q ", q.str());
  RESP_REQUIRE(q_offset >= 0 && d.s >= q_offset + d.t, op, "S = ", d.s, " of k ", k.str(),
               " must be >= q_offset ", q_offset, " + T ", d.t, " (q ", q.str(), ")");
  return d;
}

AttentionDims check_attention_backward_args(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                            const Tensor& dout, const Tensor& q, const Tensor& k,
                                            const Tensor& v, const Tensor& kv_of_head,
                                            int64_t q_offset) {
  const AttentionDims d = check_attention_args("attention_backward", q, k, v, kv_of_head, q_offset);
  RESP_REQUIRE(dq.shape() == q.shape() && dout.shape() == q.shape() && dk.shape() == k.shape() &&
                   dv.shape() == k.shape(),
               "attention_backward", "dq ", dq.str(), ", dk ", dk.str(), ", dv ", dv.str(),
               ", dout ", dout.str(), " must match q ", q.str(), " and k ", k.str());
  return d;
}

void check_decode_slots_distinct(const int32_t* slots, int64_t n) {
  std::vector<int32_t> sorted(slots, slots + n);
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    throw ShapeError(kDuplicateSlotMessage);
}

void check_decode_batch_args(const Tensor& out, const Tensor& q, const Tensor& k_new,
                             const Tensor& v_new, const Tensor& k_cache, const Tensor& v_cache,
                             const Tensor& slots, const Tensor& positions,
                             const Tensor& kv_of_head) {
  RESP_CHECK_SHAPE(q.rank() == 3 && out.shape() == q.shape(), "attention_decode_batch: q ", q.str(),
                   " must be [B, Hq, D] and out ", out.str(), " the same");
  const int64_t B = q.dim(0), D = q.dim(2);
  RESP_CHECK_SHAPE(
      k_new.rank() == 3 && k_new.dim(0) == B && k_new.dim(2) == D && v_new.shape() == k_new.shape(),
      "attention_decode_batch: k_new ", k_new.str(), " and v_new ", v_new.str(),
      " must be [B, Hkv, D] for q ", q.str());
  const int64_t Hkv = k_new.dim(1);
  RESP_CHECK_SHAPE(k_cache.rank() == 4 && k_cache.dim(2) == Hkv && k_cache.dim(3) == D &&
                       v_cache.shape() == k_cache.shape() && k_cache.is_contiguous() &&
                       v_cache.is_contiguous(),
                   "attention_decode_batch: caches ", k_cache.str(), " and ", v_cache.str(),
                   " must be contiguous [N, L, Hkv, D] for k_new ", k_new.str());
  RESP_CHECK_SHAPE(slots.dtype() == DType::I32 && positions.dtype() == DType::I32 &&
                       slots.rank() == 1 && positions.rank() == 1 && slots.dim(0) == B &&
                       positions.dim(0) == B,
                   "attention_decode_batch: slots ", slots.str(), " and positions ",
                   positions.str(), " must be I32 [B] for q ", q.str());
  RESP_CHECK_SHAPE(kv_of_head.rank() == 1 && kv_of_head.dim(0) == q.dim(1),
                   "attention_decode_batch: kv_of_head ", kv_of_head.str(), " must be [Hq] for q ",
                   q.str());
}

void Backend::attention_decode_batch(const Tensor& out, const Tensor& q, const Tensor& k_new,
                                     const Tensor& v_new, const Tensor& k_cache,
                                     const Tensor& v_cache, const Tensor& slots,
                                     const Tensor& positions, const Tensor& kv_of_head,
                                     float scale) {
  check_decode_batch_args(out, q, k_new, v_new, k_cache, v_cache, slots, positions, kv_of_head);
  const int64_t B = q.dim(0);
  if (B == 0) return;
  std::vector<int32_t> slot(static_cast<size_t>(B)), pos(static_cast<size_t>(B));
  copy(Tensor(slot.data(), DType::I32, Shape{B}), slots);
  copy(Tensor(pos.data(), DType::I32, Shape{B}), positions);
  const int64_t N = k_cache.dim(0), L = k_cache.dim(1), Hkv = k_cache.dim(2), D = k_cache.dim(3);
  check_decode_slots_distinct(slot.data(), B);
  const size_t slot_bytes = static_cast<size_t>(L * Hkv * D) * dtype_size(k_cache.dtype());
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = slot[static_cast<size_t>(b)], p = pos[static_cast<size_t>(b)];
    RESP_CHECK_SHAPE(s >= 0 && s < N && p >= 0 && p < L, "attention_decode_batch: row ", b,
                     " reads slot ", s, " position ", p, " outside the cache ", k_cache.str());
    // The slot's first p + 1 positions: the [S, Hkv, D] tensor attention() reads.
    auto prefix = [&](const Tensor& cache) {
      return Tensor(static_cast<char*>(cache.data()) + static_cast<size_t>(s) * slot_bytes,
                    cache.dtype(), Shape{p + 1, Hkv, D}, cache.device());
    };
    const Tensor kc = prefix(k_cache), vc = prefix(v_cache);
    copy(kc.slice_rows(p, 1), k_new.slice_rows(b, 1));
    copy(vc.slice_rows(p, 1), v_new.slice_rows(b, 1));
    attention(out.slice_rows(b, 1), q.slice_rows(b, 1), kc, vc, kv_of_head, p, scale);
  }
}

void check_in_place_or_disjoint(const char* op, const char* out_name, const Tensor& out,
                                const char* in_name, const Tensor& in) {
  if (!tensors_overlap(out, in)) return;
  const RowLayout o = row_layout(op, out_name, out), i = row_layout(op, in_name, in);
  if (out.data() == in.data() && o.rows == i.rows && o.cols == i.cols && o.stride == i.stride)
    return;
  throw ShapeError(
      cat(op, ": ", out_name, " ", out.str(), " partially overlaps ", in_name, " ", in.str()));
}

}  // namespace resp

#undef RESP_REQUIRE
