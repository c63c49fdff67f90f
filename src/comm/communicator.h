// Collectives on typed tensors, counted in elements (never bytes). Every rank of a communicator
// must call the same collectives in the same order; implementations throw CommError on failure.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"

namespace resp {

enum class ReduceOp { Sum, Max, Min };

// What went through one communicator: payload elements and bytes as the caller passed them (an
// all_gather counts its output), not wire bytes, which depend on the algorithm (a ring
// all-reduce moves 2(p-1)/p of the payload per rank). Collectives on one rank are not counted.
struct CommStats {
  struct Counter {
    int64_t calls = 0, elements = 0, bytes = 0;
  };
  Counter all_reduce, all_gather, broadcast, barrier;
  double seconds = 0;  // wall time inside collectives, waiting for slower ranks included
  int64_t total_bytes() const { return all_reduce.bytes + all_gather.bytes + broadcast.bytes; }
  CommStats& operator+=(const CommStats& o);
  CommStats operator-(const CommStats& o) const;
};

// A collective in flight. wait() completes it (idempotent); the destructor waits too, so the
// buffer is never released while MPI may still write it.
class CommRequest {
 public:
  virtual ~CommRequest() = default;
  virtual void wait() = 0;
  // Lets the library progress the operation without blocking; true once complete.
  virtual bool test() { return true; }
};

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

  // Starts an in-place all-reduce; `x` must be neither read nor written until the request's
  // wait(). Every rank starts the same async and blocking collectives in the same order. The
  // default is the blocking all_reduce (the request is complete on return), so implementations
  // without a non-blocking path stay correct.
  virtual std::unique_ptr<CommRequest> all_reduce_async(const Tensor& x,
                                                        ReduceOp op = ReduceOp::Sum);
  // Counters of the collectives issued so far; zeros for implementations that do not count.
  virtual CommStats stats() const { return {}; }
  // A named point every rank must reach with the same collectives behind it. A no-op unless the
  // implementation verifies collective sequences (see CheckedCommunicator), where it is a
  // collective that throws CommError on every rank when another rank is at a different call.
  virtual void check_in_sync(const char* where) { (void)where; }

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
