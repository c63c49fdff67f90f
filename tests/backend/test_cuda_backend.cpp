// Every op of the CUDA backend against the CPU backend on random, deliberately odd shapes
// (pruned widths have no nice divisors): prefill and decode attention with unequal GQA groups
// and garbage past the causal range, the backward ops, the bf16 weight path of gemm, copies
// that convert, device-side index errors and the importance reductions. Each comparison checks
// max |gpu - cpu| <= atol + rtol * max |cpu| and the normalised mean squared error. Without a
// CUDA device every test is skipped, and ctest reports it so (gtest_discover_tests sets the
// SKIP_REGULAR_EXPRESSION). Built only when the build has the CUDA backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"
#include "gpu_test.h"

namespace resp {
namespace {

using vecf = std::vector<float>;
using veci = std::vector<int32_t>;

vecf random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  vecf v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

int64_t numel(Shape s) {
  return s.numel();
}

// The same data on the host (for the CPU backend) and on the device.
class Both {
 public:
  Both(Backend& gpu, vecf host, Shape shape) : gpu_(&gpu), f_(std::move(host)), shape_(shape) {
    buf_ = gpu.allocate_tensor(DType::F32, shape);
    if (numel(shape) > 0) gpu.copy(dev(), cpu());
  }
  Both(Backend& gpu, veci host, Shape shape) : gpu_(&gpu), i_(std::move(host)), shape_(shape) {
    dtype_ = DType::I32;
    buf_ = gpu.allocate_tensor(DType::I32, shape);
    if (numel(shape) > 0) gpu.copy(dev(), cpu());
  }
  Tensor cpu() {
    return Tensor(dtype_ == DType::F32 ? static_cast<void*>(f_.data()) : i_.data(), dtype_, shape_);
  }
  Tensor dev() const { return buf_.tensor(dtype_, shape_); }
  vecf download() const {
    vecf out(static_cast<size_t>(numel(shape_)));
    if (!out.empty()) gpu_->copy(Tensor(out.data(), DType::F32, shape_), dev());
    return out;
  }
  const vecf& host() const { return f_; }
  vecf& host() { return f_; }

 private:
  Backend* gpu_;
  vecf f_;
  veci i_;
  Shape shape_;
  DType dtype_ = DType::F32;
  Buffer buf_;
};

void expect_close(const vecf& got, const vecf& ref, double rtol, const std::string& what,
                  double atol = 1e-6) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  double err = 0, scale = 0, se = 0, sr = 0;
  size_t worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(double(got[i]) - ref[i]);
    ASSERT_FALSE(std::isnan(got[i])) << what << ": NaN at " << i;
    if (d > err) {
      err = d;
      worst = i;
    }
    scale = std::max(scale, std::fabs(double(ref[i])));
    se += d * d;
    sr += double(ref[i]) * ref[i];
  }
  EXPECT_LE(err, atol + rtol * scale) << what << ": worst at " << worst << " got " << got[worst]
                                      << " want " << ref[worst] << " (scale " << scale << ")";
  if (sr > 0) {
    EXPECT_LE(se / sr, rtol * rtol) << what << ": normalised MSE";
  }
}

// ---- device probe (runs without a GPU) ------------------------------------------------------

TEST(CudaProbe, OldDriverIsNotNoGpu) {
  // The driver supports CUDA 12.4; this build's runtime is 13.0.
  const CudaProbe old =
      cuda::classify_device_probe(cudaErrorInsufficientDriver, 0, 12040, 13000, "550.54.15");
  EXPECT_EQ(old.state, CudaProbe::State::DriverTooOld);
  EXPECT_TRUE(old.broken());
  EXPECT_EQ(old.devices, 0);
  EXPECT_EQ(old.reason.rfind("CUDA driver too old: needs >= 580, found 550.54.15", 0), 0u)
      << old.reason;
  EXPECT_NE(old.reason.find("CUDA 12.4"), std::string::npos) << old.reason;
  // Without /proc/driver/nvidia the message still says what the driver supports.
  const CudaProbe unknown =
      cuda::classify_device_probe(cudaErrorInsufficientDriver, 0, 12020, 13000, "");
  EXPECT_EQ(unknown.state, CudaProbe::State::DriverTooOld);
  EXPECT_NE(unknown.reason.find("found a driver for CUDA 12.2"), std::string::npos)
      << unknown.reason;
}

TEST(CudaProbe, NoDriverAndNoDeviceAreACpuMachine) {
  // cudart reports a missing libcuda as an insufficient driver, with driver version 0.
  const CudaProbe none = cuda::classify_device_probe(cudaErrorInsufficientDriver, 0, 0, 13000, "");
  EXPECT_EQ(none.state, CudaProbe::State::NoDevice);
  EXPECT_FALSE(none.broken());
  EXPECT_NE(none.reason.find("no NVIDIA driver"), std::string::npos);
  EXPECT_EQ(cuda::classify_device_probe(cudaErrorNoDevice, 0, 13000, 13000, "").state,
            CudaProbe::State::NoDevice);
  EXPECT_EQ(cuda::classify_device_probe(cudaSuccess, 0, 13000, 13000, "").state,
            CudaProbe::State::NoDevice);
}

TEST(CudaProbe, DevicesAndOtherErrors) {
  const CudaProbe ok = cuda::classify_device_probe(cudaSuccess, 8, 13000, 13000, "");
  EXPECT_TRUE(ok.available());
  EXPECT_EQ(ok.devices, 8);
  EXPECT_TRUE(ok.reason.empty());
  const CudaProbe mismatch =
      cuda::classify_device_probe(cudaErrorSystemDriverMismatch, 0, 13000, 13000, "");
  EXPECT_EQ(mismatch.state, CudaProbe::State::Error);
  EXPECT_TRUE(mismatch.broken());
  EXPECT_NE(mismatch.reason.find("cudaErrorSystemDriverMismatch"), std::string::npos)
      << mismatch.reason;
  EXPECT_EQ(cuda::min_driver_for_runtime(13000), "580");
  EXPECT_EQ(cuda::min_driver_for_runtime(12080), "525");
  EXPECT_EQ(cuda::min_driver_for_runtime(9000), "");
}

TEST(CudaProbe, DriverReleaseFromProc) {
  EXPECT_EQ(cuda::driver_release_from_proc(
                "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 "
                "UTC 2024\nGCC version:  gcc version 12.2.0\n"),
            "550.54.15");
  EXPECT_EQ(cuda::driver_release_from_proc("NVRM version: NVIDIA UNIX Open Kernel Module for "
                                           "x86_64  580.65.06  Release Build  (dvs-builder)\n"),
            "580.65.06");
  EXPECT_EQ(cuda::driver_release_from_proc(""), "");
  EXPECT_EQ(cuda::driver_release_from_proc("Kernel Module\n 1.2"), "");  // not on its line
}

// What a GPU test does without a usable device: skip on a CPU machine, fail where a GPU is
// required or present but broken.
TEST(CudaProbe, GpuTestsFailRatherThanSkipWhenAGpuIsExpected) {
  CudaProbe none;
  none.state = CudaProbe::State::NoDevice;
  CudaProbe old;
  old.state = CudaProbe::State::DriverTooOld;
  CudaProbe ok;
  ok.state = CudaProbe::State::Available;
  ok.devices = 1;
  EXPECT_EQ(test::gpu_verdict(none, false), test::GpuVerdict::Skip);
  EXPECT_EQ(test::gpu_verdict(none, true), test::GpuVerdict::Fail);
  EXPECT_EQ(test::gpu_verdict(old, false), test::GpuVerdict::Fail);
  EXPECT_EQ(test::gpu_verdict(ok, true), test::GpuVerdict::Run);
}

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    RESP_REQUIRE_GPU();
    cpu = make_cpu_backend(1);
    gpu = make_cuda_backend(0);
  }
  Both make(vecf v, Shape s) { return Both(*gpu, std::move(v), s); }
  Both rnd(Shape s, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
    return make(random_vec(static_cast<size_t>(numel(s)), seed, lo, hi), s);
  }
  Both ids(veci v) {
    const auto n = static_cast<int64_t>(v.size());
    return Both(*gpu, std::move(v), Shape{n});
  }
  std::unique_ptr<Backend> cpu, gpu;
};

// ---- device plumbing -----------------------------------------------------------------------

TEST_F(CudaOps, ReportsDeviceAndRoundTripsCopies) {
  EXPECT_EQ(gpu->device(), Device::CUDA);
  EXPECT_NE(gpu->name().find("cuda:0"), std::string::npos);
  Both a = rnd({1001}, 1);
  EXPECT_EQ(a.download(), a.host());
  Both b = make(vecf(1001, 0.0f), {1001});
  gpu->copy(b.dev(), a.dev());  // device to device
  EXPECT_EQ(b.download(), a.host());
}

TEST_F(CudaOps, CopyConvertsF32AndBf16) {
  vecf h = random_vec(777, 2, -100.0f, 100.0f);
  Buffer d = gpu->allocate_tensor(DType::BF16, {777});
  gpu->copy(d.tensor(DType::BF16, {777}), Tensor(h.data(), DType::F32, Shape{777}));
  vecf back(777);
  gpu->copy(Tensor(back.data(), DType::F32, Shape{777}), d.tensor(DType::BF16, {777}));
  std::vector<uint16_t> raw(777);
  gpu->copy(Tensor(raw.data(), DType::BF16, Shape{777}), d.tensor(DType::BF16, {777}));
  for (size_t i = 0; i < h.size(); ++i) {
    EXPECT_EQ(raw[i], f32_to_bf16(h[i])) << i;  // round to nearest even, as on the host
    EXPECT_EQ(back[i], bf16_to_f32(f32_to_bf16(h[i]))) << i;
  }
}

TEST_F(CudaOps, FillScaleAddBias) {
  Both x = rnd({37, 53}, 3);
  gpu->fill(x.dev(), 2.5f);
  EXPECT_EQ(x.download(), vecf(37 * 53, 2.5f));
  Both y = rnd({37, 53}, 4), bias = rnd({53}, 5);
  cpu->add_bias(y.cpu(), bias.cpu());
  gpu->add_bias(y.dev(), bias.dev());
  expect_close(y.download(), y.host(), 1e-7, "add_bias");
  cpu->scale(y.cpu(), -0.37f);
  gpu->scale(y.dev(), -0.37f);
  expect_close(y.download(), y.host(), 1e-7, "scale");
  Both z = rnd({37, 53}, 6);
  cpu->add(y.cpu(), y.cpu(), z.cpu());  // out aliases a
  gpu->add(y.dev(), y.dev(), z.dev());
  expect_close(y.download(), y.host(), 1e-7, "add");
}

// ---- gemm ----------------------------------------------------------------------------------

TEST_F(CudaOps, GemmAllTransposesOddSizes) {
  const int64_t m = 37, n = 53, k = 29;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      Both a = rnd(ta ? Shape{k, m} : Shape{m, k}, 10 + ta);
      Both b = rnd(tb ? Shape{n, k} : Shape{k, n}, 20 + tb);
      Both c = rnd({m, n}, 30);
      cpu->gemm(a.cpu(), ta, b.cpu(), tb, c.cpu(), 0.75f, 0.5f);
      gpu->gemm(a.dev(), ta, b.dev(), tb, c.dev(), 0.75f, 0.5f);
      expect_close(c.download(), c.host(), 2e-6,
                   "gemm ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
    }
}

TEST_F(CudaOps, GemmSingleRowAndEmptyInner) {
  Both x = rnd({1, 301}, 40), w = rnd({97, 301}, 41), y = rnd({1, 97}, 42);
  cpu->linear(y.cpu(), x.cpu(), w.cpu());
  gpu->linear(y.dev(), x.dev(), w.dev());
  expect_close(y.download(), y.host(), 2e-6, "linear, one row");
  // k = 0: C = beta * C, exactly zero for beta = 0.
  Both a = make({}, {5, 0}), b = make({}, {0, 7}), c = rnd({5, 7}, 43);
  gpu->gemm(a.dev(), false, b.dev(), false, c.dev(), 1.0f, 0.0f);
  EXPECT_EQ(c.download(), vecf(35, 0.0f));
}

// The CPU backend's argument checks (check_gemm_args): C overlapping an input is refused before
// cuBLAS reads what it is writing.
TEST_F(CudaOps, GemmRefusesCOverlappingAOrB) {
  Both buf = rnd({8, 8}, 44), w = rnd({8, 8}, 45);
  const Tensor all = buf.dev();
  const Tensor top = all.slice_rows(0, 4), bottom = all.slice_rows(4, 4);
  const Tensor overlapping = all.slice_rows(2, 4);
  EXPECT_THROW(gpu->gemm(top, false, w.dev(), false, overlapping), ShapeError);
  EXPECT_THROW(gpu->gemm(w.dev().slice_rows(0, 4), false, all, false, bottom), ShapeError);
  EXPECT_NO_THROW(gpu->gemm(top, false, w.dev(), false, bottom));  // disjoint halves
  gpu->synchronize();
}

TEST_F(CudaOps, GemmWithBf16WeightsAccumulatesInF32) {
  const int64_t T = 33, in = 257, out = 71;
  Both x = rnd({T, in}, 50), y = make(vecf(T * out, 0.0f), {T, out});
  vecf w = random_vec(static_cast<size_t>(out * in), 51);
  Buffer wb = gpu->allocate_tensor(DType::BF16, {out, in});
  gpu->copy(wb.tensor(DType::BF16, {out, in}), Tensor(w.data(), DType::F32, Shape{out, in}));
  gpu->linear(y.dev(), x.dev(), wb.tensor(DType::BF16, {out, in}));
  // Reference: both inputs rounded to bf16, products summed in f32 on the CPU.
  vecf xr = x.host(), wr = w;
  for (auto& v : xr) v = bf16_to_f32(f32_to_bf16(v));
  for (auto& v : wr) v = bf16_to_f32(f32_to_bf16(v));
  vecf ref(static_cast<size_t>(T * out));
  cpu->linear(Tensor(ref.data(), DType::F32, Shape{T, out}),
              Tensor(xr.data(), DType::F32, Shape{T, in}),
              Tensor(wr.data(), DType::F32, Shape{out, in}));
  expect_close(y.download(), ref, 1e-5, "bf16 linear");
  // dX = dY W with W in bf16 (the backward of a bf16 layer).
  Both dy = rnd({T, out}, 52), dx = make(vecf(T * in, 0.0f), {T, in});
  gpu->gemm(dy.dev(), false, wb.tensor(DType::BF16, {out, in}), false, dx.dev());
  vecf dyr = dy.host();
  for (auto& v : dyr) v = bf16_to_f32(f32_to_bf16(v));
  vecf dref(static_cast<size_t>(T * in));
  cpu->gemm(Tensor(dyr.data(), DType::F32, Shape{T, out}), false,
            Tensor(wr.data(), DType::F32, Shape{out, in}), false,
            Tensor(dref.data(), DType::F32, Shape{T, in}));
  expect_close(dx.download(), dref, 1e-5, "bf16 dX");
}

// ---- normalisation, rope, elementwise --------------------------------------------------------

TEST_F(CudaOps, RmsNormRowsAndPerHead) {
  for (auto [R, D] : {std::pair<int64_t, int64_t>{37, 131}, {37 * 5, 96}, {3, 2049}}) {
    Both x = rnd({R, D}, 60), w = rnd({D}, 61, 0.5f, 1.5f);
    Both out = make(vecf(static_cast<size_t>(R * D), 0.0f), {R, D});
    cpu->rmsnorm(out.cpu(), x.cpu(), w.cpu(), 1e-6f);
    gpu->rmsnorm(out.dev(), x.dev(), w.dev(), 1e-6f);
    expect_close(out.download(), out.host(), 2e-6, "rmsnorm D=" + std::to_string(D));
    cpu->rmsnorm(x.cpu(), x.cpu(), w.cpu(), 1e-6f);  // in place
    gpu->rmsnorm(x.dev(), x.dev(), w.dev(), 1e-6f);
    expect_close(x.download(), x.host(), 2e-6, "rmsnorm in place");
  }
}

TEST_F(CudaOps, RopeForwardAndBackwardAtLargePositions) {
  const int64_t T = 19, H = 3, D = 74;
  veci pos(T);
  std::mt19937 gen(7);
  for (auto& p : pos) p = static_cast<int32_t>(gen() % 40000);
  vecf inv(D / 2);
  for (int64_t i = 0; i < D / 2; ++i) inv[size_t(i)] = std::pow(1e4f, -2.0f * i / D);
  Both x = rnd({T, H, D}, 70), p = ids(pos), f = make(inv, {D / 2});
  cpu->rope(x.cpu(), p.cpu(), f.cpu());
  gpu->rope(x.dev(), p.dev(), f.dev());
  expect_close(x.download(), x.host(), 2e-6, "rope");
  cpu->rope_backward(x.cpu(), p.cpu(), f.cpu());
  gpu->rope_backward(x.dev(), p.dev(), f.dev());
  expect_close(x.download(), x.host(), 2e-6, "rope_backward");
}

TEST_F(CudaOps, SwigluForwardBackward) {
  const Shape s{41, 173};
  Both g = rnd(s, 80, -6.0f, 6.0f), u = rnd(s, 81), o = make(vecf(41 * 173, 0.0f), s);
  cpu->swiglu(o.cpu(), g.cpu(), u.cpu());
  gpu->swiglu(o.dev(), g.dev(), u.dev());
  expect_close(o.download(), o.host(), 2e-6, "swiglu");
  Both d = rnd(s, 82), du = make(vecf(41 * 173, 0.0f), s);
  cpu->swiglu_backward(d.cpu(), du.cpu(), d.cpu(), g.cpu(), u.cpu());  // dgate aliases dout
  gpu->swiglu_backward(d.dev(), du.dev(), d.dev(), g.dev(), u.dev());
  expect_close(d.download(), d.host(), 2e-6, "swiglu dgate");
  expect_close(du.download(), du.host(), 2e-6, "swiglu dup");
}

TEST_F(CudaOps, EmbeddingForwardBackwardWithDuplicates) {
  const int64_t V = 301, H = 67;
  veci tok = {5, 300, 0, 5, 17, 5, 299};
  const int64_t T = static_cast<int64_t>(tok.size());
  Both table = rnd({V, H}, 90), t = ids(tok), out = make(vecf(T * H, 0.0f), {T, H});
  cpu->embedding(out.cpu(), table.cpu(), t.cpu());
  gpu->embedding(out.dev(), table.dev(), t.dev());
  EXPECT_EQ(out.download(), out.host());
  Both dout = rnd({T, H}, 91), dtab = rnd({V, H}, 92);
  cpu->embedding_backward(dtab.cpu(), dout.cpu(), t.cpu());
  gpu->embedding_backward(dtab.dev(), dout.dev(), t.dev());
  expect_close(dtab.download(), dtab.host(), 1e-6, "embedding_backward");
}

TEST_F(CudaOps, BadTokenIdIsReportedAtTheNextSync) {
  Both table = rnd({11, 5}, 93), t = ids({3, 11}), out = make(vecf(10, 0.0f), {2, 5});
  gpu->embedding(out.dev(), table.dev(), t.dev());
  EXPECT_THROW(gpu->synchronize(), ShapeError);
  gpu->synchronize();  // reported once, then clear
}

TEST_F(CudaOps, SoftmaxAndLogSoftmax) {
  for (auto [R, N] : {std::pair<int64_t, int64_t>{7, 1001}, {3, 50021}, {2, 1}}) {
    Both x = rnd({R, N}, 100, -20.0f, 20.0f), o = make(vecf(size_t(R * N), 0.0f), {R, N});
    cpu->softmax(o.cpu(), x.cpu());
    gpu->softmax(o.dev(), x.dev());
    expect_close(o.download(), o.host(), 1e-5, "softmax N=" + std::to_string(N));
    cpu->log_softmax(x.cpu(), x.cpu());
    gpu->log_softmax(x.dev(), x.dev());
    expect_close(x.download(), x.host(), 1e-6, "log_softmax N=" + std::to_string(N), 1e-5);
  }
}

TEST_F(CudaOps, CrossEntropyWithWeightsAndMaskedRows) {
  const int64_t R = 9, V = 3001;
  veci tg = {0, 3000, 17, 17, 5, 2999, 1, 1500, 42};
  vecf w = {1.0f, 0.0f, 0.5f, 2.0f, 1.0f, 0.0f, 1.0f, 0.25f, 1.0f};
  Both lg = rnd({R, V}, 110, -8.0f, 8.0f), t = ids(tg), wt = make(w, {R});
  Both loss = make(vecf(R, 0.0f), {R});
  cpu->cross_entropy(loss.cpu(), lg.cpu(), t.cpu(), wt.cpu());
  gpu->cross_entropy(loss.dev(), lg.dev(), t.dev(), wt.dev());
  expect_close(loss.download(), loss.host(), 1e-6, "losses", 1e-5);
  expect_close(lg.download(), lg.host(), 1e-5, "dlogits");
}

TEST_F(CudaOps, SumRowsAndRmsNormBackward) {
  const int64_t R = 523, D = 97;
  Both x = rnd({R, D}, 120), acc = rnd({D}, 121);
  cpu->sum_rows(acc.cpu(), x.cpu());
  gpu->sum_rows(acc.dev(), x.dev());
  expect_close(acc.download(), acc.host(), 1e-5, "sum_rows");
  Both w = rnd({D}, 122, 0.5f, 1.5f), dy = rnd({R, D}, 123), dw = rnd({D}, 124);
  cpu->rmsnorm_backward(dy.cpu(), dw.cpu(), dy.cpu(), x.cpu(), w.cpu(), 1e-6f);  // dx aliases dy
  gpu->rmsnorm_backward(dy.dev(), dw.dev(), dy.dev(), x.dev(), w.dev(), 1e-6f);
  expect_close(dy.download(), dy.host(), 1e-5, "rmsnorm dx");
  expect_close(dw.download(), dw.host(), 1e-5, "rmsnorm dw");
}

// ---- attention -----------------------------------------------------------------------------

struct AttnCase {
  int64_t T, q_offset, extra;  // extra: cache rows past q_offset + T (garbage, must not be read)
  int64_t Hq, Hkv, D;
  veci kv_of_head;
};

void PrintTo(const AttnCase& c, std::ostream* os) {
  *os << "T=" << c.T << " off=" << c.q_offset << " Hq=" << c.Hq << " Hkv=" << c.Hkv << " D=" << c.D;
}

class CudaAttention : public CudaOps, public ::testing::WithParamInterface<AttnCase> {};

TEST_P(CudaAttention, ForwardMatchesCpu) {
  const AttnCase& c = GetParam();
  const int64_t S = c.q_offset + c.T + c.extra;
  Both q = rnd({c.T, c.Hq, c.D}, 200), k = rnd({S, c.Hkv, c.D}, 201, -2.0f, 2.0f);
  Both v = rnd({S, c.Hkv, c.D}, 202);
  for (int64_t i = (c.q_offset + c.T) * c.Hkv * c.D; i < S * c.Hkv * c.D; ++i)
    k.host()[size_t(i)] = v.host()[size_t(i)] = NAN;  // past the causal range
  Both kd = make(k.host(), {S, c.Hkv, c.D}), vd = make(v.host(), {S, c.Hkv, c.D});
  Both map = ids(c.kv_of_head);
  Both out = make(vecf(size_t(c.T * c.Hq * c.D), 0.0f), {c.T, c.Hq, c.D});
  const float scale = 1.0f / std::sqrt(float(c.D));
  cpu->attention(out.cpu(), q.cpu(), kd.cpu(), vd.cpu(), map.cpu(), c.q_offset, scale);
  gpu->attention(out.dev(), q.dev(), kd.dev(), vd.dev(), map.dev(), c.q_offset, scale);
  expect_close(out.download(), out.host(), 1e-5, "attention");
  // out aliasing q (the decoder does not, but the contract allows it).
  gpu->attention(q.dev(), q.dev(), kd.dev(), vd.dev(), map.dev(), c.q_offset, scale);
  expect_close(q.download(), out.host(), 1e-5, "attention in place");
}

TEST_P(CudaAttention, BackwardMatchesCpu) {
  const AttnCase& c = GetParam();
  if (c.D > 128 && c.T > 40) GTEST_SKIP() << "covered by smaller cases";
  const int64_t S = c.q_offset + c.T + c.extra;
  const Shape qs{c.T, c.Hq, c.D}, ks{S, c.Hkv, c.D};
  Both q = rnd(qs, 210), k = rnd(ks, 211), v = rnd(ks, 212), dout = rnd(qs, 213);
  Both map = ids(c.kv_of_head);
  Both dq = make(vecf(size_t(numel(qs)), 7.0f), qs);
  Both dk = make(vecf(size_t(numel(ks)), 7.0f), ks), dv = make(vecf(size_t(numel(ks)), 7.0f), ks);
  const float scale = 1.0f / std::sqrt(float(c.D));
  cpu->attention_backward(dq.cpu(), dk.cpu(), dv.cpu(), dout.cpu(), q.cpu(), k.cpu(), v.cpu(),
                          map.cpu(), c.q_offset, scale);
  gpu->attention_backward(dq.dev(), dk.dev(), dv.dev(), dout.dev(), q.dev(), k.dev(), v.dev(),
                          map.dev(), c.q_offset, scale);
  expect_close(dq.download(), dq.host(), 2e-5, "dq");
  expect_close(dk.download(), dk.host(), 2e-5, "dk");
  expect_close(dv.download(), dv.host(), 2e-5, "dv");
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, CudaAttention,
    ::testing::Values(AttnCase{37, 0, 0, 5, 2, 72, {0, 1, 1, 1, 0}},  // prefill, unequal groups
                      AttnCase{50, 21, 3, 4, 3, 40, {2, 0, 2, 1}},    // prefill after a cache
                      AttnCase{1, 300, 5, 6, 2, 128, {0, 0, 0, 0, 0, 1}},  // decode
                      AttnCase{3, 1000, 0, 3, 1, 64, {0, 0, 0}},           // decode, split keys
                      AttnCase{7, 2, 1, 2, 2, 256, {1, 0}},                // decode, D = 256
                      AttnCase{33, 0, 0, 2, 1, 256, {0, 0}},               // prefill, D = 256
                      AttnCase{129, 0, 2, 3, 3, 18, {0, 1, 2}}));          // tiny heads

// ---- batched decode attention ----------------------------------------------------------------

struct DecodeCase {
  int64_t N, L, Hq, Hkv, D;
  veci kv_of_head, slots, positions;
};

void PrintTo(const DecodeCase& c, std::ostream* os) {
  *os << "N=" << c.N << " L=" << c.L << " B=" << c.slots.size() << " Hq=" << c.Hq
      << " Hkv=" << c.Hkv << " D=" << c.D;
}

class CudaDecodeBatch : public CudaOps, public ::testing::WithParamInterface<DecodeCase> {};

// The CUDA kernels (append + split-key decode + combine) against the CPU backend's default
// (per-row copy + attention): caches equal exactly, outputs within f32 reduction-order error.
TEST_P(CudaDecodeBatch, MatchesCpuDefault) {
  const DecodeCase& c = GetParam();
  const auto B = static_cast<int64_t>(c.slots.size());
  const Shape cs{c.N, c.L, c.Hkv, c.D};
  Both kc = rnd(cs, 400, -2.0f, 2.0f), vc = rnd(cs, 401);
  Both q = rnd({B, c.Hq, c.D}, 402), kn = rnd({B, c.Hkv, c.D}, 403), vn = rnd({B, c.Hkv, c.D}, 404);
  Both map = ids(c.kv_of_head), slots = ids(c.slots), pos = ids(c.positions);
  Both out = make(vecf(size_t(B * c.Hq * c.D), 0.0f), {B, c.Hq, c.D});
  const float scale = 1.0f / std::sqrt(float(c.D));
  cpu->attention_decode_batch(out.cpu(), q.cpu(), kn.cpu(), vn.cpu(), kc.cpu(), vc.cpu(),
                              slots.cpu(), pos.cpu(), map.cpu(), scale);
  gpu->attention_decode_batch(out.dev(), q.dev(), kn.dev(), vn.dev(), kc.dev(), vc.dev(),
                              slots.dev(), pos.dev(), map.dev(), scale);
  expect_close(out.download(), out.host(), 1e-5, "attention_decode_batch");
  EXPECT_EQ(kc.download(), kc.host());
  EXPECT_EQ(vc.download(), vc.host());
}

INSTANTIATE_TEST_SUITE_P(
    OddShapes, CudaDecodeBatch,
    ::testing::Values(
        // Few rows: keys split across blocks; unequal lengths incl. the first and last position.
        DecodeCase{5, 700, 5, 2, 72, {0, 1, 1, 1, 0}, {3, 0, 4, 1}, {699, 0, 130, 64}},
        // Many rows (no split), D = 13, slots out of order.
        DecodeCase{70,
                   40,
                   5,
                   2,
                   13,
                   {1, 0, 0, 1, 1},
                   [] {
                     veci v(70);
                     for (int i = 0; i < 70; ++i) v[size_t(i)] = (i * 37) % 70;
                     return v;
                   }(),
                   [] {
                     veci v(70);
                     for (int i = 0; i < 70; ++i) v[size_t(i)] = (i * 11) % 40;
                     return v;
                   }()},
        // D = 128 and 256 (the other kernel widths), MQA.
        DecodeCase{3, 97, 4, 1, 128, {0, 0, 0, 0}, {2, 0}, {96, 5}},
        DecodeCase{2, 33, 2, 2, 256, {1, 0}, {1}, {32}}));

TEST_F(CudaOps, DecodeBatchBadSlotIsReportedAtTheNextSync) {
  const Shape cs{2, 4, 1, 8};
  Both kc = rnd(cs, 410), vc = rnd(cs, 411), q = rnd({1, 1, 8}, 412), kn = rnd({1, 1, 8}, 413);
  Both vn = rnd({1, 1, 8}, 414), map = ids({0}), slots = ids({2}), pos = ids({0});
  Both out = make(vecf(8, 0.0f), {1, 1, 8});
  gpu->attention_decode_batch(out.dev(), q.dev(), kn.dev(), vn.dev(), kc.dev(), vc.dev(),
                              slots.dev(), pos.dev(), map.dev(), 1.0f);
  EXPECT_THROW(gpu->synchronize(), ShapeError);
  EXPECT_EQ(kc.download(), kc.host());  // nothing written
}

// Two rows writing one slot race; the CPU backend refuses that at the call, the kernel flags it
// for the next sync with the same words.
TEST_F(CudaOps, DecodeBatchDuplicateSlotIsReportedAtTheNextSync) {
  const Shape cs{3, 4, 1, 8};
  Both kc = rnd(cs, 420), vc = rnd(cs, 421), q = rnd({3, 1, 8}, 422), kn = rnd({3, 1, 8}, 423);
  Both vn = rnd({3, 1, 8}, 424), map = ids({0}), slots = ids({1, 2, 1}), pos = ids({0, 1, 2});
  Both out = make(vecf(24, 0.0f), {3, 1, 8});
  gpu->attention_decode_batch(out.dev(), q.dev(), kn.dev(), vn.dev(), kc.dev(), vc.dev(),
                              slots.dev(), pos.dev(), map.dev(), 1.0f);
  try {
    gpu->synchronize();
    ADD_FAILURE() << "no error for slot 1 used twice";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find(kDuplicateSlotMessage), std::string::npos) << e.what();
  }
  EXPECT_THROW(cpu->attention_decode_batch(out.cpu(), q.cpu(), kn.cpu(), vn.cpu(), kc.cpu(),
                                           vc.cpu(), slots.cpu(), pos.cpu(), map.cpu(), 1.0f),
               ShapeError);
  // Distinct slots after the error: the status word was cleared.
  Both ok_slots = ids({0, 2, 1});
  gpu->attention_decode_batch(out.dev(), q.dev(), kn.dev(), vn.dev(), kc.dev(), vc.dev(),
                              ok_slots.dev(), pos.dev(), map.dev(), 1.0f);
  EXPECT_NO_THROW(gpu->synchronize());
}

// Copies larger than the pinned staging chunks (8 MiB): several chunks in flight, with and
// without the bf16 conversion, both directions.
TEST_F(CudaOps, LargeCopiesThroughPinnedStagingRoundTrip) {
  const int64_t n = (int64_t{9} << 20) / 2 + 12345;  // > 2 chunks of f32, odd tail
  vecf h = random_vec(size_t(n), 420, -50.0f, 50.0f);
  Buffer f = gpu->allocate_tensor(DType::F32, {n}), b = gpu->allocate_tensor(DType::BF16, {n});
  gpu->copy(f.tensor(DType::F32, {n}), Tensor(h.data(), DType::F32, Shape{n}));
  vecf back(static_cast<size_t>(n));
  gpu->copy(Tensor(back.data(), DType::F32, Shape{n}), f.tensor(DType::F32, {n}));
  EXPECT_EQ(back, h);
  gpu->copy(b.tensor(DType::BF16, {n}), Tensor(h.data(), DType::F32, Shape{n}));
  gpu->copy(Tensor(back.data(), DType::F32, Shape{n}), b.tensor(DType::BF16, {n}));
  std::vector<uint16_t> raw(static_cast<size_t>(n));
  gpu->copy(Tensor(raw.data(), DType::BF16, Shape{n}), b.tensor(DType::BF16, {n}));
  for (size_t i = 0; i < h.size(); i += 997) {
    ASSERT_EQ(back[i], bf16_to_f32(f32_to_bf16(h[i]))) << i;
    ASSERT_EQ(raw[i], f32_to_bf16(h[i])) << i;
  }
  EXPECT_EQ(back.back(), bf16_to_f32(f32_to_bf16(h.back())));
}

// ---- importance reductions -------------------------------------------------------------------

constexpr GroupReduce kGroupReduceKinds[] = {GroupReduce::AbsProduct, GroupReduce::Product,
                                             GroupReduce::Square, GroupReduce::Abs};

// group_reduce of a (and b) on both backends, each out starting at 0.25 (out accumulates); the
// CPU's is the reference (test_group_reduce.cpp checks it against naive sums). `scale`: the
// CPU's sums of |term|, the bound for rounding differences between summation orders.
struct GroupReduceRun {
  std::vector<double> cpu, gpu, gpu_again, scale;
};
GroupReduceRun group_reduce_both(Backend& cpu, Backend& gpu, GroupReduce kind, const Tensor& a_cpu,
                                 const Tensor& b_cpu, const Tensor& a_dev, const Tensor& b_dev,
                                 bool by_rows, int64_t per_group) {
  const int64_t n = by_rows ? a_cpu.dim(0) : a_cpu.dim(1);
  const auto groups = static_cast<size_t>((n + per_group - 1) / per_group);
  GroupReduceRun r{std::vector<double>(groups, 0.25), {}, {}, std::vector<double>(groups, 0.0)};
  r.gpu = r.gpu_again = r.cpu;
  const bool reads_b = group_reduce_reads_b(kind);
  cpu.group_reduce(r.cpu, kind, a_cpu, reads_b ? b_cpu : Tensor(), by_rows, per_group, 0.5);
  gpu.group_reduce(r.gpu, kind, a_dev, reads_b ? b_dev : Tensor(), by_rows, per_group, 0.5);
  gpu.group_reduce(r.gpu_again, kind, a_dev, reads_b ? b_dev : Tensor(), by_rows, per_group, 0.5);
  const GroupReduce abs_kind = kind == GroupReduce::Product ? GroupReduce::AbsProduct : kind;
  cpu.group_reduce(r.scale, abs_kind, a_cpu, reads_b ? b_cpu : Tensor(), by_rows, per_group, 0.5);
  return r;
}

void expect_group_reduce_close(const GroupReduceRun& r, const std::string& what) {
  ASSERT_EQ(r.gpu.size(), r.cpu.size()) << what;
  // Fixed-order sums: a repeated call gives the same bits.
  EXPECT_EQ(r.gpu, r.gpu_again) << what;
  for (size_t g = 0; g < r.cpu.size(); ++g)
    EXPECT_NEAR(r.gpu[g], r.cpu[g], 1e-12 * r.scale[g] + 1e-15) << what << " group " << g;
}

// Every term, rows and columns, odd shapes and group sizes (a short last group, a group wider
// than the matrix), and row counts past one chunk of the column direction (256 rows).
TEST_F(CudaOps, GroupReduceMatchesCpu) {
  struct Case {
    int64_t R, C, per_group;
  };
  const Case cases[] = {{7, 13, 3}, {13, 7, 3},    {70, 33, 7},   {1, 1, 1},
                        {5, 4, 9},  {1031, 77, 1}, {600, 300, 64}};
  uint32_t seed = 300;
  for (const Case& cs : cases)
    for (GroupReduce kind : kGroupReduceKinds)
      for (bool by_rows : {true, false}) {
        Both a = rnd({cs.R, cs.C}, seed++, -2.0f, 2.0f), b = rnd({cs.R, cs.C}, seed++);
        expect_group_reduce_close(group_reduce_both(*cpu, *gpu, kind, a.cpu(), b.cpu(), a.dev(),
                                                    b.dev(), by_rows, cs.per_group),
                                  cat(group_reduce_name(kind), " ", cs.R, "x", cs.C, " groups of ",
                                      cs.per_group, by_rows ? " rows" : " columns"));
      }
}

// Weights stored in bf16 (the CUDA backend's weight dtype) with f32 gradients: the device widens
// a exactly, so it matches the CPU on the bf16-rounded values.
TEST_F(CudaOps, GroupReduceReadsBf16Weights) {
  const int64_t R = 300, C = 131;
  vecf w = random_vec(size_t(R * C), 900, -2.0f, 2.0f);
  Buffer wb = gpu->allocate_tensor(DType::BF16, {R, C});
  const Tensor w_dev = wb.tensor(DType::BF16, {R, C});
  gpu->copy(w_dev, Tensor(w.data(), DType::F32, Shape{R, C}));
  for (auto& v : w) v = bf16_to_f32(f32_to_bf16(v));
  Both g = rnd({R, C}, 901);
  for (GroupReduce kind : kGroupReduceKinds)
    for (bool by_rows : {true, false})
      expect_group_reduce_close(
          group_reduce_both(*cpu, *gpu, kind, Tensor(w.data(), DType::F32, Shape{R, C}), g.cpu(),
                            w_dev, g.dev(), by_rows, 7),
          cat("bf16 ", group_reduce_name(kind), by_rows ? " rows" : " columns"));
  // Host operands are refused, as by every other op.
  std::vector<double> out(size_t(C), 0.0);
  EXPECT_THROW(gpu->group_reduce(out, GroupReduce::Abs, g.cpu(), {}, false, 1, 1.0), ShapeError);
}

}  // namespace
}  // namespace resp
