// GGUF files (llama.cpp's checkpoint format, versions 2 and 3, little-endian), memory mapped.
//
// Layout: "GGUF", u32 version, u64 tensor count, u64 metadata count; the metadata key/value
// pairs (key: u64 length + UTF-8 bytes; u32 value type; the value, arrays as u32 element type +
// u64 count + elements); the tensor infos (name, u32 n_dims, u64 dims[n_dims] innermost first,
// u32 ggml type, u64 offset into the data section); padding to `general.alignment` (default
// 32); the data section.
//
// Like the safetensors reader, every value of the file is untrusted: counts and lengths are
// checked against the bytes that remain before anything is allocated, tensors must be of a
// known ggml type, with sane dims that are whole blocks per row, aligned, inside the data
// section and not overlapping. Anything wrong is a one-line FormatError naming the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/ggml_quants.h"

namespace resp {

// GGUF metadata value types (gguf_type).
enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
std::string gguf_type_name(GgufType t);

// One metadata value. Integers of every width are held in `i` (or `u` when above INT64_MAX),
// floats in `f`, bools in `b`, strings in `s`. Arrays are not decoded while parsing (a small file
// can announce millions of elements): they keep their element type, count and position, and
// GgufFile::array_items() or the typed array getters decode them on request.
struct GgufValue {
  GgufType type = GgufType::U8;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  bool b = false;
  std::string s;
  // Arrays only.
  GgufType elem_type = GgufType::U8;
  uint64_t count = 0;
  size_t offset = 0;  // absolute file offset of the first element

  bool is_integer() const;
  bool is_float() const { return type == GgufType::F32 || type == GgufType::F64; }
};

struct GgufTensorInfo {
  std::string name;
  uint32_t type = 0;          // ggml type id
  std::vector<int64_t> dims;  // ggml order: dims[0] is the innermost (contiguous) dimension
  size_t offset = 0;          // absolute byte offset in the file
  size_t nbytes = 0;
  int64_t numel() const;
  int64_t row_size() const { return dims.empty() ? 0 : dims[0]; }  // elements per row
  int64_t rows() const { return row_size() ? numel() / row_size() : 0; }
  // Dims in row-major (PyTorch / safetensors) order: outermost first.
  std::vector<int64_t> torch_shape() const;
  std::string shape_str() const;  // of the ggml dims, "[576, 49152]"
};

class GgufFile {
 public:
  explicit GgufFile(const std::filesystem::path& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }
  size_t size() const { return size_; }

  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const GgufValue* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  // Typed accessors: nullopt when the key is absent, FormatError naming the file and key when
  // it has another type (any integer type is accepted for integers; get_uint also rejects
  // negative values).
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<uint64_t> get_uint(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;  // floats or integers
  std::optional<bool> get_bool(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;
  // Arrays of strings / integers; nullopt when absent.
  std::optional<std::vector<std::string>> get_string_array(const std::string& key) const;
  std::optional<std::vector<int64_t>> get_int_array(const std::string& key) const;
  // The elements of an array value (one level; nested arrays stay undecoded).
  std::vector<GgufValue> array_items(const GgufValue& array) const;

  // Tensor infos in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* tensor(const std::string& name) const;
  const uint8_t* data(const GgufTensorInfo& t) const { return base_ + t.offset; }

  // Rows [row_begin, row_begin + n_rows) of a tensor as f32 (out holds n_rows * row_size()).
  // UnsupportedError naming the tensor for types that cannot be dequantized.
  void dequantize_rows(const GgufTensorInfo& t, int64_t row_begin, int64_t n_rows,
                       float* out) const;
  void dequantize(const GgufTensorInfo& t, float* out) const {
    dequantize_rows(t, 0, t.rows(), out);
  }

 private:
  std::filesystem::path path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

}  // namespace resp
