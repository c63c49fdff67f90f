#include "comm/nccl_communicator.h"

#include <nccl.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>

#include "core/error.h"

namespace resp {

namespace {

using Clock = std::chrono::steady_clock;

void check_cuda(cudaError_t rc, const std::string& what) {
  if (rc != cudaSuccess)
    throw CommError(cat(what, ": ", cudaGetErrorName(rc), ": ", cudaGetErrorString(rc)));
}

ncclDataType_t nccl_type(DType t, const std::string& what) {
  switch (t) {
    case DType::F32:
      return ncclFloat32;
    case DType::F64:
      return ncclFloat64;
    case DType::BF16:
      return ncclBfloat16;
    case DType::F16:
      return ncclFloat16;
    case DType::I32:
      return ncclInt32;
    case DType::I64:
      return ncclInt64;
    case DType::U8:
      return ncclUint8;
  }
  throw CommError(cat(what, ": unsupported dtype ", dtype_name(t)));
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Max:
      return ncclMax;
    case ReduceOp::Min:
      return ncclMin;
    case ReduceOp::Sum:
      break;
  }
  return ncclSum;
}

bool on_device(const Tensor& t) {
  return t.device() == Device::CUDA;
}

}  // namespace

int device_for_local_rank(int local_rank, int visible_devices) {
  if (visible_devices <= 0) throw CommError("no visible CUDA device for NCCL");
  return local_rank % visible_devices;
}

bool nccl_force_collectives_from_env() {
  const char* v = std::getenv("RESP_NCCL_FORCE_COLLECTIVES");
  return v && *v && std::string_view(v) != "0";
}

namespace nccl_detail {

std::thread start_device_thread(int device, SetDevice set_device,
                                std::function<void(const std::string& setup_error)> body) {
  return std::thread([device, set_device, body = std::move(body)] {
    const cudaError_t rc = set_device(device);
    body(rc == cudaSuccess ? std::string()
                           : cat("cudaSetDevice(", device, ") in the NCCL watchdog thread: ",
                                 cudaGetErrorName(rc), ": ", cudaGetErrorString(rc)));
  });
}

static_assert(sizeof(ncclUniqueId) == kUniqueIdBytes, "NCCL_UNIQUE_ID_BYTES changed");

UniqueId share_unique_id(Communicator& host, const std::function<int(UniqueId&)>& make,
                         const std::string& name) {
  // [status (int32), 4 bytes padding, id]: one broadcast, so every rank learns both at once.
  std::array<char, 8 + kUniqueIdBytes> msg{};
  UniqueId id{};
  int32_t status = 0;
  if (host.rank() == 0) {
    status = make(id);
    std::memcpy(msg.data(), &status, sizeof(status));
    std::memcpy(msg.data() + 8, id.data(), id.size());
  }
  host.broadcast(Tensor(msg.data(), DType::U8, Shape{static_cast<int64_t>(msg.size())}), 0);
  std::memcpy(&status, msg.data(), sizeof(status));
  if (status != ncclSuccess)
    throw CommError(cat("ncclGetUniqueId for ", name, " failed on rank 0 of ", host.size(), ": ",
                        ncclGetErrorString(static_cast<ncclResult_t>(status))));
  std::memcpy(id.data(), msg.data() + 8, id.size());
  return id;
}

}  // namespace nccl_detail

// Everything that touches the NCCL handle from two threads lives here, under `mu`.
struct NcclCommunicator::State {
  ncclComm_t comm = nullptr;
  cudaStream_t stream = nullptr;
  // all_reduce_async's collectives run here, so the compute stream is not held up by them.
  cudaStream_t comm_stream = nullptr;
  // Recorded on comm_stream after each async collective; a later blocking collective makes the
  // compute stream wait on it first, so this communicator's NCCL calls execute in issue order
  // on every rank whichever stream they were queued on (two concurrently running collectives of
  // one communicator can deadlock).
  cudaEvent_t async_tail = nullptr;
  bool async_outstanding = false;
  bool closed = false;  // the communicator is gone; late request waits do nothing
  int device = 0;
  int rank = 0, size = 1;
  bool force = false;  // one rank still calls NCCL (tests)
  double timeout_s = 900.0;
  std::string name;

  std::mutex mu;
  struct Pending {
    cudaEvent_t done;
    Clock::time_point start;
    std::string what;
  };
  std::deque<Pending> pending;   // collectives in flight, oldest first
  std::deque<cudaEvent_t> free;  // finished events for reuse
  std::string failure;           // set once; every later call throws it
  bool aborted = false;
  std::atomic<bool> stop{false};
  std::thread watchdog;

  // Retires finished collectives; records a failure on an async NCCL error or a timeout.
  // Caller holds `mu`. Returns true while something is still in flight.
  bool poll_locked() {
    if (aborted) return false;
    ncclResult_t async = ncclSuccess;
    if (ncclCommGetAsyncError(comm, &async) != ncclSuccess || async != ncclSuccess) {
      fail_locked(cat("NCCL asynchronous error on ", name, ": ", ncclGetErrorString(async)));
      return false;
    }
    while (!pending.empty()) {
      const cudaError_t q = cudaEventQuery(pending.front().done);
      if (q == cudaErrorNotReady) break;
      if (q != cudaSuccess) {
        fail_locked(cat("CUDA error while ", pending.front().what, " on ", name, ": ",
                        cudaGetErrorString(q)));
        return false;
      }
      free.push_back(pending.front().done);
      pending.pop_front();
    }
    if (pending.empty()) return false;
    const double age = std::chrono::duration<double>(Clock::now() - pending.front().start).count();
    if (age > timeout_s) {
      fail_locked(cat(pending.front().what, " on ", name, " did not finish within ", timeout_s,
                      " s (a peer rank is dead or stuck)"));
      return false;
    }
    return true;
  }

  void fail_locked(std::string why) {
    if (failure.empty()) failure = std::move(why);
    if (!aborted && comm) {
      ncclCommAbort(comm);  // releases kernels blocked in the collective
      comm = nullptr;
      aborted = true;
    }
  }

  void throw_if_failed_locked() {
    if (!failure.empty()) throw CommError(failure);
  }

  cudaEvent_t take_event_locked() {
    cudaEvent_t ev = nullptr;
    if (!free.empty()) {
      ev = free.front();
      free.pop_front();
    } else {
      check_cuda(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
    }
    return ev;
  }

  // Marks the end of the collective just queued on `on` for the watchdog.
  void record_locked(const std::string& what, cudaStream_t on) {
    cudaEvent_t ev = take_event_locked();
    check_cuda(cudaEventRecord(ev, on), "cudaEventRecord");
    pending.push_back({ev, Clock::now(), what});
  }
  void record_locked(const std::string& what) { record_locked(what, stream); }

  // Before a collective on the compute stream: it runs after every async one queued earlier.
  void order_after_async_locked() {
    if (!async_outstanding) return;
    check_cuda(cudaStreamWaitEvent(stream, async_tail, 0), "cudaStreamWaitEvent");
    async_outstanding = false;
  }

  // Runs on the watchdog thread once it has selected `device` (setup_error says if it could not).
  void watch(const std::string& setup_error) {
    if (!setup_error.empty()) {
      std::lock_guard<std::mutex> lock(mu);
      fail_locked(setup_error);
      return;
    }
    while (!stop.load()) {
      {
        std::lock_guard<std::mutex> lock(mu);
        poll_locked();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
};

namespace {
// Releases what the constructor made so far when it throws halfway (the destructor does not run
// then): a leaked ncclComm_t keeps its peers' connections and device memory until exit.
class PartialState {
 public:
  explicit PartialState(NcclCommunicator::State& s) : s_(s) {}
  PartialState(const PartialState&) = delete;
  PartialState& operator=(const PartialState&) = delete;
  ~PartialState();
  void keep() { keep_ = true; }

 private:
  NcclCommunicator::State& s_;
  bool keep_ = false;
};
}  // namespace

PartialState::~PartialState() {
  if (keep_) return;
  if (s_.async_tail) cudaEventDestroy(s_.async_tail);
  if (s_.comm_stream) cudaStreamDestroy(s_.comm_stream);
  if (s_.comm) ncclCommDestroy(s_.comm);
  s_.async_tail = nullptr;
  s_.comm_stream = nullptr;
  s_.comm = nullptr;
}

NcclCommunicator::NcclCommunicator(std::unique_ptr<Communicator> host, cudaStream_t stream,
                                   int device, std::string name, double timeout_s,
                                   bool force_collectives)
    : host_(std::move(host)), st_(std::make_shared<State>()), name_(std::move(name)) {
  if (!host_) throw CommError("NcclCommunicator needs a host communicator");
  State& s = *st_;
  s.stream = stream;
  s.device = device;
  s.rank = host_->rank();
  s.size = host_->size();
  s.timeout_s = timeout_s;
  s.name = name_;
  s.force = force_collectives || nccl_force_collectives_from_env();
  check_cuda(cudaSetDevice(device), cat("cudaSetDevice(", device, ") for ", name_));
  const nccl_detail::UniqueId id_bytes = nccl_detail::share_unique_id(
      *host_,
      [](nccl_detail::UniqueId& out) {
        ncclUniqueId id{};
        const ncclResult_t rc = ncclGetUniqueId(&id);
        std::memcpy(out.data(), &id, sizeof(id));
        return static_cast<int>(rc);
      },
      name_);
  ncclUniqueId id;
  std::memcpy(&id, id_bytes.data(), sizeof(id));
  PartialState unwind(s);
  const ncclResult_t rc = ncclCommInitRank(&s.comm, s.size, id, s.rank);
  if (rc != ncclSuccess) {
    s.comm = nullptr;  // not a communicator NCCL made; nothing to destroy
    throw CommError(cat("ncclCommInitRank for ", name_, " (rank ", s.rank, " of ", s.size,
                        ", device ", device, "): ", ncclGetErrorString(rc)));
  }
  check_cuda(cudaStreamCreateWithFlags(&s.comm_stream, cudaStreamNonBlocking),
             cat("cudaStreamCreate for ", name_));
  check_cuda(cudaEventCreateWithFlags(&s.async_tail, cudaEventDisableTiming),
             cat("cudaEventCreate for ", name_));
  // std::thread throws std::system_error when no thread can be made: the guard still runs.
  s.watchdog = nccl_detail::start_device_thread(
      device, &cudaSetDevice, [&s](const std::string& setup_error) { s.watch(setup_error); });
  unwind.keep();
}

NcclCommunicator::~NcclCommunicator() {
  State& s = *st_;
  s.stop.store(true);
  if (s.watchdog.joinable()) s.watchdog.join();
  std::lock_guard<std::mutex> lock(s.mu);
  // No event, stream or comm is released while a stream uses it.
  if (s.comm_stream) cudaStreamSynchronize(s.comm_stream);
  cudaStreamSynchronize(s.stream);
  for (auto& p : s.pending) cudaEventDestroy(p.done);
  for (auto& e : s.free) cudaEventDestroy(e);
  if (s.async_tail) cudaEventDestroy(s.async_tail);
  if (s.comm_stream) cudaStreamDestroy(s.comm_stream);
  if (s.comm) ncclCommDestroy(s.comm);
  s.closed = true;
}

int NcclCommunicator::rank() const {
  return st_->rank;
}

int NcclCommunicator::size() const {
  return st_->size;
}

bool NcclCommunicator::forcing_collectives() const {
  return st_->force;
}

CommStats NcclCommunicator::stats() const {
  CommStats c = host_->stats();
  c += device_stats_;
  return c;
}

bool NcclCommunicator::issue(CommStats::Counter& counter, const Tensor& t,
                             const std::string& what) {
  const State& s = *st_;
  if ((s.size == 1 && !s.force) || t.numel() == 0) return false;
  // A no-op unless the host verifies sequences; `what` names kind, dtype, count (and root), so
  // ranks that disagree on the device collective fail here instead of hanging inside NCCL.
  host_->check_in_sync(what.c_str());
  ++counter.calls;
  counter.elements += t.numel();
  counter.bytes += static_cast<int64_t>(t.nbytes());
  return true;
}

void NcclCommunicator::all_reduce(const Tensor& x, ReduceOp op) {
  if (!on_device(x)) return host_->all_reduce(x, op);
  if (!x.is_contiguous()) throw CommError(cat("all_reduce on ", name_, ": tensor not contiguous"));
  State& s = *st_;
  const std::string what = cat("all_reduce of ", x.numel(), " ", dtype_name(x.dtype()),
                               " elements (op ", static_cast<int>(op), ")");
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.throw_if_failed_locked();
  }
  if (!issue(device_stats_.all_reduce, x, what)) return;
  std::lock_guard<std::mutex> lock(s.mu);
  s.throw_if_failed_locked();
  s.order_after_async_locked();
  const ncclResult_t rc = ncclAllReduce(x.data(), x.data(), static_cast<size_t>(x.numel()),
                                        nccl_type(x.dtype(), what), nccl_op(op), s.comm, s.stream);
  if (rc != ncclSuccess) s.fail_locked(cat(what, " on ", name_, ": ", ncclGetErrorString(rc)));
  s.throw_if_failed_locked();
  s.record_locked(what);
}

namespace {

// The end of an async all-reduce on the communicator's stream. wait() does not block the host:
// it queues a wait of the compute stream on the collective's event, which is all callers need,
// since everything that reads the tensor afterwards (backend ops, copies to the host) runs on
// that stream.
class NcclRequest final : public CommRequest {
 public:
  NcclRequest(std::shared_ptr<NcclCommunicator::State> st, cudaEvent_t done)
      : st_(std::move(st)), done_(done) {}
  ~NcclRequest() override {
    try {
      wait();
    } catch (const Error&) {
      // The communicator has recorded the failure; its next call reports it.
    }
    cudaEventDestroy(done_);
  }
  void wait() override;
  bool test() override;

 private:
  std::shared_ptr<NcclCommunicator::State> st_;
  cudaEvent_t done_;
  bool waited_ = false;
};

}  // namespace

void NcclRequest::wait() {
  if (waited_) return;
  waited_ = true;
  NcclCommunicator::State& s = *st_;
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.closed) return;
  s.throw_if_failed_locked();
  check_cuda(cudaStreamWaitEvent(s.stream, done_, 0), cat("waiting for an all_reduce on ", s.name));
}

bool NcclRequest::test() {
  if (waited_) return true;
  return cudaEventQuery(done_) == cudaSuccess;
}

std::unique_ptr<CommRequest> NcclCommunicator::all_reduce_async(const Tensor& x, ReduceOp op) {
  if (!on_device(x)) return host_->all_reduce_async(x, op);
  if (!x.is_contiguous())
    throw CommError(cat("all_reduce_async on ", name_, ": tensor not contiguous"));
  State& s = *st_;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.throw_if_failed_locked();
  }
  const std::string what = cat("all_reduce_async of ", x.numel(), " ", dtype_name(x.dtype()),
                               " elements (op ", static_cast<int>(op), ")");
  // Nothing to exchange: the blocking path (a no-op that still reports failures) is complete.
  if (!issue(device_stats_.all_reduce, x, what)) return Communicator::all_reduce_async(x, op);
  std::lock_guard<std::mutex> lock(s.mu);
  s.throw_if_failed_locked();
  // The collective must see everything the compute stream has written to x so far. An event
  // can be recorded again as soon as a wait on it is queued, so it returns to the pool at once.
  cudaEvent_t ready = s.take_event_locked();
  check_cuda(cudaEventRecord(ready, s.stream), what);
  const cudaError_t wr = cudaStreamWaitEvent(s.comm_stream, ready, 0);
  s.free.push_back(ready);
  check_cuda(wr, what);
  const ncclResult_t rc =
      ncclAllReduce(x.data(), x.data(), static_cast<size_t>(x.numel()), nccl_type(x.dtype(), what),
                    nccl_op(op), s.comm, s.comm_stream);
  if (rc != ncclSuccess) s.fail_locked(cat(what, " on ", name_, ": ", ncclGetErrorString(rc)));
  s.throw_if_failed_locked();
  s.record_locked(what, s.comm_stream);
  check_cuda(cudaEventRecord(s.async_tail, s.comm_stream), what);
  s.async_outstanding = true;
  cudaEvent_t done = nullptr;
  check_cuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), what);
  const cudaError_t dr = cudaEventRecord(done, s.comm_stream);
  if (dr != cudaSuccess) {
    cudaEventDestroy(done);
    check_cuda(dr, what);
  }
  return std::make_unique<NcclRequest>(st_, done);
}

void NcclCommunicator::all_gather(const Tensor& out, const Tensor& in) {
  if (out.dtype() != in.dtype() || out.numel() != in.numel() * size())
    throw ShapeError(cat("all_gather on ", name_, ": out ", out.str(), " must hold ", size(),
                         " x in ", in.str()));
  if (!on_device(out) && !on_device(in)) return host_->all_gather(out, in);
  if (!on_device(out) || !on_device(in))
    throw CommError(cat("all_gather on ", name_, ": in and out must both be device tensors"));
  if (!out.is_contiguous() || !in.is_contiguous())
    throw CommError(cat("all_gather on ", name_, ": tensors must be contiguous"));
  State& s = *st_;
  const std::string what =
      cat("all_gather of ", in.numel(), " ", dtype_name(in.dtype()), " elements per rank");
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.throw_if_failed_locked();
  }
  if (!issue(device_stats_.all_gather, out, what)) {
    // One rank: out is in, copied in stream order unless it is the same memory.
    if (in.numel() == 0 || out.data() == in.data()) return;
    std::lock_guard<std::mutex> lock(s.mu);
    s.order_after_async_locked();
    check_cuda(
        cudaMemcpyAsync(out.data(), in.data(), in.nbytes(), cudaMemcpyDeviceToDevice, s.stream),
        what);
    return;
  }
  std::lock_guard<std::mutex> lock(s.mu);
  s.throw_if_failed_locked();
  s.order_after_async_locked();
  const ncclResult_t rc = ncclAllGather(in.data(), out.data(), static_cast<size_t>(in.numel()),
                                        nccl_type(in.dtype(), what), s.comm, s.stream);
  if (rc != ncclSuccess) s.fail_locked(cat(what, " on ", name_, ": ", ncclGetErrorString(rc)));
  s.throw_if_failed_locked();
  s.record_locked(what);
}

void NcclCommunicator::broadcast(const Tensor& x, int root) {
  if (!on_device(x)) return host_->broadcast(x, root);
  if (!x.is_contiguous()) throw CommError(cat("broadcast on ", name_, ": tensor not contiguous"));
  State& s = *st_;
  if (root < 0 || root >= s.size)
    throw CommError(cat("broadcast on ", name_, ": root ", root, " outside [0, ", s.size, ")"));
  const std::string what =
      cat("broadcast of ", x.numel(), " ", dtype_name(x.dtype()), " elements from root ", root);
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.throw_if_failed_locked();
  }
  if (!issue(device_stats_.broadcast, x, what)) return;
  std::lock_guard<std::mutex> lock(s.mu);
  s.throw_if_failed_locked();
  s.order_after_async_locked();
  const ncclResult_t rc = ncclBroadcast(x.data(), x.data(), static_cast<size_t>(x.numel()),
                                        nccl_type(x.dtype(), what), root, s.comm, s.stream);
  if (rc != ncclSuccess) s.fail_locked(cat(what, " on ", name_, ": ", ncclGetErrorString(rc)));
  s.throw_if_failed_locked();
  s.record_locked(what);
}

void NcclCommunicator::barrier() {
  State& s = *st_;
  // Poll rather than block in cudaStreamSynchronize, so a timeout can still abort.
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(s.mu);
      const bool busy = s.poll_locked();
      s.throw_if_failed_locked();
      if (!busy) break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  host_->barrier();
}

}  // namespace resp
