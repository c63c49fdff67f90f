#include "comm/mpi_communicator.h"

#include <mpi.h>

#include <cstring>
#include <exception>
#include <string>
#include <utility>

namespace resp {

namespace {
void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    throw CommError(cat(what, " failed: ", std::string(msg, static_cast<size_t>(len))));
  }
}

MPI_Datatype mpi_type(DType t) {
  switch (t) {
    case DType::F32:
      return MPI_FLOAT;
    case DType::F64:
      return MPI_DOUBLE;
    case DType::I32:
      return MPI_INT32_T;
    case DType::I64:
      return MPI_INT64_T;
    case DType::U8:
      return MPI_UINT8_T;
    default:
      throw CommError(cat("MPI: unsupported dtype ", dtype_name(t)));
  }
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
  }
  return MPI_SUM;
}

void require_contiguous(const Tensor& t, const char* op) {
  if (!t.is_contiguous()) throw CommError(cat(op, ": tensor must be contiguous"));
}

// What MPI itself is handed: host memory, counts that fit its int. One rank never gets here.
void require_host(const Tensor& t, const char* op) {
  if (t.device() != Device::CPU) throw CommError(cat(op, ": MPI communicator needs host tensors"));
  require_contiguous(t, op);
  if (t.numel() > INT32_MAX) throw CommError(cat(op, ": more than 2^31 elements in one call"));
}
}  // namespace

struct MpiCommunicator::Handle {
  MPI_Comm comm = MPI_COMM_NULL;
};

MpiRuntime::MpiRuntime(int* argc, char*** argv) : uncaught_at_start_(std::uncaught_exceptions()) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    owns_ = true;
  }
  // Errors come back as codes so that we can throw CommError with context.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  MPI_Comm local;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local),
        "MPI_Comm_split_type");
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_size(local, &local_size_);
  MPI_Comm_free(&local);
}

MpiRuntime::~MpiRuntime() {
  if (!owns_) return;
  if (std::uncaught_exceptions() > uncaught_at_start_) return;  // main() reports, then shuts down
  MPI_Finalize();
}

void MpiRuntime::abort(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
  std::terminate();
}

void MpiRuntime::shutdown_after_error(int code) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  int size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1) MPI_Abort(MPI_COMM_WORLD, code);
  MPI_Finalize();
}

std::unique_ptr<MpiCommunicator> MpiRuntime::world() const {
  auto h = std::make_unique<MpiCommunicator::Handle>();
  h->comm = MPI_COMM_WORLD;
  return std::make_unique<MpiCommunicator>(MpiCommunicator::Key{}, std::move(h), "world", false);
}

MpiCommunicator::MpiCommunicator(Key, std::unique_ptr<Handle> h, std::string name, bool owned)
    : h_(std::move(h)), name_(std::move(name)), owned_(owned) {
  MPI_Comm_rank(h_->comm, &rank_);
  MPI_Comm_size(h_->comm, &size_);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owned_ && !finalized && h_->comm != MPI_COMM_NULL) MPI_Comm_free(&h_->comm);
}

void MpiCommunicator::all_reduce(const Tensor& x, ReduceOp op) {
  // One rank: the identity, wherever x lives (checked first: require_host refuses device memory).
  if (size_ == 1) return require_contiguous(x, "all_reduce");
  require_host(x, "all_reduce");
  check(MPI_Allreduce(MPI_IN_PLACE, x.data(), static_cast<int>(x.numel()), mpi_type(x.dtype()),
                      mpi_op(op), h_->comm),
        cat("MPI_Allreduce on ", name_).c_str());
}

namespace {
class MpiRequest final : public CommRequest {
 public:
  MpiRequest(MPI_Request r, std::string what) : r_(r), what_(std::move(what)) {}
  MpiRequest(const MpiRequest&) = delete;
  MpiRequest& operator=(const MpiRequest&) = delete;
  // A request dropped without wait() (an exception unwinding) is still completed: MPI owns the
  // buffer until then. Errors cannot be thrown from here; they were or will be seen elsewhere.
  ~MpiRequest() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (r_ != MPI_REQUEST_NULL && !finalized) MPI_Wait(&r_, MPI_STATUS_IGNORE);
  }
  void wait() override {
    if (r_ == MPI_REQUEST_NULL) return;
    check(MPI_Wait(&r_, MPI_STATUS_IGNORE), what_.c_str());
  }
  bool test() override {
    if (r_ == MPI_REQUEST_NULL) return true;
    int done = 0;
    check(MPI_Test(&r_, &done, MPI_STATUS_IGNORE), what_.c_str());
    return done != 0;
  }

 private:
  MPI_Request r_;
  std::string what_;
};
}  // namespace

std::unique_ptr<CommRequest> MpiCommunicator::all_reduce_async(const Tensor& x, ReduceOp op) {
  if (size_ == 1) return Communicator::all_reduce_async(x, op);  // all_reduce: the identity
  require_host(x, "all_reduce_async");
  MPI_Request r = MPI_REQUEST_NULL;
  const std::string what = cat("MPI_Iallreduce on ", name_);
  check(MPI_Iallreduce(MPI_IN_PLACE, x.data(), static_cast<int>(x.numel()), mpi_type(x.dtype()),
                       mpi_op(op), h_->comm, &r),
        what.c_str());
  return std::make_unique<MpiRequest>(r, what);
}

void MpiCommunicator::all_gather(const Tensor& out, const Tensor& in) {
  if (out.dtype() != in.dtype() || out.numel() != in.numel() * size_)
    throw ShapeError(cat("all_gather on ", name_, ": out ", out.str(), " must hold ", size_,
                         " x in ", in.str()));
  if (size_ == 1) return gather_one_rank(out, in);
  require_host(out, "all_gather");
  require_host(in, "all_gather");
  check(MPI_Allgather(in.data(), static_cast<int>(in.numel()), mpi_type(in.dtype()), out.data(),
                      static_cast<int>(in.numel()), mpi_type(in.dtype()), h_->comm),
        cat("MPI_Allgather on ", name_).c_str());
}

void MpiCommunicator::gather_one_rank(const Tensor& out, const Tensor& in) {
  require_contiguous(out, "all_gather");
  require_contiguous(in, "all_gather");
  if (in.nbytes() == 0 || out.data() == in.data()) return;
  if (out.device() == Device::CPU && in.device() == Device::CPU) {
    std::memmove(out.data(), in.data(), in.nbytes());
    return;
  }
  if (!device_copy_)
    throw CommError(cat("all_gather on ", name_, ": copying device tensor ", in.str(), " to ",
                        out.str(), " needs the backend's copy (MpiCommunicator::set_device_copy)"));
  device_copy_(out, in);
}

void MpiCommunicator::broadcast(const Tensor& x, int root) {
  if (size_ == 1) {
    if (root != 0) throw CommError(cat("broadcast on ", name_, ": root ", root, " outside [0, 1)"));
    return require_contiguous(x, "broadcast");
  }
  require_host(x, "broadcast");
  check(MPI_Bcast(x.data(), static_cast<int>(x.numel()), mpi_type(x.dtype()), root, h_->comm),
        cat("MPI_Bcast on ", name_).c_str());
}

void MpiCommunicator::barrier() {
  check(MPI_Barrier(h_->comm), "MPI_Barrier");
}

std::unique_ptr<MpiCommunicator> MpiCommunicator::split(int color, int key,
                                                        const std::string& name) const {
  auto h = std::make_unique<Handle>();
  check(MPI_Comm_split(h_->comm, color, key, &h->comm), "MPI_Comm_split");
  MPI_Comm_set_errhandler(h->comm, MPI_ERRORS_RETURN);
  return std::make_unique<MpiCommunicator>(Key{}, std::move(h), name, true);
}

}  // namespace resp
