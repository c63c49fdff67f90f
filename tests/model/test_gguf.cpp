// The GGUF reader (model/gguf_file.h) and ggml dequantization (model/ggml_quants.h):
// - a file written by llama.cpp's own gguf-py (tests/fixtures/gguf/reference.gguf, from
//   tools/make_gguf_fixtures.py) reads back exactly, and every dequantizer equals gguf-py's
//   numpy reference bit for bit;
// - every dequantizer equals a naive per-element reference on random blocks of odd counts;
// - malformed files (each header field, truncation at every byte, a seeded mutation loop) are
//   refused with a one-line error naming the file, never a crash or a huge allocation.
// Compiled with -ffp-contract=off (tests/model/CMakeLists.txt) so the references round like ggml.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "gguf_test_writer.h"
#include "model/gguf_file.h"
#include "test_util.h"

using namespace resp;
using namespace resp::test;

namespace {

fs::path reference_gguf() {
  return source_dir() / "tests/fixtures/gguf/reference.gguf";
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// ---- naive per-element references (written from the block layouts, not from ggml's loops) ----

float h16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Element k of one block.
float ref_q4_0(const uint8_t* b, int k) {
  const int nib = k < 16 ? (b[2 + k] & 0xF) : (b[2 + k - 16] >> 4);
  return static_cast<float>(nib - 8) * h16(b);
}
float ref_q4_1(const uint8_t* b, int k) {
  const int nib = k < 16 ? (b[4 + k] & 0xF) : (b[4 + k - 16] >> 4);
  return static_cast<float>(nib) * h16(b) + h16(b + 2);
}
uint32_t qh32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
         static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
}
float ref_q5_0(const uint8_t* b, int k) {
  const int nib = k < 16 ? (b[6 + k] & 0xF) : (b[6 + k - 16] >> 4);
  const int q = nib | static_cast<int>(((qh32(b + 2) >> k) & 1) << 4);
  return static_cast<float>(q - 16) * h16(b);
}
float ref_q5_1(const uint8_t* b, int k) {
  const int nib = k < 16 ? (b[8 + k] & 0xF) : (b[8 + k - 16] >> 4);
  const int q = nib | static_cast<int>(((qh32(b + 4) >> k) & 1) << 4);
  return static_cast<float>(q) * h16(b) + h16(b + 2);
}
float ref_q8_0(const uint8_t* b, int k) {
  return static_cast<float>(static_cast<int8_t>(b[2 + k])) * h16(b);
}
// Q2_K / Q3_K element k: 128-element half n, 2-bit plane j, 16-element group g (0/1), lane l.
struct K2 {
  int n, j, g, l;
};
K2 split2(int k) {
  const int n = k / 128, r = k % 128;
  return {n, r / 32, (r % 32) / 16, r % 16};
}
float ref_q2_k(const uint8_t* b, int k) {
  const K2 s = split2(k);
  const uint8_t sc = b[s.n * 8 + s.j * 2 + s.g];
  const int q = (b[16 + 32 * s.n + 16 * s.g + s.l] >> (2 * s.j)) & 3;
  const float dl = h16(b + 80) * static_cast<float>(sc & 0xF);
  const float ml = h16(b + 82) * static_cast<float>(sc >> 4);
  return dl * static_cast<float>(q) - ml;
}
int q3_scale(const uint8_t* s, int i) {
  const int low = i < 8 ? (s[i] & 0xF) : (s[i - 8] >> 4);
  const int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
  return (low | (high << 4)) - 32;
}
float ref_q3_k(const uint8_t* b, int k) {
  const K2 s = split2(k);
  const int q = (b[32 + 32 * s.n + 16 * s.g + s.l] >> (2 * s.j)) & 3;
  const bool hbit = (b[16 * s.g + s.l] >> (4 * s.n + s.j)) & 1;
  const float dl = h16(b + 108) * static_cast<float>(q3_scale(b + 96, s.n * 8 + s.j * 2 + s.g));
  return dl * static_cast<float>(q - (hbit ? 0 : 4));
}
void k4_scale_min(const uint8_t* s, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}
float ref_q4_k(const uint8_t* b, int k) {
  const int sub = k / 32, within = k % 32;
  const uint8_t byte = b[16 + 32 * (sub / 2) + within];
  const int nib = sub % 2 == 0 ? (byte & 0xF) : (byte >> 4);
  int sc, m;
  k4_scale_min(b + 4, sub, &sc, &m);
  return (h16(b) * static_cast<float>(sc)) * static_cast<float>(nib) -
         h16(b + 2) * static_cast<float>(m);
}
float ref_q5_k(const uint8_t* b, int k) {
  const int sub = k / 32, within = k % 32;
  const uint8_t byte = b[48 + 32 * (sub / 2) + within];
  const int nib = sub % 2 == 0 ? (byte & 0xF) : (byte >> 4);
  const int q = nib + (((b[16 + within] >> sub) & 1) ? 16 : 0);
  int sc, m;
  k4_scale_min(b + 4, sub, &sc, &m);
  return (h16(b) * static_cast<float>(sc)) * static_cast<float>(q) -
         h16(b + 2) * static_cast<float>(m);
}
float ref_q6_k(const uint8_t* b, int k) {
  const int n = k / 128, r = k % 128, quarter = r / 32, l = r % 32;
  const uint8_t lo_byte = b[64 * n + (quarter % 2) * 32 + l];
  const int low = quarter < 2 ? (lo_byte & 0xF) : (lo_byte >> 4);
  const int high = (b[128 + 32 * n + l] >> (2 * quarter)) & 3;
  const int q = (low | (high << 4)) - 32;
  const auto sc = static_cast<int8_t>(b[192 + 8 * n + 2 * quarter + l / 16]);
  return h16(b + 208) * static_cast<float>(sc) * static_cast<float>(q);
}
float ref_q8_k(const uint8_t* b, int k) {
  float d;
  std::memcpy(&d, b, 4);
  return d * static_cast<float>(static_cast<int8_t>(b[4 + k]));
}
float ref_f16(const uint8_t* b, int) {
  return h16(b);
}
float ref_bf16(const uint8_t* b, int) {
  uint16_t h;
  std::memcpy(&h, b, 2);
  return bf16_to_f32(h);
}
float ref_f32(const uint8_t* b, int) {
  float f;
  std::memcpy(&f, b, 4);
  return f;
}

struct QuantCase {
  GgmlType type;
  float (*ref)(const uint8_t*, int);
  std::vector<int> half_fields;  // f16 scale offsets kept finite
  int f32_field = -1;            // an f32 scale offset (Q8_K)
};

std::vector<QuantCase> quant_cases() {
  return {{GgmlType::F32, ref_f32, {}},         {GgmlType::F16, ref_f16, {0}},
          {GgmlType::BF16, ref_bf16, {}},       {GgmlType::Q4_0, ref_q4_0, {0}},
          {GgmlType::Q4_1, ref_q4_1, {0, 2}},   {GgmlType::Q5_0, ref_q5_0, {0}},
          {GgmlType::Q5_1, ref_q5_1, {0, 2}},   {GgmlType::Q8_0, ref_q8_0, {0}},
          {GgmlType::Q2_K, ref_q2_k, {80, 82}}, {GgmlType::Q3_K, ref_q3_k, {108}},
          {GgmlType::Q4_K, ref_q4_k, {0, 2}},   {GgmlType::Q5_K, ref_q5_k, {0, 2}},
          {GgmlType::Q6_K, ref_q6_k, {208}},    {GgmlType::Q8_K, ref_q8_k, {}, 0}};
}

// Random blocks with finite scales of magnitude in [1e-3, 1].
std::vector<uint8_t> random_blocks(const QuantCase& c, int64_t n_blocks, std::mt19937& rng) {
  const GgmlTypeTraits* t = ggml_type_traits(static_cast<uint32_t>(c.type));
  std::vector<uint8_t> b(static_cast<size_t>(n_blocks) * t->type_size);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> mag(1e-3f, 1.0f);
  for (auto& x : b) x = static_cast<uint8_t>(byte(rng));
  for (int64_t i = 0; i < n_blocks; ++i) {
    uint8_t* blk = b.data() + static_cast<size_t>(i) * t->type_size;
    const float sign = byte(rng) & 1 ? 1.0f : -1.0f;
    for (int off : c.half_fields) {
      const uint16_t h = f32_to_f16(sign * mag(rng));
      std::memcpy(blk + off, &h, 2);
    }
    if (c.f32_field >= 0 || c.type == GgmlType::F32 || c.type == GgmlType::BF16) {
      const float v = sign * mag(rng);
      if (c.type == GgmlType::BF16) {
        const uint16_t h = f32_to_bf16(v);
        std::memcpy(blk, &h, 2);
      } else {
        std::memcpy(blk + std::max(c.f32_field, 0), &v, 4);
      }
    }
  }
  return b;
}

// Opening a file must fail with a one-line resp error that names the file and contains `needle`.
template <typename E = FormatError>
void expect_rejected(const fs::path& p, const std::string& needle) {
  try {
    GgufFile f(p);
    ADD_FAILURE() << "accepted a malformed file; expected: " << needle;
  } catch (const E& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(p.string()), std::string::npos) << m;
    EXPECT_NE(m.find(needle), std::string::npos) << "expected '" << needle << "' in: " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

// A small valid file: metadata of several types, tensors of several ggml types.
GgufBuilder small_file() {
  GgufBuilder g;
  g.string("general.architecture", "llama")
      .u32("llama.block_count", 1)
      .f32("llama.attention.layer_norm_rms_epsilon", 1e-5f)
      .boolean("tokenizer.ggml.add_bos_token", true)
      .strings("tokenizer.ggml.tokens", {"a", "b",
                                         "\xc4\xa0"
                                         "c"})
      .i32s("tokenizer.ggml.token_type", {1, 1, 3});
  std::mt19937 rng(7);
  for (const QuantCase& c : quant_cases()) {
    if (c.type != GgmlType::Q4_1 && c.type != GgmlType::Q6_K && c.type != GgmlType::F16) continue;
    const GgmlTypeTraits* t = ggml_type_traits(static_cast<uint32_t>(c.type));
    const uint64_t row = static_cast<uint64_t>(t->block_size == 1 ? 5 : t->block_size);
    g.tensor(std::string("w.") + t->name, static_cast<uint32_t>(c.type), {row, 2},
             random_blocks(c, static_cast<int64_t>(2 * row) / t->block_size, rng));
  }
  return g;
}

}  // namespace

TEST(GgufReference, MetadataOfEveryTypeReadsBack) {
  GgufFile f(reference_gguf());
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(f.get_string("general.architecture"), "test");
  EXPECT_EQ(f.get_int("test.u8"), 200);
  EXPECT_EQ(f.get_int("test.i8"), -100);
  EXPECT_EQ(f.get_int("test.u16"), 60000);
  EXPECT_EQ(f.get_int("test.i16"), -30000);
  EXPECT_EQ(f.get_uint("test.u32"), 4000000000u);
  EXPECT_EQ(f.get_int("test.i32"), -2000000000);
  EXPECT_EQ(f.get_float("test.f32"), 1.5);
  EXPECT_EQ(f.get_uint("test.u64"), (uint64_t{1} << 63) + 5);
  EXPECT_THROW(f.get_int("test.u64"), FormatError);  // above INT64_MAX
  EXPECT_EQ(f.get_int("test.i64"), -(int64_t{1} << 62));
  EXPECT_THROW(f.get_uint("test.i64"), FormatError);  // negative
  EXPECT_EQ(f.get_float("test.f64"), 0.1);
  EXPECT_EQ(f.get_bool("test.bool"), true);
  EXPECT_EQ(f.get_string("test.string"), "h\u00e9llo w\u00f6rld \u6771\u4eac");
  EXPECT_EQ(f.get_int_array("test.array_i32"), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(f.get_string_array("test.array_str"), (std::vector<std::string>{"a", "bc", ""}));
  const auto floats = f.array_items(*f.find("test.array_f32"));
  ASSERT_EQ(floats.size(), 2u);
  EXPECT_EQ(floats[0].f, 0.5);
  EXPECT_EQ(floats[1].f, -0.25);
  const GgufValue* nested = f.find("test.nested");
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->elem_type, GgufType::Array);
  const auto outer = f.array_items(*nested);
  ASSERT_EQ(outer.size(), 2u);
  EXPECT_EQ(f.array_items(outer[0]).size(), 2u);
  EXPECT_EQ(f.array_items(outer[1]).at(0).i, 3);
  // Asking for the wrong type names the key and both types.
  try {
    (void)f.get_string("test.u8");
    ADD_FAILURE();
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("\"test.u8\" is a u8, expected a string"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW((void)f.get_int_array("test.array_str"), FormatError);
  EXPECT_FALSE(f.get_int("no.such.key").has_value());
}

TEST(GgufReference, DequantizationEqualsGgufPyBitForBit) {
  GgufFile f(reference_gguf());
  std::set<std::string> covered;
  for (const GgufTensorInfo& t : f.tensors()) {
    if (t.name.size() > 9 && t.name.substr(t.name.size() - 9) == ".expected") continue;
    const GgufTensorInfo* want = f.tensor(t.name + ".expected");
    ASSERT_NE(want, nullptr) << t.name;
    ASSERT_EQ(want->dims, t.dims) << t.name;
    std::vector<float> got(static_cast<size_t>(t.numel())), ref(got.size());
    f.dequantize(t, got.data());
    f.dequantize(*want, ref.data());
    size_t mismatches = 0;
    for (size_t i = 0; i < got.size(); ++i) mismatches += bits(got[i]) != bits(ref[i]);
    EXPECT_EQ(mismatches, 0u) << t.name << ": " << mismatches << " of " << got.size();
    // A row range gives the same values as the whole tensor.
    std::vector<float> rows(static_cast<size_t>(t.row_size() * 2));
    f.dequantize_rows(t, 1, 2, rows.data());
    EXPECT_EQ(std::memcmp(rows.data(), got.data() + t.row_size(), rows.size() * 4), 0) << t.name;
    covered.insert(ggml_type_name(t.type));
  }
  EXPECT_EQ(covered,
            (std::set<std::string>{"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
                                   "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"}));
}

TEST(GgufDequant, EveryTypeMatchesNaiveReferenceOnOddBlockCounts) {
  std::mt19937 rng(2024);
  for (const QuantCase& c : quant_cases()) {
    const GgmlTypeTraits* t = ggml_type_traits(static_cast<uint32_t>(c.type));
    ASSERT_NE(t, nullptr);
    ASSERT_TRUE(t->dequantizable);
    const int64_t elem_blocks = t->block_size == 1 ? 37 : 1;  // float types: 37 elements a "block"
    for (int64_t n_blocks : {int64_t{1}, int64_t{3}, int64_t{7}}) {
      const int64_t n = n_blocks * elem_blocks * t->block_size;
      const std::vector<uint8_t> src = random_blocks(c, n / t->block_size, rng);
      std::vector<float> got(static_cast<size_t>(n));
      ggml_dequantize_row(c.type, src.data(), got.data(), n);
      const int per = static_cast<int>(t->block_size);
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t* blk = src.data() + static_cast<size_t>(i / per) * t->type_size;
        const float want = c.ref(blk, static_cast<int>(i % per));
        ASSERT_EQ(bits(got[static_cast<size_t>(i)]), bits(want))
            << t->name << " element " << i << " of " << n << ": " << got[static_cast<size_t>(i)]
            << " vs " << want;
      }
    }
  }
}

TEST(GgufDequant, PartialBlocksAndUnsupportedTypesAreErrors) {
  std::vector<uint8_t> src(64, 0);
  std::vector<float> out(64);
  EXPECT_THROW(ggml_dequantize_row(GgmlType::Q4_0, src.data(), out.data(), 31), ShapeError);
  try {
    ggml_dequantize_row(GgmlType::IQ2_XXS, src.data(), out.data(), 256);
    ADD_FAILURE();
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("IQ2_XXS"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ggml_type_traits(31), nullptr);
  EXPECT_EQ(ggml_type_name(31), "type 31");
  EXPECT_EQ(ggml_type_name(12), "Q4_K");

  // A file may hold a type resp cannot dequantize: it opens, and dequantizing names the tensor.
  TempDir d;
  GgufBuilder g;
  g.tensor("iq.weight", static_cast<uint32_t>(GgmlType::IQ4_XS), {256, 1},
           std::vector<uint8_t>(136, 0));
  write_bytes(d / "iq.gguf", g.build());
  GgufFile f(d / "iq.gguf");
  try {
    f.dequantize(f.tensors().at(0), out.data());
    ADD_FAILURE();
  } catch (const UnsupportedError& e) {
    EXPECT_NE(std::string(e.what()).find("\"iq.weight\" is IQ4_XS"), std::string::npos) << e.what();
  }
}

TEST(GgufFileTest, SmallFileRoundTrip) {
  TempDir d;
  const GgufBuilder g = small_file();
  write_bytes(d / "ok.gguf", g.build());
  GgufFile f(d / "ok.gguf");
  EXPECT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type"), (std::vector<int64_t>{1, 1, 3}));
  for (const GgufTensorInfo& t : f.tensors()) {
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(t.torch_shape(), (std::vector<int64_t>{2, t.dims[0]}));
    std::vector<float> got(static_cast<size_t>(t.numel())), want(got.size());
    f.dequantize(t, got.data());
    ggml_dequantize_row(static_cast<GgmlType>(t.type), f.data(t), want.data(), t.numel());
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * 4), 0) << t.name;
  }
  // Version 2 has the same layout.
  GgufBuilder v2 = small_file();
  v2.version = 2;
  write_bytes(d / "v2.gguf", v2.build());
  EXPECT_EQ(GgufFile(d / "v2.gguf").version(), 2u);
}

TEST(GgufFileTest, MalformedHeadersAreRejectedWithOneLineErrors) {
  TempDir d;
  const fs::path p = d / "bad.gguf";
  auto with = [&](const std::vector<uint8_t>& b) {
    write_bytes(p, b);
    return p;
  };
  const std::vector<uint8_t> good = small_file().build();
  auto patched = [&](size_t at, const void* v, size_t n) {
    std::vector<uint8_t> b = good;
    std::memcpy(b.data() + at, v, n);
    return b;
  };

  expect_rejected(with({}), "truncated GGUF file (0 bytes");
  expect_rejected(with(patched(0, "GGML", 4)), "not a GGUF file (magic \"GGML\"");
  const uint32_t v4 = 4, v1 = 1, v3_be = 0x03000000;
  expect_rejected(with(patched(4, &v4, 4)), "unknown GGUF version 4");
  expect_rejected<UnsupportedError>(with(patched(4, &v1, 4)), "GGUF version 1 is not supported");
  expect_rejected<UnsupportedError>(with(patched(4, &v3_be, 4)), "big-endian");
  const uint64_t huge = uint64_t{1} << 40;
  expect_rejected(with(patched(8, &huge, 8)), "tensor count 1099511627776 cannot fit");
  expect_rejected(with(patched(16, &huge, 8)), "metadata count 1099511627776 cannot fit");

  // Field by field, through the builder.
  {
    GgufBuilder g = small_file();
    GgufBytes v;
    v.put<uint32_t>(kString).put<uint64_t>(uint64_t{1} << 50);  // string length past EOF
    g.raw_kv("bad.string", v.b);
    expect_rejected(with(g.build()), "metadata \"bad.string\" length 1125899906842624 exceeds");
  }
  {
    GgufBuilder g = small_file();
    GgufBytes v;
    v.put<uint32_t>(13).put<uint32_t>(0);
    g.raw_kv("bad.type", v.b);
    expect_rejected(with(g.build()),
                    "metadata \"bad.type\" value type 13 is not a GGUF value type");
  }
  {
    GgufBuilder g = small_file();
    g.scalar<uint8_t>("bad.bool", kBool, 2);
    expect_rejected(with(g.build()), "bool byte 2 is neither 0 nor 1");
  }
  {
    GgufBuilder g = small_file();
    GgufBytes v;
    v.put<uint32_t>(kArray).put<uint32_t>(kI32).put<uint64_t>(uint64_t{1} << 61);
    g.raw_kv("bad.array", v.b);
    expect_rejected(with(g.build()), "elements of 4 bytes cannot fit");
  }
  {
    GgufBuilder g = small_file();
    GgufBytes v;
    v.put<uint32_t>(kArray).put<uint32_t>(kString).put<uint64_t>(uint64_t{1} << 60);
    g.raw_kv("bad.strings", v.b);
    expect_rejected(with(g.build()), "strings cannot fit");
  }
  {
    GgufBuilder g = small_file();
    GgufBytes v;  // arrays nested 20 deep
    v.put<uint32_t>(kArray);
    for (int i = 0; i < 20; ++i) v.put<uint32_t>(kArray).put<uint64_t>(1);
    v.put<uint32_t>(kU8).put<uint64_t>(0);
    g.raw_kv("bad.nesting", v.b);
    expect_rejected(with(g.build()), "nested deeper than 8");
  }
  {
    GgufBuilder g = small_file();
    g.u32("llama.block_count", 2);
    expect_rejected(with(g.build()), "duplicate metadata key \"llama.block_count\"");
  }
  {
    GgufBuilder g = small_file();
    g.u32("general.alignment", 48);
    expect_rejected(with(g.build()), "general.alignment must be a power of two");
  }
  {
    GgufBuilder g = small_file();
    g.tensor("bad.type", 31, {32, 1}, std::vector<uint8_t>(32, 0));
    expect_rejected(with(g.build()), "tensor \"bad.type\" has unknown ggml type 31");
  }
  {
    GgufBuilder g = small_file();
    g.tensor("bad.rows", static_cast<uint32_t>(GgmlType::Q4_0), {48, 1},
             std::vector<uint8_t>(36, 0));
    expect_rejected(with(g.build()), "not a multiple of the Q4_0 block size 32");
  }
  {
    GgufBuilder g = small_file();
    g.tensor("bad.dims", 0, {1, 1, 1, 1, 1}, std::vector<uint8_t>(4, 0));
    expect_rejected(with(g.build()), "has 5 dims");
  }
  {
    GgufBuilder g = small_file();
    g.tensor("bad.zero", 0, {4, 0}, {});
    expect_rejected(with(g.build()), "impossible dim 0");
  }
  {
    GgufBuilder g = small_file();
    g.tensor("bad.huge", 0, {uint64_t{1} << 30, uint64_t{1} << 30}, std::vector<uint8_t>(4, 0));
    expect_rejected(with(g.build()), "impossible dim");
  }
  {
    GgufBuilder g = small_file();
    g.tensor(std::string(64, 'n'), 0, {1}, std::vector<uint8_t>(4, 0));
    expect_rejected(with(g.build()), "length 64 exceeds the limit of 63");
  }
  {
    GgufBuilder g = small_file();
    g.tensor("w.Q4_1", 0, {1}, std::vector<uint8_t>(4, 0));
    expect_rejected(with(g.build()), "duplicate tensor name \"w.Q4_1\"");
  }
  {
    GgufBuilder g = small_file();
    g.tensors.back().offset = 4;
    expect_rejected(with(g.build()), "offset 4 is not a multiple of the alignment 32");
  }
  {
    GgufBuilder g = small_file();
    g.tensors.back().offset = 0;  // on top of the first tensor
    expect_rejected(with(g.build()), "tensor data ranges overlap");
  }
  {
    GgufBuilder g = small_file();
    g.tensors.back().offset = uint64_t{1} << 62;
    expect_rejected(with(g.build()), "runs past the end of the data section");
  }
  {
    std::vector<uint8_t> b = good;
    b.resize(b.size() - 1);
    expect_rejected(with(b), "runs past the end of the data section");
  }
}

TEST(GgufFileTest, EveryTruncationIsRejected) {
  TempDir d;
  const std::vector<uint8_t> good = small_file().build();
  const fs::path p = d / "cut.gguf";
  for (size_t n = 0; n < good.size(); ++n) {
    write_bytes(p, std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(n)));
    try {
      GgufFile f(p);
      ADD_FAILURE() << "a file cut to " << n << " of " << good.size() << " bytes was accepted";
    } catch (const FormatError& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
}

// Seeded mutants of a valid file (byte flips, interesting integers, cuts, insertions) must be
// read or refused with a resp::Error, never crash, hang or allocate absurdly; whatever opens is
// then exercised (every array decoded, every dequantizable tensor dequantized).
TEST(GgufFileTest, MutantsNeverCrash) {
  TempDir d;
  const std::vector<uint8_t> good = small_file().build();
  const fs::path p = d / "m.gguf";
  std::mt19937_64 rng(12345);
  const uint64_t interesting[] = {
      0,          1,          2,          3,      4,           31,
      32,         0x7f,       0xff,       0xffff, 0x7fffffff,  0xffffffff,
      1ull << 32, 1ull << 40, 1ull << 62, ~0ull,  good.size(), good.size() - 8,
      64,         13};
  int opened = 0, refused = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> b = good;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !b.empty(); ++e) {
      const size_t at = rng() % b.size();
      switch (rng() % 6) {
        case 0:
        case 1:
          b[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 2:
          b[at] = static_cast<uint8_t>(rng());
          break;
        case 3: {  // an interesting 4- or 8-byte value
          const uint64_t v = interesting[rng() % std::size(interesting)];
          const size_t n = rng() % 2 ? 8 : 4;
          if (at + n <= b.size()) std::memcpy(b.data() + at, &v, n);
          break;
        }
        case 4:
          b.resize(at);
          break;
        default:
          b.insert(b.begin() + static_cast<long>(at), static_cast<uint8_t>(rng()));
          break;
      }
    }
    write_bytes(p, b);
    try {
      GgufFile f(p);
      for (const auto& [key, v] : f.metadata()) {
        if (v.type != GgufType::Array) continue;
        for (const GgufValue& item : f.array_items(v))
          if (item.type == GgufType::Array) (void)f.array_items(item);
        try {
          (void)f.get_string_array(key);
        } catch (const FormatError&) {
        }
        try {
          (void)f.get_int_array(key);
        } catch (const FormatError&) {
        }
      }
      for (const GgufTensorInfo& t : f.tensors()) {
        ASSERT_LE(t.offset + t.nbytes, f.size());
        if (!ggml_type_traits(t.type)->dequantizable) continue;
        std::vector<float> out(static_cast<size_t>(t.numel()));
        f.dequantize(t, out.data());
      }
      ++opened;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
      ++refused;
    }
  }
  // Both outcomes occur: the loop reaches past the header checks.
  EXPECT_GT(opened, 10);
  EXPECT_GT(refused, 1000);
}
