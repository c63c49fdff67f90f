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

#include <array>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "comm/communicator.h"

namespace resp {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over the ranks of `host`. `device` must be the device `stream` belongs to.
  // `force_collectives` (or RESP_NCCL_FORCE_COLLECTIVES=1 in the environment) makes a one-rank
  // communicator call NCCL like a bigger one instead of taking the identity shortcuts: a test
  // switch, so that one GPU can exercise the real ncclAllReduce/Broadcast/AllGather path.
  NcclCommunicator(std::unique_ptr<Communicator> host, cudaStream_t stream, int device,
                   std::string name, double timeout_s = 900.0, bool force_collectives = false);
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
  // The host communicator's counters plus those of the device collectives issued to NCCL (their
  // seconds are not counted: they return once queued on the stream).
  CommStats stats() const override;
  // Forwarded to the host communicator, which verifies sequences (RESP_COMM_CHECK). Device
  // collectives are verified the same way: each is preceded by a sync point naming it.
  void check_in_sync(const char* where) override { host_->check_in_sync(where); }

  Communicator& host() { return *host_; }
  bool forcing_collectives() const;

  struct State;  // NCCL handle, event queue, watchdog (nccl_communicator.cpp)

 private:
  std::unique_ptr<Communicator> host_;
  // Whether a device collective on `t` goes to NCCL (else it is one rank's identity); if so,
  // counts it and, under verification, checks that every rank issues the same `what`.
  bool issue(CommStats::Counter& counter, const Tensor& t, const std::string& what);

  std::shared_ptr<State> st_;  // shared with unfinished async requests
  std::string name_;
  CommStats device_stats_;  // device collectives that went to NCCL
};

// RESP_NCCL_FORCE_COLLECTIVES set to anything but "" or "0".
bool nccl_force_collectives_from_env();

// Pieces of the NCCL communicator's set-up that run without a GPU, exposed for tests.
namespace nccl_detail {

// CUDA's current device is per host thread, and a thread that never selects one works on (and
// creates a context on) device 0: under EXCLUSIVE_PROCESS compute mode that fails on every rank
// but the one that owns device 0. Starts `body` on a new thread that first calls
// `set_device(device)`; body receives "" or why the selection failed.
using SetDevice = cudaError_t (*)(int);
std::thread start_device_thread(int device, SetDevice set_device,
                                std::function<void(const std::string& setup_error)> body);

inline constexpr size_t kUniqueIdBytes = 128;  // NCCL_UNIQUE_ID_BYTES
using UniqueId = std::array<char, kUniqueIdBytes>;
// Rank 0 of `host` makes the id with `make` (returns an ncclResult_t, 0 on success) and
// broadcasts it together with that result, so that when rank 0 fails every rank throws
// CommError, instead of the others waiting in ncclCommInitRank for a peer that never comes.
UniqueId share_unique_id(Communicator& host, const std::function<int(UniqueId&)>& make,
                         const std::string& name);

}  // namespace nccl_detail

// The device a rank should use: its rank among the ranks of its node modulo the visible
// devices, so a job works whether Slurm shows each task one GPU or all of them.
int device_for_local_rank(int local_rank, int visible_devices);

}  // namespace resp
