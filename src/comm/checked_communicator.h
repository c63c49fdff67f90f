// CheckedCommunicator: wraps any Communicator (MPI, NCCL, threads) to count what goes through
// it and, in verification mode, to check that every rank issues the same collective sequence.
//
// Why verification: a rank that skips a collective (e.g. `if (local_heads > 0) all_reduce(...)`
// on a rank whose shard was pruned to nothing) does not fail where the bug is. Its next
// collective pairs with the other ranks' skipped one: if the shapes agree the data are silently
// mixed up; otherwise MPI reports a truncation, or the job deadlocks at the end. With
// verification on, every collective is preceded by an all_gather of a small descriptor (kind,
// dtype, element count, root/op); when descriptors differ, every rank sees the same table and
// throws the same CommError before touching the payload, so the job fails at once and nobody
// waits forever. Skips between collectives of identical shape are caught at the next collective
// that differs or at the next check_in_sync() point (phase boundaries), which every rank reaches
// with a different descriptor than the rank still inside the phase.
//
// The cost is one extra small collective per collective, so it is off unless asked for
// (RESP_COMM_CHECK=1 or CheckedCommunicator::Options::verify); counting is always on.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace resp {

class CheckedCommunicator final : public Communicator {
 public:
  struct Options {
    bool verify = false;
  };
  CheckedCommunicator(std::unique_ptr<Communicator> inner, Options options);

  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string name() const override { return inner_->name(); }
  void all_reduce(const Tensor& x, ReduceOp op = ReduceOp::Sum) override;
  void all_gather(const Tensor& out, const Tensor& in) override;
  void broadcast(const Tensor& x, int root) override;
  void barrier() override;
  // The returned request must not outlive this communicator (its wait time is counted here).
  std::unique_ptr<CommRequest> all_reduce_async(const Tensor& x,
                                                ReduceOp op = ReduceOp::Sum) override;
  CommStats stats() const override { return stats_; }
  void check_in_sync(const char* where) override;

  bool verifying() const { return options_.verify; }
  Communicator& inner() { return *inner_; }

 private:
  enum class Kind : int64_t { AllReduce = 1, AllGather, Broadcast, Barrier, Sync, AllReduceAsync };
  // Collective over the inner communicator; throws CommError on every rank when any rank's
  // descriptor differs. `detail` is the reduce op or the broadcast root.
  void verify(Kind kind, const Tensor* t, int64_t detail, const char* where);
  void count(CommStats::Counter& c, const Tensor& t);

  std::unique_ptr<Communicator> inner_;
  Options options_;
  CommStats stats_;
  int64_t calls_ = 0;  // collectives issued through this object (for error messages)
};

// Writes the counters of some communicators as one JSON object to `path` on destruction, unless
// an exception is unwinding (a failed run's numbers would mislead). For benchmark scripts
// (tools/parallel_bench.py), which read bytes per collective type and time in collectives.
class CommStatsReport {
 public:
  struct Entry {
    std::string name;
    const Communicator* comm;
  };
  CommStatsReport(std::string path, std::string header_json, std::vector<Entry> comms);
  ~CommStatsReport();
  CommStatsReport(const CommStatsReport&) = delete;
  CommStatsReport& operator=(const CommStatsReport&) = delete;
  std::string json() const;

 private:
  std::string path_, header_;
  std::vector<Entry> comms_;
  int uncaught_ = 0;
  double start_ = 0;
};

// RESP_COMM_CHECK=1 (or any value other than empty/0) turns verification on. Read once per call;
// every rank of a job must see the same value (mpirun forwards the environment).
bool comm_check_from_env();

}  // namespace resp
