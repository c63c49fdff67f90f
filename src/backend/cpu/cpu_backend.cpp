#include "backend/cpu/cpu_backend.h"

#include <cblas.h>
#include <omp.h>
#include <strings.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/fast_math.h"
#include "backend/cpu/gemm_few_rows.h"
#include "core/error.h"
#include "core/log.h"

namespace resp {

namespace {

// Chunk size of flat elementwise loops (when to go parallel at all: cpu_parallel.h).
constexpr int64_t kChunkElems = 1 << 14;

// ---- validation -------------------------------------------------------------------------------

void check_cpu(const char* op, const char* what, const Tensor& t) {
  if (t.device() != Device::CPU)
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " is not host memory (cpu backend)"));
  if (t.data() == nullptr && t.numel() != 0)
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " has no data"));
}

void check_dtype(const char* op, const char* what, const Tensor& t, DType want) {
  check_cpu(op, what, t);
  if (t.dtype() != want)
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " must be ", dtype_name(want)));
}

void check_rank(const char* op, const char* what, const Tensor& t, int rank) {
  if (t.rank() != rank)
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " must have rank ", rank));
}

// A host tensor as rows (row_layout in backend.h), with its data pointer.
struct Rows {
  float* data;
  int64_t rows;
  int64_t cols;
  int64_t stride;
  bool contiguous() const { return rows <= 1 || stride == cols; }
  float* row(int64_t r) const { return data + r * stride; }
};

Rows rows_of(const char* op, const char* what, const Tensor& t) {
  const RowLayout l = row_layout(op, what, t);
  return {static_cast<float*>(t.data()), l.rows, l.cols, l.stride};
}

// F32 on the host, viewed as rows.
Rows f32_rows(const char* op, const char* what, const Tensor& t) {
  check_dtype(op, what, t, DType::F32);
  return rows_of(op, what, t);
}

// ---- math helpers -----------------------------------------------------------------------------

// Runs body(begin, end) over [0, n) in chunks, on `threads` threads (1: the calling thread).
template <typename Body>
void parallel_chunks(int threads, int64_t n, Body&& body) {
  const int64_t chunks = (n + kChunkElems - 1) / kChunkElems;
#pragma omp parallel for num_threads(threads) if (threads > 1 && chunks > 1) schedule(static)
  for (int64_t c = 0; c < chunks; ++c) body(c * kChunkElems, std::min(n, (c + 1) * kChunkElems));
}

}  // namespace

// ---- construction and memory --------------------------------------------------------------------

namespace cpu {

namespace {

// How libgomp's threads wait, from the variables it read at start-up: OMP_WAIT_POLICY active or
// passive (any case) decides; otherwise a set GOMP_SPINCOUNT bounds the spin.
struct OmpWaitEnv {
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  const char* spin_count = std::getenv("GOMP_SPINCOUNT");
  bool policy_is(const char* p) const { return policy != nullptr && strcasecmp(policy, p) == 0; }
  bool spins() const {
    if (policy_is("active")) return true;
    return !policy_is("passive") && spin_count != nullptr && std::atoll(spin_count) > 0;
  }
};

}  // namespace

const ParallelThresholds& default_parallel_thresholds() {
  return OmpWaitEnv{}.spins() ? kSpinningThresholds : kParallelThresholds;
}

std::string omp_wait_name() {
  const OmpWaitEnv env;
  if (env.policy_is("active")) return "active";
  if (env.policy_is("passive")) return "passive";
  if (env.spin_count != nullptr) return std::string("spin ") + env.spin_count;
  return "libgomp default";
}

BlasThreads::BlasThreads(int call, int backend) : backend_(backend) {
  if (openblas_get_num_threads() != call) openblas_set_num_threads(call);
}

BlasThreads::~BlasThreads() {
  if (openblas_get_num_threads() != backend_) openblas_set_num_threads(backend_);
}

}  // namespace cpu

CpuBackend::CpuBackend(int threads) : CpuBackend(threads, active_cpu_isa()) {}

CpuBackend::CpuBackend(int threads, CpuIsa isa)
    : CpuBackend(threads, isa, cpu::default_parallel_thresholds()) {}

CpuBackend::CpuBackend(int threads, CpuIsa isa, const cpu::ParallelThresholds& thresholds)
    : threads_(threads > 0 ? threads : omp_get_max_threads()),
      isa_(isa),
      kernels_(&cpu::cpu_kernels(isa)),
      thresholds_(thresholds) {
  if (!cpu_isa_supported(isa))
    throw UnsupportedError(cat("cpu backend: this CPU does not support the ", cpu_isa_name(isa),
                               " kernels (best: ", cpu_isa_name(detect_cpu_isa()), ")"));
  if (threads < 0) throw UsageError(cat("threads must be >= 0 (0: all cores), got ", threads));
  // More threads than cores only adds fork/join and barrier cost; far more (100000) overflowed
  // libgomp's stack. Clamp, and say so.
  const int cores = std::max(1, omp_get_num_procs());
  if (threads_ > cores) {
    log_warn("threads ", threads_, " exceeds the ", cores, " cores available; using ", cores);
    threads_ = cores;
  }
  if (threads_ < 1) threads_ = 1;
  openblas_set_num_threads(threads_);
}

std::unique_ptr<Backend> make_cpu_backend(int threads) {
  return std::make_unique<CpuBackend>(threads);
}

Buffer CpuBackend::allocate(size_t bytes) {
  return allocate_host(bytes);
}

void CpuBackend::copy(const Tensor& dst, const Tensor& src) {
  check_cpu("copy", "dst", dst);
  check_cpu("copy", "src", src);
  RESP_CHECK_SHAPE(dst.dtype() == src.dtype() && dst.numel() == src.numel(), "dst ", dst.str(),
                   " and src ", src.str(), " differ in dtype or element count");
  RESP_CHECK_SHAPE(dst.is_contiguous() && src.is_contiguous(), "dst ", dst.str(), " and src ",
                   src.str(), " must be contiguous");
  if (dst.nbytes() == 0 || dst.data() == src.data()) return;
  std::memmove(dst.data(), src.data(), dst.nbytes());
}

void CpuBackend::fill(const Tensor& dst, float value) {
  const Rows d = f32_rows("fill", "dst", dst);
  const int nt = threads_for(d.rows * d.cols, thresholds_.elementwise);
  if (d.contiguous()) {
    float* p = d.data;
    parallel_chunks(nt, d.rows * d.cols,
                    [&](int64_t b, int64_t e) { std::fill(p + b, p + e, value); });
    return;
  }
#pragma omp parallel for num_threads(nt) if (nt > 1)
  for (int64_t r = 0; r < d.rows; ++r) std::fill(d.row(r), d.row(r) + d.cols, value);
}

// ---- gemm ---------------------------------------------------------------------------------------

void CpuBackend::gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b, const Tensor& c,
                      float alpha, float beta) {
  check_dtype("gemm", "A", a, DType::F32);
  check_dtype("gemm", "B", b, DType::F32);
  check_dtype("gemm", "C", c, DType::F32);
  const auto [m, n, k] = check_gemm_args(a, trans_a, b, trans_b, c);
  const Rows ra = rows_of("gemm", "A", a);
  const Rows rb = rows_of("gemm", "B", b);
  const Rows rc = rows_of("gemm", "C", c);
  if (m == 0 || n == 0) return;
  if (k == 0) {  // C = beta * C (and exactly 0 when beta == 0, whatever C held)
    for (int64_t r = 0; r < rc.rows; ++r) {
      float* p = rc.row(r);
      for (int64_t j = 0; j < rc.cols; ++j) p[j] = beta == 0.0f ? 0.0f : beta * p[j];
    }
    return;
  }
  // Leading dimensions: at least the row length (BLAS requires ld >= max(1, cols)).
  const int64_t lda = std::max<int64_t>({ra.stride, ra.cols, 1});
  const int64_t ldb = std::max<int64_t>({rb.stride, rb.cols, 1});
  const int64_t ldc = std::max<int64_t>({rc.stride, rc.cols, 1});
  constexpr int64_t kMax = INT_MAX;
  RESP_CHECK_SHAPE(m <= kMax && n <= kMax && k <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax,
                   "dimensions exceed the BLAS integer range: A ", a.str(), ", B ", b.str(), ", C ",
                   c.str());
  // A few rows against a weight matrix (decode steps, short prompts): dot products straight from
  // the weight rows, no copy of the weights, and each row's result independent of how many rows
  // share the call (see gemm_few_rows.h).
  if (!trans_a && trans_b && m <= kGemmFewRowsMax && kernels_->gemm != nullptr) {
    gemm_few_rows(isa_, ra.data, lda, rb.data, ldb, rc.data, ldc, m, n, k, alpha, beta,
                  threads_for(m * n * k, thresholds_.gemm));
    return;
  }
  // The OpenBLAS thread count is process-wide: set it per call (another backend may have
  // changed it, and a small product is faster on one thread than OpenBLAS's cut-off assumes).
  const cpu::BlasThreads blas(threads_for(m * n * k, thresholds_.blas), threads_);
  // A few rows (decoding a handful of sequences): sgemv per row streams the weights once,
  // where sgemm would first copy (pack) every weight block for a 1-row product.
  if (!trans_a && m <= 4) {
    for (int64_t r = 0; r < m; ++r)
      cblas_sgemv(CblasRowMajor, trans_b ? CblasNoTrans : CblasTrans,
                  static_cast<blasint>(trans_b ? n : k), static_cast<blasint>(trans_b ? k : n),
                  alpha, rb.data, static_cast<blasint>(ldb), ra.data + r * lda, 1, beta,
                  rc.data + r * ldc, 1);
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, static_cast<blasint>(m), static_cast<blasint>(n),
              static_cast<blasint>(k), alpha, ra.data, static_cast<blasint>(lda), rb.data,
              static_cast<blasint>(ldb), beta, rc.data, static_cast<blasint>(ldc));
}

// ---- row-wise ops -------------------------------------------------------------------------------

void CpuBackend::add_bias(const Tensor& y, const Tensor& bias) {
  const Rows ry = f32_rows("add_bias", "y", y);
  const Rows rbias = f32_rows("add_bias", "bias", bias);
  RESP_CHECK_SHAPE(y.rank() == 2 && bias.rank() == 1 && bias.dim(0) == y.dim(1), "y ", y.str(),
                   " must be [R, N] and bias ", bias.str(), " [N]");
  RESP_CHECK_SHAPE(!tensors_overlap(y, bias), "y ", y.str(), " overlaps bias ", bias.str());
  const float* bp = rbias.data;
  const int nt = threads_for(ry.rows * ry.cols, thresholds_.elementwise);
#pragma omp parallel for num_threads(nt) if (nt > 1)
  for (int64_t r = 0; r < ry.rows; ++r) {
    float* p = ry.row(r);
#pragma omp simd
    for (int64_t j = 0; j < ry.cols; ++j) p[j] += bp[j];
  }
}

void CpuBackend::rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w, float eps) {
  const Rows ro = f32_rows("rmsnorm", "out", out);
  const Rows rx = f32_rows("rmsnorm", "x", x);
  const Rows rw = f32_rows("rmsnorm", "w", w);
  RESP_CHECK_SHAPE(
      x.rank() == 2 && out.shape() == x.shape() && w.rank() == 1 && w.dim(0) == x.dim(1), "x ",
      x.str(), " and out ", out.str(), " must be [R, D] and w ", w.str(), " [D]");
  check_in_place_or_disjoint("rmsnorm", "out", out, "x", x);
  RESP_CHECK_SHAPE(!tensors_overlap(out, w), "out ", out.str(), " overlaps w ", w.str());
  const int64_t d = rx.cols;
  if (d == 0) return;
  const float* wp = rw.data;
  const int nt = threads_for(rx.rows * d, thresholds_.rowwise);
#pragma omp parallel for num_threads(nt) if (nt > 1)
  for (int64_t r = 0; r < rx.rows; ++r) {
    const float* xp = rx.row(r);
    float* op = ro.row(r);
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < d; ++i) ss += static_cast<double>(xp[i]) * static_cast<double>(xp[i]);
    const float inv =
        static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + static_cast<double>(eps)));
#pragma omp simd
    for (int64_t i = 0; i < d; ++i) op[i] = (xp[i] * inv) * wp[i];
  }
}

void CpuBackend::rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq) {
  const Rows rx = f32_rows("rope", "x", x);
  check_dtype("rope", "positions", positions, DType::I32);
  const Rows rf = f32_rows("rope", "inv_freq", inv_freq);
  check_rank("rope", "x [T, H, D]", x, 3);
  const int64_t t_len = x.dim(0), heads = x.dim(1), d = x.dim(2);
  RESP_CHECK_SHAPE(d % 2 == 0, "x ", x.str(), ": head dim must be even");
  RESP_CHECK_SHAPE(positions.rank() == 1 && positions.dim(0) == t_len, "positions ",
                   positions.str(), " must be [T] for x ", x.str());
  RESP_CHECK_SHAPE(positions.is_contiguous(), "positions ", positions.str(), " must be contiguous");
  RESP_CHECK_SHAPE(inv_freq.rank() == 1 && inv_freq.dim(0) == d / 2, "inv_freq ", inv_freq.str(),
                   " must be [D/2] for x ", x.str());
  const int64_t half = d / 2;
  if (t_len == 0 || heads == 0 || half == 0) return;
  const int32_t* pos = positions.i32();
  const float* freq = rf.data;
  const int nt = threads_for(t_len * heads * d, thresholds_.rowwise);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::vector<float> cs(static_cast<size_t>(2 * half));
    float* cosv = cs.data();
    float* sinv = cs.data() + half;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < t_len; ++t) {
      const double p = static_cast<double>(pos[t]);
      for (int64_t i = 0; i < half; ++i) {
        const double angle = p * static_cast<double>(freq[i]);
        cosv[i] = static_cast<float>(std::cos(angle));
        sinv[i] = static_cast<float>(std::sin(angle));
      }
      float* row = rx.row(t);
      for (int64_t h = 0; h < heads; ++h) {
        float* lo = row + h * d;
        float* hi = lo + half;
#pragma omp simd
        for (int64_t i = 0; i < half; ++i) {
          const float a = lo[i], b = hi[i];
          lo[i] = a * cosv[i] - b * sinv[i];
          hi[i] = b * cosv[i] + a * sinv[i];
        }
      }
    }
  }
}

// ---- attention ----------------------------------------------------------------------------------
//
// Work item: a set of up to kBlock (query row t, query head h) pairs that read the same KV head,
// so they share every key and value load. With T >= kBlock a set is kBlock consecutive rows of
// one head (prefill); with fewer rows it is one row of up to kBlock heads of a GQA group
// (decoding). Query row t attends keys [0, lim), lim = q_offset + t + 1; the smallest lim of a
// set is common to all its rows, and the rest are per-row extra keys (at most kBlock - 1). Per
// set:
//   1. scores = q . k: register tiles of (rows x 16 keys) over the common keys, reading K packed
//      per tile of 16 keys as [D][16] (made once per call, from keys [0, q_offset + T) only),
//      then plain dot products for the remaining keys;
//   2. stable softmax numerators in place (max-subtract, vectorised exp), sums in double;
//   3. out = (p v) / sum: register tiles of (rows x 16 dims) over the common keys, reading V
//      packed per tile of 16 dims as [keys][16], then the later rows' extra keys.
// No score or weighted sum of a row involves a key or value past that row's causal limit, and
// nothing at position q_offset + T or later is read at all (those cache rows may be garbage).
// The per-set kernels are in attention_impl.h, built per ISA level (cpu_kernels.h); the steps
// below check the arguments, form the sets, pack K and V, and schedule the sets. A single query
// row (decoding) skips all that and streams the cache once for all heads (attend_one_row).

namespace {

constexpr int kAttnBlock = cpu::kAttnBlock;
constexpr int kAttnTile = cpu::kAttnTile;
// Packed K or V above this many floats (256 MiB) is not made; longer contexts use plain dots.
constexpr int64_t kMaxPackedFloats = int64_t{64} << 20;

// The validated views of one attention() call, as the kernels take them.
struct AttentionCall {
  cpu::AttnArgs args;
  AttentionDims dims;
};

AttentionCall check_attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& kv_of_head, int64_t q_offset, float scale) {
  const Rows ro = f32_rows("attention", "out", out);
  const Rows rq = f32_rows("attention", "q", q);
  const Rows rk = f32_rows("attention", "k", k);
  const Rows rv = f32_rows("attention", "v", v);
  check_dtype("attention", "kv_of_head", kv_of_head, DType::I32);
  const AttentionDims dims = check_attention_args("attention", q, k, v, kv_of_head, q_offset);
  RESP_CHECK_SHAPE(out.shape() == q.shape(), "out ", out.str(), " must match q ", q.str());
  check_in_place_or_disjoint("attention", "out", out, "q", q);
  RESP_CHECK_SHAPE(!tensors_overlap(out, k) && !tensors_overlap(out, v), "out ", out.str(),
                   " overlaps k ", k.str(), " or v ", v.str());
  const int32_t* kvh = kv_of_head.i32();
  for (int64_t h = 0; h < dims.hq; ++h)
    RESP_CHECK_SHAPE(kvh[h] >= 0 && kvh[h] < dims.hkv, "kv_of_head[", h, "] = ", kvh[h],
                     " is not a KV head of k ", k.str());
  const auto view = [](const Rows& r) { return cpu::RowView{r.data, r.stride, r.cols}; };
  cpu::AttnArgs args{};
  args.q = view(rq);
  args.k = view(rk);
  args.v = view(rv);
  args.out = view(ro);
  args.kv_of_head = kvh;
  args.n_keys = q_offset + dims.t;  // keys any query row may see
  args.t_len = dims.t;
  args.d = dims.d;
  args.q_offset = q_offset;
  args.scale = scale;
  return {args, dims};
}

// Work items of a multi-row call: with T >= kBlock, blocks of consecutive rows of one head,
// latest (largest) blocks first so that dynamic scheduling balances the causal triangle; with
// fewer rows, each row's query heads grouped by KV head.
std::vector<cpu::RowSet> attention_row_sets(const AttentionDims& d, const int32_t* kvh) {
  std::vector<cpu::RowSet> sets;
  if (d.t >= kAttnBlock) {
    const int64_t blocks = (d.t + kAttnBlock - 1) / kAttnBlock;
    sets.reserve(static_cast<size_t>(blocks * d.hq));
    for (int64_t blk = blocks - 1; blk >= 0; --blk)
      for (int64_t h = 0; h < d.hq; ++h) {
        cpu::RowSet set{};
        for (int64_t t = blk * kAttnBlock; t < std::min(d.t, (blk + 1) * kAttnBlock); ++t) {
          set.t[set.n] = t;
          set.h[set.n++] = h;
        }
        sets.push_back(set);
      }
    return sets;
  }
  for (int64_t t = 0; t < d.t; ++t)
    for (int64_t g = 0; g < d.hkv; ++g) {
      cpu::RowSet set{};
      for (int64_t h = 0; h < d.hq; ++h) {
        if (kvh[h] != g) continue;
        set.t[set.n] = t;
        set.h[set.n++] = h;
        if (set.n == kAttnBlock) {
          sets.push_back(set);
          set = cpu::RowSet{};
        }
      }
      if (set.n > 0) sets.push_back(set);
    }
  return sets;
}

// K packed per tile of kAttnTile keys as [Hkv][tile][D][kAttnTile] and V per tile of kAttnTile
// dims as [Hkv][D / kAttnTile][keys][kAttnTile], when enough query rows share them (prefill);
// empty otherwise (a few rows use plain dot products against the cache rows).
struct PackedKv {
  std::vector<float> k, v;
  int64_t k_tiles = 0;
};

PackedKv pack_kv(const cpu::AttnArgs& a, const AttentionDims& d, int threads) {
  PackedKv p;
  const int64_t n_keys = a.n_keys;
  p.k_tiles = n_keys / kAttnTile;
  const int64_t v_tiles = d.d / kAttnTile;
  const bool many_rows = d.t >= 2 * kAttnBlock;
  if (many_rows && p.k_tiles > 0 && d.hkv * p.k_tiles * d.d * kAttnTile <= kMaxPackedFloats)
    p.k.resize(static_cast<size_t>(d.hkv * p.k_tiles * d.d * kAttnTile));
  if (many_rows && v_tiles > 0 && d.hkv * v_tiles * n_keys * kAttnTile <= kMaxPackedFloats)
    p.v.resize(static_cast<size_t>(d.hkv * v_tiles * n_keys * kAttnTile));
  if (p.k.empty() && p.v.empty()) return p;
  const int64_t dd = d.d;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    if (!p.k.empty()) {
#pragma omp for schedule(static) collapse(2)
      for (int64_t g = 0; g < d.hkv; ++g)
        for (int64_t tile = 0; tile < p.k_tiles; ++tile) {
          float* dst = p.k.data() + (g * p.k_tiles + tile) * dd * kAttnTile;
          for (int64_t j = 0; j < kAttnTile; ++j) {
            const float* src = a.k.data + (tile * kAttnTile + j) * a.k.stride + g * dd;
            for (int64_t i = 0; i < dd; ++i) dst[i * kAttnTile + j] = src[i];
          }
        }
    }
    if (!p.v.empty()) {
#pragma omp for schedule(static) collapse(2)
      for (int64_t g = 0; g < d.hkv; ++g)
        for (int64_t tile = 0; tile < v_tiles; ++tile) {
          float* dst = p.v.data() + (g * v_tiles + tile) * n_keys * kAttnTile;
          for (int64_t s = 0; s < n_keys; ++s)
            std::memcpy(dst + s * kAttnTile, a.v.data + s * a.v.stride + g * dd + tile * kAttnTile,
                        kAttnTile * sizeof(float));
        }
    }
  }
  return p;
}

// The work items on `threads` threads, each with its own scratch.
void attend_sets(const cpu::CpuKernels& kernels, const cpu::AttnArgs& a,
                 const std::vector<cpu::RowSet>& sets, int threads) {
  const int64_t items = static_cast<int64_t>(sets.size());
  const int64_t n_keys = a.n_keys;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    std::vector<float> scratch(static_cast<size_t>(kAttnBlock * (n_keys + a.d)));
    float* scores = scratch.data();
    float* acc = scores + kAttnBlock * n_keys;
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; ++it)
      kernels.attend_rows(a, sets[static_cast<size_t>(it)], scores, n_keys, acc);
  }
}

// One query row: the heads split into contiguous parts, one per thread.
void attend_one_row(const cpu::CpuKernels& kernels, const cpu::AttnArgs& a, int64_t hq,
                    int threads) {
  const int parts = static_cast<int>(std::min<int64_t>(threads, hq));
#pragma omp parallel for num_threads(parts) schedule(static) if (parts > 1)
  for (int part = 0; part < parts; ++part) {
    const int64_t h0 = hq * part / parts, h1 = hq * (part + 1) / parts;
    std::vector<float> scratch(static_cast<size_t>((h1 - h0) * (a.n_keys + a.d + 1)));
    kernels.attend_one_row(a, h0, h1, scratch.data());
  }
}

}  // namespace

void CpuBackend::attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                           const Tensor& kv_of_head, int64_t q_offset, float scale) {
  AttentionCall call = check_attention(out, q, k, v, kv_of_head, q_offset, scale);
  const AttentionDims& d = call.dims;
  if (d.t == 0 || d.hq == 0 || d.d == 0) return;
  // Multiply-adds of q.k and p.v over the keys each row sees.
  const int64_t work = 2 * d.hq * d.t * (q_offset + (d.t + 1) / 2) * d.d;
  const int nt = threads_for(work, thresholds_.attention);
  if (d.t == 1) {
    attend_one_row(*kernels_, call.args, d.hq, nt);
    return;
  }
  const std::vector<cpu::RowSet> sets = attention_row_sets(d, call.args.kv_of_head);
  const PackedKv packed = pack_kv(call.args, d, nt);
  call.args.kp = packed.k.empty() ? nullptr : packed.k.data();
  call.args.kp_tiles = packed.k_tiles;
  call.args.vp = packed.v.empty() ? nullptr : packed.v.data();
  attend_sets(*kernels_, call.args, sets, nt);
}

// ---- elementwise ops ----------------------------------------------------------------------------

void CpuBackend::swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) {
  const Rows ro = f32_rows("swiglu", "out", out);
  const Rows rg = f32_rows("swiglu", "gate", gate);
  const Rows ru = f32_rows("swiglu", "up", up);
  RESP_CHECK_SHAPE(out.shape() == gate.shape() && up.shape() == gate.shape(), "out ", out.str(),
                   ", gate ", gate.str(), ", up ", up.str(), " must have the same shape");
  check_in_place_or_disjoint("swiglu", "out", out, "gate", gate);
  check_in_place_or_disjoint("swiglu", "out", out, "up", up);
  auto kernel = [](float* o, const float* g, const float* u, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      const float gv = g[i];
      o[i] = gv / (1.0f + exp_f32(-gv)) * u[i];
    }
  };
  const int64_t total = ro.rows * ro.cols;
  const int nt = threads_for(total, thresholds_.transcendental);
  if (ro.contiguous() && rg.contiguous() && ru.contiguous()) {
    parallel_chunks(nt, total, [&](int64_t b, int64_t e) {
      kernel(ro.data + b, rg.data + b, ru.data + b, e - b);
    });
    return;
  }
#pragma omp parallel for num_threads(nt) if (nt > 1)
  for (int64_t r = 0; r < ro.rows; ++r) kernel(ro.row(r), rg.row(r), ru.row(r), ro.cols);
}

void CpuBackend::embedding(const Tensor& out, const Tensor& table, const Tensor& ids) {
  const Rows ro = f32_rows("embedding", "out", out);
  const Rows rt = f32_rows("embedding", "table", table);
  check_dtype("embedding", "ids", ids, DType::I32);
  RESP_CHECK_SHAPE(table.rank() == 2 && ids.rank() == 1 && ids.is_contiguous() && out.rank() == 2 &&
                       out.dim(0) == ids.dim(0) && out.dim(1) == table.dim(1),
                   "table ", table.str(), " must be [V, H], ids ", ids.str(), " [T], out ",
                   out.str(), " [T, H]");
  RESP_CHECK_SHAPE(!tensors_overlap(out, table), "out ", out.str(), " overlaps table ",
                   table.str());
  const int64_t t_len = ids.dim(0), vocab = table.dim(0), h = table.dim(1);
  const int32_t* id = ids.i32();
  for (int64_t t = 0; t < t_len; ++t)
    RESP_CHECK_SHAPE(id[t] >= 0 && id[t] < vocab, "token id ", id[t], " at position ", t,
                     " is out of range for vocab size ", vocab, " (table ", table.str(), ")");
  if (h == 0) return;
  const int nt = threads_for(t_len * h, thresholds_.elementwise);
#pragma omp parallel for num_threads(nt) if (nt > 1)
  for (int64_t t = 0; t < t_len; ++t)
    std::memcpy(ro.row(t), rt.row(id[t]), static_cast<size_t>(h) * sizeof(float));
}

void CpuBackend::add(const Tensor& out, const Tensor& a, const Tensor& b) {
  const Rows ro = f32_rows("add", "out", out);
  const Rows ra = f32_rows("add", "a", a);
  const Rows rb = f32_rows("add", "b", b);
  RESP_CHECK_SHAPE(out.shape() == a.shape() && b.shape() == a.shape(), "out ", out.str(), ", a ",
                   a.str(), ", b ", b.str(), " must have the same shape");
  check_in_place_or_disjoint("add", "out", out, "a", a);
  check_in_place_or_disjoint("add", "out", out, "b", b);
  auto kernel = [](float* o, const float* x, const float* y, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) o[i] = x[i] + y[i];
  };
  const int64_t total = ro.rows * ro.cols;
  const int nt = threads_for(total, thresholds_.elementwise);
  if (ro.contiguous() && ra.contiguous() && rb.contiguous()) {
    parallel_chunks(nt, total, [&](int64_t s, int64_t e) {
      kernel(ro.data + s, ra.data + s, rb.data + s, e - s);
    });
    return;
  }
#pragma omp parallel for num_threads(nt) if (nt > 1)
  for (int64_t r = 0; r < ro.rows; ++r) kernel(ro.row(r), ra.row(r), rb.row(r), ro.cols);
}

void CpuBackend::scale(const Tensor& x, float alpha) {
  const Rows rx = f32_rows("scale", "x", x);
  auto kernel = [alpha](float* p, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) p[i] *= alpha;
  };
  const int64_t total = rx.rows * rx.cols;
  const int nt = threads_for(total, thresholds_.elementwise);
  if (rx.contiguous()) {
    parallel_chunks(nt, total, [&](int64_t s, int64_t e) { kernel(rx.data + s, e - s); });
    return;
  }
#pragma omp parallel for num_threads(nt) if (nt > 1)
  for (int64_t r = 0; r < rx.rows; ++r) kernel(rx.row(r), rx.cols);
}

// ---- softmax ------------------------------------------------------------------------------------

void CpuBackend::softmax(const Tensor& out, const Tensor& x) {
  const Rows ro = f32_rows("softmax", "out", out);
  const Rows rx = f32_rows("softmax", "x", x);
  RESP_CHECK_SHAPE(x.rank() == 2 && out.shape() == x.shape(), "x ", x.str(), " and out ", out.str(),
                   " must be the same [R, N]");
  check_in_place_or_disjoint("softmax", "out", out, "x", x);
  const int64_t n = rx.cols;
  if (n == 0) return;
  const int nt = threads_for(rx.rows * n, thresholds_.transcendental);
#pragma omp parallel for num_threads(nt) if (nt > 1)
  for (int64_t r = 0; r < rx.rows; ++r) {
    float* op = ro.row(r);
    const float inv = static_cast<float>(1.0 / exp_minus_max(rx.row(r), op, n));
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) op[i] *= inv;
  }
}

void CpuBackend::log_softmax(const Tensor& out, const Tensor& x) {
  const Rows ro = f32_rows("log_softmax", "out", out);
  const Rows rx = f32_rows("log_softmax", "x", x);
  RESP_CHECK_SHAPE(x.rank() == 2 && out.shape() == x.shape(), "x ", x.str(), " and out ", out.str(),
                   " must be the same [R, N]");
  check_in_place_or_disjoint("log_softmax", "out", out, "x", x);
  const int64_t n = rx.cols;
  if (n == 0) return;
  const int nt = threads_for(rx.rows * n, thresholds_.transcendental);
#pragma omp parallel for num_threads(nt) if (nt > 1)
  for (int64_t r = 0; r < rx.rows; ++r) {
    const float* xp = rx.row(r);
    float* op = ro.row(r);
    const float m = row_max(xp, n);
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(exp_f32(xp[i] - m));
    // log-sum-exp in double; each output is rounded to f32 once.
    const double shift = static_cast<double>(m) + std::log(sum);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) op[i] = static_cast<float>(static_cast<double>(xp[i]) - shift);
  }
}

}  // namespace resp
