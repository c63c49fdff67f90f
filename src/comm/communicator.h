// Collectives on typed tensors, counted in elements (never bytes). Every rank of a communicator
// must call the same collectives in the same order; implementations throw CommError on failure.
#pragma once

#include <memory>
#include <string>

#include "core/tensor.h"

namespace resp {

enum class ReduceOp { Sum, Max, Min };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;

  // In place: every rank ends with the reduction of all ranks' `x` (F32, F64, I32 or I64).
  virtual void all_reduce(const Tensor& x, ReduceOp op = ReduceOp::Sum) = 0;
  // out = concatenation over ranks (rank order) of each rank's `in`; out.numel() ==
  // size*in.numel().
  virtual void all_gather(const Tensor& out, const Tensor& in) = 0;
  // In place: every rank ends with root's `x`.
  virtual void broadcast(const Tensor& x, int root) = 0;
  virtual void barrier() = 0;

  // Convenience for scalars (host values).
  double all_reduce_scalar(double v, ReduceOp op = ReduceOp::Sum);
  int64_t all_reduce_scalar_i64(int64_t v, ReduceOp op = ReduceOp::Sum);
};

// A communicator of one rank: every collective is the identity. Used by single-rank tools and
// tests that do not start MPI.
class SelfCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "self"; }
  void all_reduce(const Tensor&, ReduceOp) override {}
  void all_gather(const Tensor& out, const Tensor& in) override;
  void broadcast(const Tensor&, int) override {}
  void barrier() override {}
};

}  // namespace resp
