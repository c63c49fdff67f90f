// The model shard of one tensor-parallel rank, made in one step: the rank's ShardPlan (from the
// TP communicator's size and rank, never from integers passed beside it) and its weights, read
// from a checkpoint or drawn at random. Every command and driver loads a model through here, so
// placement and loading cannot drift apart between them.
#pragma once

#include <cstdint>
#include <filesystem>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "model/model_config.h"
#include "model/model_weights.h"

namespace resp {

class CheckpointReader;

struct ShardLoadOptions {
  FileNumbering numbering = FileNumbering::Kept;
  UnusedTensors unused = UnusedTensors::Refuse;
};

// This rank's shard of `config` (the plan is in the result's `plan`). Errors as
// make_shard_plan (a model that cannot be placed on tp.size() ranks) and load_weights.
ModelWeights load_model_shard(const CheckpointReader& reader, const ModelConfig& config,
                              const Communicator& tp, Backend& backend,
                              const ShardLoadOptions& options = {});
ModelWeights load_model_shard(const std::filesystem::path& model_dir, const ModelConfig& config,
                              const Communicator& tp, Backend& backend,
                              const ShardLoadOptions& options = {});
// Random weights (random_weights), the same global model whatever the TP layout.
ModelWeights random_model_shard(const ModelConfig& config, const Communicator& tp, Backend& backend,
                                uint64_t seed, float std = 0.02f);

}  // namespace resp
