#include "app/runtime.h"

#include <csignal>
#include <cstdlib>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "core/log.h"
#if RESP_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif
#if RESP_HAVE_NCCL
#include "comm/nccl_communicator.h"
#endif

namespace resp::app {

Runtime start_runtime(int tp, int threads) {
  Runtime rt;
  rt.mpi = std::make_unique<MpiRuntime>(nullptr, nullptr);
  LogContext lc;
  lc.rank = rt.mpi->world_rank();
  lc.world = rt.mpi->world_size();
  set_log_context(lc);
  check_world_against_slurm(rt.mpi->world_size(), std::getenv("SLURM_NTASKS"));
  rt.par = make_parallel_context(*rt.mpi, tp);
  rt.backend = make_cpu_backend(threads);
  return rt;
}

Runtime start_runtime(int tp, int threads, const std::string& device) {
  if (device != "auto" && device != "cpu" && device != "cuda")
    throw UsageError(cat("--device must be cpu, cuda or auto, not \"", device, "\""));
  const int visible = cuda_device_count();
  if (device == "cuda" && visible == 0)
    throw UsageError("--device cuda: no CUDA device is visible (or this build has no CUDA)");
  Runtime rt = start_runtime(tp, threads);
  if (device == "cpu" || visible == 0) return rt;
#if RESP_HAVE_CUDA
  const int dev = rt.mpi->local_rank() % visible;
  // Weight matrices in bf16 (half the memory and bytes per decode step, tensor-core GEMMs);
  // activations, norms and gradients stay f32.
  auto cuda = std::make_unique<CudaBackend>(dev, DType::BF16);
#if RESP_HAVE_NCCL
  rt.par.tp = std::make_unique<NcclCommunicator>(std::move(rt.par.tp), cuda->stream(), dev, "tp");
  rt.par.dp = std::make_unique<NcclCommunicator>(std::move(rt.par.dp), cuda->stream(), dev, "dp");
#else
  if (rt.par.layout.world > 1)
    throw UnsupportedError("several ranks on cuda need NCCL, which this build did not find");
#endif
  rt.backend = std::move(cuda);
#endif
  return rt;
}

std::string describe_layout(const Runtime& rt) {
  const ParallelLayout& L = rt.par.layout;
  // A node is the group of ranks sharing memory (MPI_COMM_TYPE_SHARED); its local rank 0 counts it.
  const int local_size = rt.mpi->local_size();
  const auto nodes = rt.par.world->all_reduce_scalar_i64(rt.mpi->local_rank() == 0 ? 1 : 0);
  const auto min_local = rt.par.world->all_reduce_scalar_i64(local_size, ReduceOp::Min);
  const auto max_local = rt.par.world->all_reduce_scalar_i64(local_size, ReduceOp::Max);
  std::string s = cat("layout: ", nodes, nodes == 1 ? " node, " : " nodes, ", L.world,
                      L.world == 1 ? " rank (" : " ranks (");
  s += min_local == max_local ? cat(max_local, " per node)")
                              : cat(min_local, "-", max_local, " per node)");
  s += cat(", tp=", L.tp, " x dp=", L.dp, ", devices: ", rt.backend->name());
  if (const auto* cpu = dynamic_cast<const CpuBackend*>(rt.backend.get()))
    s += cat(" (", cpu->threads(), cpu->threads() == 1 ? " thread" : " threads", " per rank)");
  else
    s += cat(" (", cuda_device_count(), " visible per rank, device = local rank % visible)");
  if (const char* job = std::getenv("SLURM_JOB_ID")) {
    const char* step = std::getenv("SLURM_STEP_ID");
    const char* ntasks = std::getenv("SLURM_NTASKS");
    s += cat("; slurm job ", job, step ? cat(".", step) : std::string(),
             ntasks ? cat(", SLURM_NTASKS=", ntasks) : std::string());
  }
  return s;
}

namespace {
// The one piece of state a signal handler may touch.
volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) {
  g_stop_signal = sig;
}
}  // namespace

void install_stop_signal_handlers() {
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);
}

bool stop_signal_received() {
  return g_stop_signal != 0;
}

}  // namespace resp::app
