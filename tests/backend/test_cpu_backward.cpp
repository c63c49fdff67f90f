// Backward ops of the CPU backend against central finite differences of naive float64 forward
// references written here. For each op, L = sum(R * forward(inputs)) with a fixed random R (for
// cross_entropy, L = sum_r w_r * nll_r); the reference gradient of every input element is
// (L(x + h) - L(x - h)) / 2h in double, and the backend's f32 gradient must match it within
// 2e-4 of the gradient tensor's max |value|. Plus the contracts of backend.h: activation grads
// overwritten, weight grads accumulated, allowed aliasing, masked rows, and the error paths.
// Threaded code paths (every work threshold 0) are compared against the single-threaded backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "core/error.h"
#include "core/tensor.h"

namespace resp {
namespace {

using vecd = std::vector<double>;
using vecf = std::vector<float>;
using veci = std::vector<int32_t>;

// Every work threshold 0: the threaded code paths run even on small shapes.
std::unique_ptr<Backend> always_parallel(int threads) {
  return std::make_unique<CpuBackend>(threads, active_cpu_isa(), cpu::kAlwaysParallel);
}

constexpr double kStep = 1e-6;
constexpr double kTol = 2e-4;
constexpr float kGarbage = 123.25f;  // pre-fill of outputs that must be overwritten

vecf random_vec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  vecf v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

vecd to_d(const vecf& v) {
  return vecd(v.begin(), v.end());
}

Tensor f32(vecf& v, Shape s) {
  return Tensor(v.data(), DType::F32, s);
}
Tensor i32(veci& v, Shape s) {
  return Tensor(v.data(), DType::I32, s);
}

// Central finite differences of the scalar function L at x (double precision throughout).
vecd fd_grad(vecd x, const std::function<double(const vecd&)>& L, double h = kStep) {
  vecd g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double xi = x[i];
    x[i] = xi + h;
    const double lp = L(x);
    x[i] = xi - h;
    const double lm = L(x);
    x[i] = xi;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

double dot(const vecd& a, const vecd& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// |got - ref| <= rtol * max|ref| element-wise (plus a tiny absolute floor for all-zero refs).
void expect_grad(const float* got, const vecd& ref, const std::string& what, double rtol = kTol) {
  double mx = 0;
  for (double r : ref) mx = std::max(mx, std::abs(r));
  const double tol = rtol * mx + 1e-12;
  size_t bad = 0, first = 0;
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double err = std::abs(static_cast<double>(got[i]) - ref[i]);
    if (!(err <= tol)) {  // also catches NaN
      if (bad++ == 0) first = i;
      worst = std::isnan(err) ? std::numeric_limits<double>::quiet_NaN() : std::max(worst, err);
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << ref.size() << " elements off; first at "
                     << first << " got " << (bad ? got[first] : 0.0f) << " want "
                     << (bad ? ref[first] : 0.0) << "; worst |err| " << worst << " vs tol " << tol
                     << " (max |ref| " << mx << ")";
}
void expect_grad(const vecf& got, const vecd& ref, const std::string& what, double rtol = kTol) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  expect_grad(got.data(), ref, what, rtol);
}

// got must equal base + times * ref (weight-gradient accumulation).
void expect_accumulated(const vecf& got, const vecf& base, const vecd& ref, double times,
                        const std::string& what) {
  ASSERT_EQ(got.size(), ref.size()) << what;
  vecf delta(got.size());
  vecd want(ref.size());
  for (size_t i = 0; i < got.size(); ++i) {
    delta[i] = got[i] - base[i];
    want[i] = times * ref[i];
  }
  expect_grad(delta, want, what, 2 * kTol);
}

// Max |a - b| <= rtol * max|b| (threaded vs single-threaded results).
void expect_same(const vecf& a, const vecf& b, const std::string& what, double rtol = 1e-5) {
  ASSERT_EQ(a.size(), b.size()) << what;
  vecd bd = to_d(b);
  expect_grad(a.data(), bd, what, rtol);
}

template <typename F>
void expect_shape_error(F&& f, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << what << ": expected ShapeError, nothing thrown";
  } catch (const ShapeError&) {
  } catch (const std::exception& e) {
    ADD_FAILURE() << what << ": expected ShapeError, got another exception: " << e.what();
  }
}

// Out-of-range ids/targets: any resp::Error subclass is acceptable, but something must throw.
template <typename F>
void expect_error(F&& f, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << what << ": expected an error, nothing thrown";
  } catch (const Error&) {
  }
}

class CpuBackwardTest : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> be = always_parallel(2);
};

// ============================== naive float64 forward references ==============================

vecd rmsnorm_ref(const vecd& x, const vecd& w, int64_t R, int64_t D, double eps) {
  vecd y(x.size());
  for (int64_t r = 0; r < R; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < D; ++i) ss += x[r * D + i] * x[r * D + i];
    const double inv = 1.0 / std::sqrt(ss / D + eps);
    for (int64_t i = 0; i < D; ++i) y[r * D + i] = x[r * D + i] * inv * w[i];
  }
  return y;
}

vecd rope_ref(const vecd& x, const veci& pos, const vecd& inv_freq, int64_t T, int64_t H,
              int64_t D) {
  vecd y(x.size());
  const int64_t half = D / 2;
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double a = pos[t] * inv_freq[i], c = std::cos(a), s = std::sin(a);
        const int64_t b = (t * H + h) * D;
        y[b + i] = x[b + i] * c - x[b + i + half] * s;
        y[b + i + half] = x[b + i + half] * c + x[b + i] * s;
      }
  return y;
}

struct AttnShape {
  int64_t T, Hq, S, Hkv, D, q_offset;
  double scale;
};

vecd attention_ref(const vecd& q, const vecd& k, const vecd& v, const veci& kvh,
                   const AttnShape& a) {
  vecd out(static_cast<size_t>(a.T * a.Hq * a.D), 0.0);
  vecd p(static_cast<size_t>(a.S));
  for (int64_t t = 0; t < a.T; ++t)
    for (int64_t h = 0; h < a.Hq; ++h) {
      const int64_t g = kvh[h], n = a.q_offset + t + 1;
      double mx = -1e300;
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t d = 0; d < a.D; ++d)
          s += q[(t * a.Hq + h) * a.D + d] * k[(j * a.Hkv + g) * a.D + d];
        p[j] = a.scale * s;
        mx = std::max(mx, p[j]);
      }
      double z = 0;
      for (int64_t j = 0; j < n; ++j) z += (p[j] = std::exp(p[j] - mx));
      for (int64_t j = 0; j < n; ++j)
        for (int64_t d = 0; d < a.D; ++d)
          out[(t * a.Hq + h) * a.D + d] += p[j] / z * v[(j * a.Hkv + g) * a.D + d];
    }
  return out;
}

vecd swiglu_ref(const vecd& g, const vecd& u) {
  vecd y(g.size());
  for (size_t i = 0; i < g.size(); ++i) y[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
  return y;
}

vecd embedding_ref(const vecd& table, const veci& ids, int64_t H) {
  vecd y(ids.size() * static_cast<size_t>(H));
  for (size_t t = 0; t < ids.size(); ++t)
    for (int64_t c = 0; c < H; ++c) y[t * H + c] = table[ids[t] * H + c];
  return y;
}

// Unweighted per-row NLL: -log softmax(logits[r])[targets[r]].
vecd nll_ref(const vecd& logits, const veci& targets, int64_t R, int64_t V) {
  vecd nll(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    double mx = -1e300;
    for (int64_t j = 0; j < V; ++j) mx = std::max(mx, logits[r * V + j]);
    double z = 0;
    for (int64_t j = 0; j < V; ++j) z += std::exp(logits[r * V + j] - mx);
    nll[r] = mx + std::log(z) - logits[r * V + targets[r]];
  }
  return nll;
}

// y[T, out] = x[T, in] W[out, in]^T + b[out].
vecd linear_ref(const vecd& x, const vecd& w, const vecd& b, int64_t T, int64_t in, int64_t out) {
  vecd y(static_cast<size_t>(T * out));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double s = b.empty() ? 0.0 : b[o];
      for (int64_t i = 0; i < in; ++i) s += x[t * in + i] * w[o * in + i];
      y[t * out + o] = s;
    }
  return y;
}

// ============================== sum_rows ==============================

TEST_F(CpuBackwardTest, SumRowsMatchesFiniteDifferencesAndAccumulates) {
  // Forward: y[r, n] = b[n] for every row (bias broadcast); dL/db = column sums of R.
  for (auto [R, N] : {std::pair<int64_t, int64_t>{1, 6}, {5, 20}, {13, 37}}) {
    auto Rm = random_vec(static_cast<size_t>(R * N), 11);
    const vecd Rd = to_d(Rm);
    const vecd ref = fd_grad(to_d(random_vec(static_cast<size_t>(N), 12)), [&](const vecd& b) {
      double s = 0;
      for (int64_t r = 0; r < R; ++r)
        for (int64_t n = 0; n < N; ++n) s += Rd[r * N + n] * b[n];
      return s;
    });
    const vecf base = random_vec(static_cast<size_t>(N), 13);
    vecf out = base;
    be->sum_rows(f32(out, {N}), f32(Rm, {R, N}));
    expect_accumulated(out, base, ref, 1, cat("sum_rows once R=", R, " N=", N));
    be->sum_rows(f32(out, {N}), f32(Rm, {R, N}));
    expect_accumulated(out, base, ref, 2, cat("sum_rows twice R=", R, " N=", N));
  }
}

TEST_F(CpuBackwardTest, SumRowsLargeMatchesDoubleSums) {
  const int64_t R = 1031, N = 77;  // R * N > 2^16: the threaded path
  auto x = random_vec(static_cast<size_t>(R * N), 14);
  vecd ref(static_cast<size_t>(N), 0.0);
  for (int64_t r = 0; r < R; ++r)
    for (int64_t n = 0; n < N; ++n) ref[n] += x[r * N + n];
  vecf out(static_cast<size_t>(N), 0.0f);
  be->sum_rows(f32(out, {N}), f32(x, {R, N}));
  expect_grad(out, ref, "sum_rows large", 1e-6);
}

TEST_F(CpuBackwardTest, SumRowsRejectsBadShapes) {
  vecf x(5 * 6), out(6), out7(7);
  veci xi(5 * 6);
  expect_shape_error([&] { be->sum_rows(f32(out7, {7}), f32(x, {5, 6})); }, "N mismatch");
  expect_shape_error([&] { be->sum_rows(f32(out, {6}), f32(x, {6, 5})); }, "last dim mismatch");
  expect_shape_error([&] { be->sum_rows(f32(out, {6}), i32(xi, {5, 6})); }, "I32 x");
}

// ============================== linear_backward ==============================

struct LinCase {
  int64_t T, in, out;
};

TEST_F(CpuBackwardTest, LinearBackwardMatchesFiniteDifferences) {
  for (const LinCase c : {LinCase{1, 6, 5}, LinCase{5, 6, 7}, LinCase{13, 20, 6}}) {
    const std::string tag = cat("linear T=", c.T, " in=", c.in, " out=", c.out);
    auto x = random_vec(static_cast<size_t>(c.T * c.in), 21);
    auto w = random_vec(static_cast<size_t>(c.out * c.in), 22);
    auto b = random_vec(static_cast<size_t>(c.out), 23);
    auto Rm = random_vec(static_cast<size_t>(c.T * c.out), 24);
    const vecd xd = to_d(x), wd = to_d(w), bd = to_d(b), Rd = to_d(Rm);
    const vecd gx = fd_grad(
        xd, [&](const vecd& v) { return dot(Rd, linear_ref(v, wd, bd, c.T, c.in, c.out)); });
    const vecd gw = fd_grad(
        wd, [&](const vecd& v) { return dot(Rd, linear_ref(xd, v, bd, c.T, c.in, c.out)); });
    const vecd gb = fd_grad(
        bd, [&](const vecd& v) { return dot(Rd, linear_ref(xd, wd, v, c.T, c.in, c.out)); });

    vecf dx(x.size(), kGarbage);
    const vecf dw0 = random_vec(w.size(), 25), db0 = random_vec(b.size(), 26);
    vecf dw = dw0, db = db0;
    be->linear_backward(f32(dx, {c.T, c.in}), f32(dw, {c.out, c.in}), f32(db, {c.out}),
                        f32(Rm, {c.T, c.out}), f32(x, {c.T, c.in}), f32(w, {c.out, c.in}));
    expect_grad(dx, gx, tag + " dx");
    expect_accumulated(dw, dw0, gw, 1, tag + " dw");
    expect_accumulated(db, db0, gb, 1, tag + " db");

    // Second call: dx overwritten again (same value), dw/db doubled.
    be->linear_backward(f32(dx, {c.T, c.in}), f32(dw, {c.out, c.in}), f32(db, {c.out}),
                        f32(Rm, {c.T, c.out}), f32(x, {c.T, c.in}), f32(w, {c.out, c.in}));
    expect_grad(dx, gx, tag + " dx after second call");
    expect_accumulated(dw, dw0, gw, 2, tag + " dw twice");
    expect_accumulated(db, db0, gb, 2, tag + " db twice");

    // dx_beta = 1 adds into dx: now 2 * gx. Empty dw/db are skipped.
    be->linear_backward(f32(dx, {c.T, c.in}), Tensor(), Tensor(), f32(Rm, {c.T, c.out}),
                        f32(x, {c.T, c.in}), f32(w, {c.out, c.in}), 1.0f);
    vecd gx2 = gx;
    for (auto& g : gx2) g *= 2;
    expect_grad(dx, gx2, tag + " dx with dx_beta = 1");
    expect_accumulated(dw, dw0, gw, 2, tag + " dw untouched when skipped");
  }
}

TEST_F(CpuBackwardTest, LinearBackwardRejectsBadShapes) {
  vecf x(5 * 6), w(7 * 6), dy(5 * 7), dx(5 * 6), dw(7 * 6), db(7), bad(7 * 5);
  expect_shape_error(
      [&] {
        be->linear_backward(f32(dx, {5, 6}), f32(bad, {5, 7}), Tensor(), f32(dy, {5, 7}),
                            f32(x, {5, 6}), f32(w, {7, 6}));
      },
      "linear dw transposed");
  expect_shape_error(
      [&] {
        be->linear_backward(f32(bad, {7, 5}), Tensor(), Tensor(), f32(dy, {5, 7}), f32(x, {5, 6}),
                            f32(w, {7, 6}));
      },
      "linear dx wrong shape");
}

// ============================== rmsnorm_backward ==============================

struct NormCase {
  int64_t R, D;
};

TEST_F(CpuBackwardTest, RmsnormBackwardMatchesFiniteDifferences) {
  const double eps = 1e-6;
  for (const NormCase c : {NormCase{1, 6}, NormCase{5, 6}, NormCase{13, 20}}) {
    const std::string tag = cat("rmsnorm R=", c.R, " D=", c.D);
    auto x = random_vec(static_cast<size_t>(c.R * c.D), 31, -2.0f, 2.0f);
    auto w = random_vec(static_cast<size_t>(c.D), 32, 0.5f, 1.5f);
    auto Rm = random_vec(x.size(), 33);
    const vecd xd = to_d(x), wd = to_d(w), Rd = to_d(Rm);
    const vecd gx =
        fd_grad(xd, [&](const vecd& v) { return dot(Rd, rmsnorm_ref(v, wd, c.R, c.D, eps)); });
    const vecd gw =
        fd_grad(wd, [&](const vecd& v) { return dot(Rd, rmsnorm_ref(xd, v, c.R, c.D, eps)); });

    vecf dx(x.size(), kGarbage);
    const vecf dw0 = random_vec(w.size(), 34);
    vecf dw = dw0;
    be->rmsnorm_backward(f32(dx, {c.R, c.D}), f32(dw, {c.D}), f32(Rm, {c.R, c.D}),
                         f32(x, {c.R, c.D}), f32(w, {c.D}), static_cast<float>(eps));
    expect_grad(dx, gx, tag + " dx");
    expect_accumulated(dw, dw0, gw, 1, tag + " dw");
    be->rmsnorm_backward(f32(dx, {c.R, c.D}), f32(dw, {c.D}), f32(Rm, {c.R, c.D}),
                         f32(x, {c.R, c.D}), f32(w, {c.D}), static_cast<float>(eps));
    expect_grad(dx, gx, tag + " dx (second call)");
    expect_accumulated(dw, dw0, gw, 2, tag + " dw twice");

    // dx aliasing dy, and empty dw (skipped).
    vecf dy = Rm;
    be->rmsnorm_backward(f32(dy, {c.R, c.D}), Tensor(), f32(dy, {c.R, c.D}), f32(x, {c.R, c.D}),
                         f32(w, {c.D}), static_cast<float>(eps));
    expect_grad(dy, gx, tag + " dx aliasing dy");

    // A 3-D x ([R, 1, D], e.g. per-head q-norm views) is rows of D as well.
    vecf dx3(x.size(), kGarbage);
    be->rmsnorm_backward(f32(dx3, {c.R, 1, c.D}), Tensor(), f32(Rm, {c.R, 1, c.D}),
                         f32(x, {c.R, 1, c.D}), f32(w, {c.D}), static_cast<float>(eps));
    expect_grad(dx3, gx, tag + " 3-D view");
  }
}

TEST_F(CpuBackwardTest, RmsnormBackwardLargeEpsAndTinyRows) {
  // eps comparable to mean(x^2): the eps term matters for the gradient.
  const int64_t R = 5, D = 20;
  const double eps = 0.05;
  auto x = random_vec(static_cast<size_t>(R * D), 35, -0.3f, 0.3f);
  auto w = random_vec(static_cast<size_t>(D), 36, 0.5f, 1.5f);
  auto Rm = random_vec(x.size(), 37);
  const vecd xd = to_d(x), wd = to_d(w), Rd = to_d(Rm);
  const vecd gx =
      fd_grad(xd, [&](const vecd& v) { return dot(Rd, rmsnorm_ref(v, wd, R, D, eps)); });
  const vecd gw =
      fd_grad(wd, [&](const vecd& v) { return dot(Rd, rmsnorm_ref(xd, v, R, D, eps)); });
  vecf dx(x.size(), kGarbage), dw(w.size(), 0.0f);
  be->rmsnorm_backward(f32(dx, {R, D}), f32(dw, {D}), f32(Rm, {R, D}), f32(x, {R, D}), f32(w, {D}),
                       static_cast<float>(eps));
  expect_grad(dx, gx, "rmsnorm large eps dx");
  expect_grad(dw, gw, "rmsnorm large eps dw");
}

TEST_F(CpuBackwardTest, RmsnormBackwardThreadedMatchesSingleThread) {
  const int64_t R = 301, D = 200;  // R * D > 2^15: threaded path with per-thread dw partials
  auto x = random_vec(static_cast<size_t>(R * D), 38, -2.0f, 2.0f);
  auto w = random_vec(static_cast<size_t>(D), 39, 0.5f, 1.5f);
  auto dy = random_vec(x.size(), 40);
  vecf dx1(x.size()), dx2(x.size(), kGarbage), dw1(w.size(), 0.5f), dw2(w.size(), 0.5f);
  {
    auto one = make_cpu_backend(1);
    one->rmsnorm_backward(f32(dx1, {R, D}), f32(dw1, {D}), f32(dy, {R, D}), f32(x, {R, D}),
                          f32(w, {D}), 1e-6f);
  }
  auto two = always_parallel(2);
  two->rmsnorm_backward(f32(dx2, {R, D}), f32(dw2, {D}), f32(dy, {R, D}), f32(x, {R, D}),
                        f32(w, {D}), 1e-6f);
  expect_same(dx2, dx1, "rmsnorm threaded dx");
  expect_same(dw2, dw1, "rmsnorm threaded dw");
  // Not only close: the same bits, whatever the thread count (the dw partials are per chunk).
  EXPECT_EQ(dx2, dx1);
  EXPECT_EQ(dw2, dw1);
}

TEST_F(CpuBackwardTest, RmsnormBackwardRejectsBadShapes) {
  vecf x(5 * 6), dy(5 * 6), dx(5 * 6), w(6), w5(5), dw(6), dw5(5), dx_small(4 * 6);
  veci xi(5 * 6);
  auto ok = [&] {
    be->rmsnorm_backward(f32(dx, {5, 6}), f32(dw, {6}), f32(dy, {5, 6}), f32(x, {5, 6}),
                         f32(w, {6}), 1e-6f);
  };
  ok();  // the valid call does not throw
  expect_shape_error(
      [&] {
        be->rmsnorm_backward(f32(dx, {5, 6}), f32(dw, {6}), f32(dy, {5, 6}), f32(x, {5, 6}),
                             f32(w5, {5}), 1e-6f);
      },
      "rmsnorm w size");
  expect_shape_error(
      [&] {
        be->rmsnorm_backward(f32(dx, {5, 6}), f32(dw5, {5}), f32(dy, {5, 6}), f32(x, {5, 6}),
                             f32(w, {6}), 1e-6f);
      },
      "rmsnorm dw size");
  expect_shape_error(
      [&] {
        be->rmsnorm_backward(f32(dx_small, {4, 6}), f32(dw, {6}), f32(dy, {5, 6}), f32(x, {5, 6}),
                             f32(w, {6}), 1e-6f);
      },
      "rmsnorm dx rows");
  expect_shape_error(
      [&] {
        be->rmsnorm_backward(f32(dx, {5, 6}), f32(dw, {6}), f32(dy, {5, 6}), i32(xi, {5, 6}),
                             f32(w, {6}), 1e-6f);
      },
      "rmsnorm I32 x");
}

// ============================== rope_backward ==============================

struct RopeCase {
  int64_t T, H, D;
};

vecf make_inv_freq(int64_t D, double theta) {
  vecf f(static_cast<size_t>(D / 2));
  for (int64_t i = 0; i < D / 2; ++i)
    f[i] =
        static_cast<float>(std::pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(D)));
  return f;
}

TEST_F(CpuBackwardTest, RopeBackwardMatchesFiniteDifferences) {
  for (const RopeCase c : {RopeCase{1, 3, 6}, RopeCase{5, 3, 6}, RopeCase{13, 2, 20}}) {
    const std::string tag = cat("rope T=", c.T, " H=", c.H, " D=", c.D);
    veci pos(static_cast<size_t>(c.T));
    for (int64_t t = 0; t < c.T; ++t)
      pos[t] = static_cast<int32_t>((t * 37 + 3) % 101);  // irregular
    if (c.T > 2) pos[1] = 4093;                           // large
    auto inv = make_inv_freq(c.D, 10000.0);
    auto x = random_vec(static_cast<size_t>(c.T * c.H * c.D), 41);
    auto Rm = random_vec(x.size(), 42);
    const vecd invd = to_d(inv), Rd = to_d(Rm);
    const vecd gx = fd_grad(
        to_d(x), [&](const vecd& v) { return dot(Rd, rope_ref(v, pos, invd, c.T, c.H, c.D)); });
    vecf dx = Rm;  // in place: dy -> dx
    be->rope_backward(f32(dx, {c.T, c.H, c.D}), i32(pos, {c.T}), f32(inv, {c.D / 2}));
    expect_grad(dx, gx, tag);
  }
}

TEST_F(CpuBackwardTest, RopeBackwardInvertsForward) {
  // rope is a rotation: rope_backward(rope(x)) == x, also on the threaded path.
  const int64_t T = 130, H = 4, D = 64;  // T * H * D > 2^15
  veci pos(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) pos[t] = static_cast<int32_t>(t * 31);
  auto inv = make_inv_freq(D, 1e6);
  auto x = random_vec(static_cast<size_t>(T * H * D), 43);
  vecf y = x;
  be->rope(f32(y, {T, H, D}), i32(pos, {T}), f32(inv, {D / 2}));
  be->rope_backward(f32(y, {T, H, D}), i32(pos, {T}), f32(inv, {D / 2}));
  expect_same(y, x, "rope_backward(rope(x))", 1e-5);
}

TEST_F(CpuBackwardTest, RopeBackwardRejectsBadShapes) {
  vecf x(5 * 3 * 6), x7(5 * 3 * 7), inv3(3), inv2(2), fpos(5);
  veci pos(5), pos4(4);
  expect_shape_error(
      [&] {
        be->rope_backward(f32(x7, {5, 3, 7}), i32(pos, {5}), f32(inv3, {3}));
      },
      "rope odd D");
  expect_shape_error(
      [&] {
        be->rope_backward(f32(x, {5, 3, 6}), i32(pos, {5}), f32(inv2, {2}));
      },
      "rope inv_freq size");
  expect_shape_error(
      [&] {
        be->rope_backward(f32(x, {5, 3, 6}), i32(pos4, {4}), f32(inv3, {3}));
      },
      "rope positions length");
  expect_shape_error(
      [&] {
        be->rope_backward(f32(x, {5, 3, 6}), f32(fpos, {5}), f32(inv3, {3}));
      },
      "rope F32 positions");
  expect_shape_error(
      [&] {
        be->rope_backward(f32(x, {15, 6}), i32(pos, {5}), f32(inv3, {3}));
      },
      "rope rank 2");
}

// ============================== attention_backward ==============================

struct AttnCase {
  int64_t T, q_offset, extra_keys, D;
  veci kvh;
  int64_t Hkv;
};

void check_attention_backward(Backend& be, const AttnCase& c, uint32_t seed) {
  const int64_t Hq = static_cast<int64_t>(c.kvh.size());
  const AttnShape a{c.T,
                    Hq,
                    c.q_offset + c.T + c.extra_keys,
                    c.Hkv,
                    c.D,
                    c.q_offset,
                    0.37 + 1.0 / std::sqrt(static_cast<double>(c.D))};
  const std::string tag = cat("attention T=", a.T, " Hq=", Hq, " Hkv=", a.Hkv, " S=", a.S,
                              " D=", a.D, " q_offset=", a.q_offset);
  veci kvh = c.kvh;
  auto q = random_vec(static_cast<size_t>(a.T * Hq * a.D), seed, -1.5f, 1.5f);
  auto k = random_vec(static_cast<size_t>(a.S * a.Hkv * a.D), seed + 1, -1.5f, 1.5f);
  auto v = random_vec(k.size(), seed + 2);
  auto Rm = random_vec(q.size(), seed + 3);
  const vecd qd = to_d(q), kd = to_d(k), vd = to_d(v), Rd = to_d(Rm);
  const vecd gq =
      fd_grad(qd, [&](const vecd& x) { return dot(Rd, attention_ref(x, kd, vd, kvh, a)); });
  const vecd gk =
      fd_grad(kd, [&](const vecd& x) { return dot(Rd, attention_ref(qd, x, vd, kvh, a)); });
  const vecd gv =
      fd_grad(vd, [&](const vecd& x) { return dot(Rd, attention_ref(qd, kd, x, kvh, a)); });

  vecf dq(q.size(), kGarbage), dk(k.size(), kGarbage), dv(v.size(), kGarbage);
  for (int call = 0; call < 2; ++call) {  // twice: dq/dk/dv are overwritten, not accumulated
    be.attention_backward(
        f32(dq, {a.T, Hq, a.D}), f32(dk, {a.S, a.Hkv, a.D}), f32(dv, {a.S, a.Hkv, a.D}),
        f32(Rm, {a.T, Hq, a.D}), f32(q, {a.T, Hq, a.D}), f32(k, {a.S, a.Hkv, a.D}),
        f32(v, {a.S, a.Hkv, a.D}), i32(kvh, {Hq}), a.q_offset, static_cast<float>(a.scale));
    const std::string ct = cat(tag, call ? " (second call)" : "");
    expect_grad(dq, gq, ct + " dq");
    expect_grad(dk, gk, ct + " dk");
    expect_grad(dv, gv, ct + " dv");
  }
  // Keys beyond q_offset + T - 1 are seen by no query: exactly zero.
  for (int64_t j = a.q_offset + a.T; j < a.S; ++j)
    for (int64_t i = 0; i < a.Hkv * a.D; ++i) {
      ASSERT_EQ(dk[j * a.Hkv * a.D + i], 0.0f) << tag << " dk of unseen key " << j;
      ASSERT_EQ(dv[j * a.Hkv * a.D + i], 0.0f) << tag << " dv of unseen key " << j;
    }
}

TEST_F(CpuBackwardTest, AttentionBackwardMatchesFiniteDifferences) {
  const veci irregular{0, 0, 1, 1, 1, 0};
  check_attention_backward(*be, {5, 0, 0, 4, irregular, 2}, 51);   // plain causal, S == T
  check_attention_backward(*be, {5, 3, 2, 4, irregular, 2}, 55);   // q_offset and unseen keys
  check_attention_backward(*be, {1, 4, 3, 6, irregular, 2}, 59);   // single query (decode)
  check_attention_backward(*be, {13, 0, 0, 6, irregular, 2}, 63);  // longer causal triangle
  check_attention_backward(*be, {13, 2, 1, 6, {0, 0, 0}, 1}, 67);  // MQA
  check_attention_backward(*be, {5, 1, 1, 20, {1, 0}, 3}, 71);     // a KV head nobody reads
  check_attention_backward(*be, {70, 3, 2, 4, {1, 0, 1}, 2}, 73);  // several blocks of query rows
}

TEST_F(CpuBackwardTest, AttentionBackwardSingleThread) {
  // Hkv >= threads selects the group-parallel path with 2 threads; 1 thread takes the other.
  auto one = make_cpu_backend(1);
  check_attention_backward(*one, {5, 3, 2, 4, {0, 0, 1, 1, 1, 0}, 2}, 75);
  check_attention_backward(*be, {5, 3, 2, 4, {0, 0, 0, 0}, 1}, 79);  // Hkv < threads: BLAS threads
}

TEST_F(CpuBackwardTest, AttentionBackwardThreadedMatchesSingleThread) {
  // Unequal groups and a KV head nobody reads (its dK/dV must stay zero).
  const int64_t T = 150, Hq = 7, Hkv = 4, D = 32, q_offset = 7, S = q_offset + T + 4;
  veci kvh{0, 1, 3, 3, 1, 0, 0};
  auto q = random_vec(static_cast<size_t>(T * Hq * D), 81);
  auto k = random_vec(static_cast<size_t>(S * Hkv * D), 82);
  auto v = random_vec(k.size(), 83);
  auto dout = random_vec(q.size(), 84);
  vecf dq1(q.size()), dk1(k.size()), dv1(v.size());
  vecf dq2(q.size(), kGarbage), dk2(k.size(), kGarbage), dv2(v.size(), kGarbage);
  auto run = [&](Backend& b, vecf& dq, vecf& dk, vecf& dv) {
    b.attention_backward(f32(dq, {T, Hq, D}), f32(dk, {S, Hkv, D}), f32(dv, {S, Hkv, D}),
                         f32(dout, {T, Hq, D}), f32(q, {T, Hq, D}), f32(k, {S, Hkv, D}),
                         f32(v, {S, Hkv, D}), i32(kvh, {Hq}), q_offset, 0.2f);
  };
  {
    auto one = make_cpu_backend(1);
    run(*one, dq1, dk1, dv1);
  }
  auto two = always_parallel(2);
  run(*two, dq2, dk2, dv2);
  expect_same(dq2, dq1, "attention threaded dq");
  expect_same(dk2, dk1, "attention threaded dk");
  expect_same(dv2, dv1, "attention threaded dv");
  // The same bits on 1, 2 and 3 threads and from run to run: dK/dV sum over fixed lanes, not
  // over whichever thread took an item.
  EXPECT_EQ(dq2, dq1);
  EXPECT_EQ(dk2, dk1);
  EXPECT_EQ(dv2, dv1);
  for (int threads : {2, 3}) {
    vecf dq3(q.size(), kGarbage), dk3(k.size(), kGarbage), dv3(v.size(), kGarbage);
    run(*always_parallel(threads), dq3, dk3, dv3);
    EXPECT_EQ(dq3, dq1) << threads << " threads";
    EXPECT_EQ(dk3, dk1) << threads << " threads";
    EXPECT_EQ(dv3, dv1) << threads << " threads";
  }
  for (int64_t j = 0; j < S; ++j)
    for (int64_t d = 0; d < D; ++d) {
      ASSERT_EQ(dk2[(j * Hkv + 2) * D + d], 0.0f) << "dk of the unread KV head, key " << j;
      ASSERT_EQ(dv2[(j * Hkv + 2) * D + d], 0.0f) << "dv of the unread KV head, key " << j;
    }
}

TEST_F(CpuBackwardTest, AttentionBackwardRejectsBadArguments) {
  const int64_t T = 5, Hq = 6, Hkv = 2, D = 4;
  vecf q(T * Hq * D), dq(q.size()), dout(q.size()), k(9 * Hkv * D), v(k.size()), dk(k.size()),
      dv(k.size()), k_d5(9 * Hkv * 5), fk(6);
  veci kvh{0, 0, 1, 1, 1, 0}, bad{0, 0, 2, 1, 1, 0}, neg{0, -1, 0, 1, 1, 0}, short_kvh{0, 1};
  auto call = [&](int64_t S, int64_t off, Tensor heads, Tensor kk) {
    be->attention_backward(f32(dq, {T, Hq, D}), f32(dk, {S, Hkv, D}), f32(dv, {S, Hkv, D}),
                           f32(dout, {T, Hq, D}), f32(q, {T, Hq, D}), kk, f32(v, {S, Hkv, D}),
                           heads, off, 0.5f);
  };
  call(9, 4, i32(kvh, {Hq}), f32(k, {9, Hkv, D}));  // S == q_offset + T: fine
  expect_shape_error(
      [&] {
        call(9, 5, i32(kvh, {Hq}), f32(k, {9, Hkv, D}));
      },
      "attention S < q_offset + T");
  expect_shape_error(
      [&] {
        call(9, -1, i32(kvh, {Hq}), f32(k, {9, Hkv, D}));
      },
      "attention q_offset < 0");
  expect_shape_error(
      [&] {
        call(9, 0, i32(bad, {Hq}), f32(k, {9, Hkv, D}));
      },
      "attention kv head 2 of 2");
  expect_shape_error(
      [&] {
        call(9, 0, i32(neg, {Hq}), f32(k, {9, Hkv, D}));
      },
      "attention kv head -1");
  expect_shape_error(
      [&] {
        call(9, 0, i32(short_kvh, {2}), f32(k, {9, Hkv, D}));
      },
      "attention kv_of_head size");
  expect_shape_error(
      [&] {
        call(9, 0, f32(fk, {Hq}), f32(k, {9, Hkv, D}));
      },
      "attention F32 kv_of_head");
  expect_shape_error(
      [&] {
        be->attention_backward(f32(dq, {T, Hq, D}), f32(dk, {9, Hkv, D}), f32(dv, {9, Hkv, D}),
                               f32(dout, {T, Hq, D}), f32(q, {T, Hq, D}), f32(k_d5, {9, Hkv, 5}),
                               f32(v, {9, Hkv, D}), i32(kvh, {Hq}), 0, 0.5f);
      },
      "attention k head dim");
  expect_shape_error(
      [&] {
        be->attention_backward(f32(dq, {T, Hq, D}), f32(dk, {8, Hkv, D}), f32(dv, {9, Hkv, D}),
                               f32(dout, {T, Hq, D}), f32(q, {T, Hq, D}), f32(k, {9, Hkv, D}),
                               f32(v, {9, Hkv, D}), i32(kvh, {Hq}), 0, 0.5f);
      },
      "attention dk rows");
  expect_shape_error(
      [&] {
        be->attention_backward(f32(dq, {T, Hq, D}), f32(dk, {9, Hkv, D}), f32(dv, {9, Hkv, D}),
                               f32(dout, {T - 1, Hq, D}), f32(q, {T, Hq, D}), f32(k, {9, Hkv, D}),
                               f32(v, {9, Hkv, D}), i32(kvh, {Hq}), 0, 0.5f);
      },
      "attention dout rows");
}

// ============================== swiglu_backward ==============================

TEST_F(CpuBackwardTest, SwigluBackwardMatchesFiniteDifferences) {
  for (auto [T, F] : {std::pair<int64_t, int64_t>{1, 20}, {5, 6}, {13, 20}}) {
    const std::string tag = cat("swiglu T=", T, " F=", F);
    auto g = random_vec(static_cast<size_t>(T * F), 91, -6.0f, 6.0f);
    auto u = random_vec(g.size(), 92, -2.0f, 2.0f);
    auto Rm = random_vec(g.size(), 93);
    const vecd gd = to_d(g), ud = to_d(u), Rd = to_d(Rm);
    const vecd gg = fd_grad(gd, [&](const vecd& x) { return dot(Rd, swiglu_ref(x, ud)); });
    const vecd gu = fd_grad(ud, [&](const vecd& x) { return dot(Rd, swiglu_ref(gd, x)); });
    vecf dg(g.size(), kGarbage), du(g.size(), kGarbage);
    be->swiglu_backward(f32(dg, {T, F}), f32(du, {T, F}), f32(Rm, {T, F}), f32(g, {T, F}),
                        f32(u, {T, F}));
    expect_grad(dg, gg, tag + " dgate");
    expect_grad(du, gu, tag + " dup");
    // dgate may alias dout.
    vecf d = Rm, du2(g.size(), kGarbage);
    be->swiglu_backward(f32(d, {T, F}), f32(du2, {T, F}), f32(d, {T, F}), f32(g, {T, F}),
                        f32(u, {T, F}));
    expect_grad(d, gg, tag + " dgate aliasing dout");
    expect_grad(du2, gu, tag + " dup with dgate aliasing dout");
  }
}

TEST_F(CpuBackwardTest, SwigluBackwardExtremeGates) {
  // Saturated sigmoids must give finite, correct gradients (no inf * 0).
  vecf g{-200.0f, -90.0f, -30.0f, -1e-3f, 0.0f, 1e-3f, 30.0f, 90.0f, 200.0f};
  const int64_t n = static_cast<int64_t>(g.size());
  vecf u(g.size(), 1.5f), dout(g.size(), 1.0f), dg(g.size(), kGarbage), du(g.size(), kGarbage);
  be->swiglu_backward(f32(dg, {1, n}), f32(du, {1, n}), f32(dout, {1, n}), f32(g, {1, n}),
                      f32(u, {1, n}));
  for (int64_t i = 0; i < n; ++i) {
    const double x = g[i], s = 1.0 / (1.0 + std::exp(-x));
    const double want_du = x * s, want_dg = 1.5 * s * (1.0 + x * (1.0 - s));
    EXPECT_NEAR(du[i], want_du, 1e-5 * (1 + std::abs(want_du))) << "gate " << x;
    EXPECT_NEAR(dg[i], want_dg, 1e-5 * (1 + std::abs(want_dg))) << "gate " << x;
  }
}

TEST_F(CpuBackwardTest, SwigluBackwardThreadedMatchesSingleThread) {
  const int64_t T = 70, F = 512;  // > 2^15 elements
  auto g = random_vec(static_cast<size_t>(T * F), 94, -5.0f, 5.0f);
  auto u = random_vec(g.size(), 95);
  auto d = random_vec(g.size(), 96);
  vecf dg1(g.size()), du1(g.size()), dg2(g.size()), du2(g.size());
  {
    auto one = make_cpu_backend(1);
    one->swiglu_backward(f32(dg1, {T, F}), f32(du1, {T, F}), f32(d, {T, F}), f32(g, {T, F}),
                         f32(u, {T, F}));
  }
  auto two = always_parallel(2);
  two->swiglu_backward(f32(dg2, {T, F}), f32(du2, {T, F}), f32(d, {T, F}), f32(g, {T, F}),
                       f32(u, {T, F}));
  expect_same(dg2, dg1, "swiglu threaded dgate", 1e-7);
  expect_same(du2, du1, "swiglu threaded dup", 1e-7);
}

TEST_F(CpuBackwardTest, SwigluBackwardRejectsBadArguments) {
  vecf g(5 * 6), u(5 * 6), d(5 * 6), dg(5 * 6), du(5 * 6), small(4 * 6);
  veci gi(5 * 6);
  expect_shape_error(
      [&] {
        be->swiglu_backward(f32(dg, {5, 6}), f32(du, {5, 6}), f32(d, {5, 6}), f32(small, {4, 6}),
                            f32(u, {5, 6}));
      },
      "swiglu gate shape");
  expect_shape_error(
      [&] {
        be->swiglu_backward(f32(small, {4, 6}), f32(du, {5, 6}), f32(d, {5, 6}), f32(g, {5, 6}),
                            f32(u, {5, 6}));
      },
      "swiglu dgate shape");
  expect_shape_error(
      [&] {
        be->swiglu_backward(f32(dg, {5, 6}), f32(du, {5, 6}), f32(d, {5, 6}), i32(gi, {5, 6}),
                            f32(u, {5, 6}));
      },
      "swiglu I32 gate");
  expect_shape_error(
      [&] {
        be->swiglu_backward(f32(g, {5, 6}), f32(du, {5, 6}), f32(d, {5, 6}), f32(g, {5, 6}),
                            f32(u, {5, 6}));
      },
      "swiglu dgate aliasing gate");
  expect_shape_error(
      [&] {
        be->swiglu_backward(f32(dg, {5, 6}), f32(u, {5, 6}), f32(d, {5, 6}), f32(g, {5, 6}),
                            f32(u, {5, 6}));
      },
      "swiglu dup aliasing up");
}

// ============================== embedding_backward ==============================

TEST_F(CpuBackwardTest, EmbeddingBackwardMatchesFiniteDifferences) {
  const int64_t V = 37;
  for (auto [T, H] : {std::pair<int64_t, int64_t>{1, 6}, {5, 6}, {13, 6}}) {
    const std::string tag = cat("embedding T=", T, " H=", H);
    veci ids(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t)
      ids[t] = static_cast<int32_t>((t * 7 + 3) % 11);  // repeats for T > 11
    if (T >= 5) {
      ids[2] = ids[0];  // duplicates
      ids[4] = 36;      // last row of the table
      ids[3] = 0;       // first row
    }
    auto table = random_vec(static_cast<size_t>(V * H), 101);
    auto Rm = random_vec(static_cast<size_t>(T * H), 102);
    const vecd Rd = to_d(Rm);
    const vecd gt =
        fd_grad(to_d(table), [&](const vecd& x) { return dot(Rd, embedding_ref(x, ids, H)); });
    const vecf base = random_vec(table.size(), 103);
    vecf dt = base;
    be->embedding_backward(f32(dt, {V, H}), f32(Rm, {T, H}), i32(ids, {T}));
    expect_accumulated(dt, base, gt, 1, tag + " dtable");
    be->embedding_backward(f32(dt, {V, H}), f32(Rm, {T, H}), i32(ids, {T}));
    expect_accumulated(dt, base, gt, 2, tag + " dtable twice");
    // Rows no id refers to are untouched (bit-exact).
    for (int64_t r = 0; r < V; ++r) {
      if (std::find(ids.begin(), ids.end(), r) != ids.end()) continue;
      for (int64_t c = 0; c < H; ++c)
        ASSERT_EQ(dt[r * H + c], base[r * H + c]) << tag << " row " << r;
    }
  }
}

TEST_F(CpuBackwardTest, EmbeddingBackwardAllSameIdThreaded) {
  // Every position uses id 5, on the threaded path (T * H > 2^15): all rows sum into one.
  const int64_t V = 37, H = 64, T = 600;
  veci ids(static_cast<size_t>(T), 5);
  auto d = random_vec(static_cast<size_t>(T * H), 104);
  vecd ref(static_cast<size_t>(V * H), 0.0);
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < H; ++c) ref[5 * H + c] += d[t * H + c];
  vecf dt(static_cast<size_t>(V * H), 0.0f);
  be->embedding_backward(f32(dt, {V, H}), f32(d, {T, H}), i32(ids, {T}));
  expect_grad(dt, ref, "embedding all-same id", 1e-5);
}

TEST_F(CpuBackwardTest, EmbeddingBackwardRejectsBadArguments) {
  const int64_t V = 37, H = 6, T = 5;
  vecf dt(V * H), d(T * H), d7(T * 7);
  veci ids{0, 1, 2, 3, 4}, hi{0, 1, 37, 3, 4}, neg{0, -1, 2, 3, 4}, ids4{0, 1, 2, 3};
  vecf fids(T);
  be->embedding_backward(f32(dt, {V, H}), f32(d, {T, H}), i32(ids, {T}));  // valid
  expect_error(
      [&] {
        be->embedding_backward(f32(dt, {V, H}), f32(d, {T, H}), i32(hi, {T}));
      },
      "embedding id == V");
  expect_error(
      [&] {
        be->embedding_backward(f32(dt, {V, H}), f32(d, {T, H}), i32(neg, {T}));
      },
      "embedding id -1");
  // Nothing is written when an id is rejected.
  vecf dt2(V * H, 0.0f);
  try {
    be->embedding_backward(f32(dt2, {V, H}), f32(d, {T, H}), i32(hi, {T}));
  } catch (const Error&) {
  }
  EXPECT_EQ(std::count(dt2.begin(), dt2.end(), 0.0f), V * H)
      << "embedding wrote before rejecting an id";
  expect_shape_error(
      [&] {
        be->embedding_backward(f32(dt, {V, H}), f32(d7, {T, 7}), i32(ids, {T}));
      },
      "embedding H mismatch");
  expect_shape_error(
      [&] {
        be->embedding_backward(f32(dt, {V, H}), f32(d, {T, H}), i32(ids4, {4}));
      },
      "embedding ids length");
  expect_shape_error(
      [&] {
        be->embedding_backward(f32(dt, {V, H}), f32(d, {T, H}), f32(fids, {T}));
      },
      "embedding F32 ids");
  expect_shape_error(
      [&] {
        be->embedding_backward(f32(dt, {V * H}), f32(d, {T, H}), i32(ids, {T}));
      },
      "embedding rank-1 table");
}

// ============================== cross_entropy ==============================

void check_cross_entropy(Backend& be, int64_t R, int64_t V, float shift, uint32_t seed) {
  const std::string tag = cat("cross_entropy R=", R, " V=", V, " shift=", shift);
  auto logits = random_vec(static_cast<size_t>(R * V), seed, -3.0f, 3.0f);
  for (auto& x : logits) x += shift;
  veci targets(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) targets[r] = static_cast<int32_t>((r * 13 + 5) % V);
  targets[0] = 0;
  if (R > 1) targets[R - 1] = static_cast<int32_t>(V - 1);
  vecf w = random_vec(static_cast<size_t>(R), seed + 1, 0.1f, 1.0f);
  if (R >= 3) w[1] = 0.0f;  // masked row
  if (R >= 5) w[4] = 0.0f;
  const vecd wd = to_d(w);
  const vecd ref_nll = nll_ref(to_d(logits), targets, R, V);
  const vecd gl =
      fd_grad(to_d(logits), [&](const vecd& x) { return dot(wd, nll_ref(x, targets, R, V)); });

  vecf grad = logits, losses(static_cast<size_t>(R), kGarbage);
  be.cross_entropy(f32(losses, {R}), f32(grad, {R, V}), i32(targets, {R}), f32(w, {R}));
  expect_grad(grad, gl, tag + " dlogits");
  for (int64_t r = 0; r < R; ++r)
    EXPECT_NEAR(losses[r], ref_nll[r], 1e-5 * (1 + ref_nll[r])) << tag << " loss of row " << r;
  for (int64_t r = 0; r < R; ++r) {
    if (w[r] != 0.0f) continue;
    for (int64_t j = 0; j < V; ++j) ASSERT_EQ(grad[r * V + j], 0.0f) << tag << " masked row " << r;
  }
}

TEST_F(CpuBackwardTest, CrossEntropyMatchesFiniteDifferences) {
  check_cross_entropy(*be, 1, 37, 0.0f, 111);
  check_cross_entropy(*be, 5, 37, 0.0f, 113);
  check_cross_entropy(*be, 13, 20, 0.0f, 115);
  check_cross_entropy(*be, 5, 37, 400.0f, 117);   // large logits: must not overflow
  check_cross_entropy(*be, 5, 37, -400.0f, 119);  // and not underflow to 0/0
}

TEST_F(CpuBackwardTest, CrossEntropyThreadedMatchesSingleThread) {
  const int64_t R = 40, V = 1001;  // R * V > 2^15
  auto logits = random_vec(static_cast<size_t>(R * V), 121, -5.0f, 5.0f);
  veci targets(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) targets[r] = static_cast<int32_t>((r * 97) % V);
  vecf w = random_vec(static_cast<size_t>(R), 122, 0.0f, 1.0f);
  w[3] = 0.0f;
  vecf g1 = logits, g2 = logits, l1(R), l2(R);
  {
    auto one = make_cpu_backend(1);
    one->cross_entropy(f32(l1, {R}), f32(g1, {R, V}), i32(targets, {R}), f32(w, {R}));
  }
  auto two = always_parallel(2);
  two->cross_entropy(f32(l2, {R}), f32(g2, {R, V}), i32(targets, {R}), f32(w, {R}));
  expect_same(g2, g1, "cross_entropy threaded dlogits", 1e-7);
  expect_same(l2, l1, "cross_entropy threaded losses", 1e-7);
  // Each unmasked gradient row sums to ~0 (softmax minus one-hot).
  for (int64_t r = 0; r < R; ++r) {
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += g2[r * V + j];
    EXPECT_NEAR(s, 0.0, 1e-5) << "row " << r;
  }
}

TEST_F(CpuBackwardTest, CrossEntropyRejectsBadArguments) {
  const int64_t R = 5, V = 37;
  vecf logits(R * V, 0.5f), losses(R), w(R, 1.0f), w4(4), losses4(4);
  veci tg{0, 1, 2, 3, 4}, hi{0, 1, 37, 3, 4}, neg{0, 1, -1, 3, 4}, tg4{0, 1, 2, 3};
  vecf ftg(R);
  auto call = [&](Tensor loss_t, Tensor targets, Tensor weights) {
    vecf l = logits;
    be->cross_entropy(loss_t, f32(l, {R, V}), targets, weights);
  };
  call(f32(losses, {R}), i32(tg, {R}), f32(w, {R}));  // valid
  expect_error([&] { call(f32(losses, {R}), i32(hi, {R}), f32(w, {R})); },
               "cross_entropy target == V");
  expect_error([&] { call(f32(losses, {R}), i32(neg, {R}), f32(w, {R})); },
               "cross_entropy target -1");
  // A rejected target leaves the logits untouched.
  vecf l = logits;
  try {
    be->cross_entropy(f32(losses, {R}), f32(l, {R, V}), i32(hi, {R}), f32(w, {R}));
  } catch (const Error&) {
  }
  EXPECT_EQ(l, logits) << "cross_entropy modified logits before rejecting a target";
  expect_shape_error([&] { call(f32(losses, {R}), i32(tg4, {4}), f32(w, {R})); },
                     "cross_entropy targets length");
  expect_shape_error([&] { call(f32(losses, {R}), f32(ftg, {R}), f32(w, {R})); },
                     "cross_entropy F32 targets");
  expect_shape_error([&] { call(f32(losses, {R}), i32(tg, {R}), f32(w4, {4})); },
                     "cross_entropy weights length");
  expect_shape_error([&] { call(f32(losses4, {4}), i32(tg, {R}), f32(w, {R})); },
                     "cross_entropy losses length");
  expect_shape_error(
      [&] {
        vecf l2 = logits;
        be->cross_entropy(f32(losses, {R}), f32(l2, {R * V}), i32(tg, {R}), f32(w, {R}));
      },
      "cross_entropy rank-1 logits");
}

}  // namespace
}  // namespace resp
