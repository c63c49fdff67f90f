// Tensor: a non-owning view of memory that some Buffer (or mmap) owns. Views are cheap to copy
// and are what every backend op takes; shapes are runtime data because pruning makes every
// layer's widths different.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <string>

#include "core/dtype.h"
#include "core/error.h"

namespace resp {

enum class Device : uint8_t { CPU, CUDA };
std::string_view device_name(Device d);

constexpr int kMaxRank = 4;

struct Shape {
  std::array<int64_t, kMaxRank> dims{};
  int rank = 0;

  Shape() = default;
  Shape(std::initializer_list<int64_t> d);
  int64_t operator[](int i) const { return dims[static_cast<size_t>(i)]; }
  int64_t numel() const;
  bool operator==(const Shape& o) const;
  std::string str() const;
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(void* data, DType dtype, Shape shape, Device device = Device::CPU);

  void* data() const { return data_; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  Device device() const { return device_; }
  int rank() const { return shape_.rank; }
  int64_t dim(int i) const { return shape_[i]; }
  // Stride of dimension i in elements; row-major views may have a padded leading stride.
  int64_t stride(int i) const { return strides_[static_cast<size_t>(i)]; }
  int64_t numel() const { return shape_.numel(); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool empty() const { return data_ == nullptr || numel() == 0; }
  bool is_contiguous() const;

  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  float* f32() const;
  int32_t* i32() const;

  // Same memory, new shape (must be contiguous and have the same element count).
  Tensor view(Shape s) const;
  // Rows [begin, begin+count) of dimension 0.
  Tensor slice_rows(int64_t begin, int64_t count) const;
  std::string str() const;

 private:
  void* data_ = nullptr;
  DType dtype_ = DType::F32;
  Shape shape_;
  std::array<int64_t, kMaxRank> strides_{};
  Device device_ = Device::CPU;
};

// Owned memory on some device, freed by the deleter of whoever allocated it (a Backend).
class Buffer {
 public:
  using Deleter = std::function<void(void*)>;
  Buffer() = default;
  Buffer(void* ptr, size_t bytes, Device device, Deleter deleter);
  Buffer(Buffer&&) noexcept;
  Buffer& operator=(Buffer&&) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  void* data() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  Tensor tensor(DType dtype, Shape shape, size_t byte_offset = 0) const;

 private:
  void reset();
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  Device device_ = Device::CPU;
  Deleter deleter_;
};

// Plain 256-byte-aligned host memory (staging buffers, CPU backend allocations).
Buffer allocate_host(size_t bytes);

}  // namespace resp
