// What a compute command needs at start: MPI (singleton when not launched by mpirun), the
// TP x DP layout with its communicators, rank-prefixed logging and a backend.
#pragma once

#include <memory>
#include <string>

#include "backend/backend.h"
#include "comm/mpi_communicator.h"
#include "comm/parallel_layout.h"

namespace resp::app {

// What --device asks for: cuda when a GPU is visible (auto), the CPU, or the GPU.
enum class DeviceChoice { Auto, Cpu, Cuda };
// "auto" | "cpu" | "cuda"; anything else is a UsageError naming --device.
DeviceChoice parse_device_choice(const std::string& s);
const char* device_choice_name(DeviceChoice d);

struct Runtime {
  std::unique_ptr<MpiRuntime> mpi;
  // Declared before `par`, so destroyed after it: its NCCL communicators use the backend's
  // stream until they are gone.
  std::unique_ptr<Backend> backend;
  ParallelContext par;
};

// Collective over all ranks. threads <= 0: OMP_NUM_THREADS or all cores. Under Slurm
// (SLURM_NTASKS set) the MPI world must have SLURM_NTASKS ranks, else a CommError.
Runtime start_runtime(int tp, int threads);
// The same on `device` (auto: cuda when a CUDA device is visible, else cpu). On cuda each rank
// takes device local_rank % visible devices, the backend stores weight matrices in bf16, and the TP
// and DP communicators become NCCL communicators over the MPI ones (host tensors still use MPI).
// "cuda" without a visible device is a UsageError.
Runtime start_runtime(int tp, int threads, DeviceChoice device);
// What start_runtime makes of --device given what probe_cuda() found, as a pure function (the
// tests feed it fake probes). Throws UsageError for cuda without a GPU,
// DeviceError for "cuda" with a GPU this build cannot use (driver too old, runtime error:
// "--device cuda: CUDA driver too old: needs >= 580, found ..."). "auto" falls back to the
// CPU, with `warning` set when a GPU is there but unusable.
struct DeviceDecision {
  bool cuda = false;
  std::string warning;  // for the log; empty when there is nothing to say
};
DeviceDecision decide_device(DeviceChoice device, const CudaProbe& probe);

// Gives the MPI communicators of `par` (also those wrapped in a CheckedCommunicator) the
// backend's copy for device tensors: one rank's all_gather into another device buffer is then
// a device copy. The backend must outlive the communicators (Runtime's member order ensures it).
void attach_device_copy(ParallelContext& par, Backend& backend);

// One line for the job log: nodes, ranks (per node), tp x dp, devices, and the Slurm job when
// there is one, e.g. "layout: 2 nodes, 16 ranks (8 per node), tp=8 x dp=2, devices: ...".
// Collective over the world communicator (it counts nodes); the text is the same on every rank.
std::string describe_layout(const Runtime& rt);

// SIGTERM (Slurm's pre-kill signal) and SIGUSR1 (sbatch --signal) ask a long job to stop at its
// next checkpoint instead of dying. Install first thing, so a signal during start-up counts too.
void install_stop_signal_handlers();
bool stop_signal_received();

}  // namespace resp::app
