#include "comm/parallel_layout.h"

#include <cstdlib>
#include <filesystem>
#include <string>

#include "comm/checked_communicator.h"
#include "comm/mpi_communicator.h"
#include "core/log.h"

namespace resp {

ParallelLayout ParallelLayout::make(int world, int rank, int tp) {
  if (tp < 1) throw ConfigError(cat("tp must be >= 1 (got ", tp, ")"));
  if (world % tp != 0)
    throw ConfigError(cat("tp=", tp, " does not divide the world size ", world,
                          " (world = tp x dp; launch a multiple of ", tp, " ranks)"));
  ParallelLayout l;
  l.world = world;
  l.rank = rank;
  l.tp = tp;
  l.dp = world / tp;
  l.tp_rank = rank % tp;
  l.dp_rank = rank / tp;
  return l;
}

std::string ParallelLayout::str() const {
  return cat("world=", world, " tp=", tp, " dp=", dp, " (rank ", rank, ": tp_rank ", tp_rank,
             ", dp_rank ", dp_rank, ")");
}

ParallelContext ParallelContext::single() {
  ParallelContext c;
  c.layout = ParallelLayout::make(1, 0, 1);
  c.world = std::make_unique<SelfCommunicator>();
  c.tp = std::make_unique<SelfCommunicator>();
  c.dp = std::make_unique<SelfCommunicator>();
  return c;
}

ParallelContext make_parallel_context(const MpiRuntime& mpi, int tp) {
  return make_parallel_context(mpi, tp, comm_check_from_env());
}

ParallelContext make_parallel_context(const MpiRuntime& mpi, int tp, bool verify) {
  ParallelContext c;
  c.layout = ParallelLayout::make(mpi.world_size(), mpi.world_rank(), tp);
  auto world = mpi.world();
  const CheckedCommunicator::Options opt{verify};
  c.tp = std::make_unique<CheckedCommunicator>(
      world->split(c.layout.dp_rank, c.layout.tp_rank, "tp"), opt);
  c.dp = std::make_unique<CheckedCommunicator>(
      world->split(c.layout.tp_rank, c.layout.dp_rank, "dp"), opt);
  c.world = std::make_unique<CheckedCommunicator>(std::move(world), opt);
  if (verify && c.layout.rank == 0)
    log_info(
        "collective-sequence verification on (RESP_COMM_CHECK): one extra all-gather per "
        "collective");
  if (const char* dir = std::getenv("RESP_COMM_STATS"); dir && *dir) {
    std::error_code ec;  // every rank tries; the report says so if the directory is unusable
    std::filesystem::create_directories(dir, ec);
    const ParallelLayout& L = c.layout;
    c.stats_report = std::make_shared<CommStatsReport>(
        (std::filesystem::path(dir) / cat("comm_stats.rank", L.rank, ".json")).string(),
        cat("\"rank\": ", L.rank, ", \"world\": ", L.world, ", \"tp\": ", L.tp, ", \"dp\": ", L.dp),
        std::vector<CommStatsReport::Entry>{
            {"world", c.world.get()}, {"tp", c.tp.get()}, {"dp", c.dp.get()}});
  }
  return c;
}

CommStats comm_stats(const ParallelContext& par) {
  CommStats s;
  for (const auto* c : {par.world.get(), par.tp.get(), par.dp.get()})
    if (c) s += c->stats();
  return s;
}

void check_world_against_slurm(int world_size, const char* slurm_ntasks) {
  if (!slurm_ntasks || !*slurm_ntasks) return;
  char* end = nullptr;
  const long n = std::strtol(slurm_ntasks, &end, 10);
  if (*end != '\0' || n < 1) return;  // not a plain count (e.g. heterogeneous jobs): skip
  if (n != world_size)
    throw CommError(cat("MPI world size is ", world_size, " but SLURM_NTASKS=", n,
                        ": the ranks did not join one job (use srun --mpi=pmix, or mpirun "
                        "inside the allocation)"));
}

}  // namespace resp
