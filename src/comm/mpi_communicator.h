// MPI implementation of Communicator over host buffers, and the MPI process lifetime.
// When an exception unwinds through MpiRuntime, MPI is left running so that main() can print
// the error first and then call MpiRuntime::shutdown_after_error().
#pragma once

#include <functional>
#include <memory>

#include "comm/communicator.h"

namespace resp {

// Initialises MPI on construction (works as a singleton without mpirun) and finalises on normal
// destruction.
class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;
  int world_rank() const { return rank_; }
  int world_size() const { return size_; }
  // Size of the group of ranks sharing this node (for device selection).
  int local_rank() const { return local_rank_; }
  int local_size() const { return local_size_; }
  std::unique_ptr<class MpiCommunicator> world() const;
  // Terminates every rank of the job with `code` (used when one rank fails).
  [[noreturn]] static void abort(int code);
  // Called by main() after reporting an error: aborts the job when MPI still runs with more
  // than one rank (the others may be blocked in a collective), else finalises MPI if needed.
  static void shutdown_after_error(int code);

 private:
  int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
  int uncaught_at_start_ = 0;
  bool owns_ = false;
};

// Collectives over host buffers. A communicator of one rank is the identity on any tensor,
// device ones included (one rank on a GPU without NCCL): all_reduce and broadcast touch nothing,
// and all_gather into another buffer copies with the device copy set by set_device_copy (the
// backend's copy), since memcpy on a device pointer would fault.
class MpiCommunicator final : public Communicator {
 public:
  using DeviceCopy = std::function<void(const Tensor& dst, const Tensor& src)>;
  ~MpiCommunicator() override;
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_; }
  void all_reduce(const Tensor& x, ReduceOp op = ReduceOp::Sum) override;
  // MPI_Iallreduce: progresses while the caller computes (inside later MPI calls or test()).
  std::unique_ptr<CommRequest> all_reduce_async(const Tensor& x,
                                                ReduceOp op = ReduceOp::Sum) override;
  void all_gather(const Tensor& out, const Tensor& in) override;
  void broadcast(const Tensor& x, int root) override;
  void barrier() override;
  void set_device_copy(DeviceCopy copy) { device_copy_ = std::move(copy); }
  // Ranks with equal `color` form a new communicator, ordered by `key`.
  std::unique_ptr<MpiCommunicator> split(int color, int key, const std::string& name) const;

  struct Handle;
  // Only MpiRuntime and split() can make the key: communicators come from MPI, not from users.
  class Key {
    friend class MpiRuntime;
    friend class MpiCommunicator;
    Key() = default;
  };
  MpiCommunicator(Key, std::unique_ptr<Handle> h, std::string name, bool owned);

 private:
  std::unique_ptr<Handle> h_;
  std::string name_;
  bool owned_ = false;
  int rank_ = 0, size_ = 1;
  DeviceCopy device_copy_;

  void gather_one_rank(const Tensor& out, const Tensor& in);
};

}  // namespace resp
