// ParallelLayout: how world ranks split into tensor-parallel (TP) groups and data-parallel (DP)
// replicas. TP ranks are consecutive (tp_rank = rank % tp, dp_rank = rank / tp) so a TP group
// sits inside one node. The model sees only its TP communicator and the layout.
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.h"

namespace resp {

struct ParallelLayout {
  int world = 1, rank = 0;
  int tp = 1, dp = 1;
  int tp_rank = 0, dp_rank = 0;

  // Throws ConfigError when tp < 1 or tp does not divide world.
  static ParallelLayout make(int world, int rank, int tp);
  std::string str() const;
};

// The communicators of one rank: world, its TP group and its DP group (same tp_rank across
// replicas). Owns them; single-rank contexts use SelfCommunicator and need no MPI.
class CommStatsReport;

struct ParallelContext {
  ParallelLayout layout;
  std::unique_ptr<Communicator> world;
  std::unique_ptr<Communicator> tp;
  std::unique_ptr<Communicator> dp;
  // Set when RESP_COMM_STATS names a directory: writes this rank's counters there as
  // comm_stats.rank<R>.json when the context ends normally. Declared last so that it goes first,
  // while the communicators still exist.
  std::shared_ptr<CommStatsReport> stats_report;

  static ParallelContext single();
};

class MpiRuntime;
// Builds the layout and sub-communicators over MPI_COMM_WORLD (collective on all ranks). Each
// communicator is wrapped in a CheckedCommunicator (counts always; verifies collective
// sequences when `verify`, by default when RESP_COMM_CHECK is set).
ParallelContext make_parallel_context(const MpiRuntime& mpi, int tp);
ParallelContext make_parallel_context(const MpiRuntime& mpi, int tp, bool verify);

// Sum of the counters of world, tp and dp (what this rank sent through collectives).
CommStats comm_stats(const ParallelContext& par);

// When SLURM_NTASKS is set, the MPI world must have that many ranks: a wrong PMI plug-in
// silently starts N singletons that would each run the whole job. Throws CommError otherwise.
// `slurm_ntasks` is the variable's value (nullptr when unset).
void check_world_against_slurm(int world_size, const char* slurm_ntasks);

}  // namespace resp
