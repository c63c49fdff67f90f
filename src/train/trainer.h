// `resp train`: full-parameter AdamW training on the engine's own backward (GradientPass),
// data-parallel over the DP communicator. Deterministic: the batch of step s is a pure function
// of (seed, s) and every reduction has a fixed order, so a run resumed from its checkpoint ends
// with exactly the weights of an uninterrupted run.
//
// Run directory:
//   config.yaml       the effective configuration
//   train_state.h5    latest checkpoint: step, weights, AdamW moments (f32), written atomically
//   log.jsonl         one line per logged step {"step", "loss", "lr", "grad_norm", "tokens", ...}
//   model/            the trained model as a Hugging Face checkpoint (config.json,
//                     model.safetensors, tokenizer files, generation_config.json), written
//                     at the end
#pragma once

#include <filesystem>
#include <functional>

#include "backend/backend.h"
#include "comm/parallel_layout.h"
#include "train/train_config.h"

namespace resp {

struct TrainRunOptions {
  TrainConfig config;
  std::filesystem::path out;
  bool resume = false;
  // Polled after every step; when any rank returns true, all ranks checkpoint and stop.
  std::function<bool()> stop_requested;
  // Stop (with a checkpoint) after this many steps of this process; 0: no limit.
  int max_steps = 0;
};

struct TrainRunResult {
  int steps_done = 0;     // optimizer steps completed in total (including resumed ones)
  bool finished = false;  // reached schedule.steps and wrote model/
  bool stopped = false;
  double last_loss = 0;  // mean loss per counted token of the last step
};

// Collective over all ranks of `par` (tp must be 1). Throws resp::Error on bad input.
TrainRunResult run_training(const TrainRunOptions& options, const ParallelContext& par,
                            Backend& backend);

}  // namespace resp
