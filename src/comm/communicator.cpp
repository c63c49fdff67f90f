#include "comm/communicator.h"

#include <cstring>

namespace resp {

namespace {
// A request that was complete when it was made (blocking fallback of all_reduce_async).
class DoneRequest final : public CommRequest {
 public:
  void wait() override {}
};

void add(CommStats::Counter& a, const CommStats::Counter& b, int64_t sign) {
  a.calls += sign * b.calls;
  a.elements += sign * b.elements;
  a.bytes += sign * b.bytes;
}
}  // namespace

CommStats& CommStats::operator+=(const CommStats& o) {
  add(all_reduce, o.all_reduce, 1);
  add(all_gather, o.all_gather, 1);
  add(broadcast, o.broadcast, 1);
  add(barrier, o.barrier, 1);
  seconds += o.seconds;
  return *this;
}

CommStats CommStats::operator-(const CommStats& o) const {
  CommStats d = *this;
  add(d.all_reduce, o.all_reduce, -1);
  add(d.all_gather, o.all_gather, -1);
  add(d.broadcast, o.broadcast, -1);
  add(d.barrier, o.barrier, -1);
  d.seconds -= o.seconds;
  return d;
}

std::unique_ptr<CommRequest> Communicator::all_reduce_async(const Tensor& x, ReduceOp op) {
  all_reduce(x, op);
  return std::make_unique<DoneRequest>();
}

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
