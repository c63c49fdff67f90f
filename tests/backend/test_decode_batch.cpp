// Backend::attention_decode_batch's default implementation (the CPU backend keeps it) against
// the per-sequence path the decoder used before it (copy the new key/value into the slot, then
// attention() over the slot's prefix): outputs and caches must be identical bit for bit, on odd
// shapes, unequal lengths, unequal GQA groups and slots in any order. Also its argument checks.
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <ostream>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/tensor.h"
#include "random_data.h"

namespace resp {
namespace {

using test::random_vec;

struct Case {
  int64_t N, L, Hq, Hkv, D;
  std::vector<int32_t> kv_of_head, slots, positions;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << "N=" << c.N << " L=" << c.L << " B=" << c.slots.size() << " Hq=" << c.Hq
      << " Hkv=" << c.Hkv << " D=" << c.D;
}

class DecodeBatch : public ::testing::TestWithParam<Case> {};

TEST_P(DecodeBatch, DefaultMatchesPerSequenceAttentionBitForBit) {
  const Case& c = GetParam();
  auto be = make_cpu_backend(1);
  const auto B = static_cast<int64_t>(c.slots.size());
  const Shape cache_shape{c.N, c.L, c.Hkv, c.D};
  // Caches hold garbage everywhere, including past each row's position: nothing past
  // positions[b] may be read.
  auto kc_a = random_vec(static_cast<size_t>(cache_shape.numel()), 1);
  auto vc_a = random_vec(kc_a.size(), 2);
  auto kc_b = kc_a, vc_b = vc_a;
  auto q = random_vec(static_cast<size_t>(B * c.Hq * c.D), 3);
  auto kn = random_vec(static_cast<size_t>(B * c.Hkv * c.D), 4);
  auto vn = random_vec(kn.size(), 5);
  std::vector<float> out_a(q.size(), -7.0f), out_b(q.size(), 7.0f);
  auto kvh = c.kv_of_head;
  auto slots = c.slots, positions = c.positions;
  const float scale = 0.37f;

  auto t = [](std::vector<float>& v, Shape s) { return Tensor(v.data(), DType::F32, s); };
  be->attention_decode_batch(t(out_a, {B, c.Hq, c.D}), t(q, {B, c.Hq, c.D}), t(kn, {B, c.Hkv, c.D}),
                             t(vn, {B, c.Hkv, c.D}), t(kc_a, cache_shape), t(vc_a, cache_shape),
                             Tensor(slots.data(), DType::I32, Shape{B}),
                             Tensor(positions.data(), DType::I32, Shape{B}),
                             Tensor(kvh.data(), DType::I32, Shape{c.Hq}), scale);

  const int64_t slot_elems = c.L * c.Hkv * c.D, row = c.Hkv * c.D, qrow = c.Hq * c.D;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = slots[static_cast<size_t>(b)], p = positions[static_cast<size_t>(b)];
    float* kslot = kc_b.data() + s * slot_elems;
    float* vslot = vc_b.data() + s * slot_elems;
    std::copy_n(kn.data() + b * row, row, kslot + p * row);
    std::copy_n(vn.data() + b * row, row, vslot + p * row);
    be->attention(Tensor(out_b.data() + b * qrow, DType::F32, Shape{1, c.Hq, c.D}),
                  Tensor(q.data() + b * qrow, DType::F32, Shape{1, c.Hq, c.D}),
                  Tensor(kslot, DType::F32, Shape{p + 1, c.Hkv, c.D}),
                  Tensor(vslot, DType::F32, Shape{p + 1, c.Hkv, c.D}),
                  Tensor(kvh.data(), DType::I32, Shape{c.Hq}), p, scale);
  }
  EXPECT_EQ(out_a, out_b);
  EXPECT_EQ(kc_a, kc_b);
  EXPECT_EQ(vc_a, vc_b);
  // The new keys landed where the rows said (a cache compared to itself would not show it).
  for (int64_t b = 0; b < B; ++b) {
    const int64_t s = slots[static_cast<size_t>(b)], p = positions[static_cast<size_t>(b)];
    EXPECT_EQ(kc_a[static_cast<size_t>(s * slot_elems + p * row)],
              kn[static_cast<size_t>(b * row)]);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DecodeBatch,
    ::testing::Values(
        // GQA with unequal groups (pruned), odd head dim, slots out of order, unequal lengths
        // including a first token (position 0) and the last cache position.
        Case{5, 37, 5, 2, 13, {1, 0, 0, 1, 1}, {3, 0, 4, 1}, {36, 0, 17, 5}},
        // MQA, one row.
        Case{2, 9, 3, 1, 8, {0, 0, 0}, {1}, {8}},
        // More KV heads than some query heads read; a KV head nobody reads.
        Case{7, 65, 4, 3, 33, {2, 2, 0, 2}, {6, 2, 5, 0, 3, 1, 4}, {64, 1, 2, 33, 31, 32, 40}},
        // Empty batch.
        Case{2, 4, 2, 2, 4, {0, 1}, {}, {}}));

TEST(DecodeBatchArgs, BadArgumentsThrowShapeError) {
  auto be = make_cpu_backend(1);
  constexpr int64_t N = 2, L = 4, H = 2, D = 4;
  const Shape good{N, L, H, D};
  std::vector<float> kc(static_cast<size_t>(N * L * H * D)), vc(kc.size());
  std::vector<float> q(static_cast<size_t>(2 * H * D)), kn(q.size()), vn(q.size()), out(q.size());
  std::vector<int32_t> kvh = {0, 1};
  auto run = [&](std::vector<int32_t> slots, std::vector<int32_t> pos, Shape cache) {
    const auto B = static_cast<int64_t>(slots.size());
    be->attention_decode_batch(
        Tensor(out.data(), DType::F32, Shape{B, H, D}),
        Tensor(q.data(), DType::F32, Shape{B, H, D}), Tensor(kn.data(), DType::F32, Shape{B, H, D}),
        Tensor(vn.data(), DType::F32, Shape{B, H, D}), Tensor(kc.data(), DType::F32, cache),
        Tensor(vc.data(), DType::F32, cache), Tensor(slots.data(), DType::I32, Shape{B}),
        Tensor(pos.data(), DType::I32, Shape{B}), Tensor(kvh.data(), DType::I32, Shape{H}), 1.0f);
  };
  EXPECT_NO_THROW(run({0, 1}, {3, 0}, good));
  EXPECT_THROW(run({1, 1}, {0, 1}, good), ShapeError);                   // a slot twice
  EXPECT_THROW(run({0, 2}, {0, 1}, good), ShapeError);                   // slot outside the cache
  EXPECT_THROW(run({0, 1}, {4, 0}, good), ShapeError);                   // position past L
  EXPECT_THROW(run({0, 1}, {-1, 0}, good), ShapeError);                  // negative position
  EXPECT_THROW(run({0, 1}, {0, 0}, Shape{N, L, H, D - 1}), ShapeError);  // head dim
  EXPECT_THROW(run({0}, {0}, Shape{N * L, H, D}), ShapeError);           // cache not [N, L, Hkv, D]
}

}  // namespace
}  // namespace resp
