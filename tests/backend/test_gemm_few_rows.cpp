// The few-rows GEMM kernel (decode steps): against a float64 reference on odd shapes and strides,
// and the property decoding relies on: a row's result is bit-identical whatever else is in the
// call (row count, position, thread count).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/gemm_few_rows.h"
#include "core/tensor.h"
#include "random_data.h"

namespace resp {
namespace {

using test::random_vec;

// C = alpha * A B^T + beta * C0 in float64, with the same strides as the kernel call.
std::vector<double> reference(const std::vector<float>& a, int64_t lda, const std::vector<float>& b,
                              int64_t ldb, const std::vector<float>& c0, int64_t ldc, int64_t m,
                              int64_t n, int64_t k, double alpha, double beta) {
  std::vector<double> out(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (int64_t p = 0; p < k; ++p)
        s += static_cast<double>(a[static_cast<size_t>(i * lda + p)]) *
             static_cast<double>(b[static_cast<size_t>(j * ldb + p)]);
      const double prev = beta == 0.0 ? 0.0 : beta * c0[static_cast<size_t>(i * ldc + j)];
      out[static_cast<size_t>(i * n + j)] = alpha * s + prev;
    }
  return out;
}

class GemmFewRows : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!gemm_few_rows_available())
      GTEST_SKIP() << "no vector kernel: this CPU lacks AVX2+FMA, or RESP_CPU_ISA=baseline";
  }
};

struct Case {
  int64_t m, n, k;
  int64_t pad;  // extra elements per row of A, B and C (leading dimension > row length)
  float alpha, beta;
  int threads;
};

TEST_F(GemmFewRows, MatchesFloat64ReferenceOnOddShapes) {
  // k covers: below one vector, exact vectors, a partial last vector, several K blocks (> 768)
  // with and without a remainder; m and n cover every edge-tile shape and the 64-row chunking.
  // The last four stream B (1-2 rows against >= 1 MiB, gemm_few_rows_impl.h): n not a multiple
  // of the stream count, so the last stream is shorter, with beta and row padding.
  const std::vector<Case> cases = {
      {1, 1003, 300, 3, 1.0f, 0.5f, 1}, {2, 4099, 70, 0, 1.0f, 0.0f, 2},
      {1, 2, 140000, 0, 1.0f, 0.0f, 1}, {2, 262147, 1, 1, 1.0f, 0.0f, 1},
      {1, 1, 1, 0, 1.0f, 0.0f, 1},      {1, 7, 5, 0, 1.0f, 0.0f, 1},
      {2, 3, 8, 0, 1.0f, 0.0f, 1},      {3, 4, 9, 3, 1.0f, 0.0f, 1},
      {4, 5, 16, 0, 1.0f, 1.0f, 1},     {5, 6, 17, 1, 0.5f, 0.0f, 1},
      {7, 13, 31, 2, 1.0f, -0.5f, 2},   {13, 31, 767, 0, 1.0f, 0.0f, 1},
      {32, 97, 769, 5, 1.0f, 0.0f, 2},  {33, 50, 1537, 0, 2.0f, 1.0f, 1},
      {64, 29, 2048, 0, 1.0f, 0.0f, 2}, {65, 11, 100, 4, 1.0f, 0.0f, 1},
      {100, 9, 333, 0, 1.0f, 1.0f, 2},  {6, 1000, 64, 0, 1.0f, 0.0f, 2},
  };
  uint32_t seed = 1;
  for (const Case& t : cases) {
    const int64_t lda = t.k + t.pad, ldb = t.k + t.pad, ldc = t.n + t.pad;
    const auto a = random_vec(static_cast<size_t>(t.m * lda), seed++);
    const auto b = random_vec(static_cast<size_t>(t.n * ldb), seed++);
    std::vector<float> c = random_vec(static_cast<size_t>(t.m * ldc), seed++);
    if (t.beta == 0.0f)  // beta = 0 must overwrite, never read: NaN in C must not leak through
      for (auto& x : c) x = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> c0 = c;
    gemm_few_rows(a.data(), lda, b.data(), ldb, c.data(), ldc, t.m, t.n, t.k, t.alpha, t.beta,
                  t.threads);
    const auto ref = reference(a, lda, b, ldb, c0, ldc, t.m, t.n, t.k, t.alpha, t.beta);
    const std::string what =
        "m=" + std::to_string(t.m) + " n=" + std::to_string(t.n) + " k=" + std::to_string(t.k);
    int64_t bad = 0;
    for (int64_t i = 0; i < t.m; ++i) {
      for (int64_t j = 0; j < t.n; ++j) {
        const double want = ref[static_cast<size_t>(i * t.n + j)];
        const double got = c[static_cast<size_t>(i * ldc + j)];
        // Float32 dot products of length k with |x| <= 1: error grows like sqrt(k) * eps.
        if (!(std::abs(got - want) <= 1e-5 * (1.0 + std::sqrt(static_cast<double>(t.k))))) ++bad;
      }
      // Padding between rows of C is never written.
      for (int64_t j = t.n; j < ldc && i < t.m; ++j) {
        const float before = c0[static_cast<size_t>(i * ldc + j)];
        const float after = c[static_cast<size_t>(i * ldc + j)];
        if (!(std::isnan(before) && std::isnan(after)) && before != after) ++bad;
      }
    }
    EXPECT_EQ(bad, 0) << what;
  }
}

TEST_F(GemmFewRows, RowResultsDoNotDependOnTheRestOfTheCall) {
  // n * k >= 2^18 floats: one- and two-row calls take the streaming path (one row of B per
  // column block), the full call the 4-row tiles.
  const int64_t m = 37, n = 301, k = 1000;
  const auto a = random_vec(static_cast<size_t>(m * k), 11);
  const auto b = random_vec(static_cast<size_t>(n * k), 12);
  std::vector<float> all(static_cast<size_t>(m * n));
  gemm_few_rows(a.data(), k, b.data(), k, all.data(), n, m, n, k, 1.0f, 0.0f, 1);
  std::vector<float> threaded(all.size());
  gemm_few_rows(a.data(), k, b.data(), k, threaded.data(), n, m, n, k, 1.0f, 0.0f, 2);
  EXPECT_EQ(0, std::memcmp(all.data(), threaded.data(), all.size() * sizeof(float)));
  // Each row alone (streamed instead of a 4-row tile), rows 7..8 (streamed, two threads) and
  // rows 5..9 as their own call (other tile boundaries): bit-identical to the full call.
  for (int64_t i = 0; i < m; ++i) {
    std::vector<float> row(static_cast<size_t>(n));
    gemm_few_rows(a.data() + i * k, k, b.data(), k, row.data(), n, 1, n, k, 1.0f, 0.0f, 1);
    EXPECT_EQ(0, std::memcmp(row.data(), all.data() + i * n, row.size() * sizeof(float)))
        << "row " << i;
  }
  std::vector<float> pair(static_cast<size_t>(2 * n));
  gemm_few_rows(a.data() + 7 * k, k, b.data(), k, pair.data(), n, 2, n, k, 1.0f, 0.0f, 2);
  EXPECT_EQ(0, std::memcmp(pair.data(), all.data() + 7 * n, pair.size() * sizeof(float)));
  std::vector<float> some(static_cast<size_t>(5 * n));
  gemm_few_rows(a.data() + 5 * k, k, b.data(), k, some.data(), n, 5, n, k, 1.0f, 0.0f, 2);
  EXPECT_EQ(0, std::memcmp(some.data(), all.data() + 5 * n, some.size() * sizeof(float)));
  // Columns computed in a narrower call (other column-block edges) agree too.
  std::vector<float> cols(static_cast<size_t>(m * 7));
  gemm_few_rows(a.data(), k, b.data() + 50 * k, k, cols.data(), 7, m, 7, k, 1.0f, 0.0f, 1);
  for (int64_t i = 0; i < m; ++i)
    EXPECT_EQ(0, std::memcmp(cols.data() + i * 7, all.data() + i * n + 50, 7 * sizeof(float)));
}

// Through the backend: linear() on a batch of rows equals linear() on each row alone, bit for
// bit, up to the few-rows limit — the reason decoding is batch-size invariant.
TEST_F(GemmFewRows, BackendLinearIsBatchInvariant) {
  CpuBackend backend(1);
  const int64_t m = kGemmFewRowsMax, n = 45, k = 130;
  auto x = random_vec(static_cast<size_t>(m * k), 21);
  auto w = random_vec(static_cast<size_t>(n * k), 22);
  std::vector<float> y(static_cast<size_t>(m * n));
  backend.linear(Tensor(y.data(), DType::F32, {m, n}), Tensor(x.data(), DType::F32, {m, k}),
                 Tensor(w.data(), DType::F32, {n, k}));
  for (int64_t i = 0; i < m; i += 9) {
    std::vector<float> row(static_cast<size_t>(n));
    backend.linear(Tensor(row.data(), DType::F32, {1, n}),
                   Tensor(x.data() + i * k, DType::F32, {1, k}),
                   Tensor(w.data(), DType::F32, {n, k}));
    EXPECT_EQ(0, std::memcmp(row.data(), y.data() + i * n, row.size() * sizeof(float)))
        << "row " << i;
  }
}

}  // namespace
}  // namespace resp
