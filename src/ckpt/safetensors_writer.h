// Streaming safetensors writer. The header of a file is computed first from the tensors' names,
// dtypes and shapes; then each tensor's bytes are produced by a callback straight into the file,
// so a model is never held in memory (the sources are memory-mapped checkpoints). Files are
// written as PATH.tmp, flushed, fsync'ed and renamed.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
//   {"NAME": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"format": "pt"}}
// padded with spaces to a multiple of 8, then the data: tensors back to back, no gaps, offsets
// relative to the end of the header. Within a file, tensors with larger elements come first so
// every tensor is aligned to its element size.
//
// A model larger than `max_shard_bytes` is split HF-style into model-0000K-of-0000N.safetensors
// (tensors in the given order, a new shard when the next tensor would overflow the limit; a
// tensor larger than the limit gets a shard of its own) plus model.safetensors.index.json
// {"metadata": {"total_size": bytes}, "weight_map": {name: file}}; otherwise model.safetensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace resp {

// Receives a tensor's bytes in order; checks that exactly the announced number arrives.
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual void write(const void* data, size_t n) = 0;
  // Appends n zero bytes.
  void zeros(size_t n);
};

struct TensorEntry {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  // Writes exactly nbytes() bytes (row-major, little-endian) into the sink.
  std::function<void(ByteSink&)> fill;
  size_t nbytes() const;
};

// The safetensors dtype name ("F32", "BF16", ...).
std::string safetensors_dtype_name(DType t);

// Writes one safetensors file. Throws IoError on write failures, ShapeError when a fill writes
// the wrong number of bytes; the temporary file is removed on failure.
void write_safetensors_file(const std::filesystem::path& path,
                            const std::vector<TensorEntry>& tensors,
                            const std::map<std::string, std::string>& metadata = {
                                {"format", "pt"}});

constexpr size_t kDefaultMaxShardBytes = size_t{4} << 30;  // 4 GiB

// While an instance lives, the default shard limit is `bytes` instead of kDefaultMaxShardBytes
// (tests use it to force export_model() to write shards). Not meant to nest across threads.
class ScopedMaxShardBytes {
 public:
  explicit ScopedMaxShardBytes(size_t bytes);
  ~ScopedMaxShardBytes();
  ScopedMaxShardBytes(const ScopedMaxShardBytes&) = delete;
  ScopedMaxShardBytes& operator=(const ScopedMaxShardBytes&) = delete;

 private:
  size_t previous_;
};
// kDefaultMaxShardBytes, or the limit of the innermost live ScopedMaxShardBytes.
size_t default_max_shard_bytes();

// Writes the tensors of a model into `dir` (which must exist): model.safetensors when the data
// fits in `max_shard_bytes` (0: default_max_shard_bytes()), else shards + index. Returns the
// file names written (the index last).
// Writes `text` to PATH.tmp, then renames it to PATH (IoError on failure; no partial file).
void write_text_atomic(const std::filesystem::path& path, const std::string& text);

std::vector<std::string> write_safetensors_model(const std::filesystem::path& dir,
                                                 const std::vector<TensorEntry>& tensors,
                                                 size_t max_shard_bytes = 0);

}  // namespace resp
