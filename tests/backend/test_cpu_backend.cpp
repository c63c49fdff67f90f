// CpuBackend against naive float64 references written here, on odd shapes, plus the error paths.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm_few_rows.h"
#include "core/error.h"
#include "core/tensor.h"
#include "random_data.h"

namespace resp {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr float kNaNf = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

using test::random_vec;

Tensor f32(std::vector<float>& v, Shape s) {
  return Tensor(v.data(), DType::F32, s);
}
Tensor i32(std::vector<int32_t>& v, Shape s) {
  return Tensor(v.data(), DType::I32, s);
}

// Element i passes when |got - ref| <= rtol * (|ref| + scale), scale = rms(ref) (so that values
// near zero are judged on the tensor's scale, not their own).
void expect_close(const float* got, const std::vector<double>& ref, double rtol,
                  const std::string& what) {
  double ss = 0.0;
  for (double r : ref) ss += r * r;
  const double scale = ref.empty() ? 0.0 : std::sqrt(ss / static_cast<double>(ref.size()));
  size_t bad = 0, first = 0;
  double worst = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - ref[i]);
    const double tol = rtol * (std::abs(ref[i]) + scale);
    if (!(err <= tol)) {  // also catches NaN
      if (bad++ == 0) first = i;
      worst = std::max(worst, std::isnan(err) ? kNaN : err / (std::abs(ref[i]) + scale));
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << ref.size() << " elements off; first at "
                     << first << " got " << (bad ? got[first] : 0.0f) << " want "
                     << (bad ? ref[first] : 0.0) << ", worst relative error " << worst;
}
void expect_close(const std::vector<float>& got, const std::vector<double>& ref, double rtol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  expect_close(got.data(), ref, rtol, what);
}

// Strict per-element check: |got - ref| <= rtol * |ref| + 1e-37 (values that underflow f32 may
// come back as 0). For ops whose f32 result is a handful of roundings away from exact.
void expect_rel(const std::vector<float>& got, const std::vector<double>& ref, double rtol,
                const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  size_t bad = 0, first = 0;
  double worst = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - ref[i]);
    if (!(err <= rtol * std::abs(ref[i]) + 1e-37)) {
      if (bad++ == 0) first = i;
      worst = std::max(worst, std::isnan(err) ? kNaN : err / std::abs(ref[i]));
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << ref.size() << " elements off; first at "
                     << first << " got " << (bad ? got[first] : 0.0f) << " want "
                     << (bad ? ref[first] : 0.0) << ", worst relative error " << worst;
}

template <typename F>
void expect_shape_error(F&& f, const std::string& needle = "") {
  try {
    f();
    ADD_FAILURE() << "expected ShapeError" << (needle.empty() ? "" : " mentioning ") << needle;
  } catch (const ShapeError& e) {
    if (!needle.empty()) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << "message '" << e.what() << "' lacks '" << needle << "'";
    }
  }
}

// Two threads with every work threshold 0, so that each op runs its threaded path even on the
// small shapes of these tests (the shipped thresholds would keep most of them on one thread).
std::unique_ptr<Backend> always_parallel(int threads) {
  return std::make_unique<CpuBackend>(threads, active_cpu_isa(), cpu::kAlwaysParallel);
}

class CpuBackendTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = always_parallel(2);
};

// ---- basics ---------------------------------------------------------------------------------

TEST_F(CpuBackendTest, IdentityAndThreads) {
  EXPECT_EQ(be->device(), Device::CPU);
  EXPECT_FALSE(be->name().empty());
  CpuBackend one(1), all(0);
  EXPECT_EQ(one.threads(), 1);
  EXPECT_GE(all.threads(), 1);
}

// Whether an op goes parallel (cpu_parallel.h) must never show in its result: one thread, two
// threads with the shipped work thresholds and two threads always parallel give the same bits,
// on shapes on both sides of each family's threshold.
TEST(CpuParallel, ThresholdsNeverChangeResults) {
  std::vector<std::unique_ptr<Backend>> bes;
  bes.push_back(make_cpu_backend(1));
  bes.push_back(make_cpu_backend(2));
  bes.push_back(always_parallel(2));
  // Runs op(backend, out) on every backend and compares the outputs bit for bit.
  auto same = [&](const std::string& what, size_t n, auto&& op) {
    std::vector<std::vector<float>> outs;
    for (auto& b : bes) {
      outs.emplace_back(n, -7.0f);
      op(*b, outs.back());
    }
    for (size_t i = 1; i < outs.size(); ++i)
      EXPECT_EQ(outs[0], outs[i]) << what << ", backend " << i;
  };
  // The few-rows GEMM, streaming (1-2 rows) and tiled. (Not OpenBLAS, which the baseline ISA
  // level uses instead: its threaded products differ from its serial ones in the last bits.)
  for (int64_t rows : {1, 2, 3, 5, 64}) {
    if (!gemm_few_rows_available()) break;
    const int64_t n = 1537, k = 600;
    auto a = random_vec(static_cast<size_t>(rows * k), 1), w = random_vec(n * k, 2);
    same("gemm rows " + std::to_string(rows), static_cast<size_t>(rows * n),
         [&](Backend& b, std::vector<float>& c) {
           b.gemm(f32(a, {rows, k}), false, f32(w, {n, k}), true, f32(c, {rows, n}));
         });
  }
  for (int64_t rows : {1, 300}) {  // row-wise and elementwise ops, below and above thresholds
    const int64_t d = 576, total = rows * d;
    auto x = random_vec(static_cast<size_t>(total), 3),
         y = random_vec(static_cast<size_t>(total), 4);
    auto g = random_vec(static_cast<size_t>(d), 5);
    const std::string r = " rows " + std::to_string(rows);
    same("rmsnorm" + r, total, [&](Backend& b, std::vector<float>& o) {
      b.rmsnorm(f32(o, {rows, d}), f32(x, {rows, d}), f32(g, {d}), 1e-6f);
    });
    same("swiglu" + r, total, [&](Backend& b, std::vector<float>& o) {
      b.swiglu(f32(o, {rows, d}), f32(x, {rows, d}), f32(y, {rows, d}));
    });
    same("add" + r, total, [&](Backend& b, std::vector<float>& o) {
      b.add(f32(o, {rows, d}), f32(x, {rows, d}), f32(y, {rows, d}));
    });
    same("log_softmax" + r, total, [&](Backend& b, std::vector<float>& o) {
      b.log_softmax(f32(o, {rows, d}), f32(x, {rows, d}));
    });
    std::vector<int32_t> pos(static_cast<size_t>(rows));
    for (int64_t t = 0; t < rows; ++t) pos[static_cast<size_t>(t)] = static_cast<int32_t>(3 * t);
    auto freq = random_vec(32, 6, 0.0f, 1.0f);
    same("rope" + r, total, [&](Backend& b, std::vector<float>& o) {
      o = x;
      b.rope(f32(o, {rows, 9, 64}), i32(pos, {rows}), f32(freq, {32}));
    });
  }
  for (int64_t t_len : {1, 37}) {  // attention: a decode row over a long cache, and prefill
    const int64_t hq = 9, hkv = 3, d = 64, s_len = 700;
    auto q = random_vec(static_cast<size_t>(t_len * hq * d), 7);
    auto k = random_vec(static_cast<size_t>(s_len * hkv * d), 8);
    auto v = random_vec(static_cast<size_t>(s_len * hkv * d), 9);
    std::vector<int32_t> kvh{0, 0, 0, 1, 1, 1, 2, 2, 2};
    same("attention rows " + std::to_string(t_len), static_cast<size_t>(t_len * hq * d),
         [&](Backend& b, std::vector<float>& o) {
           b.attention(f32(o, {t_len, hq, d}), f32(q, {t_len, hq, d}), f32(k, {s_len, hkv, d}),
                       f32(v, {s_len, hkv, d}), i32(kvh, {hq}), s_len - t_len, 0.125f);
         });
  }
}

// The spinning table only when the process spins (the thresholds assume what a region costs):
// OMP_WAIT_POLICY=active, or a bounded spin (GOMP_SPINCOUNT, what resp sets on idle CPUs)
// unless OMP_WAIT_POLICY says passive.
TEST(CpuParallel, ThresholdsFollowTheWaitPolicy) {
  const auto saved = [](const char* name) {
    const char* v = std::getenv(name);
    return std::pair<bool, std::string>(v != nullptr, v ? v : "");
  };
  const auto policy = saved("OMP_WAIT_POLICY"), spin = saved("GOMP_SPINCOUNT");
  unsetenv("GOMP_SPINCOUNT");
  setenv("OMP_WAIT_POLICY", "ACTIVE", 1);
  EXPECT_EQ(&cpu::default_parallel_thresholds(), &cpu::kSpinningThresholds);
  EXPECT_EQ(cpu::omp_wait_name(), "active");
  setenv("OMP_WAIT_POLICY", "passive", 1);
  EXPECT_EQ(&cpu::default_parallel_thresholds(), &cpu::kParallelThresholds);
  EXPECT_EQ(cpu::omp_wait_name(), "passive");
  setenv("GOMP_SPINCOUNT", "30000", 1);  // passive wins over a spin count
  EXPECT_EQ(&cpu::default_parallel_thresholds(), &cpu::kParallelThresholds);
  unsetenv("OMP_WAIT_POLICY");
  EXPECT_EQ(&cpu::default_parallel_thresholds(), &cpu::kSpinningThresholds);
  EXPECT_EQ(cpu::omp_wait_name(), "spin 30000");
  setenv("GOMP_SPINCOUNT", "0", 1);
  EXPECT_EQ(&cpu::default_parallel_thresholds(), &cpu::kParallelThresholds);
  unsetenv("GOMP_SPINCOUNT");
  EXPECT_EQ(&cpu::default_parallel_thresholds(), &cpu::kParallelThresholds);
  EXPECT_EQ(cpu::omp_wait_name(), "libgomp default");
  EXPECT_GT(cpu::kParallelThresholds.gemm, cpu::kSpinningThresholds.gemm);
  if (policy.first) setenv("OMP_WAIT_POLICY", policy.second.c_str(), 1);
  if (spin.first) setenv("GOMP_SPINCOUNT", spin.second.c_str(), 1);
}

TEST_F(CpuBackendTest, AllocateCopyFill) {
  Buffer buf = be->allocate_tensor(DType::F32, {3, 5});
  ASSERT_NE(buf.data(), nullptr);
  EXPECT_EQ(buf.bytes(), 60u);
  EXPECT_EQ(buf.device(), Device::CPU);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.data()) % 64, 0u);
  Tensor t = buf.tensor(DType::F32, {3, 5});
  be->fill(t, 2.5f);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t.f32()[i], 2.5f);

  auto src = random_vec(15, 1);
  be->copy(t, f32(src, {15}));  // same numel, different shape: allowed
  for (int i = 0; i < 15; ++i) EXPECT_EQ(t.f32()[i], src[static_cast<size_t>(i)]);

  std::vector<int32_t> ia{1, -2, 3}, ib(3, 0);
  be->copy(i32(ib, {3}), i32(ia, {3}));
  EXPECT_EQ(ib, ia);

  // Fill of a large tensor goes through the parallel path.
  std::vector<float> big(100003, 0.0f);
  be->fill(f32(big, {100003}), -1.0f);
  for (float x : big) ASSERT_EQ(x, -1.0f);

  // Fill of a row slice leaves the other rows alone.
  std::vector<float> m(4 * 3, 0.0f);
  be->fill(f32(m, {4, 3}).slice_rows(1, 2), 7.0f);
  const std::vector<float> want{0, 0, 0, 7, 7, 7, 7, 7, 7, 0, 0, 0};
  EXPECT_EQ(m, want);
}

TEST_F(CpuBackendTest, CopyAndFillRejectMismatches) {
  std::vector<float> a(6), b(5);
  std::vector<int32_t> c(6);
  expect_shape_error([&] { be->copy(f32(a, {2, 3}), f32(b, {5})); }, "[2, 3]");
  expect_shape_error([&] { be->copy(f32(a, {2, 3}), f32(b, {5})); }, "[5]");
  expect_shape_error([&] { be->copy(f32(a, {6}), i32(c, {6})); }, "I32");
  expect_shape_error([&] { be->fill(i32(c, {6}), 1.0f); }, "F32");
  expect_shape_error([&] { be->fill(Tensor(), 1.0f); });  // no data
  Tensor gpu(a.data(), DType::F32, {6}, Device::CUDA);
  expect_shape_error([&] { be->fill(gpu, 1.0f); }, "cuda");
  expect_shape_error(
      [&] { be->copy(f32(b, {5}), Tensor(a.data(), DType::F32, {5}, Device::CUDA)); });
}

// ---- gemm -----------------------------------------------------------------------------------

// C = alpha * op(A) op(B) + beta * C in double. A is stored [M, K] (or [K, M] when ta), etc.
std::vector<double> ref_gemm(const std::vector<float>& a, bool ta, const std::vector<float>& b,
                             bool tb, const std::vector<float>& c, int64_t m, int64_t n, int64_t k,
                             double alpha, double beta) {
  std::vector<double> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t p = 0; p < k; ++p) {
        const double av =
            ta ? a[static_cast<size_t>(p * m + i)] : a[static_cast<size_t>(i * k + p)];
        const double bv =
            tb ? b[static_cast<size_t>(j * k + p)] : b[static_cast<size_t>(p * n + j)];
        s += av * bv;
      }
      const double c0 = c[static_cast<size_t>(i * n + j)];
      out[static_cast<size_t>(i * n + j)] = alpha * s + (beta == 0.0 ? 0.0 : beta * c0);
    }
  return out;
}

struct GemmCase {
  int64_t m, n, k;
  float alpha, beta;
};

TEST_F(CpuBackendTest, GemmAllTransposesOddShapes) {
  const GemmCase cases[] = {{1, 1, 1, 1.0f, 0.0f},     {17, 65, 130, 1.0f, 0.0f},
                            {130, 17, 65, 0.5f, 1.0f}, {65, 130, 17, -2.0f, 0.25f},
                            {1, 130, 65, 1.0f, 1.0f},  {33, 1, 17, 1.5f, -1.0f}};
  uint32_t seed = 10;
  for (const auto& cs : cases)
    for (int tr = 0; tr < 4; ++tr) {
      const bool ta = tr & 1, tb = tr & 2;
      auto a = random_vec(static_cast<size_t>(cs.m * cs.k), seed++);
      auto b = random_vec(static_cast<size_t>(cs.k * cs.n), seed++);
      auto c = random_vec(static_cast<size_t>(cs.m * cs.n), seed++);
      const auto ref = ref_gemm(a, ta, b, tb, c, cs.m, cs.n, cs.k, cs.alpha, cs.beta);
      Tensor ta_t = ta ? f32(a, {cs.k, cs.m}) : f32(a, {cs.m, cs.k});
      Tensor tb_t = tb ? f32(b, {cs.n, cs.k}) : f32(b, {cs.k, cs.n});
      be->gemm(ta_t, ta, tb_t, tb, f32(c, {cs.m, cs.n}), cs.alpha, cs.beta);
      expect_close(c, ref, 1e-5,
                   cat("gemm M=", cs.m, " N=", cs.n, " K=", cs.k, " ta=", ta, " tb=", tb));
    }
}

TEST_F(CpuBackendTest, GemmBetaZeroIgnoresNaNInC) {
  auto a = random_vec(7 * 5, 1), b = random_vec(5 * 3, 2);
  std::vector<float> c(7 * 3, kNaNf);
  be->gemm(f32(a, {7, 5}), false, f32(b, {5, 3}), false, f32(c, {7, 3}));
  std::vector<float> zeros(21, 0.0f);
  expect_close(c, ref_gemm(a, false, b, false, zeros, 7, 3, 5, 1.0, 0.0), 1e-5, "beta=0");
}

TEST_F(CpuBackendTest, GemmOnRowSlicesLeavesOtherRowsAlone) {
  // A, B and C are row windows of bigger matrices (non-zero offsets).
  const int64_t m = 17, n = 13, k = 20;
  auto abig = random_vec(static_cast<size_t>((m + 5) * k), 3);
  auto bbig = random_vec(static_cast<size_t>((k + 2) * n), 4);
  std::vector<float> cbig(static_cast<size_t>((m + 4) * n), -7.0f);
  be->gemm(f32(abig, {m + 5, k}).slice_rows(3, m), false, f32(bbig, {k + 2, n}).slice_rows(1, k),
           false, f32(cbig, {m + 4, n}).slice_rows(2, m));
  std::vector<float> a(abig.begin() + 3 * k, abig.begin() + (3 + m) * k);
  std::vector<float> b(bbig.begin() + n, bbig.begin() + (1 + k) * n);
  std::vector<float> c0(static_cast<size_t>(m * n), 0.0f);
  const auto ref = ref_gemm(a, false, b, false, c0, m, n, k, 1.0, 0.0);
  expect_close(cbig.data() + 2 * n, ref, 1e-5, "sliced gemm");
  for (int64_t i = 0; i < 2 * n; ++i) EXPECT_EQ(cbig[static_cast<size_t>(i)], -7.0f);
  for (int64_t i = (2 + m) * n; i < (m + 4) * n; ++i)
    EXPECT_EQ(cbig[static_cast<size_t>(i)], -7.0f);
}

TEST_F(CpuBackendTest, GemmZeroK) {
  std::vector<float> a(3 * 0 + 1), b(1);
  std::vector<float> c{1, 2, 3, 4, 5, 6};
  be->gemm(Tensor(a.data(), DType::F32, {3, 0}), false, Tensor(b.data(), DType::F32, {0, 2}), false,
           f32(c, {3, 2}), 1.0f, 2.0f);
  const std::vector<float> want{2, 4, 6, 8, 10, 12};
  EXPECT_EQ(c, want);
}

TEST_F(CpuBackendTest, LinearWithBiasAndBeta) {
  const int64_t t = 7, in = 33, out = 12;
  auto x = random_vec(static_cast<size_t>(t * in), 5),
       w = random_vec(static_cast<size_t>(out * in), 6);
  auto bias = random_vec(static_cast<size_t>(out), 7),
       y = random_vec(static_cast<size_t>(t * out), 8);
  auto ref = ref_gemm(x, false, w, true, y, t, out, in, 1.0, 1.0);
  for (int64_t i = 0; i < t; ++i)
    for (int64_t j = 0; j < out; ++j)
      ref[static_cast<size_t>(i * out + j)] += bias[static_cast<size_t>(j)];
  be->linear(f32(y, {t, out}), f32(x, {t, in}), f32(w, {out, in}), f32(bias, {out}), 1.0f);
  expect_close(y, ref, 1e-5, "linear");
}

TEST_F(CpuBackendTest, GemmRejectsBadShapes) {
  std::vector<float> a(64), b(64), c(64);
  std::vector<int32_t> ia(64);
  // K mismatch: message names the shapes.
  expect_shape_error(
      [&] {
        be->gemm(f32(a, {4, 3}), false, f32(b, {4, 2}), false, f32(c, {4, 2}));
      },
      "[4, 3]");
  expect_shape_error(
      [&] {
        be->gemm(f32(a, {4, 3}), false, f32(b, {3, 2}), false, f32(c, {4, 3}));
      },
      "[4, 3]");
  // Transposed shapes count: [4,3]^T is [3,4], which does not fit B [3, 2].
  expect_shape_error([&] {
    be->gemm(f32(a, {4, 3}), true, f32(b, {3, 2}), false, f32(c, {3, 2}));
  });
  expect_shape_error([&] {
    be->gemm(f32(a, {2, 2, 2}), false, f32(b, {2, 2}), false, f32(c, {2, 2}));
  });
  expect_shape_error(
      [&] {
        be->gemm(i32(ia, {2, 2}), false, f32(b, {2, 2}), false, f32(c, {2, 2}));
      },
      "I32");
  // C overlapping A.
  expect_shape_error([&] {
    be->gemm(f32(a, {2, 2}), false, f32(b, {2, 2}), false, f32(a, {2, 2}));
  });
  // Default (null) tensors.
  expect_shape_error([&] { be->gemm(Tensor(), false, f32(b, {1, 1}), false, f32(c, {1, 1})); });
}

// The argument checks every backend's gemm shares (check_gemm_args) only look at addresses and
// shapes, so they hold for device tensors too: here CUDA-tagged views of host memory that
// nothing dereferences.
TEST(BackendChecks, GemmArgsAreCheckedTheSameOnAnyDevice) {
  std::vector<float> mem(64);
  auto dev = [&](int64_t offset, Shape s) {
    return Tensor(mem.data() + offset, DType::F32, s, Device::CUDA);
  };
  const GemmDims d =
      check_gemm_args(dev(0, {4, 8}), false, dev(32, {8, 2}), false, dev(48, {4, 2}));
  EXPECT_EQ(d.m, 4);
  EXPECT_EQ(d.n, 2);
  EXPECT_EQ(d.k, 8);
  // C's last element touches A's first / B's last.
  EXPECT_THROW(check_gemm_args(dev(8, {4, 8}), false, dev(40, {8, 2}), false, dev(1, {4, 2})),
               ShapeError);
  EXPECT_THROW(check_gemm_args(dev(0, {4, 8}), false, dev(32, {8, 2}), false, dev(47, {4, 2})),
               ShapeError);
  // Spans end at the last element: rows 0-1 of [8, 16] are elements 0..31.
  const Tensor rows = dev(0, {8, 16}).slice_rows(0, 2);
  EXPECT_TRUE(tensors_overlap(rows, dev(31, {1})));
  EXPECT_FALSE(tensors_overlap(rows, dev(32, {4})));
  // Host C against device A: different memories, no overlap to report.
  EXPECT_NO_THROW(check_gemm_args(dev(0, {2, 2}), false, dev(4, {2, 2}), false,
                                  Tensor(mem.data(), DType::F32, {2, 2})));
  EXPECT_THROW(check_gemm_args(dev(0, {2, 3}), false, dev(8, {2, 2}), false, dev(16, {2, 2})),
               ShapeError);
}

TEST(BackendChecks, DecodeSlotsMustBeDistinct) {
  const std::vector<int32_t> ok = {3, 0, 2}, dup = {3, 0, 3};
  EXPECT_NO_THROW(check_decode_slots_distinct(ok.data(), 3));
  EXPECT_NO_THROW(check_decode_slots_distinct(nullptr, 0));
  try {
    check_decode_slots_distinct(dup.data(), 3);
    ADD_FAILURE() << "no error for slot 3 twice";
  } catch (const ShapeError& e) {
    EXPECT_STREQ(e.what(), kDuplicateSlotMessage);
  }
}

// ---- add_bias / add / scale / swiglu ------------------------------------------------------------

TEST_F(CpuBackendTest, AddBias) {
  for (int64_t rows : {1, 7, 300}) {
    const int64_t n = 129;
    auto y = random_vec(static_cast<size_t>(rows * n), 11),
         bias = random_vec(static_cast<size_t>(n), 12);
    std::vector<double> ref(y.size());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < n; ++j)
        ref[static_cast<size_t>(r * n + j)] =
            double(y[static_cast<size_t>(r * n + j)]) + bias[static_cast<size_t>(j)];
    be->add_bias(f32(y, {rows, n}), f32(bias, {n}));
    expect_close(y, ref, 1e-6, cat("add_bias rows=", rows));
  }
  std::vector<float> y(12), bias(4);
  expect_shape_error([&] { be->add_bias(f32(y, {3, 4}), f32(bias, {3})); }, "[3]");
}

TEST_F(CpuBackendTest, AddScaleAndAliasing) {
  for (int64_t rows : {1, 33, 400}) {
    const int64_t n = 101;
    auto a = random_vec(static_cast<size_t>(rows * n), 21),
         b = random_vec(static_cast<size_t>(rows * n), 22);
    std::vector<float> out(a.size());
    std::vector<double> ref(a.size());
    for (size_t i = 0; i < a.size(); ++i) ref[i] = double(a[i]) + double(b[i]);
    be->add(f32(out, {rows, n}), f32(a, {rows, n}), f32(b, {rows, n}));
    expect_close(out, ref, 1e-6, "add");
    be->add(f32(a, {rows, n}), f32(a, {rows, n}), f32(b, {rows, n}));  // out aliases a
    expect_close(a, ref, 1e-6, "add in place");
    for (size_t i = 0; i < a.size(); ++i) ref[i] = double(a[i]) * -0.375;
    be->scale(f32(a, {rows, n}), -0.375f);
    expect_close(a, ref, 1e-6, "scale");
  }
  std::vector<float> x(30);
  expect_shape_error([&] { be->add(f32(x, {2, 3}), f32(x, {3, 2}), f32(x, {2, 3})); });
  // Partial overlap of out and a is rejected.
  expect_shape_error([&] {
    be->add(Tensor(x.data() + 1, DType::F32, {2, 3}), f32(x, {2, 3}), f32(x, {2, 3}));
  });
}

TEST_F(CpuBackendTest, Swiglu) {
  for (int64_t rows : {1, 7, 600}) {
    const int64_t n = 65;
    auto g = random_vec(static_cast<size_t>(rows * n), 31, -12.0f, 12.0f);
    auto u = random_vec(static_cast<size_t>(rows * n), 32, -3.0f, 3.0f);
    g[0] = -100.0f;  // exp(100) overflows f32: silu must still be ~0, not NaN
    if (g.size() > 2) {
      g[1] = 100.0f;
      g[2] = 0.0f;
    }
    std::vector<double> ref(g.size());
    for (size_t i = 0; i < g.size(); ++i) {
      const double gv = g[i];
      ref[i] = gv / (1.0 + std::exp(-gv)) * double(u[i]);
    }
    std::vector<float> out(g.size());
    be->swiglu(f32(out, {rows, n}), f32(g, {rows, n}), f32(u, {rows, n}));
    expect_rel(out, ref, 1e-6, cat("swiglu rows=", rows));
    be->swiglu(f32(u, {rows, n}), f32(g, {rows, n}), f32(u, {rows, n}));  // out aliases up
    expect_rel(u, ref, 1e-6, "swiglu in place");
  }
  std::vector<float> x(12);
  expect_shape_error([&] { be->swiglu(f32(x, {3, 4}), f32(x, {3, 4}), f32(x, {4, 3})); }, "[4, 3]");
}

// ---- rmsnorm ----------------------------------------------------------------------------------

std::vector<double> ref_rmsnorm(const std::vector<float>& x, const std::vector<float>& w,
                                int64_t rows, int64_t d, double eps) {
  std::vector<double> out(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (int64_t i = 0; i < d; ++i)
      ss += double(x[static_cast<size_t>(r * d + i)]) * x[static_cast<size_t>(r * d + i)];
    const double inv = 1.0 / std::sqrt(ss / double(d) + eps);
    for (int64_t i = 0; i < d; ++i)
      out[static_cast<size_t>(r * d + i)] =
          double(x[static_cast<size_t>(r * d + i)]) * inv * w[static_cast<size_t>(i)];
  }
  return out;
}

TEST_F(CpuBackendTest, RmsnormMatchesFloat64) {
  struct Case {
    int64_t rows, d;
    float offset;
  };
  // offset: rows dominated by a large common value, where a naive f32 sum of squares drifts.
  for (const Case cs : {Case{1, 20, 0.0f}, Case{7, 20, 0.0f}, Case{33, 12, 0.0f},
                        Case{5, 4099, 300.0f}, Case{2, 32771, 1000.0f}, Case{64, 1024, 0.0f}}) {
    auto x = random_vec(static_cast<size_t>(cs.rows * cs.d), 41, -2.0f, 2.0f);
    for (auto& v : x) v += cs.offset;
    auto w = random_vec(static_cast<size_t>(cs.d), 42, 0.5f, 1.5f);
    const auto ref = ref_rmsnorm(x, w, cs.rows, cs.d, 1e-5);
    std::vector<float> out(x.size());
    be->rmsnorm(f32(out, {cs.rows, cs.d}), f32(x, {cs.rows, cs.d}), f32(w, {cs.d}), 1e-5f);
    expect_rel(out, ref, 5e-7, cat("rmsnorm rows=", cs.rows, " d=", cs.d));
    be->rmsnorm(f32(x, {cs.rows, cs.d}), f32(x, {cs.rows, cs.d}), f32(w, {cs.d}), 1e-5f);
    expect_rel(x, ref, 5e-7, "rmsnorm in place");
  }
  // eps matters for tiny rows.
  std::vector<float> x(8, 1e-4f), w(8, 1.0f), out(8);
  be->rmsnorm(f32(out, {1, 8}), f32(x, {1, 8}), f32(w, {8}), 1e-6f);
  EXPECT_NEAR(out[0], 1e-4 / std::sqrt(1e-8 + 1e-6), 1e-6);
}

TEST_F(CpuBackendTest, RmsnormRejectsBadShapes) {
  std::vector<float> x(40), w(20), out(40);
  std::vector<int32_t> iw(20);
  expect_shape_error(
      [&] {
        be->rmsnorm(f32(out, {2, 20}), f32(x, {2, 20}), f32(w, {19}), 1e-5f);
      },
      "[19]");
  expect_shape_error([&] { be->rmsnorm(f32(out, {4, 10}), f32(x, {2, 20}), f32(w, {20}), 1e-5f); });
  expect_shape_error(
      [&] {
        be->rmsnorm(f32(out, {2, 20}), f32(x, {2, 20}), i32(iw, {20}), 1e-5f);
      },
      "I32");
  expect_shape_error([&] { be->rmsnorm(f32(out, {40}), f32(x, {40}), f32(w, {20}), 1e-5f); });
}

// ---- rope -------------------------------------------------------------------------------------

TEST_F(CpuBackendTest, RopeMatchesFloat64AtLargePositions) {
  const int64_t heads = 3;
  for (int64_t d : {12, 20, 64}) {
    for (int64_t t_len : {1, 7, 33}) {
      const int64_t half = d / 2;
      std::vector<float> inv_freq(static_cast<size_t>(half));
      for (int64_t i = 0; i < half; ++i)
        inv_freq[static_cast<size_t>(i)] =
            static_cast<float>(1.0 / std::pow(500000.0, double(2 * i) / double(d)));
      std::vector<int32_t> pos(static_cast<size_t>(t_len));
      for (int64_t t = 0; t < t_len; ++t)  // mix of small and very large positions
        pos[static_cast<size_t>(t)] = static_cast<int32_t>(t % 2 ? 131071 - 977 * t : 3 * t);
      auto x = random_vec(static_cast<size_t>(t_len * heads * d), 51, -2.0f, 2.0f);
      std::vector<double> ref(x.size());
      for (int64_t t = 0; t < t_len; ++t)
        for (int64_t h = 0; h < heads; ++h)
          for (int64_t i = 0; i < half; ++i) {
            const size_t lo = static_cast<size_t>((t * heads + h) * d + i),
                         hi = lo + static_cast<size_t>(half);
            const double ang =
                double(pos[static_cast<size_t>(t)]) * double(inv_freq[static_cast<size_t>(i)]);
            ref[lo] = x[lo] * std::cos(ang) - x[hi] * std::sin(ang);
            ref[hi] = x[hi] * std::cos(ang) + x[lo] * std::sin(ang);
          }
      be->rope(f32(x, {t_len, heads, d}), i32(pos, {t_len}), f32(inv_freq, {half}));
      expect_close(x, ref, 1e-6, cat("rope d=", d, " T=", t_len));
    }
  }
}

TEST_F(CpuBackendTest, RopeRejectsBadShapes) {
  std::vector<float> x(7 * 2 * 12), f(6), f32pos(7);
  std::vector<int32_t> pos(7);
  expect_shape_error([&] { be->rope(f32(x, {7, 2, 12}), i32(pos, {6}), f32(f, {6})); }, "[6]");
  expect_shape_error([&] { be->rope(f32(x, {7, 2, 12}), i32(pos, {7}), f32(f, {5})); }, "[5]");
  expect_shape_error([&] { be->rope(f32(x, {7, 2, 12}), f32(f32pos, {7}), f32(f, {6})); }, "F32");
  expect_shape_error([&] { be->rope(f32(x, {7, 24}), i32(pos, {7}), f32(f, {6})); });
  std::vector<float> odd(7 * 2 * 11), f5(5);
  expect_shape_error([&] { be->rope(f32(odd, {7, 2, 11}), i32(pos, {7}), f32(f5, {5})); }, "even");
}

// ---- attention --------------------------------------------------------------------------------

std::vector<double> ref_attention(const std::vector<float>& q, const std::vector<float>& k,
                                  const std::vector<float>& v, const std::vector<int32_t>& kvh,
                                  int64_t t_len, int64_t hq, int64_t hkv, int64_t d,
                                  int64_t q_offset, double scale) {
  std::vector<double> out(static_cast<size_t>(t_len * hq * d));
  for (int64_t t = 0; t < t_len; ++t)
    for (int64_t h = 0; h < hq; ++h) {
      const int64_t g = kvh[static_cast<size_t>(h)];
      const int64_t n = q_offset + t + 1;
      std::vector<double> s(static_cast<size_t>(n));
      double m = -1e300;
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0.0;
        for (int64_t i = 0; i < d; ++i)
          dot += double(q[static_cast<size_t>((t * hq + h) * d + i)]) *
                 k[static_cast<size_t>((j * hkv + g) * d + i)];
        s[static_cast<size_t>(j)] = dot * scale;
        m = std::max(m, s[static_cast<size_t>(j)]);
      }
      double sum = 0.0;
      for (auto& e : s) sum += (e = std::exp(e - m));
      for (int64_t i = 0; i < d; ++i) {
        double acc = 0.0;
        for (int64_t j = 0; j < n; ++j)
          acc += s[static_cast<size_t>(j)] * v[static_cast<size_t>((j * hkv + g) * d + i)];
        out[static_cast<size_t>((t * hq + h) * d + i)] = acc / sum;
      }
    }
  return out;
}

struct AttnCase {
  int64_t t_len, hq, hkv, d, q_offset, extra;  // S = q_offset + T + extra
  std::vector<int32_t> kvh;
  float qscale;  // multiplies q: large values make the softmax very peaked
};

void run_attention_case(Backend& be, const AttnCase& cs, uint32_t seed) {
  const int64_t s_len = cs.q_offset + cs.t_len + cs.extra;
  auto q = random_vec(static_cast<size_t>(cs.t_len * cs.hq * cs.d), seed, -cs.qscale, cs.qscale);
  auto k = random_vec(static_cast<size_t>(s_len * cs.hkv * cs.d), seed + 1);
  auto v = random_vec(static_cast<size_t>(s_len * cs.hkv * cs.d), seed + 2);
  // Keys/values past the last query's causal limit are NaN: reading any of them poisons the output.
  for (size_t i = static_cast<size_t>((cs.q_offset + cs.t_len) * cs.hkv * cs.d); i < k.size(); ++i)
    k[i] = v[i] = kNaNf;
  auto kvh = cs.kvh;
  const float scale = 1.0f / std::sqrt(static_cast<float>(cs.d));
  const auto ref = ref_attention(q, k, v, kvh, cs.t_len, cs.hq, cs.hkv, cs.d, cs.q_offset, scale);
  std::vector<float> out(q.size(), -99.0f);
  be.attention(f32(out, {cs.t_len, cs.hq, cs.d}), f32(q, {cs.t_len, cs.hq, cs.d}),
               f32(k, {s_len, cs.hkv, cs.d}), f32(v, {s_len, cs.hkv, cs.d}), i32(kvh, {cs.hq}),
               cs.q_offset, scale);
  const std::string what = cat("attention T=", cs.t_len, " Hq=", cs.hq, " Hkv=", cs.hkv,
                               " D=", cs.d, " q_offset=", cs.q_offset, " S=", s_len);
  expect_close(out, ref, 1e-5, what);
  // out aliasing q gives the same answer.
  be.attention(f32(q, {cs.t_len, cs.hq, cs.d}), f32(q, {cs.t_len, cs.hq, cs.d}),
               f32(k, {s_len, cs.hkv, cs.d}), f32(v, {s_len, cs.hkv, cs.d}), i32(kvh, {cs.hq}),
               cs.q_offset, scale);
  expect_close(q, ref, 1e-5, what + " (out aliases q)");
}

TEST_F(CpuBackendTest, AttentionGqaIrregularGroups) {
  const std::vector<int32_t> irregular{0, 0, 0, 1, 1, 0};
  uint32_t seed = 100;
  for (int64_t t_len : {1, 7, 33})
    for (int64_t d : {20, 12})
      for (int64_t q_offset : {0, 5})
        run_attention_case(*be, {t_len, 6, 2, d, q_offset, 3, irregular, 1.0f}, seed += 3);
}

TEST_F(CpuBackendTest, AttentionVariants) {
  uint32_t seed = 200;
  // Plain MHA, one KV head for all (MQA), heads pointing at the last KV head only, decoding.
  run_attention_case(*be, {9, 4, 4, 8, 0, 0, {0, 1, 2, 3}, 1.0f}, seed += 3);
  run_attention_case(*be, {13, 5, 1, 16, 2, 1, {0, 0, 0, 0, 0}, 1.0f}, seed += 3);
  run_attention_case(*be, {6, 3, 3, 4, 0, 0, {2, 2, 1}, 1.0f}, seed += 3);
  run_attention_case(*be, {1, 6, 2, 20, 40, 5, {1, 0, 1, 0, 1, 1}, 1.0f}, seed += 3);
  // Two and three rows (heads of a group share the work), with and without an offset.
  run_attention_case(*be, {2, 6, 2, 16, 7, 1, {0, 0, 0, 1, 1, 0}, 1.0f}, seed += 3);
  run_attention_case(*be, {3, 5, 1, 32, 0, 0, {0, 0, 0, 0, 0}, 1.0f}, seed += 3);
  run_attention_case(*be, {3, 7, 3, 24, 30, 2, {2, 0, 2, 1, 2, 2, 0}, 1.0f}, seed += 3);
  // Very peaked softmax (scores in the hundreds): must stay finite and exact.
  run_attention_case(*be, {17, 2, 1, 32, 3, 0, {0, 0}, 40.0f}, seed += 3);
  // Long enough to go through the parallel path, with a ragged last row block.
  run_attention_case(*be, {67, 6, 2, 64, 11, 2, {0, 1, 1, 0, 0, 1}, 1.0f}, seed += 3);
}

TEST_F(CpuBackendTest, AttentionHugeScoresAreStable) {
  // Small integers make every score exact in f32, so the f64 reference is the exact answer even
  // though scores reach the hundreds (exp would overflow without the max subtraction).
  const int64_t t_len = 21, hq = 4, hkv = 2, d = 16, q_offset = 2, s_len = q_offset + t_len;
  std::mt19937 gen(7);
  std::uniform_int_distribution<int> qd(-32, 32), kd(-2, 2);
  std::vector<float> q(static_cast<size_t>(t_len * hq * d)),
      k(static_cast<size_t>(s_len * hkv * d));
  for (auto& x : q) x = static_cast<float>(qd(gen));
  for (auto& x : k) x = static_cast<float>(kd(gen));
  auto v = random_vec(k.size(), 8);
  std::vector<int32_t> kvh{1, 0, 1, 1};
  const float scale = 0.5f;
  const auto ref = ref_attention(q, k, v, kvh, t_len, hq, hkv, d, q_offset, scale);
  double max_score = 0.0;
  for (int64_t t = 0; t < t_len; ++t)
    for (int64_t j = 0; j <= q_offset + t; ++j) {
      double dot = 0.0;
      for (int64_t i = 0; i < d; ++i)
        dot += double(q[static_cast<size_t>(t * hq * d + i)]) *
               k[static_cast<size_t>((j * hkv + 1) * d + i)];
      max_score = std::max(max_score, std::abs(dot * scale));
    }
  ASSERT_GT(max_score, 100.0);  // the case really is extreme
  std::vector<float> out(q.size());
  be->attention(f32(out, {t_len, hq, d}), f32(q, {t_len, hq, d}), f32(k, {s_len, hkv, d}),
                f32(v, {s_len, hkv, d}), i32(kvh, {hq}), q_offset, scale);
  expect_close(out, ref, 1e-5, "attention with huge scores");
}

TEST_F(CpuBackendTest, AttentionSameResultForAnyThreadCount) {
  const int64_t t_len = 45, hq = 6, hkv = 3, d = 24;
  auto q = random_vec(static_cast<size_t>(t_len * hq * d), 1);
  auto k = random_vec(static_cast<size_t>(t_len * hkv * d), 2);
  auto v = random_vec(static_cast<size_t>(t_len * hkv * d), 3);
  std::vector<int32_t> kvh{0, 1, 2, 2, 1, 0};
  std::vector<float> o1(q.size()), o2(q.size());
  auto one = make_cpu_backend(1);
  one->attention(f32(o1, {t_len, hq, d}), f32(q, {t_len, hq, d}), f32(k, {t_len, hkv, d}),
                 f32(v, {t_len, hkv, d}), i32(kvh, {hq}), 0, 0.2f);
  be->attention(f32(o2, {t_len, hq, d}), f32(q, {t_len, hq, d}), f32(k, {t_len, hkv, d}),
                f32(v, {t_len, hkv, d}), i32(kvh, {hq}), 0, 0.2f);
  EXPECT_EQ(o1, o2);
}

// A decode step (one query row) takes its own streaming path; it must give exactly what the
// multi-row path gives the same row, on any thread count: irregular groups, D with a tail
// (67 = 8 * 8 + 3), contexts long enough for the parallel split and the key prefetches.
TEST_F(CpuBackendTest, AttentionDecodeRowEqualsMultiRowPath) {
  const int64_t hq = 7, hkv = 3, d = 67;
  const std::vector<int32_t> kvh_v{2, 0, 2, 1, 2, 2, 0};
  for (int64_t pos : {0, 3, 9, 200}) {
    const int64_t s_len = pos + 2;
    auto q = random_vec(static_cast<size_t>(2 * hq * d), 31 + static_cast<uint32_t>(pos));
    auto k = random_vec(static_cast<size_t>(s_len * hkv * d), 32);
    auto v = random_vec(static_cast<size_t>(s_len * hkv * d), 33);
    auto kvh = kvh_v;
    // Rows pos and pos + 1 together (the grouped path), then row pos alone on 1 and 2 threads.
    std::vector<float> two(q.size()), one_a(static_cast<size_t>(hq * d)), one_b(one_a.size());
    be->attention(f32(two, {2, hq, d}), f32(q, {2, hq, d}), f32(k, {s_len, hkv, d}),
                  f32(v, {s_len, hkv, d}), i32(kvh, {hq}), pos, 0.125f);
    const Tensor k1(k.data(), DType::F32, {pos + 1, hkv, d});
    const Tensor v1(v.data(), DType::F32, {pos + 1, hkv, d});
    make_cpu_backend(1)->attention(f32(one_a, {1, hq, d}), Tensor(q.data(), DType::F32, {1, hq, d}),
                                   k1, v1, i32(kvh, {hq}), pos, 0.125f);
    always_parallel(2)->attention(f32(one_b, {1, hq, d}), Tensor(q.data(), DType::F32, {1, hq, d}),
                                  k1, v1, i32(kvh, {hq}), pos, 0.125f);
    EXPECT_EQ(one_a, one_b) << "position " << pos;
    EXPECT_EQ(one_a, std::vector<float>(two.begin(), two.begin() + hq * d)) << "position " << pos;
  }
}

TEST_F(CpuBackendTest, AttentionRejectsBadArguments) {
  std::vector<float> q(7 * 6 * 20), k(9 * 2 * 20), v(9 * 2 * 20), out(7 * 6 * 20), fk(6);
  std::vector<int32_t> kvh{0, 0, 0, 1, 1, 0}, bad_kvh{0, 0, 2, 1, 1, 0}, neg_kvh{0, -1, 0, 1, 1, 0};
  auto call = [&](int64_t s_len, int64_t off, std::vector<int32_t>& heads) {
    be->attention(f32(out, {7, 6, 20}), f32(q, {7, 6, 20}), f32(k, {s_len, 2, 20}),
                  f32(v, {s_len, 2, 20}), i32(heads, {6}), off, 0.2f);
  };
  call(9, 2, kvh);  // S == q_offset + T: fine
  expect_shape_error([&] { call(9, 3, kvh); }, "q_offset");
  expect_shape_error([&] { call(6, 0, kvh); }, "[6, 2, 20]");
  expect_shape_error([&] { call(9, -1, kvh); });
  expect_shape_error([&] { call(9, 0, bad_kvh); }, "kv_of_head[2] = 2");
  expect_shape_error([&] { call(9, 0, neg_kvh); }, "kv_of_head[1] = -1");
  expect_shape_error([&] {
    be->attention(f32(out, {7, 6, 20}), f32(q, {7, 6, 20}), f32(k, {9, 2, 20}), f32(v, {9, 2, 20}),
                  f32(fk, {6}), 0, 0.2f);
  });
  expect_shape_error([&] {  // kv_of_head length != Hq
    be->attention(f32(out, {7, 6, 20}), f32(q, {7, 6, 20}), f32(k, {9, 2, 20}), f32(v, {9, 2, 20}),
                  i32(kvh, {5}), 0, 0.2f);
  });
  expect_shape_error([&] {  // head dim mismatch between q and k
    be->attention(f32(out, {7, 6, 20}), f32(q, {7, 6, 20}), f32(k, {9, 4, 10}), f32(v, {9, 4, 10}),
                  i32(kvh, {6}), 0, 0.2f);
  });
  expect_shape_error([&] {  // k and v differ
    be->attention(f32(out, {7, 6, 20}), f32(q, {7, 6, 20}), f32(k, {9, 2, 20}), f32(v, {8, 2, 20}),
                  i32(kvh, {6}), 0, 0.2f);
  });
  expect_shape_error([&] {  // out shape
    be->attention(f32(out, {6, 7, 20}), f32(q, {7, 6, 20}), f32(k, {9, 2, 20}), f32(v, {9, 2, 20}),
                  i32(kvh, {6}), 0, 0.2f);
  });
  expect_shape_error([&] {  // rank
    be->attention(f32(out, {7, 120}), f32(q, {7, 120}), f32(k, {9, 40}), f32(v, {9, 40}),
                  i32(kvh, {6}), 0, 0.2f);
  });
}

// ---- embedding --------------------------------------------------------------------------------

TEST_F(CpuBackendTest, Embedding) {
  const int64_t vocab = 11, h = 20;
  auto table = random_vec(static_cast<size_t>(vocab * h), 61);
  std::vector<int32_t> ids{0, 10, 3, 3, 7};
  std::vector<float> out(ids.size() * h, -1.0f);
  be->embedding(f32(out, {5, h}), f32(table, {vocab, h}), i32(ids, {5}));
  for (size_t t = 0; t < ids.size(); ++t)
    for (int64_t i = 0; i < h; ++i)
      EXPECT_EQ(out[t * h + static_cast<size_t>(i)], table[static_cast<size_t>(ids[t] * h + i)])
          << t;

  // Large enough for the parallel path.
  std::vector<int32_t> many(2000);
  for (size_t t = 0; t < many.size(); ++t) many[t] = static_cast<int32_t>((t * 7) % vocab);
  std::vector<float> big(many.size() * h);
  be->embedding(f32(big, {2000, h}), f32(table, {vocab, h}), i32(many, {2000}));
  for (size_t t = 0; t < many.size(); t += 97)
    EXPECT_EQ(big[t * h + 19], table[static_cast<size_t>(many[t] * h + 19)]);
}

TEST_F(CpuBackendTest, EmbeddingRejectsBadIds) {
  const int64_t vocab = 11, h = 4;
  auto table = random_vec(static_cast<size_t>(vocab * h), 62);
  std::vector<float> out(3 * h, 5.0f);
  std::vector<int32_t> too_big{1, 11, 2}, negative{-1, 0, 0};
  expect_shape_error(
      [&] {
        be->embedding(f32(out, {3, h}), f32(table, {vocab, h}), i32(too_big, {3}));
      },
      "token id 11");
  expect_shape_error(
      [&] {
        be->embedding(f32(out, {3, h}), f32(table, {vocab, h}), i32(too_big, {3}));
      },
      "vocab size 11");
  expect_shape_error(
      [&] {
        be->embedding(f32(out, {3, h}), f32(table, {vocab, h}), i32(negative, {3}));
      },
      "token id -1");
  for (float x : out) EXPECT_EQ(x, 5.0f);  // nothing written on error
  std::vector<float> fids(3);
  expect_shape_error([&] {
    be->embedding(f32(out, {3, h}), f32(table, {vocab, h}), f32(fids, {3}));
  });
  expect_shape_error([&] {
    be->embedding(f32(out, {3, h + 1}), f32(table, {vocab, h}), i32(negative, {3}));
  });
}

// ---- softmax / log_softmax ----------------------------------------------------------------------

void ref_softmax_rows(const std::vector<float>& x, int64_t rows, int64_t n, std::vector<double>& sm,
                      std::vector<double>& lsm) {
  sm.assign(x.size(), 0.0);
  lsm.assign(x.size(), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = x.data() + r * n;
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < n; ++i) m = std::max(m, double(p[i]));
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += std::exp(double(p[i]) - m);
    for (int64_t i = 0; i < n; ++i) {
      sm[static_cast<size_t>(r * n + i)] = std::exp(double(p[i]) - m) / sum;
      lsm[static_cast<size_t>(r * n + i)] = double(p[i]) - m - std::log(sum);
    }
  }
}

TEST_F(CpuBackendTest, SoftmaxAndLogSoftmax) {
  struct Case {
    int64_t rows, n;
    float spread, offset;
  };
  for (const Case cs :
       {Case{1, 1, 1.0f, 0.0f}, Case{7, 33, 5.0f, 0.0f}, Case{3, 50021, 20.0f, 0.0f},
        Case{4, 17, 30.0f, 10000.0f}, Case{33, 129, 80.0f, -500.0f}}) {
    auto x = random_vec(static_cast<size_t>(cs.rows * cs.n), 71, -cs.spread, cs.spread);
    for (auto& v : x) v += cs.offset;
    if (cs.n > 3) x[2] = -kInf;  // masked logit
    std::vector<double> sm, lsm;
    ref_softmax_rows(x, cs.rows, cs.n, sm, lsm);
    const std::string what = cat("rows=", cs.rows, " n=", cs.n, " spread=", cs.spread);
    std::vector<float> out(x.size());
    be->softmax(f32(out, {cs.rows, cs.n}), f32(x, {cs.rows, cs.n}));
    // Per element: 1e-6 relative, plus one f32 rounding of the argument x - max (which moves
    // exp(x - max) by |x - max| * 2^-24 relative; it only matters for tiny probabilities).
    auto expect_softmax = [&](const std::vector<float>& got, const std::string& label) {
      size_t bad = 0;
      for (int64_t r = 0; r < cs.rows; ++r) {
        float m = -kInf;
        for (int64_t i = 0; i < cs.n; ++i) m = std::max(m, x[static_cast<size_t>(r * cs.n + i)]);
        for (int64_t i = 0; i < cs.n; ++i) {
          const size_t at = static_cast<size_t>(r * cs.n + i);
          const double arg = std::abs(double(x[at]) - double(m));
          const double tol = std::isinf(arg) ? 0.0 : (1e-6 + arg * 6e-8) * sm[at] + 1e-37;
          if (!(std::abs(double(got[at]) - sm[at]) <= tol) && bad++ < 3)
            ADD_FAILURE() << label << " " << what << " at " << at << ": got " << got[at] << " want "
                          << sm[at];
        }
      }
      EXPECT_EQ(bad, 0u) << label << " " << what;
    };
    expect_softmax(out, "softmax");
    if (cs.n > 3) {
      EXPECT_EQ(out[2], 0.0f);
    }
    for (int64_t r = 0; r < cs.rows; ++r) {  // rows sum to one
      double s = 0.0;
      for (int64_t i = 0; i < cs.n; ++i) s += out[static_cast<size_t>(r * cs.n + i)];
      EXPECT_NEAR(s, 1.0, 1e-5) << what;
    }
    // log_softmax: relative to max(|ref|, 1) (log-probs near 0 are judged absolutely).
    be->log_softmax(f32(out, {cs.rows, cs.n}), f32(x, {cs.rows, cs.n}));
    for (size_t i = 0; i < out.size(); ++i) {
      if (std::isinf(lsm[i])) {
        EXPECT_TRUE(std::isinf(out[i]) && out[i] < 0) << what << " at " << i;
        continue;
      }
      ASSERT_NEAR(out[i], lsm[i], 1e-6 * std::max(1.0, std::abs(lsm[i]))) << what << " at " << i;
    }
    // In place.
    auto y = x;
    be->log_softmax(f32(y, {cs.rows, cs.n}), f32(y, {cs.rows, cs.n}));
    EXPECT_EQ(y, out) << what;
    y = x;
    be->softmax(f32(y, {cs.rows, cs.n}), f32(y, {cs.rows, cs.n}));
    expect_softmax(y, "softmax in place");
  }
  std::vector<float> x(12), o(12);
  expect_shape_error([&] { be->softmax(f32(o, {4, 3}), f32(x, {3, 4})); }, "[3, 4]");
  expect_shape_error([&] { be->log_softmax(f32(o, {12}), f32(x, {12})); });
}

}  // namespace
}  // namespace resp
