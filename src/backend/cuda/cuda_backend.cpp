#include "backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "kernels.h"

namespace resp {

namespace {

namespace k = kernels;

void check_device(const char* op, const char* what, const Tensor& t) {
  if (t.device() != Device::CUDA)
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " is not device memory (cuda backend)"));
  if (t.data() == nullptr && t.numel() != 0)
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " has no data"));
}

void check_dtype(const char* op, const char* what, const Tensor& t, DType want) {
  check_device(op, what, t);
  if (t.dtype() != want)
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " must be ", dtype_name(want)));
}

// A device tensor as rows (row_layout in backend.h), in the kernels' struct.
k::Rows rows_of(const char* op, const char* what, const Tensor& t) {
  const RowLayout l = row_layout(op, what, t);
  return {static_cast<float*>(t.data()), l.rows, l.cols, l.stride};
}

k::Rows f32_rows(const char* op, const char* what, const Tensor& t) {
  check_dtype(op, what, t, DType::F32);
  return rows_of(op, what, t);
}

// Contiguous F32 device tensor (the backward ops' requirement, as on the CPU).
float* f32_contig(const char* op, const char* what, const Tensor& t) {
  check_dtype(op, what, t, DType::F32);
  if (!t.is_contiguous())
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " must be contiguous"));
  return static_cast<float*>(t.data());
}

const int32_t* i32_contig(const char* op, const char* what, const Tensor& t) {
  check_dtype(op, what, t, DType::I32);
  if (!t.is_contiguous())
    throw ShapeError(cat(op, ": ", what, " ", t.str(), " must be contiguous"));
  return static_cast<const int32_t*>(t.data());
}

k::AttnArgs attn_args(const char* op, const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor& kv_of_head, int64_t q_offset, float scale) {
  const k::Rows rq = f32_rows(op, "q", q), rk = f32_rows(op, "k", k), rv = f32_rows(op, "v", v);
  check_attention_args(op, q, k, v, kv_of_head, q_offset);
  RESP_CHECK_SHAPE(q.dim(2) <= k::kMaxHeadDim, "head dim ", q.dim(2), " of q ", q.str(),
                   " exceeds the CUDA attention kernels' limit ", k::kMaxHeadDim);
  k::AttnArgs a{};
  a.q = rq.p;
  a.k = rk.p;
  a.v = rv.p;
  a.kv_of_head = i32_contig(op, "kv_of_head", kv_of_head);
  a.T = q.dim(0);
  a.Hq = q.dim(1);
  a.D = q.dim(2);
  a.S = k.dim(0);
  a.Hkv = k.dim(1);
  a.ldq = rq.ld;
  a.ldk = rk.ld;
  a.ldv = rv.ld;
  a.q_offset = q_offset;
  a.scale = scale;
  return a;
}

}  // namespace

// ---- construction ------------------------------------------------------------------------

CudaBackend::CudaBackend(int device, DType weight_dtype)
    : device_(device < 0 ? 0 : device), weight_dtype_(weight_dtype) {
  if (weight_dtype_ != DType::F32 && weight_dtype_ != DType::BF16)
    throw ConfigError(
        cat("cuda backend: weights can be F32 or BF16, not ", dtype_name(weight_dtype_)));
  const CudaProbe probe = cuda::probe_devices();
  if (!probe.available()) throw DeviceError(cat("cuda backend: ", probe.reason));
  const int n = probe.devices;
  if (device_ >= n)
    throw DeviceError(
        cat("cuda backend: device ", device_, " requested but ", n, " device(s) are visible"));
  cuda::check(cudaSetDevice(device_), "cudaSetDevice");
  cudaStream_t s = nullptr;
  cuda::check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  stream_.reset(s);
  cublasHandle_t h = nullptr;
  cuda::check(cublasCreate(&h), "cublasCreate");
  cublas_.reset(h);
  cuda::check(cublasSetStream(h, s), "cublasSetStream");
  // Default math: no TF32 for f32 products (the CPU backend is the accuracy reference).
  cuda::check(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  void* st = nullptr;
  cuda::check(cudaHostAlloc(&st, sizeof(unsigned), cudaHostAllocMapped), "cudaHostAlloc status");
  status_host_.reset(st);
  *static_cast<volatile unsigned*>(st) = 0;
  void* st_dev = nullptr;
  cuda::check(cudaHostGetDevicePointer(&st_dev, st, 0), "cudaHostGetDevicePointer");
  status_dev_ = static_cast<unsigned*>(st_dev);
  k::init_attention(device_);
  cuda::check_launch("attention kernel attributes");
}

CudaBackend::~CudaBackend() {
  if (stream_) cudaStreamSynchronize(stream_.get());  // errors cannot be reported here
}

std::string CudaBackend::name() const {
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, device_) != cudaSuccess) return cat("cuda:", device_);
  return cat("cuda:", device_, " (", p.name, ", weights ", dtype_name(weight_dtype_), ")");
}

std::unique_ptr<Backend> make_cuda_backend(int device, DType weight_dtype) {
  return std::make_unique<CudaBackend>(device, weight_dtype);
}

namespace cuda {

namespace {
std::string cuda_version_text(int v) {
  return cat(v / 1000, ".", (v % 1000) / 10);
}
}  // namespace

std::string_view min_driver_for_runtime(int runtime_version) {
  // NVIDIA's minimum Linux driver per CUDA major version (CUDA toolkit release notes, table 3).
  switch (runtime_version / 1000) {
    case 13:
      return "580";
    case 12:
      return "525";
    case 11:
      return "450";
    default:
      return "";
  }
}

CudaProbe classify_device_probe(cudaError_t rc, int count, int driver_version, int runtime_version,
                                std::string_view driver_release) {
  CudaProbe p;
  if (rc == cudaSuccess && count > 0) {
    p.state = CudaProbe::State::Available;
    p.devices = count;
    return p;
  }
  // The runtime reports a missing libcuda as an insufficient driver; driver version 0 tells
  // that apart from a real but old driver.
  if (rc == cudaSuccess || rc == cudaErrorNoDevice ||
      (rc == cudaErrorInsufficientDriver && driver_version <= 0)) {
    p.state = CudaProbe::State::NoDevice;
    p.reason = rc == cudaErrorInsufficientDriver ? "no NVIDIA driver is installed"
                                                 : "no CUDA device is visible";
    return p;
  }
  if (rc == cudaErrorInsufficientDriver) {
    p.state = CudaProbe::State::DriverTooOld;
    const std::string_view need = min_driver_for_runtime(runtime_version);
    p.reason =
        cat("CUDA driver too old: needs >= ",
            need.empty() ? cat("a driver for CUDA ", cuda_version_text(runtime_version))
                         : std::string(need),
            ", found ",
            driver_release.empty() ? cat("a driver for CUDA ", cuda_version_text(driver_version))
                                   : std::string(driver_release),
            " (the driver supports CUDA ", cuda_version_text(driver_version),
            ", this build's runtime is CUDA ", cuda_version_text(runtime_version), ")");
    return p;
  }
  p.state = CudaProbe::State::Error;
  p.reason = cat("CUDA unavailable: cudaGetDeviceCount: ", cudaGetErrorName(rc), ": ",
                 cudaGetErrorString(rc));
  return p;
}

std::string driver_release_from_proc(std::string_view text) {
  const size_t at = text.find("Module");
  if (at == std::string_view::npos) return {};
  // The first token of digits and dots with at least one dot after "Module" (the open kernel
  // module's line has "for x86_64" in between).
  size_t i = at;
  while (i < text.size() && text[i] != '\n') {
    size_t j = i;
    bool dot = false;
    while (j < text.size() && ((text[j] >= '0' && text[j] <= '9') || text[j] == '.')) {
      dot = dot || text[j] == '.';
      ++j;
    }
    const bool starts_token = i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t';
    if (j > i && dot && starts_token && text[i] != '.') return std::string(text.substr(i, j - i));
    i = j > i ? j : i + 1;
  }
  return {};
}

CudaProbe probe_devices() {
  int n = 0;
  const cudaError_t rc = cudaGetDeviceCount(&n);
  if (rc != cudaSuccess) cudaGetLastError();  // clear the sticky error for later calls
  int driver = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess) driver = 0;
  std::string release;
  if (rc == cudaErrorInsufficientDriver && driver > 0) {
    std::ifstream f("/proc/driver/nvidia/version");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    release = driver_release_from_proc(text);
  }
  return classify_device_probe(rc, n, driver, CUDART_VERSION, release);
}

}  // namespace cuda

CudaProbe probe_cuda() {
  return cuda::probe_devices();
}

int cuda_device_count() {
  return cuda::device_count();
}

// ---- memory ------------------------------------------------------------------------------

Buffer CudaBackend::allocate(size_t bytes) {
  cuda::check(cudaSetDevice(device_), "cudaSetDevice");
  cuda::DevicePtr p = cuda::device_alloc(bytes, "cudaMalloc");
  return Buffer(p.release(), bytes, Device::CUDA, [](void* q) { cudaFree(q); });
}

void CudaBackend::sync_and_check(const char* op) {
  cuda::check(cudaStreamSynchronize(stream_.get()), op);
  auto* st = static_cast<volatile unsigned*>(status_host_.get());
  const unsigned bits = *st;
  if (bits == 0) return;
  *st = 0;
  std::string what;
  if (bits & k::kBadTokenId) what += " token id outside the embedding table;";
  if (bits & k::kBadTarget) what += " cross-entropy target outside the vocabulary;";
  if (bits & k::kBadKvHead) what += " kv_of_head entry outside [0, Hkv);";
  if (bits & k::kBadCacheRow) what += " decode slot or position outside the KV cache;";
  // The same words as the CPU backend's host-side check (check_decode_slots_distinct).
  if (bits & k::kDuplicateSlot) what += cat(" ", kDuplicateSlotMessage, ";");
  throw ShapeError(
      cat("cuda backend: a kernel queued before ", op, " found an invalid index:", what));
}

void CudaBackend::synchronize() {
  sync_and_check("synchronize");
}

void CudaBackend::copy(const Tensor& dst, const Tensor& src) {
  RESP_CHECK_SHAPE(dst.numel() == src.numel(), "dst ", dst.str(), " and src ", src.str(),
                   " differ in element count");
  RESP_CHECK_SHAPE(dst.is_contiguous() && src.is_contiguous(), "dst ", dst.str(), " and src ",
                   src.str(), " must be contiguous");
  const int64_t n = dst.numel();
  if (n == 0) return;
  const bool dh = dst.device() == Device::CPU, sh = src.device() == Device::CPU;
  cudaStream_t s = stream_.get();
  if (dst.dtype() == src.dtype()) {
    if (dh && sh) {
      if (dst.data() != src.data()) std::memmove(dst.data(), src.data(), dst.nbytes());
      return;
    }
    if (!dh && !sh) {
      if (dst.data() != src.data())
        cuda::check(
            cudaMemcpyAsync(dst.data(), src.data(), dst.nbytes(), cudaMemcpyDeviceToDevice, s),
            "copy");
      return;
    }
  } else {
    // F32 <-> BF16: weights stored in bf16 are loaded from and read back to f32 host staging.
    const bool f2b = src.dtype() == DType::F32 && dst.dtype() == DType::BF16;
    const bool b2f = src.dtype() == DType::BF16 && dst.dtype() == DType::F32;
    RESP_CHECK_SHAPE((f2b || b2f) && !(dh && sh), "dst ", dst.str(), " and src ", src.str(),
                     " differ in dtype (only F32 <-> BF16 with a device side converts)");
    if (!dh && !sh) {
      convert(dst.data(), dst.dtype(), src.data(), n);
      return;
    }
  }
  if (sh)
    upload(dst, src);
  else
    download(dst, src);
  // A host buffer may be reused (upload) or read (download) as soon as copy() returns.
  sync_and_check("copy");
}

void CudaBackend::convert(void* dst, DType dst_dtype, const void* src, int64_t n) {
  if (dst_dtype == DType::BF16)
    k::f32_to_bf16(static_cast<uint16_t*>(dst), static_cast<const float*>(src), n, stream_.get());
  else
    k::bf16_to_f32(static_cast<float*>(dst), static_cast<const uint16_t*>(src), n, stream_.get());
  cuda::check_launch("copy (dtype conversion)");
}

void CudaBackend::ensure_staging() {
  for (Staging& st : staging_) {
    if (st.host) continue;
    void* p = nullptr;
    cuda::check(cudaHostAlloc(&p, kStagingBytes, cudaHostAllocDefault), "cudaHostAlloc staging");
    st.host.reset(p);
    cudaEvent_t ev = nullptr;
    cuda::check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate staging");
    st.done.reset(ev);
  }
}

// Chunk i: wait until the DMA that last read pinned chunk i % 2 is done, pack the host data
// into it, queue its DMA (and the conversion when the dtypes differ). The host packs chunk
// i + 1 while chunk i is in flight.
void CudaBackend::upload(const Tensor& dst, const Tensor& src) {
  ensure_staging();
  const int64_t n = dst.numel();
  const size_t hs = dtype_size(src.dtype()), ds = dtype_size(dst.dtype());
  const bool conv = src.dtype() != dst.dtype();
  const auto per = static_cast<int64_t>(kStagingBytes / hs);
  // Raw host-dtype chunks land here before the conversion kernel writes dst.
  char* dev_stage = conv ? static_cast<char*>(scratch(2 * kStagingBytes)) : nullptr;
  const char* from = static_cast<const char*>(src.data());
  char* to = static_cast<char*>(dst.data());
  cudaStream_t s = stream_.get();
  for (int64_t e0 = 0, i = 0; e0 < n; e0 += per, ++i) {
    const int64_t m = std::min(per, n - e0);
    const size_t bytes = static_cast<size_t>(m) * hs;
    Staging& st = staging_[static_cast<size_t>(i % 2)];
    cuda::check(cudaEventSynchronize(st.done.get()), "copy (upload staging)");
    std::memcpy(st.host.get(), from + static_cast<size_t>(e0) * hs, bytes);
    if (!conv) {
      cuda::check(cudaMemcpyAsync(to + static_cast<size_t>(e0) * ds, st.host.get(), bytes,
                                  cudaMemcpyHostToDevice, s),
                  "copy (upload)");
    } else {
      char* d = dev_stage + static_cast<size_t>(i % 2) * kStagingBytes;
      cuda::check(cudaMemcpyAsync(d, st.host.get(), bytes, cudaMemcpyHostToDevice, s),
                  "copy (upload)");
      convert(to + static_cast<size_t>(e0) * ds, dst.dtype(), d, m);
    }
    cuda::check(cudaEventRecord(st.done.get(), s), "copy (upload staging)");
  }
}

// Chunk i is queued (conversion into device staging when the dtypes differ, then the DMA into
// pinned chunk i % 2) before chunk i - 1 is unpacked on the host.
void CudaBackend::download(const Tensor& dst, const Tensor& src) {
  ensure_staging();
  const int64_t n = dst.numel();
  const size_t hs = dtype_size(dst.dtype()), ds = dtype_size(src.dtype());
  const bool conv = src.dtype() != dst.dtype();
  const auto per = static_cast<int64_t>(kStagingBytes / hs);
  char* dev_stage = conv ? static_cast<char*>(scratch(2 * kStagingBytes)) : nullptr;
  const char* from = static_cast<const char*>(src.data());
  char* to = static_cast<char*>(dst.data());
  cudaStream_t s = stream_.get();
  auto issue = [&](int64_t i) {
    const int64_t e0 = i * per, m = std::min(per, n - e0);
    Staging& st = staging_[static_cast<size_t>(i % 2)];
    const void* dev = from + static_cast<size_t>(e0) * ds;
    if (conv) {
      char* d = dev_stage + static_cast<size_t>(i % 2) * kStagingBytes;
      convert(d, dst.dtype(), dev, m);
      dev = d;
    }
    cuda::check(
        cudaMemcpyAsync(st.host.get(), dev, static_cast<size_t>(m) * hs, cudaMemcpyDeviceToHost, s),
        "copy (download)");
    cuda::check(cudaEventRecord(st.done.get(), s), "copy (download staging)");
  };
  auto drain = [&](int64_t i) {
    const int64_t e0 = i * per, m = std::min(per, n - e0);
    Staging& st = staging_[static_cast<size_t>(i % 2)];
    cuda::check(cudaEventSynchronize(st.done.get()), "copy (download staging)");
    std::memcpy(to + static_cast<size_t>(e0) * hs, st.host.get(), static_cast<size_t>(m) * hs);
  };
  const int64_t chunks = (n + per - 1) / per;
  for (int64_t i = 0; i < chunks; ++i) {
    issue(i);
    if (i > 0) drain(i - 1);
  }
  drain(chunks - 1);
}

void CudaBackend::fill(const Tensor& dst, float value) {
  k::fill(f32_rows("fill", "dst", dst), value, stream_.get());
  cuda::check_launch("fill");
}

// ---- gemm --------------------------------------------------------------------------------

const void* CudaBackend::to_bf16(const Tensor& t, size_t offset) {
  const k::Rows r = f32_rows("gemm", "operand", t);
  const size_t bytes = static_cast<size_t>(r.rows * r.cols) * sizeof(uint16_t);
  auto* dst = reinterpret_cast<uint16_t*>(static_cast<char*>(scratch(offset + bytes)) + offset);
  k::f32_rows_to_bf16(dst, r, stream_.get());
  cuda::check_launch("gemm bf16 staging");
  return dst;
}

void CudaBackend::gemm(const Tensor& a, bool trans_a, const Tensor& b, bool trans_b,
                       const Tensor& c, float alpha, float beta) {
  check_device("gemm", "A", a);
  check_device("gemm", "B", b);
  check_dtype("gemm", "C", c, DType::F32);
  RESP_CHECK_SHAPE((a.dtype() == DType::F32 || a.dtype() == DType::BF16) &&
                       (b.dtype() == DType::F32 || b.dtype() == DType::BF16),
                   "A ", a.str(), " and B ", b.str(), " must be F32 or BF16");
  const auto [m, n, kk] = check_gemm_args(a, trans_a, b, trans_b, c);
  RESP_CHECK_SHAPE(a.stride(1) == 1 || a.dim(1) <= 1, "A ", a.str(), " needs contiguous rows");
  RESP_CHECK_SHAPE(b.stride(1) == 1 || b.dim(1) <= 1, "B ", b.str(), " needs contiguous rows");
  const k::Rows rc = rows_of("gemm", "C", c);
  if (m == 0 || n == 0) return;
  cudaStream_t s = stream_.get();
  if (kk == 0) {  // C = beta * C, exactly 0 when beta == 0 (whatever C held)
    if (beta == 0.0f)
      k::fill(rc, 0.0f, s);
    else
      k::scale(rc, beta, s);
    cuda::check_launch("gemm (k = 0)");
    return;
  }
  auto ld_of = [](const Tensor& t) {
    const int64_t cols = t.dim(1);
    const int64_t ld = t.dim(0) <= 1 ? cols : t.stride(0);
    return std::max<int64_t>({ld, cols, 1});
  };
  const bool mixed = a.dtype() == DType::BF16 || b.dtype() == DType::BF16;
  const void* pa = a.data();
  const void* pb = b.data();
  int64_t lda = ld_of(a), ldb = ld_of(b);
  if (mixed) {
    // Both inputs must be bf16 for a bf16 tensor-core product: round the f32 one.
    if (a.dtype() == DType::F32) {
      pa = to_bf16(a, 0);
      lda = std::max<int64_t>(a.dim(1), 1);
    }
    if (b.dtype() == DType::F32) {
      pb = to_bf16(b, 0);
      ldb = std::max<int64_t>(b.dim(1), 1);
    }
  }
  const int64_t ldc = std::max<int64_t>({rc.ld, rc.cols, 1});
  constexpr int64_t kMax = INT32_MAX;
  RESP_CHECK_SHAPE(
      m <= kMax && n <= kMax && kk <= kMax && lda <= kMax && ldb <= kMax && ldc <= kMax,
      "dimensions exceed the cuBLAS integer range");
  const cudaDataType_t in_type = mixed ? CUDA_R_16BF : CUDA_R_32F;
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  cuda::check(
      cublasGemmEx(cublas_.get(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                   trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, static_cast<int>(n), static_cast<int>(m),
                   static_cast<int>(kk), &alpha, pb, in_type, static_cast<int>(ldb), pa, in_type,
                   static_cast<int>(lda), &beta, rc.p, CUDA_R_32F, static_cast<int>(ldc),
                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx");
}

// ---- row-wise ops ------------------------------------------------------------------------

void CudaBackend::add_bias(const Tensor& y, const Tensor& bias) {
  const k::Rows ry = f32_rows("add_bias", "y", y);
  const k::Rows rb = f32_rows("add_bias", "bias", bias);
  RESP_CHECK_SHAPE(y.rank() == 2 && bias.rank() == 1 && bias.dim(0) == y.dim(1), "y ", y.str(),
                   " must be [R, N] and bias ", bias.str(), " [N]");
  RESP_CHECK_SHAPE(!tensors_overlap(y, bias), "y ", y.str(), " overlaps bias ", bias.str());
  k::add_bias(ry, rb.p, stream_.get());
  cuda::check_launch("add_bias");
}

void CudaBackend::rmsnorm(const Tensor& out, const Tensor& x, const Tensor& w, float eps) {
  const k::Rows ro = f32_rows("rmsnorm", "out", out);
  const k::Rows rx = f32_rows("rmsnorm", "x", x);
  const k::Rows rw = f32_rows("rmsnorm", "w", w);
  RESP_CHECK_SHAPE(
      x.rank() == 2 && out.shape() == x.shape() && w.rank() == 1 && w.dim(0) == x.dim(1), "x ",
      x.str(), " and out ", out.str(), " must be [R, D] and w ", w.str(), " [D]");
  check_in_place_or_disjoint("rmsnorm", "out", out, "x", x);
  k::rmsnorm(ro, rx, rw.p, eps, stream_.get());
  cuda::check_launch("rmsnorm");
}

void CudaBackend::rope(const Tensor& x, const Tensor& positions, const Tensor& inv_freq) {
  const k::Rows rx = f32_rows("rope", "x", x);
  RESP_CHECK_SHAPE(x.rank() == 3 && x.dim(2) % 2 == 0, "x ", x.str(),
                   " must be [T, H, D] with D even");
  RESP_CHECK_SHAPE(positions.rank() == 1 && positions.dim(0) == x.dim(0), "positions ",
                   positions.str(), " must be [T] for x ", x.str());
  RESP_CHECK_SHAPE(inv_freq.rank() == 1 && inv_freq.dim(0) == x.dim(2) / 2, "inv_freq ",
                   inv_freq.str(), " must be [D/2] for x ", x.str());
  k::rope(rx.p, x.dim(0), x.dim(1), x.dim(2), rx.ld, i32_contig("rope", "positions", positions),
          f32_contig("rope", "inv_freq", inv_freq), 1.0f, stream_.get());
  cuda::check_launch("rope");
}

void CudaBackend::attention(const Tensor& out, const Tensor& q, const Tensor& k, const Tensor& v,
                            const Tensor& kv_of_head, int64_t q_offset, float scale) {
  const k::AttnArgs a = attn_args("attention", q, k, v, kv_of_head, q_offset, scale);
  const k::Rows ro = f32_rows("attention", "out", out);
  RESP_CHECK_SHAPE(out.shape() == q.shape(), "out ", out.str(), " must match q ", q.str());
  check_in_place_or_disjoint("attention", "out", out, "q", q);
  RESP_CHECK_SHAPE(!tensors_overlap(out, k) && !tensors_overlap(out, v), "out ", out.str(),
                   " overlaps k or v");
  const int64_t need = k::attention_scratch(a);
  float* sc =
      need > 0 ? static_cast<float*>(scratch(static_cast<size_t>(need) * sizeof(float))) : nullptr;
  k::attention(ro.p, ro.ld, nullptr, a, sc, status_dev_, stream_.get());
  cuda::check_launch("attention");
}

void CudaBackend::attention_decode_batch(const Tensor& out, const Tensor& q, const Tensor& k_new,
                                         const Tensor& v_new, const Tensor& k_cache,
                                         const Tensor& v_cache, const Tensor& slots,
                                         const Tensor& positions, const Tensor& kv_of_head,
                                         float scale) {
  const char* op = "attention_decode_batch";
  check_decode_batch_args(out, q, k_new, v_new, k_cache, v_cache, slots, positions, kv_of_head);
  const k::Rows ro = f32_rows(op, "out", out), rq = f32_rows(op, "q", q);
  const k::Rows rkn = f32_rows(op, "k_new", k_new), rvn = f32_rows(op, "v_new", v_new);
  float* kc = f32_contig(op, "k_cache", k_cache);
  float* vc = f32_contig(op, "v_cache", v_cache);
  RESP_CHECK_SHAPE(q.dim(2) <= k::kMaxHeadDim, "head dim ", q.dim(2), " of q ", q.str(),
                   " exceeds the CUDA attention kernels' limit ", k::kMaxHeadDim);
  check_in_place_or_disjoint(op, "out", out, "q", q);
  RESP_CHECK_SHAPE(!tensors_overlap(out, k_cache) && !tensors_overlap(out, v_cache) &&
                       !tensors_overlap(k_cache, v_cache),
                   "out ", out.str(), ", k_cache ", k_cache.str(), " and v_cache ", v_cache.str(),
                   " must not overlap");
  k::DecodeBatchArgs a{};
  a.q = rq.p;
  a.k_new = rkn.p;
  a.v_new = rvn.p;
  a.k_cache = kc;
  a.v_cache = vc;
  a.slots = i32_contig(op, "slots", slots);
  a.positions = i32_contig(op, "positions", positions);
  a.kv_of_head = i32_contig(op, "kv_of_head", kv_of_head);
  a.B = q.dim(0);
  a.Hq = q.dim(1);
  a.D = q.dim(2);
  a.Hkv = k_cache.dim(2);
  a.N = k_cache.dim(0);
  a.L = k_cache.dim(1);
  a.ldq = rq.ld;
  a.ldkn = rkn.ld;
  a.ldvn = rvn.ld;
  a.scale = scale;
  const int64_t need = k::attention_decode_batch_scratch(a);
  float* sc =
      need > 0 ? static_cast<float*>(scratch(static_cast<size_t>(need) * sizeof(float))) : nullptr;
  k::attention_decode_batch(ro.p, ro.ld, a, sc, status_dev_, stream_.get());
  cuda::check_launch(op);
}

void CudaBackend::swiglu(const Tensor& out, const Tensor& gate, const Tensor& up) {
  const k::Rows ro = f32_rows("swiglu", "out", out);
  const k::Rows rg = f32_rows("swiglu", "gate", gate);
  const k::Rows ru = f32_rows("swiglu", "up", up);
  RESP_CHECK_SHAPE(out.shape() == gate.shape() && up.shape() == gate.shape(), "out ", out.str(),
                   ", gate ", gate.str(), ", up ", up.str(), " must have the same shape");
  check_in_place_or_disjoint("swiglu", "out", out, "gate", gate);
  check_in_place_or_disjoint("swiglu", "out", out, "up", up);
  k::swiglu(ro, rg, ru, stream_.get());
  cuda::check_launch("swiglu");
}

void CudaBackend::embedding(const Tensor& out, const Tensor& table, const Tensor& ids) {
  const k::Rows ro = f32_rows("embedding", "out", out);
  const k::Rows rt = f32_rows("embedding", "table", table);
  RESP_CHECK_SHAPE(table.rank() == 2 && ids.rank() == 1 && out.rank() == 2 &&
                       out.dim(0) == ids.dim(0) && out.dim(1) == table.dim(1),
                   "table ", table.str(), " must be [V, H], ids ", ids.str(), " [T], out ",
                   out.str(), " [T, H]");
  RESP_CHECK_SHAPE(rt.ld == rt.cols || rt.rows <= 1, "table ", table.str(), " must be contiguous");
  k::embedding(ro, rt.p, table.dim(0), i32_contig("embedding", "ids", ids), status_dev_,
               stream_.get());
  cuda::check_launch("embedding");
}

void CudaBackend::add(const Tensor& out, const Tensor& a, const Tensor& b) {
  const k::Rows ro = f32_rows("add", "out", out);
  const k::Rows ra = f32_rows("add", "a", a);
  const k::Rows rb = f32_rows("add", "b", b);
  RESP_CHECK_SHAPE(out.shape() == a.shape() && b.shape() == a.shape(), "out ", out.str(), ", a ",
                   a.str(), ", b ", b.str(), " must have the same shape");
  check_in_place_or_disjoint("add", "out", out, "a", a);
  check_in_place_or_disjoint("add", "out", out, "b", b);
  k::add(ro, ra, rb, stream_.get());
  cuda::check_launch("add");
}

void CudaBackend::scale(const Tensor& x, float alpha) {
  k::scale(f32_rows("scale", "x", x), alpha, stream_.get());
  cuda::check_launch("scale");
}

void CudaBackend::softmax(const Tensor& out, const Tensor& x) {
  const k::Rows ro = f32_rows("softmax", "out", out);
  const k::Rows rx = f32_rows("softmax", "x", x);
  RESP_CHECK_SHAPE(x.rank() == 2 && out.shape() == x.shape(), "x ", x.str(), " and out ", out.str(),
                   " must be the same [R, N]");
  check_in_place_or_disjoint("softmax", "out", out, "x", x);
  k::softmax(ro, rx, false, stream_.get());
  cuda::check_launch("softmax");
}

void CudaBackend::log_softmax(const Tensor& out, const Tensor& x) {
  const k::Rows ro = f32_rows("log_softmax", "out", out);
  const k::Rows rx = f32_rows("log_softmax", "x", x);
  RESP_CHECK_SHAPE(x.rank() == 2 && out.shape() == x.shape(), "x ", x.str(), " and out ", out.str(),
                   " must be the same [R, N]");
  check_in_place_or_disjoint("log_softmax", "out", out, "x", x);
  k::softmax(ro, rx, true, stream_.get());
  cuda::check_launch("log_softmax");
}

// ---- backward ops ------------------------------------------------------------------------

void CudaBackend::sum_rows(const Tensor& out, const Tensor& x) {
  float* o = f32_contig("sum_rows", "out", out);
  const float* xp = f32_contig("sum_rows", "x", x);
  const int64_t N = out.numel();
  RESP_CHECK_SHAPE(N > 0 && x.numel() % N == 0 && x.dim(x.rank() - 1) == N, "x ", x.str(),
                   " must be [R, ", N, "] for out ", out.str());
  const int64_t R = x.numel() / N;
  auto* partial = static_cast<float*>(
      scratch(static_cast<size_t>(k::column_sum_partials(R) * N) * sizeof(float)));
  k::column_sum(o, xp, nullptr, nullptr, R, N, partial, stream_.get());
  cuda::check_launch("sum_rows");
}

void CudaBackend::rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy,
                                   const Tensor& x, const Tensor& w, float eps) {
  const char* op = "rmsnorm_backward";
  float* dxp = f32_contig(op, "dx", dx);
  const float* dyp = f32_contig(op, "dy", dy);
  const float* xp = f32_contig(op, "x", x);
  const float* wp = f32_contig(op, "w", w);
  const int64_t D = w.numel();
  RESP_CHECK_SHAPE(
      D > 0 && x.dim(x.rank() - 1) == D && x.numel() == dy.numel() && x.numel() == dx.numel(), "x ",
      x.str(), ", dy ", dy.str(), ", dx ", dx.str(), " vs w ", w.str());
  float* dwp = nullptr;
  if (!dw.empty()) {
    dwp = f32_contig(op, "dw", dw);
    RESP_CHECK_SHAPE(dw.numel() == D, "dw ", dw.str(), " must match w ", w.str());
  }
  const int64_t R = x.numel() / D;
  auto* sc = static_cast<float*>(
      scratch(static_cast<size_t>(k::rmsnorm_backward_scratch(R, D)) * sizeof(float)));
  k::rmsnorm_backward(dxp, dwp, dyp, xp, wp, R, D, eps, sc, stream_.get());
  cuda::check_launch(op);
}

void CudaBackend::rope_backward(const Tensor& dx, const Tensor& positions, const Tensor& inv_freq) {
  float* p = f32_contig("rope_backward", "dx", dx);
  RESP_CHECK_SHAPE(dx.rank() == 3 && dx.dim(2) % 2 == 0 && inv_freq.numel() == dx.dim(2) / 2, "dx ",
                   dx.str(), " must be [T, H, D] with inv_freq [D/2], got ", inv_freq.str());
  RESP_CHECK_SHAPE(positions.numel() == dx.dim(0), "positions ", positions.str(),
                   " must be I32 [T] for dx ", dx.str());
  k::rope(p, dx.dim(0), dx.dim(1), dx.dim(2), dx.dim(1) * dx.dim(2),
          i32_contig("rope_backward", "positions", positions),
          f32_contig("rope_backward", "inv_freq", inv_freq), -1.0f, stream_.get());
  cuda::check_launch("rope_backward");
}

void CudaBackend::attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                     const Tensor& dout, const Tensor& q, const Tensor& k,
                                     const Tensor& v, const Tensor& kv_of_head, int64_t q_offset,
                                     float scale) {
  const char* op = "attention_backward";
  for (auto [n, t] : {std::pair{"dq", &dq},
                      {"dk", &dk},
                      {"dv", &dv},
                      {"dout", &dout},
                      {"q", &q},
                      {"k", &k},
                      {"v", &v}})
    f32_contig(op, n, *t);
  check_attention_backward_args(dq, dk, dv, dout, q, k, v, kv_of_head, q_offset);
  const k::AttnArgs a = attn_args(op, q, k, v, kv_of_head, q_offset, scale);
  const int64_t th = a.T * a.Hq;
  auto* sc = static_cast<float*>(scratch(static_cast<size_t>(th * a.D + 2 * th) * sizeof(float)));
  float* o = sc;
  float* lse = o + th * a.D;
  float* delta = lse + th;
  cudaStream_t s = stream_.get();
  // The forward is recomputed for its output and log-sum-exp (the interface passes neither).
  k::attention(o, a.Hq * a.D, lse, a, nullptr, status_dev_, s);
  k::attention_backward(static_cast<float*>(dq.data()), static_cast<float*>(dk.data()),
                        static_cast<float*>(dv.data()), static_cast<const float*>(dout.data()), o,
                        lse, delta, a, s);
  cuda::check_launch(op);
}

void CudaBackend::swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                                  const Tensor& gate, const Tensor& up) {
  const char* op = "swiglu_backward";
  for (auto [n, t] :
       {std::pair{"dgate", &dgate}, {"dup", &dup}, {"dout", &dout}, {"gate", &gate}, {"up", &up}})
    f32_contig(op, n, *t);
  RESP_CHECK_SHAPE(dgate.shape() == gate.shape() && dup.shape() == gate.shape() &&
                       dout.shape() == gate.shape() && up.shape() == gate.shape(),
                   "all tensors must have the shape of gate ", gate.str());
  RESP_CHECK_SHAPE(dgate.data() != gate.data() && dgate.data() != up.data() &&
                       dup.data() != gate.data() && dup.data() != up.data() &&
                       dgate.data() != dup.data(),
                   "dgate/dup must not alias gate, up or each other");
  k::swiglu_backward(static_cast<float*>(dgate.data()), static_cast<float*>(dup.data()),
                     static_cast<const float*>(dout.data()), static_cast<const float*>(gate.data()),
                     static_cast<const float*>(up.data()), gate.numel(), stream_.get());
  cuda::check_launch(op);
}

void CudaBackend::embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& ids) {
  const char* op = "embedding_backward";
  float* tab = f32_contig(op, "dtable", dtable);
  const float* d = f32_contig(op, "dout", dout);
  RESP_CHECK_SHAPE(dtable.rank() == 2 && dout.rank() == 2 && dout.dim(1) == dtable.dim(1) &&
                       ids.numel() == dout.dim(0),
                   "dtable ", dtable.str(), ", dout ", dout.str(), ", ids ", ids.str());
  k::embedding_backward(tab, dtable.dim(0), d, dout.dim(0), dout.dim(1), i32_contig(op, "ids", ids),
                        status_dev_, stream_.get());
  cuda::check_launch(op);
}

void CudaBackend::cross_entropy(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                                const Tensor& weights) {
  const char* op = "cross_entropy";
  float* ls = f32_contig(op, "losses", losses);
  float* x = f32_contig(op, "logits", logits);
  const float* w = f32_contig(op, "weights", weights);
  RESP_CHECK_SHAPE(logits.rank() == 2 && targets.numel() == logits.dim(0) &&
                       weights.numel() == logits.dim(0) && losses.numel() == logits.dim(0),
                   "logits ", logits.str(), " targets ", targets.str(), " weights ", weights.str(),
                   " losses ", losses.str());
  k::cross_entropy(ls, x, logits.dim(0), logits.dim(1), i32_contig(op, "targets", targets), w,
                   status_dev_, stream_.get());
  cuda::check_launch(op);
}

// ---- importance reductions ---------------------------------------------------------------

void CudaBackend::group_reduce(std::span<double> out, GroupReduce kind, const Tensor& a,
                               const Tensor& b, bool by_rows, int64_t per_group, double factor) {
  const char* op = "group_reduce";
  const GroupReduceDims d = check_group_reduce_args(out, kind, a, b, by_rows, per_group);
  check_device(op, "a", a);
  const float* bp = nullptr;
  if (group_reduce_reads_b(kind)) bp = f32_contig(op, "b", b);
  if (d.rows == 0 || d.cols == 0) return;  // every group sums nothing
  // One block per row in the row direction (gridDim.x).
  RESP_CHECK_SHAPE(!by_rows || d.rows <= INT32_MAX, "a ", a.str(), " has too many rows");
  k::ReduceTerm term = k::ReduceTerm::AbsProduct;
  switch (kind) {
    case GroupReduce::AbsProduct:
      term = k::ReduceTerm::AbsProduct;
      break;
    case GroupReduce::Product:
      term = k::ReduceTerm::Product;
      break;
    case GroupReduce::Square:
      term = k::ReduceTerm::Square;
      break;
    case GroupReduce::Abs:
      term = k::ReduceTerm::Abs;
      break;
  }
  const int64_t lines = k::group_reduce_lines(d.rows, d.cols, by_rows);
  auto* dev = static_cast<double*>(scratch(static_cast<size_t>(lines + d.groups) * sizeof(double)));
  cudaStream_t s = stream_.get();
  k::group_reduce(dev + lines, dev, term, a.data(), a.dtype() == DType::BF16, bp, d.rows, d.cols,
                  per_group, by_rows, factor, s);
  cuda::check_launch(op);
  std::vector<double> host(static_cast<size_t>(d.groups));
  cuda::check(cudaMemcpyAsync(host.data(), dev + lines, host.size() * sizeof(double),
                              cudaMemcpyDeviceToHost, s),
              op);
  sync_and_check(op);
  for (size_t i = 0; i < host.size(); ++i) out[i] += host[i];
}

}  // namespace resp
