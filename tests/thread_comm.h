// An in-process Communicator over threads: each "rank" is a thread and collectives go through
// shared memory. Lets tests run tensor- and data-parallel code paths without MPI. Reductions
// add contributions in rank order on every rank, so all ranks get bit-identical results.
#pragma once

#include <barrier>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/parallel_layout.h"

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

// Runs `body(par, rank)` on tp x dp "ranks" (threads) with world, TP and DP communicators laid
// out as ParallelLayout::make lays out real ranks; returns when every rank is done.
inline void run_on_thread_ranks(int tp, int dp,
                                const std::function<void(ParallelContext&, int)>& body) {
  ThreadGroup world(tp * dp);
  std::vector<std::unique_ptr<ThreadGroup>> tp_groups, dp_groups;
  for (int i = 0; i < dp; ++i) tp_groups.push_back(std::make_unique<ThreadGroup>(tp));
  for (int i = 0; i < tp; ++i) dp_groups.push_back(std::make_unique<ThreadGroup>(dp));
  std::vector<std::thread> threads;
  for (int r = 0; r < tp * dp; ++r)
    threads.emplace_back([&, r] {
      ParallelContext par;
      par.layout = ParallelLayout::make(tp * dp, r, tp);
      par.world = std::make_unique<ThreadComm>(world, r);
      par.tp = std::make_unique<ThreadComm>(*tp_groups[static_cast<size_t>(par.layout.dp_rank)],
                                            par.layout.tp_rank);
      par.dp = std::make_unique<ThreadComm>(*dp_groups[static_cast<size_t>(par.layout.tp_rank)],
                                            par.layout.dp_rank);
      body(par, r);
    });
  for (auto& t : threads) t.join();
}

}  // namespace resp::test
