// An in-process Communicator over threads: each "rank" is a thread and collectives go through
// shared memory. Lets tests run tensor- and data-parallel code paths without MPI. Reductions
// add contributions in rank order on every rank, so all ranks get bit-identical results.
#pragma once

#include <barrier>
#include <cstring>
#include <vector>

#include "comm/communicator.h"

namespace resp::test {

class ThreadGroup {
 public:
  explicit ThreadGroup(int n) : n_(n), slots_(static_cast<size_t>(n)), sync_(n) {}
  int size() const { return n_; }

 private:
  friend class ThreadComm;
  int n_;
  std::vector<const void*> slots_;
  std::barrier<> sync_;
};

class ThreadComm final : public Communicator {
 public:
  ThreadComm(ThreadGroup& g, int r) : g_(g), r_(r) {}
  int rank() const override { return r_; }
  int size() const override { return g_.n_; }
  std::string name() const override { return "threads"; }

  void all_reduce(const Tensor& x, ReduceOp op) override {
    switch (x.dtype()) {
      case DType::F32:
        reduce<float>(x, op);
        break;
      case DType::F64:
        reduce<double>(x, op);
        break;
      case DType::I32:
        reduce<int32_t>(x, op);
        break;
      case DType::I64:
        reduce<int64_t>(x, op);
        break;
      default:
        throw CommError("ThreadComm: unsupported dtype");
    }
  }
  void all_gather(const Tensor& out, const Tensor& in) override {
    g_.slots_[static_cast<size_t>(r_)] = in.data();
    g_.sync_.arrive_and_wait();
    for (int q = 0; q < g_.n_; ++q)
      std::memcpy(static_cast<char*>(out.data()) + static_cast<size_t>(q) * in.nbytes(),
                  g_.slots_[static_cast<size_t>(q)], in.nbytes());
    g_.sync_.arrive_and_wait();
  }
  void broadcast(const Tensor& x, int root) override {
    g_.slots_[static_cast<size_t>(r_)] = x.data();
    g_.sync_.arrive_and_wait();
    if (r_ != root) std::memcpy(x.data(), g_.slots_[static_cast<size_t>(root)], x.nbytes());
    g_.sync_.arrive_and_wait();
  }
  void barrier() override { g_.sync_.arrive_and_wait(); }

 private:
  template <typename T>
  void reduce(const Tensor& x, ReduceOp op) {
    g_.slots_[static_cast<size_t>(r_)] = x.data();
    g_.sync_.arrive_and_wait();
    const size_t n = static_cast<size_t>(x.numel());
    std::vector<T> acc(static_cast<const T*>(g_.slots_[0]),
                       static_cast<const T*>(g_.slots_[0]) + n);
    for (int q = 1; q < g_.n_; ++q) {
      const T* s = static_cast<const T*>(g_.slots_[static_cast<size_t>(q)]);
      for (size_t i = 0; i < n; ++i)
        acc[i] = op == ReduceOp::Sum   ? acc[i] + s[i]
                 : op == ReduceOp::Max ? std::max(acc[i], s[i])
                                       : std::min(acc[i], s[i]);
    }
    g_.sync_.arrive_and_wait();
    std::copy(acc.begin(), acc.end(), static_cast<T*>(x.data()));
    g_.sync_.arrive_and_wait();
  }
  ThreadGroup& g_;
  int r_;
};

}  // namespace resp::test
