// Backend::group_reduce on the CPU backend: every term, both directions, odd shapes and group
// sizes (a short last group, groups wider than the matrix) against a naive double loop written
// here; bit-identical results for 1, 2 and 3 threads on shapes that take the threaded paths;
// accumulation into out; and the shared argument checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"

namespace resp {
namespace {

using vecd = std::vector<double>;
using vecf = std::vector<float>;

constexpr GroupReduce kKinds[] = {GroupReduce::AbsProduct, GroupReduce::Product,
                                  GroupReduce::Square, GroupReduce::Abs};

vecf random_vec(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  vecf v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

double naive_term(GroupReduce kind, double a, double b) {
  switch (kind) {
    case GroupReduce::AbsProduct:
      return std::fabs(a * b);
    case GroupReduce::Product:
      return a * b;
    case GroupReduce::Square:
      return a * a;
    case GroupReduce::Abs:
      return std::fabs(a);
  }
  return 0;
}

struct Naive {
  vecd sums;   // factor * sum of the terms per group
  vecd scale;  // |factor| * sum of |term| per group: the bound for rounding differences
};

Naive naive(GroupReduce kind, const vecf& a, const vecf& b, int64_t R, int64_t C, bool by_rows,
            int64_t per_group, double factor) {
  const int64_t n = by_rows ? R : C;
  const auto groups = static_cast<size_t>((n + per_group - 1) / per_group);
  Naive r{vecd(groups, 0.0), vecd(groups, 0.0)};
  for (int64_t i = 0; i < R; ++i)
    for (int64_t j = 0; j < C; ++j) {
      const auto k = static_cast<size_t>(i * C + j);
      const double t = naive_term(kind, a[k], b.empty() ? 0.0 : b[k]);
      const auto g = static_cast<size_t>((by_rows ? i : j) / per_group);
      r.sums[g] += t;
      r.scale[g] += std::fabs(t);
    }
  for (size_t g = 0; g < groups; ++g) {
    r.sums[g] *= factor;
    r.scale[g] *= std::fabs(factor);
  }
  return r;
}

// group_reduce on host data (b only for the product terms) into out.
void run(Backend& be, vecd& out, GroupReduce kind, vecf& a, vecf& b, int64_t R, int64_t C,
         bool by_rows, int64_t per_group, double factor) {
  const Tensor ta(a.data(), DType::F32, Shape{R, C});
  const Tensor tb =
      group_reduce_reads_b(kind) ? Tensor(b.data(), DType::F32, Shape{R, C}) : Tensor();
  be.group_reduce(out, kind, ta, tb, by_rows, per_group, factor);
}

TEST(GroupReduce, MatchesNaiveSumsOnOddShapes) {
  auto be = make_cpu_backend(1);
  struct Case {
    int64_t R, C, per_group;
  };
  // 7x13 in groups of 3 (a short last group either way), single elements, a group wider than
  // the matrix, and columns across the CPU's column blocks.
  const Case cases[] = {{7, 13, 3}, {13, 7, 3}, {1, 1, 1}, {7, 13, 1}, {5, 4, 9}, {9, 600, 64}};
  uint32_t seed = 1;
  for (const Case& cs : cases)
    for (GroupReduce kind : kKinds)
      for (bool by_rows : {true, false}) {
        const std::string what = cat(group_reduce_name(kind), " ", cs.R, "x", cs.C, " groups of ",
                                     cs.per_group, by_rows ? " rows" : " columns");
        vecf a = random_vec(static_cast<size_t>(cs.R * cs.C), seed++);
        vecf b = group_reduce_reads_b(kind) ? random_vec(a.size(), seed++) : vecf();
        const double factor = -0.75;
        const Naive want = naive(kind, a, b, cs.R, cs.C, by_rows, cs.per_group, factor);
        // out is accumulated: start from non-zero values.
        vecd out(want.sums.size());
        for (size_t g = 0; g < out.size(); ++g) out[g] = 0.5 + static_cast<double>(g);
        run(*be, out, kind, a, b, cs.R, cs.C, by_rows, cs.per_group, factor);
        ASSERT_EQ(out.size(), want.sums.size()) << what;
        for (size_t g = 0; g < out.size(); ++g)
          EXPECT_NEAR(out[g] - (0.5 + static_cast<double>(g)), want.sums[g],
                      1e-14 * want.scale[g] + 1e-15)
              << what << " group " << g;
      }
}

// Large enough for the threaded paths; results must not depend on the thread count.
TEST(GroupReduce, BitIdenticalForAnyThreadCount) {
  const int64_t R = 301, C = 1037;  // not multiples of anything the implementation uses
  vecf a = random_vec(static_cast<size_t>(R * C), 11), b = random_vec(a.size(), 12);
  auto one = make_cpu_backend(1), two = make_cpu_backend(2), three = make_cpu_backend(3);
  for (GroupReduce kind : kKinds)
    for (bool by_rows : {true, false})
      for (int64_t per_group : {1, 7}) {
        const int64_t groups = ((by_rows ? R : C) + per_group - 1) / per_group;
        vecd r1(static_cast<size_t>(groups), 0.0), r2 = r1, r3 = r1;
        run(*one, r1, kind, a, b, R, C, by_rows, per_group, 1.0 / 3.0);
        run(*two, r2, kind, a, b, R, C, by_rows, per_group, 1.0 / 3.0);
        run(*three, r3, kind, a, b, R, C, by_rows, per_group, 1.0 / 3.0);
        const std::string what =
            cat(group_reduce_name(kind), by_rows ? " rows" : " columns", " groups of ", per_group);
        EXPECT_EQ(r1, r2) << what;
        EXPECT_EQ(r1, r3) << what;
        const Naive want = naive(kind, a, b, R, C, by_rows, per_group, 1.0 / 3.0);
        for (size_t g = 0; g < r1.size(); ++g)
          ASSERT_NEAR(r1[g], want.sums[g], 1e-13 * want.scale[g]) << what << " group " << g;
      }
}

TEST(GroupReduce, EmptyOperandsAddNothing) {
  auto be = make_cpu_backend(1);
  vecf none;
  vecd out = {1.0, 2.0};
  be->group_reduce(out, GroupReduce::Square, Tensor(none.data(), DType::F32, Shape{0, 5}), {},
                   false, 3, 1.0);
  EXPECT_EQ(out, (vecd{1.0, 2.0}));
  vecd no_groups;
  be->group_reduce(no_groups, GroupReduce::Abs, Tensor(none.data(), DType::F32, Shape{0, 5}), {},
                   true, 3, 1.0);
}

TEST(GroupReduce, RefusesBadArguments) {
  auto be = make_cpu_backend(1);
  vecf a = random_vec(6 * 4, 3), b = random_vec(6 * 4, 4), b_short = random_vec(5 * 4, 5);
  const Tensor ta(a.data(), DType::F32, Shape{6, 4}), tb(b.data(), DType::F32, Shape{6, 4});
  vecd rows2(2), cols4(4), cols3(3);
  // Product terms need b of a's shape; the others take none.
  EXPECT_THROW(be->group_reduce(rows2, GroupReduce::AbsProduct, ta, {}, true, 3, 1.0), ShapeError);
  EXPECT_THROW(be->group_reduce(rows2, GroupReduce::Product, ta,
                                Tensor(b_short.data(), DType::F32, Shape{5, 4}), true, 3, 1.0),
               ShapeError);
  EXPECT_THROW(be->group_reduce(rows2, GroupReduce::Square, ta, tb, true, 3, 1.0), ShapeError);
  // out must have exactly one entry per group.
  EXPECT_THROW(be->group_reduce(cols3, GroupReduce::Abs, ta, {}, false, 1, 1.0), ShapeError);
  EXPECT_THROW(be->group_reduce(rows2, GroupReduce::Abs, ta, {}, true, 2, 1.0), ShapeError);
  EXPECT_THROW(be->group_reduce(rows2, GroupReduce::Abs, ta, {}, true, 0, 1.0), ShapeError);
  // 2-D only; the CPU backend stores F32 only.
  EXPECT_THROW(be->group_reduce(rows2, GroupReduce::Abs, ta.view({24}), {}, true, 12, 1.0),
               ShapeError);
  std::vector<uint16_t> half(24, f32_to_bf16(1.0f));
  EXPECT_THROW(be->group_reduce(rows2, GroupReduce::Abs,
                                Tensor(half.data(), DType::BF16, Shape{6, 4}), {}, true, 3, 1.0),
               ShapeError);
  // Nothing was added by the refused calls; a valid one still works.
  EXPECT_EQ(rows2, (vecd{0.0, 0.0}));
  be->group_reduce(cols4, GroupReduce::Abs, ta, {}, false, 1, 1.0);
  EXPECT_GT(cols4[0], 0.0);
}

}  // namespace
}  // namespace resp
