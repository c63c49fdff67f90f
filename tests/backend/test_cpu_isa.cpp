// Run-time ISA dispatch of the CPU kernels (backend/cpu/cpu_isa.h, cpu_kernels.h): the detected
// level is one the CPU supports, RESP_CPU_ISA overrides it and refuses what the CPU lacks, and
// every level the CPU supports computes what the baseline computes: attention bit for bit, the
// few-rows GEMM to rounding (its AVX2 and AVX-512 kernels sum in vectors of 8 and 16 floats, so
// each output's summation order differs; the baseline has no such kernel and uses OpenBLAS).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/gemm_few_rows.h"
#include "core/error.h"
#include "core/tensor.h"
#include "random_data.h"

namespace resp {
namespace {

using test::random_vec;

constexpr CpuIsa kAll[] = {CpuIsa::Baseline, CpuIsa::Avx2, CpuIsa::Avx512};

Tensor f32(std::vector<float>& v, Shape s) {
  return Tensor(v.data(), DType::F32, s);
}
Tensor i32(std::vector<int32_t>& v, Shape s) {
  return Tensor(v.data(), DType::I32, s);
}

std::vector<CpuIsa> supported_isas() {
  std::vector<CpuIsa> out;
  for (CpuIsa isa : kAll)
    if (cpu_isa_supported(isa)) out.push_back(isa);
  return out;
}

TEST(CpuIsa, DetectedLevelIsOneTheCpuSupports) {
  const CpuIsa best = detect_cpu_isa();
  EXPECT_TRUE(cpu_isa_supported(best));
  EXPECT_TRUE(cpu_isa_supported(CpuIsa::Baseline));
#if defined(__x86_64__)
  // Against the CPU's own feature bits: the detected level is neither above nor below them.
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq");
  EXPECT_EQ(best, avx512 ? CpuIsa::Avx512 : avx2 ? CpuIsa::Avx2 : CpuIsa::Baseline);
#else
  EXPECT_EQ(best, CpuIsa::Baseline);  // non-x86 builds have only the portable kernels
#endif
  for (CpuIsa isa : kAll)
    EXPECT_EQ(cpu_isa_supported(isa), static_cast<int>(isa) <= static_cast<int>(best))
        << cpu_isa_name(isa);
}

TEST(CpuIsa, NamesRoundTrip) {
  for (CpuIsa isa : kAll) EXPECT_EQ(parse_cpu_isa(cpu_isa_name(isa)), isa);
  EXPECT_EQ(parse_cpu_isa("AVX2"), std::nullopt);
  EXPECT_EQ(parse_cpu_isa("native"), std::nullopt);
  EXPECT_EQ(parse_cpu_isa(""), std::nullopt);
}

TEST(CpuIsa, OverrideSelectsAndRefuses) {
  EXPECT_EQ(select_cpu_isa(nullptr, CpuIsa::Avx2), CpuIsa::Avx2);
  EXPECT_EQ(select_cpu_isa("", CpuIsa::Avx512), CpuIsa::Avx512);
  EXPECT_EQ(select_cpu_isa("baseline", CpuIsa::Avx512), CpuIsa::Baseline);
  EXPECT_EQ(select_cpu_isa("avx2", CpuIsa::Avx512), CpuIsa::Avx2);
  EXPECT_EQ(select_cpu_isa("avx512", CpuIsa::Avx512), CpuIsa::Avx512);
  EXPECT_THROW(select_cpu_isa("avx512", CpuIsa::Avx2), UnsupportedError);
  EXPECT_THROW(select_cpu_isa("avx2", CpuIsa::Baseline), UnsupportedError);
  EXPECT_THROW(select_cpu_isa("sse4", CpuIsa::Avx512), UsageError);
  try {
    select_cpu_isa("avx512", CpuIsa::Avx2);
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("supports only avx2"), std::string::npos) << e.what();
  }
}

// The process-wide choice follows RESP_CPU_ISA. ctest also runs this test with RESP_CPU_ISA set
// (tests/backend/CMakeLists.txt), RESP_CPU_ISA_EXPECT naming the outcome: a level, or "error".
TEST(CpuIsa, ActiveFollowsEnvironment) {
  const char* env = std::getenv("RESP_CPU_ISA");
  const char* expect = std::getenv("RESP_CPU_ISA_EXPECT");
  if (expect != nullptr && std::string(expect) == "error") {
    EXPECT_THROW(active_cpu_isa(), UsageError);
    EXPECT_THROW(CpuBackend(1), UsageError);  // nothing runs on an ISA nobody asked for
    return;
  }
  const CpuIsa active = active_cpu_isa();
  EXPECT_EQ(active, select_cpu_isa(env, detect_cpu_isa()));
  EXPECT_TRUE(cpu_isa_supported(active));
  if (expect != nullptr) {
    EXPECT_STREQ(cpu_isa_name(active), expect);
  }
  EXPECT_EQ(CpuBackend(1).isa(), active);
  EXPECT_EQ(gemm_few_rows_available(), active != CpuIsa::Baseline);
}

TEST(CpuIsa, BackendRefusesUnsupportedLevels) {
  for (CpuIsa isa : kAll) {
    if (cpu_isa_supported(isa)) {
      EXPECT_EQ(CpuBackend(1, isa).isa(), isa);
    } else {
      EXPECT_THROW(CpuBackend(1, isa), UnsupportedError) << cpu_isa_name(isa);
      EXPECT_FALSE(gemm_few_rows_available(isa));
    }
  }
  // The baseline has no few-rows kernel; asking for it is an error, not a silent fallback.
  EXPECT_FALSE(gemm_few_rows_available(CpuIsa::Baseline));
  float x = 1.0f;
  EXPECT_THROW(gemm_few_rows(CpuIsa::Baseline, &x, 1, &x, 1, &x, 1, 1, 1, 1, 1.0f, 0.0f, 1),
               UnsupportedError);
}

struct GemmCase {
  int64_t m, n, k, pad;
  float alpha, beta;
};

// Every supported level against a float64 reference and against the baseline (OpenBLAS, through
// CpuBackend::gemm), on shapes that hit every edge tile, partial vectors of both widths, several K
// blocks and the 64-row chunking. Bound: the error of a sum of k products, blocked by vector
// lanes, stays far below 1e-5 of the sum of their magnitudes for k < 2000.
TEST(CpuIsa, GemmPathsAgreeWithBaseline) {
  const std::vector<GemmCase> cases = {
      {1, 1, 1, 0, 1.0f, 0.0f},     {3, 5, 7, 1, 1.0f, 0.0f},      {7, 13, 17, 3, 0.5f, 0.0f},
      {5, 11, 24, 0, 1.0f, 1.0f},   {33, 67, 100, 2, 1.0f, -0.5f}, {64, 9, 769, 1, 1.0f, 0.0f},
      {2, 31, 1537, 5, 2.0f, 0.0f}, {65, 6, 41, 0, 1.0f, 0.25f},
  };
  const std::vector<CpuIsa> isas = supported_isas();
  uint32_t seed = 1;
  for (const GemmCase& cs : cases) {
    const int64_t lda = cs.k + cs.pad, ldb = cs.k + cs.pad, ldc = cs.n + cs.pad;
    auto a = random_vec(static_cast<size_t>(cs.m * lda), seed++);
    auto b = random_vec(static_cast<size_t>(cs.n * ldb), seed++);
    const auto c0 = random_vec(static_cast<size_t>(cs.m * ldc), seed++);
    const std::string what =
        cat("m=", cs.m, " n=", cs.n, " k=", cs.k, " pad=", cs.pad, " beta=", cs.beta);
    std::vector<double> ref(static_cast<size_t>(cs.m * cs.n)), mag(ref.size());
    for (int64_t i = 0; i < cs.m; ++i)
      for (int64_t j = 0; j < cs.n; ++j) {
        double s = 0, sa = 0;
        for (int64_t p = 0; p < cs.k; ++p) {
          const double t = static_cast<double>(a[static_cast<size_t>(i * lda + p)]) *
                           b[static_cast<size_t>(j * ldb + p)];
          s += t;
          sa += std::fabs(t);
        }
        const double prev = cs.beta * static_cast<double>(c0[static_cast<size_t>(i * ldc + j)]);
        ref[static_cast<size_t>(i * cs.n + j)] = cs.alpha * s + prev;
        mag[static_cast<size_t>(i * cs.n + j)] = std::fabs(cs.alpha) * sa + std::fabs(prev);
      }
    // The baseline: CpuBackend::gemm on contiguous copies (OpenBLAS sgemv / sgemm).
    std::vector<float> ac(static_cast<size_t>(cs.m * cs.k)), bc(static_cast<size_t>(cs.n * cs.k)),
        base(static_cast<size_t>(cs.m * cs.n));
    for (int64_t i = 0; i < cs.m; ++i)
      for (int64_t p = 0; p < cs.k; ++p)
        ac[static_cast<size_t>(i * cs.k + p)] = a[static_cast<size_t>(i * lda + p)];
    for (int64_t j = 0; j < cs.n; ++j)
      for (int64_t p = 0; p < cs.k; ++p)
        bc[static_cast<size_t>(j * cs.k + p)] = b[static_cast<size_t>(j * ldb + p)];
    for (int64_t i = 0; i < cs.m; ++i)
      for (int64_t j = 0; j < cs.n; ++j)
        base[static_cast<size_t>(i * cs.n + j)] = c0[static_cast<size_t>(i * ldc + j)];
    CpuBackend(1, CpuIsa::Baseline)
        .gemm(f32(ac, {cs.m, cs.k}), false, f32(bc, {cs.n, cs.k}), true, f32(base, {cs.m, cs.n}),
              cs.alpha, cs.beta);
    for (size_t o = 0; o < base.size(); ++o)
      ASSERT_NEAR(base[o], ref[o], 1e-5 * mag[o] + 1e-30) << "baseline " << what;
    // Every vector kernel, with padded leading dimensions, against the reference and the baseline.
    for (CpuIsa isa : isas) {
      if (!gemm_few_rows_available(isa)) continue;
      std::vector<float> c = c0;
      gemm_few_rows(isa, a.data(), lda, b.data(), ldb, c.data(), ldc, cs.m, cs.n, cs.k, cs.alpha,
                    cs.beta, 2);
      for (int64_t i = 0; i < cs.m; ++i) {
        for (int64_t j = 0; j < cs.n; ++j) {
          const size_t o = static_cast<size_t>(i * cs.n + j);
          const float got = c[static_cast<size_t>(i * ldc + j)];
          ASSERT_NEAR(got, ref[o], 1e-5 * mag[o] + 1e-30)
              << cpu_isa_name(isa) << " " << what << " at (" << i << ", " << j << ")";
          ASSERT_NEAR(got, base[o], 2e-5 * mag[o] + 1e-30)
              << cpu_isa_name(isa) << " vs baseline, " << what << " at (" << i << ", " << j << ")";
        }
        // The padding after each row of C is never written.
        for (int64_t j = cs.n; j < ldc; ++j)
          ASSERT_EQ(c[static_cast<size_t>(i * ldc + j)], c0[static_cast<size_t>(i * ldc + j)]);
      }
    }
  }
}

// The explicit-ISA entry point and the backend agree bit for bit (the backend adds nothing).
TEST(CpuIsa, GemmFewRowsEntryMatchesBackend) {
  const int64_t m = 6, n = 19, k = 45;
  auto a = random_vec(static_cast<size_t>(m * k), 7);
  auto b = random_vec(static_cast<size_t>(n * k), 8);
  int tested = 0;
  for (CpuIsa isa : supported_isas()) {
    if (!gemm_few_rows_available(isa)) continue;
    ++tested;
    EXPECT_EQ(gemm_few_rows_width(isa), isa == CpuIsa::Avx512 ? 16 : 8);
    std::vector<float> c1(static_cast<size_t>(m * n)), c2(c1.size());
    gemm_few_rows(isa, a.data(), k, b.data(), k, c1.data(), n, m, n, k, 1.0f, 0.0f, 1);
    CpuBackend(2, isa).gemm(f32(a, {m, k}), false, f32(b, {n, k}), true, f32(c2, {m, n}));
    EXPECT_EQ(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)), 0) << cpu_isa_name(isa);
  }
  if (tested == 0) GTEST_SKIP() << "this CPU has no AVX2+FMA: only the baseline path exists";
}

struct AttnCase {
  int64_t t_len, hq, hkv, d, q_offset;
};

// Attention on every supported level, bit for bit against the baseline, on shapes that reach
// every kernel: one decode row (attend_one_row), a few rows (GQA groups), prefill blocks with
// packed key/value tiles, head dims that are not multiples of 8 or 16, and a cached prefix.
TEST(CpuIsa, AttentionPathsAreBitIdentical) {
  const std::vector<AttnCase> cases = {{1, 4, 2, 8, 0},    {1, 6, 3, 13, 21},  {1, 8, 2, 64, 40},
                                       {3, 6, 2, 20, 5},   {2, 4, 4, 7, 0},    {9, 6, 3, 36, 0},
                                       {37, 4, 2, 64, 3},  {20, 2, 1, 17, 33}, {33, 8, 2, 40, 0},
                                       {16, 3, 1, 128, 16}};
  const std::vector<CpuIsa> isas = supported_isas();
  if (isas.size() < 2) GTEST_SKIP() << "this CPU supports only the baseline path";
  uint32_t seed = 500;
  for (const AttnCase& cs : cases) {
    const int64_t s_len = cs.q_offset + cs.t_len;
    auto q = random_vec(static_cast<size_t>(cs.t_len * cs.hq * cs.d), seed++, -2.0f, 2.0f);
    auto k = random_vec(static_cast<size_t>(s_len * cs.hkv * cs.d), seed++);
    auto v = random_vec(static_cast<size_t>(s_len * cs.hkv * cs.d), seed++);
    std::vector<int32_t> kvh(static_cast<size_t>(cs.hq));
    for (int64_t h = 0; h < cs.hq; ++h) kvh[static_cast<size_t>(h)] = h * cs.hkv / cs.hq;
    const float scale = 1.0f / std::sqrt(static_cast<float>(cs.d));
    const std::string what =
        cat("T=", cs.t_len, " Hq=", cs.hq, " Hkv=", cs.hkv, " D=", cs.d, " q_offset=", cs.q_offset);
    std::vector<std::vector<float>> outs;
    for (CpuIsa isa : isas) {
      std::vector<float> out(q.size(), -99.0f);
      CpuBackend(2, isa).attention(f32(out, {cs.t_len, cs.hq, cs.d}),
                                   f32(q, {cs.t_len, cs.hq, cs.d}), f32(k, {s_len, cs.hkv, cs.d}),
                                   f32(v, {s_len, cs.hkv, cs.d}), i32(kvh, {cs.hq}), cs.q_offset,
                                   scale);
      for (float x : out) ASSERT_TRUE(std::isfinite(x)) << cpu_isa_name(isa) << " " << what;
      outs.push_back(std::move(out));
    }
    for (size_t l = 1; l < outs.size(); ++l)
      for (size_t i = 0; i < outs[0].size(); ++i)
        ASSERT_EQ(outs[l][i], outs[0][i])
            << cpu_isa_name(isas[l]) << " vs baseline, " << what << " at " << i;
  }
}

}  // namespace
}  // namespace resp
