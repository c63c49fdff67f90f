#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/arena.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"

using namespace resp;

TEST(DType, Bf16RoundTripAndRounding) {
  for (float f : {0.0f, 1.0f, -2.5f, 3.140625f, 1e-30f, 65504.0f}) {
    const float back = bf16_to_f32(f32_to_bf16(f));
    EXPECT_LE(std::fabs(back - f), std::fabs(f) * (1.0f / 128.0f)) << f;
  }
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to even (1.0).
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256.0f)), 1.0f);
  // Slightly above halfway rounds up.
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256.0f + 1.0f / 4096.0f)), 1.0f + 1.0f / 128.0f);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
}

TEST(DType, F16KnownValues) {
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.0f), 0xc000);
  EXPECT_EQ(f32_to_f16(65504.0f), 0x7bff);
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00);
  // Every finite f16 survives f16 -> f32 -> f16.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f) continue;
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

TEST(DType, ConvertAndParse) {
  const uint16_t src[3] = {f32_to_bf16(1.5f), f32_to_bf16(-0.25f), f32_to_bf16(8.0f)};
  float dst[3];
  convert_to_f32(DType::BF16, src, dst, 3);
  EXPECT_EQ(dst[0], 1.5f);
  EXPECT_EQ(dst[1], -0.25f);
  EXPECT_EQ(dst[2], 8.0f);
  EXPECT_EQ(parse_safetensors_dtype("BF16"), DType::BF16);
  EXPECT_THROW(parse_safetensors_dtype("F8_E4M3"), FormatError);
  EXPECT_THROW(convert_to_f32(DType::I32, src, dst, 1), FormatError);
}

TEST(Tensor, ViewsAndSlices) {
  std::vector<float> buf(24);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(i);
  Tensor t(buf.data(), DType::F32, Shape{4, 6});
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.stride(0), 6);
  EXPECT_TRUE(t.is_contiguous());
  const Tensor r = t.slice_rows(1, 2);
  EXPECT_EQ(r.f32()[0], 6.0f);
  EXPECT_EQ(r.dim(0), 2);
  const Tensor v = t.view({2, 3, 4});
  EXPECT_EQ(v.dim(2), 4);
  EXPECT_THROW(t.view({5, 5}), ShapeError);
  EXPECT_THROW(t.slice_rows(3, 2), ShapeError);
  EXPECT_THROW(t.i32(), ShapeError);
  EXPECT_THROW((Shape{1, 2, 3, 4, 5}), ShapeError);
}

TEST(Arena, NamedAlignedViews) {
  ArenaPlan p;
  p.add("a", DType::F32, {3, 5});
  p.add("b", DType::I32, {7});
  p.add("empty", DType::F32, {0, 4});
  EXPECT_THROW(p.add("a", DType::F32, {1}), ShapeError);
  Arena a(p, allocate_host(p.total_bytes()));
  const Tensor ta = a.get("a"), tb = a.get("b");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(tb.data()) % 256, 0u);
  EXPECT_GE(static_cast<char*>(tb.data()) - static_cast<char*>(ta.data()), 60);
  EXPECT_EQ(a.get("empty").numel(), 0);
  EXPECT_THROW(a.get("missing"), ShapeError);
  EXPECT_THROW(Arena(p, allocate_host(8)), ShapeError);
}

TEST(Rng, CounterBasedAndUniform) {
  // Same key -> same value regardless of call order; different streams differ.
  const float a = uniform01(42, 1, 2, 3);
  const float b = uniform01(42, 1, 2, 4);
  EXPECT_EQ(a, uniform01(42, 1, 2, 3));
  EXPECT_NE(a, b);
  EXPECT_NE(uniform01(43, 1, 2, 3), a);
  double sum = 0, sum2 = 0;
  const int n = 200000;
  std::set<uint64_t> seen;
  for (int i = 0; i < n; ++i) {
    const float u = uniform01(7, 0, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
    sum2 += u * u;
    if (i < 1000) seen.insert(random_u64(7, 0, static_cast<uint64_t>(i)));
  }
  EXPECT_NEAR(sum / n, 0.5, 0.005);
  EXPECT_NEAR(sum2 / n - (sum / n) * (sum / n), 1.0 / 12.0, 0.002);
  EXPECT_EQ(seen.size(), 1000u);
  double ns = 0, ns2 = 0;
  for (int i = 0; i < 50000; ++i) {
    const double z = normal01(9, 1, static_cast<uint64_t>(i));
    ns += z;
    ns2 += z * z;
  }
  EXPECT_NEAR(ns / 50000, 0.0, 0.02);
  EXPECT_NEAR(ns2 / 50000, 1.0, 0.03);
}
