// Arena: declare every tensor's size first (ArenaPlan), allocate once, hand out named views.
// One allocation per model / workspace keeps GPU memory unfragmented and makes the memory
// footprint a number you can print before allocating.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace resp {

class ArenaPlan {
 public:
  // Registers a tensor; names must be unique. Every entry is 256-byte aligned.
  void add(const std::string& name, DType dtype, Shape shape);
  size_t total_bytes() const { return total_; }
  bool contains(const std::string& name) const { return index_.count(name) != 0; }

  struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    size_t offset;
  };
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
  std::map<std::string, size_t> index_;
  size_t total_ = 0;
};

class Arena {
 public:
  Arena() = default;
  // `buffer` must hold at least plan.total_bytes().
  Arena(const ArenaPlan& plan, Buffer buffer);
  Tensor get(const std::string& name) const;
  bool has(const std::string& name) const { return views_.count(name) != 0; }
  size_t bytes() const { return buffer_.bytes(); }
  Device device() const { return buffer_.device(); }

 private:
  Buffer buffer_;
  std::map<std::string, Tensor> views_;
};

}  // namespace resp
