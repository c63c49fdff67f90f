#include "app/runtime.h"

#include <cstdlib>

#include "core/log.h"

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

}  // namespace resp::app
