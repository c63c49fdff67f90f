#include <gtest/gtest.h>

#include "core/error.h"
#include "model/safetensors.h"
#include "test_util.h"

using namespace resp;
using namespace resp::test;

namespace {
std::map<std::string, RawTensor> two_tensors() {
  return {{"a", f32_tensor({3, 4}, 0.0f, 1.0f)}, {"b", f32_tensor({5}, 100.0f, 1.0f)}};
}
std::string error_of(const fs::path& dir) {
  try {
    CheckpointReader r(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Safetensors, ReadsWholeRowsAndColumns) {
  TempDir d;
  write_safetensors(d / "model.safetensors", two_tensors());
  CheckpointReader r(d.path());
  EXPECT_TRUE(r.has("a"));
  EXPECT_EQ(r.info("a").shape, (std::vector<int64_t>{3, 4}));
  std::vector<float> all(12);
  r.read("a", all.data());
  for (int i = 0; i < 12; ++i) EXPECT_EQ(all[static_cast<size_t>(i)], static_cast<float>(i));
  std::vector<float> rows(8);
  const std::vector<int> ri = {2, 0};
  r.read_rows("a", ri, rows.data());
  EXPECT_EQ(rows[0], 8.0f);
  EXPECT_EQ(rows[4], 0.0f);
  std::vector<float> cols(6);
  const std::vector<int> ci = {1, 3};  // non-contiguous
  r.read_cols("a", ci, cols.data());
  EXPECT_EQ(cols, (std::vector<float>{1, 3, 5, 7, 9, 11}));
  const std::vector<int> cc = {1, 2};  // contiguous fast path
  r.read_cols("a", cc, cols.data());
  EXPECT_EQ(cols, (std::vector<float>{1, 2, 5, 6, 9, 10}));
  std::vector<float> b(2);
  const std::vector<int> bi = {4, 1};
  r.read_rows("b", bi, b.data());
  EXPECT_EQ(b, (std::vector<float>{104, 101}));
  const std::vector<int> bad = {3};
  EXPECT_THROW(r.read_rows("a", bad, rows.data()), FormatError);
  EXPECT_THROW(r.read_cols("a", std::vector<int>{4}, cols.data()), FormatError);
  EXPECT_THROW(r.info("missing"), FormatError);
}

TEST(Safetensors, Bf16AndF16Conversion) {
  TempDir d;
  RawTensor t;
  t.dtype = "BF16";
  t.shape = {2};
  const uint16_t v[2] = {f32_to_bf16(1.5f), f32_to_bf16(-3.0f)};
  t.bytes.assign(reinterpret_cast<const uint8_t*>(v), reinterpret_cast<const uint8_t*>(v) + 4);
  RawTensor h;
  h.dtype = "F16";
  h.shape = {1};
  const uint16_t hv = 0x3c00;
  h.bytes.assign(reinterpret_cast<const uint8_t*>(&hv), reinterpret_cast<const uint8_t*>(&hv) + 2);
  write_safetensors(d / "model.safetensors", {{"x", t}, {"y", h}});
  CheckpointReader r(d.path());
  float out[2];
  r.read("x", out);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -3.0f);
  r.read("y", out);
  EXPECT_EQ(out[0], 1.0f);
}

TEST(Safetensors, ShardedIndex) {
  TempDir d;
  write_safetensors(d / "s1.safetensors", {{"a", f32_tensor({2, 2})}});
  write_safetensors(d / "s2.safetensors", {{"b", f32_tensor({3}, 7.0f)}});
  write_text(d / "model.safetensors.index.json",
             R"({"metadata": {}, "weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  CheckpointReader r(d.path());
  EXPECT_TRUE(r.has("a"));
  EXPECT_TRUE(r.has("b"));
  EXPECT_NE(r.file_of("b").find("s2.safetensors"), std::string::npos);
  float b[3];
  r.read("b", b);
  EXPECT_EQ(b[0], 7.0f);

  write_text(d / "model.safetensors.index.json",
             R"({"weight_map": {"a": "s1.safetensors", "c": "s2.safetensors"}})");
  EXPECT_NE(error_of(d.path()).find("\"c\""), std::string::npos);
  write_text(d / "model.safetensors.index.json", R"({"weight_map": {"a": "../etc/passwd"}})");
  EXPECT_NE(error_of(d.path()).find("plain file name"), std::string::npos);
  write_text(d / "model.safetensors.index.json", R"({"weight_map": {"a": "missing.safetensors"}})");
  EXPECT_NE(error_of(d.path()).find("missing.safetensors"), std::string::npos);
}

TEST(Safetensors, RejectsBadFiles) {
  TempDir d;
  const fs::path f = d / "model.safetensors";
  // No checkpoint at all.
  EXPECT_NE(error_of(d.path()).find("no model.safetensors"), std::string::npos);
  // Truncated: shorter than the 8-byte length prefix.
  write_text(f, "abc");
  EXPECT_NE(error_of(d.path()).find("truncated"), std::string::npos);
  // Header length beyond the file.
  write_safetensors(f, two_tensors());
  {
    std::string s = read_text(f);
    s[0] = static_cast<char>(0xff);
    s[1] = static_cast<char>(0xff);
    write_text(f, s);
  }
  EXPECT_NE(error_of(d.path()).find("header length"), std::string::npos);
  // Truncated data section.
  write_safetensors(f, two_tensors());
  {
    std::string s = read_text(f);
    write_text(f, s.substr(0, s.size() - 10));
  }
  EXPECT_NE(error_of(d.path()).find("outside the data section"), std::string::npos);
  // Offsets past the end.
  write_safetensors(f, two_tensors(),
                    R"({"a": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 4800]}})");
  EXPECT_NE(error_of(d.path()).find("\"a\""), std::string::npos);
  // Span not matching shape x dtype.
  write_safetensors(f, two_tensors(),
                    R"({"a": {"dtype": "F32", "shape": [3, 3], "data_offsets": [0, 48]}})");
  EXPECT_NE(error_of(d.path()).find("needs 36"), std::string::npos);
  // Overlapping tensors.
  write_safetensors(f, two_tensors(),
                    R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                        "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})");
  EXPECT_NE(error_of(d.path()).find("overlap"), std::string::npos);
  // Malformed JSON and unknown dtype.
  write_safetensors(f, two_tensors(), R"({"a": {"dtype": )");
  EXPECT_NE(error_of(d.path()).find("malformed"), std::string::npos);
  write_safetensors(f, two_tensors(),
                    R"({"a": {"dtype": "Q4", "shape": [4], "data_offsets": [0, 16]}})");
  EXPECT_NE(error_of(d.path()).find("Q4"), std::string::npos);
  write_safetensors(f, two_tensors(),
                    R"({"a": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}})");
  EXPECT_NE(error_of(d.path()).find("negative"), std::string::npos);
  // Every error names the file.
  EXPECT_NE(error_of(d.path()).find("model.safetensors"), std::string::npos);
}

// What the reference reader (safetensors, Rust) rejects and a lenient one would read wrongly.
TEST(Safetensors, RejectsWhatTheReferenceRejects) {
  TempDir d;
  const fs::path f = d / "model.safetensors";
  // Header length shifted 4 bytes into its space padding: every tensor would be read 4 bytes
  // early. The tensors no longer end at the end of the data section.
  write_safetensors(f, two_tensors(),
                    R"({"a": {"dtype": "F32", "shape": [3, 4], "data_offsets": [0, 48]},
                        "b": {"dtype": "F32", "shape": [5], "data_offsets": [48, 68]}}    )");
  ASSERT_EQ(error_of(d.path()), "");
  {
    std::string s = read_text(f);
    const uint64_t n =
        static_cast<uint8_t>(s[0]) | (static_cast<uint64_t>(static_cast<uint8_t>(s[1])) << 8);
    ASSERT_GE(n, 8u);
    s[0] = static_cast<char>((n - 4) & 0xff);
    s[1] = static_cast<char>(((n - 4) >> 8) & 0xff);
    write_text(f, s);
  }
  EXPECT_NE(error_of(d.path()).find("cover"), std::string::npos) << error_of(d.path());
  // Trailing bytes after the last tensor.
  write_safetensors(f, two_tensors());
  write_text(f, read_text(f) + "junk");
  EXPECT_NE(error_of(d.path()).find("trailing data"), std::string::npos);
  // A gap between tensors.
  write_safetensors(f, two_tensors(),
                    R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [5], "data_offsets": [48, 68]}})");
  EXPECT_NE(error_of(d.path()).find("unused bytes"), std::string::npos);
  // The same name twice (a lenient JSON parser keeps the last).
  write_safetensors(f, two_tensors(),
                    R"({"a": {"dtype": "F32", "shape": [12], "data_offsets": [0, 48]},
                        "a": {"dtype": "F32", "shape": [17], "data_offsets": [0, 68]}})");
  EXPECT_NE(error_of(d.path()).find("appears twice"), std::string::npos);
  // Leading padding, and metadata that is not string -> string.
  write_safetensors(f, two_tensors(),
                    R"(  {"a": {"dtype": "F32", "shape": [12], "data_offsets": [0, 48]},
                          "b": {"dtype": "F32", "shape": [5], "data_offsets": [48, 68]}})");
  EXPECT_NE(error_of(d.path()).find("does not start with"), std::string::npos);
  write_safetensors(f, two_tensors(),
                    R"({"__metadata__": {"format": 3},
                        "a": {"dtype": "F32", "shape": [12], "data_offsets": [0, 48]},
                        "b": {"dtype": "F32", "shape": [5], "data_offsets": [48, 68]}})");
  EXPECT_NE(error_of(d.path()).find("__metadata__"), std::string::npos);
}

TEST(Safetensors, ExpectShapeNamesEverything) {
  TempDir d;
  write_safetensors(d / "model.safetensors", two_tensors());
  CheckpointReader r(d.path());
  EXPECT_NO_THROW(r.expect_shape("a", {3, 4}));
  try {
    r.expect_shape("a", {4, 3});
    FAIL();
  } catch (const FormatError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("model.safetensors"), std::string::npos);
    EXPECT_NE(m.find("[3, 4]"), std::string::npos);
    EXPECT_NE(m.find("[4, 3]"), std::string::npos);
  }
}
