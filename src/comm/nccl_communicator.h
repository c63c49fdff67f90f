// NCCL implementation of Communicator for tensors in GPU memory, built on top of a host
// communicator (MPI in the application, any Communicator in tests) of the same ranks.
//
// - Set-up: rank 0 of the group creates the ncclUniqueId and the host communicator broadcasts
//   it, so each TP or DP sub-communicator of the MPI layout gets its own NCCL communicator.
// - Device tensors go through NCCL on `stream` (the CUDA backend's stream): collectives are
//   stream-ordered and return at once, counted in elements like every Communicator. Host
//   tensors (loss sums, counters, score vectors) go through the host communicator, so callers
//   need not know where a tensor lives.
// - Failures: a watchdog thread polls ncclCommGetAsyncError and the oldest unfinished
//   collective; on an error, or when a collective has not finished after `timeout_s`, it aborts
//   the NCCL communicator (ncclCommAbort), which releases kernels blocked on dead peers. The next
//   call on this communicator then throws CommError with the reason.
// - all_reduce_async of device tensors runs on a second stream owned by the communicator
//   (overlap with compute); see all_reduce_async below.
#pragma once

#include <cuda_runtime_api.h>

#include <memory>
#include <string>

#include "comm/communicator.h"

namespace resp {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over the ranks of `host`. `device` must be the device `stream` belongs to.
  NcclCommunicator(std::unique_ptr<Communicator> host, cudaStream_t stream, int device,
                   std::string name, double timeout_s = 900.0);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override;
  int size() const override;
  std::string name() const override { return name_; }
  void all_reduce(const Tensor& x, ReduceOp op = ReduceOp::Sum) override;
  void all_gather(const Tensor& out, const Tensor& in) override;
  void broadcast(const Tensor& x, int root) override;
  // Device tensors: the all-reduce runs on the communicator's own stream once the compute
  // stream has produced x, so the compute stream goes on (e.g. with the backward of the layers
  // below) while it runs. The request's wait() does not block the host; it makes the compute
  // stream wait for the result. Collectives of one communicator still execute in issue order.
  // Host tensors: the host communicator's all_reduce_async. Requests must be waited for (or
  // destroyed) before the communicator is.
  std::unique_ptr<CommRequest> all_reduce_async(const Tensor& x,
                                                ReduceOp op = ReduceOp::Sum) override;
  // Waits (with the watchdog's timeout) for this communicator's collectives on the stream,
  // then a host barrier.
  void barrier() override;

  Communicator& host() { return *host_; }

  struct State;  // NCCL handle, event queue, watchdog (nccl_communicator.cpp)

 private:
  std::unique_ptr<Communicator> host_;
  std::shared_ptr<State> st_;  // shared with unfinished async requests
  std::string name_;
};

// The device a rank should use: its rank among the ranks of its node modulo the visible
// devices, so a job works whether Slurm shows each task one GPU or all of them.
int device_for_local_rank(int local_rank, int visible_devices);

}  // namespace resp
