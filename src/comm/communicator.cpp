#include "comm/communicator.h"

#include <cstring>

namespace resp {

double Communicator::all_reduce_scalar(double v, ReduceOp op) {
  double buf = v;
  all_reduce(Tensor(&buf, DType::F64, Shape{1}), op);
  return buf;
}

int64_t Communicator::all_reduce_scalar_i64(int64_t v, ReduceOp op) {
  int64_t buf = v;
  all_reduce(Tensor(&buf, DType::I64, Shape{1}), op);
  return buf;
}

void SelfCommunicator::all_gather(const Tensor& out, const Tensor& in) {
  if (out.numel() != in.numel() || out.dtype() != in.dtype())
    throw ShapeError(cat("all_gather: out ", out.str(), " != in ", in.str(), " for one rank"));
  if (in.nbytes() > 0 && out.data() != in.data()) std::memmove(out.data(), in.data(), in.nbytes());
}

}  // namespace resp
