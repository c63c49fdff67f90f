// What a compute command needs at start: MPI (singleton when not launched by mpirun), the
// TP x DP layout with its communicators, rank-prefixed logging and a backend.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "comm/mpi_communicator.h"
#include "comm/parallel_layout.h"

namespace resp::app {

struct Runtime {
  std::unique_ptr<MpiRuntime> mpi;
  ParallelContext par;
  std::unique_ptr<Backend> backend;
};

// Collective over all ranks. threads <= 0: OMP_NUM_THREADS or all cores.
Runtime start_runtime(int tp, int threads);

}  // namespace resp::app
