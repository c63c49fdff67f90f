// Safetensors checkpoints: one file or shards listed in model.safetensors.index.json, memory
// mapped. Every header value is untrusted: sizes are bounded, offsets must lie inside the file,
// match shape x dtype and not overlap. Reads convert to f32 and can take a subset of rows or
// columns so that a tensor-parallel rank touches only its slice.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace resp {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t file_index = 0;  // which mapped file
  size_t offset = 0;      // absolute byte offset in that file
  size_t nbytes = 0;
  int64_t numel() const;
  std::string shape_str() const;
};

// One memory-mapped safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return tensors_; }
  const uint8_t* data() const { return base_; }
  size_t size() const { return size_; }

 private:
  std::filesystem::path path_;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorInfo> tensors_;
};

// All tensors of a model directory.
class CheckpointReader {
 public:
  // Opens DIR/model.safetensors, or the shards named by DIR/model.safetensors.index.json.
  explicit CheckpointReader(const std::filesystem::path& model_dir);

  bool has(const std::string& name) const { return index_.count(name) != 0; }
  // Throws FormatError naming the tensor and the checkpoint when absent.
  const TensorInfo& info(const std::string& name) const;
  std::vector<std::string> names() const;
  // Path of the file holding `name` (for messages).
  std::string file_of(const std::string& name) const;

  // Checks that `name` exists with exactly `shape` (error names file, tensor, expected, got).
  void expect_shape(const std::string& name, const std::vector<int64_t>& shape) const;

  // Whole tensor as f32 (out must hold numel()).
  void read(const std::string& name, float* out) const;
  // Rows `rows` (indices into dim 0) of a 1-D or 2-D tensor, in the given order.
  void read_rows(const std::string& name, std::span<const int> rows, float* out) const;
  // Columns `cols` of a 2-D tensor: out is [dim0, cols.size()].
  void read_cols(const std::string& name, std::span<const int> cols, float* out) const;

 private:
  const uint8_t* ptr(const TensorInfo& t) const;
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, TensorInfo> index_;
};

}  // namespace resp
