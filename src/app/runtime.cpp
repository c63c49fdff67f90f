#include "app/runtime.h"

#include <csignal>
#include <cstdlib>
#include <string>

#include "backend/cpu/cpu_backend.h"
#include "comm/checked_communicator.h"
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

DeviceChoice parse_device_choice(const std::string& s) {
  if (s == "auto") return DeviceChoice::Auto;
  if (s == "cpu") return DeviceChoice::Cpu;
  if (s == "cuda") return DeviceChoice::Cuda;
  throw UsageError(cat("--device must be cpu, cuda or auto, not \"", s, "\""));
}

const char* device_choice_name(DeviceChoice d) {
  switch (d) {
    case DeviceChoice::Auto:
      return "auto";
    case DeviceChoice::Cpu:
      return "cpu";
    case DeviceChoice::Cuda:
      return "cuda";
  }
  return "?";
}

DeviceDecision decide_device(DeviceChoice device, const CudaProbe& probe) {
  DeviceDecision d;
  if (device == DeviceChoice::Cpu) return d;
  if (device == DeviceChoice::Cuda) {
    // A GPU that is there but unusable is the machine's fault, not the command line's.
    if (probe.broken()) throw DeviceError(cat("--device cuda: ", probe.reason));
    if (!probe.available()) throw UsageError(cat("--device cuda: ", probe.reason));
    d.cuda = true;
    return d;
  }
  d.cuda = probe.available();
  // Silence would let a job meant for the GPU run for days on the CPU.
  if (probe.broken()) d.warning = cat("--device auto: ", probe.reason, "; running on the CPU");
  return d;
}

Runtime start_runtime(int tp, int threads, DeviceChoice device) {
  const DeviceDecision choice = decide_device(device, probe_cuda());
  Runtime rt = start_runtime(tp, threads);
  if (!choice.warning.empty() && rt.mpi->local_rank() == 0) log_warn(choice.warning);
  if (!choice.cuda) return rt;
#if RESP_HAVE_CUDA
  const int visible = cuda_device_count();
  const int dev = rt.mpi->local_rank() % visible;
  // Weight matrices in bf16 (half the memory and bytes per decode step, tensor-core GEMMs);
  // activations, norms and gradients stay f32.
  auto cuda = std::make_unique<CudaBackend>(dev, DType::BF16);
  // One rank's MPI communicators are identities even on device tensors; an all_gather into
  // another buffer needs the backend's copy (host memcpy would fault on device pointers).
  attach_device_copy(rt.par, *cuda);
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

void attach_device_copy(ParallelContext& par, Backend& backend) {
  for (Communicator* c : {par.world.get(), par.tp.get(), par.dp.get()}) {
    if (auto* checked = dynamic_cast<CheckedCommunicator*>(c)) c = &checked->inner();
    if (auto* mpi = dynamic_cast<MpiCommunicator*>(c))
      mpi->set_device_copy(
          [&backend](const Tensor& dst, const Tensor& src) { backend.copy(dst, src); });
  }
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
