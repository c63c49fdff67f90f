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
struct ParallelContext {
  ParallelLayout layout;
  std::unique_ptr<Communicator> world;
  std::unique_ptr<Communicator> tp;
  std::unique_ptr<Communicator> dp;

  static ParallelContext single();
};

class MpiRuntime;
// Builds the layout and sub-communicators over MPI_COMM_WORLD (collective on all ranks).
ParallelContext make_parallel_context(const MpiRuntime& mpi, int tp);

// When SLURM_NTASKS is set, the MPI world must have that many ranks: a wrong PMI plug-in
// silently starts N singletons that would each run the whole job. Throws CommError otherwise.
// `slurm_ntasks` is the variable's value (nullptr when unset).
void check_world_against_slurm(int world_size, const char* slurm_ntasks);

}  // namespace resp
