// PruneRun: RESP's progressive pruning loop (resp-method.md), distributed over any TP x DP
// layout. Per iteration t:
//   [regenerate traces with the current model if the previous iteration crossed a milestone]
//   importance on the current model -> cumulative prune to r_t (global or per-layer ranking,
//   protected layers skipped) -> materialise the pruned model from the original checkpoint and
//   the kept ids -> measured sparsity -> checkpoint (atomic) -> stop if a signal asked for it.
// Everything a resumed run needs (plan, traces, RNG round, history) is in the checkpoint, in
// global terms, so a run killed at any point resumes to the same final plan, with any layout.
// schedule.mode one-shot instead prunes the dense model once per schedule.targets entry with
// one-shot Wanda-sp (wanda_one_shot.h); checkpoint k is target k (plans not nested).
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "backend/backend.h"
#include "comm/parallel_layout.h"
#include "driver/prune_config.h"

namespace resp {

struct PruneRunOptions {
  PruneConfig config;
  std::filesystem::path run_dir;
  bool resume = false;
  // Polled after every checkpoint; when any rank returns true, all ranks stop there (exit 0).
  std::function<bool()> stop_requested;
  // Stop after this many iterations of this process (0: no limit) — for tests and time-boxed
  // jobs; the run resumes from the checkpoint.
  int max_iterations = 0;
};

struct PruneRunResult {
  int last_iteration = -1;
  bool finished = false;  // the schedule's last iteration is done
  bool stopped = false;   // stopped early by a signal or max_iterations
};

// Collective over all ranks of `par`. Throws resp::Error on bad input (nothing overwritten).
PruneRunResult run_prune(const PruneRunOptions& options, const ParallelContext& par,
                         Backend& backend);

// The per-iteration table and the report-sparsity summary of a run directory, as text
// (what `resp inspect` and the end of `resp prune` print).
std::string describe_run(const std::filesystem::path& run_dir, bool per_layer = false);

}  // namespace resp
