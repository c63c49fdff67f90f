#include "core/tensor.h"

#include <cstdlib>
#include <sstream>

namespace resp {

std::string_view device_name(Device d) {
  return d == Device::CPU ? "cpu" : "cuda";
}

Shape::Shape(std::initializer_list<int64_t> d) {
  if (d.size() > kMaxRank) throw ShapeError(cat("Shape: rank ", d.size(), " > ", kMaxRank));
  for (int64_t v : d) {
    if (v < 0) throw ShapeError("Shape: negative dimension");
    dims[static_cast<size_t>(rank++)] = v;
  }
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank; ++i) n *= dims[static_cast<size_t>(i)];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (rank != o.rank) return false;
  for (int i = 0; i < rank; ++i)
    if (dims[static_cast<size_t>(i)] != o.dims[static_cast<size_t>(i)]) return false;
  return true;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << '[';
  for (int i = 0; i < rank; ++i) os << (i ? ", " : "") << dims[static_cast<size_t>(i)];
  os << ']';
  return os.str();
}

Tensor::Tensor(void* data, DType dtype, Shape shape, Device device)
    : data_(data), dtype_(dtype), shape_(shape), device_(device) {
  int64_t s = 1;
  for (int i = shape_.rank - 1; i >= 0; --i) {
    strides_[static_cast<size_t>(i)] = s;
    s *= shape_[i];
  }
}

bool Tensor::is_contiguous() const {
  int64_t s = 1;
  for (int i = shape_.rank - 1; i >= 0; --i) {
    if (shape_[i] != 1 && strides_[static_cast<size_t>(i)] != s) return false;
    s *= shape_[i];
  }
  return true;
}

float* Tensor::f32() const {
  if (dtype_ != DType::F32) throw ShapeError(cat("expected F32 tensor, got ", dtype_name(dtype_)));
  return static_cast<float*>(data_);
}

int32_t* Tensor::i32() const {
  if (dtype_ != DType::I32) throw ShapeError(cat("expected I32 tensor, got ", dtype_name(dtype_)));
  return static_cast<int32_t*>(data_);
}

Tensor Tensor::view(Shape s) const {
  if (!is_contiguous()) throw ShapeError("Tensor::view of a non-contiguous tensor");
  if (s.numel() != numel())
    throw ShapeError(
        cat("Tensor::view ", shape_.str(), " -> ", s.str(), ": element count differs"));
  return Tensor(data_, dtype_, s, device_);
}

Tensor Tensor::slice_rows(int64_t begin, int64_t count) const {
  if (shape_.rank < 1 || begin < 0 || count < 0 || begin + count > shape_[0])
    throw ShapeError(
        cat("Tensor::slice_rows [", begin, ", ", begin + count, ") of ", shape_.str()));
  Tensor t = *this;
  t.shape_.dims[0] = count;
  t.data_ =
      static_cast<char*>(data_) + static_cast<size_t>(begin * strides_[0]) * dtype_size(dtype_);
  return t;
}

std::string Tensor::str() const {
  return cat(dtype_name(dtype_), shape_.str(), "@", device_name(device_));
}

Buffer::Buffer(void* ptr, size_t bytes, Device device, Deleter deleter)
    : ptr_(ptr), bytes_(bytes), device_(device), deleter_(std::move(deleter)) {}

Buffer::Buffer(Buffer&& o) noexcept
    : ptr_(o.ptr_), bytes_(o.bytes_), device_(o.device_), deleter_(std::move(o.deleter_)) {
  o.ptr_ = nullptr;
  o.bytes_ = 0;
}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    reset();
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    device_ = o.device_;
    deleter_ = std::move(o.deleter_);
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

Buffer::~Buffer() {
  reset();
}

void Buffer::reset() {
  if (ptr_ && deleter_) deleter_(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
}

Tensor Buffer::tensor(DType dtype, Shape shape, size_t byte_offset) const {
  const size_t need = byte_offset + static_cast<size_t>(shape.numel()) * dtype_size(dtype);
  if (need > bytes_)
    throw ShapeError(cat("Buffer::tensor: view of ", need, " bytes exceeds buffer of ", bytes_));
  return Tensor(static_cast<char*>(ptr_) + byte_offset, dtype, shape, device_);
}

Buffer allocate_host(size_t bytes) {
  // 256-byte alignment, like cudaMalloc, so arena offsets keep the same alignment on any device.
  const size_t rounded = ((bytes + 255) / 256) * 256;
  void* p = rounded ? std::aligned_alloc(256, rounded) : nullptr;
  if (rounded && !p) throw IoError(cat("out of host memory allocating ", bytes, " bytes"));
  return Buffer(p, bytes, Device::CPU, [](void* q) { std::free(q); });
}

}  // namespace resp
