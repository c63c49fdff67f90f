#include "model/model_shard.h"

#include "model/safetensors.h"
#include "model/shard_plan.h"

namespace resp {

namespace {
ShardPlan plan_for(const ModelConfig& config, const Communicator& tp) {
  return make_shard_plan(config, tp.size(), tp.rank());
}
}  // namespace

ModelWeights load_model_shard(const CheckpointReader& reader, const ModelConfig& config,
                              const Communicator& tp, Backend& backend,
                              const ShardLoadOptions& options) {
  return load_weights(reader, config, plan_for(config, tp), backend, options.numbering,
                      options.unused);
}

ModelWeights load_model_shard(const std::filesystem::path& model_dir, const ModelConfig& config,
                              const Communicator& tp, Backend& backend,
                              const ShardLoadOptions& options) {
  const CheckpointReader reader(model_dir);
  return load_model_shard(reader, config, tp, backend, options);
}

ModelWeights random_model_shard(const ModelConfig& config, const Communicator& tp, Backend& backend,
                                uint64_t seed, float std) {
  return random_weights(config, plan_for(config, tp), backend, seed, std);
}

}  // namespace resp
