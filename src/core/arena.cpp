#include "core/arena.h"

namespace resp {

void ArenaPlan::add(const std::string& name, DType dtype, Shape shape) {
  if (index_.count(name)) throw ShapeError(cat("ArenaPlan: duplicate tensor name ", name));
  const size_t offset = ((total_ + 255) / 256) * 256;
  index_[name] = entries_.size();
  entries_.push_back({name, dtype, shape, offset});
  total_ = offset + static_cast<size_t>(shape.numel()) * dtype_size(dtype);
}

Arena::Arena(const ArenaPlan& plan, Buffer buffer) : buffer_(std::move(buffer)) {
  if (buffer_.bytes() < plan.total_bytes())
    throw ShapeError(
        cat("Arena: buffer of ", buffer_.bytes(), " bytes < plan of ", plan.total_bytes()));
  for (const auto& e : plan.entries()) views_[e.name] = buffer_.tensor(e.dtype, e.shape, e.offset);
}

Tensor Arena::get(const std::string& name) const {
  auto it = views_.find(name);
  if (it == views_.end()) throw ShapeError(cat("Arena: no tensor named ", name));
  return it->second;
}

}  // namespace resp
