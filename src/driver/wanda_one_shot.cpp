#include "driver/wanda_one_shot.h"

#include "core/error.h"
#include "core/timer.h"
#include "importance/scorer.h"
#include "model/model_shard.h"

namespace resp {

OneShotResult wanda_sp_one_shot(const CheckpointReader& reader, const ModelConfig& dense,
                                const std::vector<bool>& prot,
                                std::span<const CalibrationSample> samples,
                                const UniformCounts& counts, const ParallelContext& par,
                                Backend& backend,
                                const std::function<void(int, double)>& progress) {
  const size_t n_layers = static_cast<size_t>(dense.num_layers);
  if (prot.size() != n_layers) throw ConfigError("protected-layer mask has the wrong length");
  OneShotResult out;
  out.plan = dense_plan(dense);
  out.scores.criterion = Criterion::WandaSp;
  out.scores.layers.resize(n_layers);
  for (size_t l = 0; l < n_layers; ++l) {
    if (prot[l]) continue;
    Stopwatch layer_time, phase;
    // The model up to and including layer l: layers < l pruned, layer l dense.
    ModelConfig upto = apply_plan(dense, out.plan);
    upto.num_layers = static_cast<int>(l + 1);
    upto.layers.resize(l + 1);
    const ModelWeights weights = load_model_shard(reader, upto, *par.tp, backend,
                                                  {FileNumbering::Original, UnusedTensors::Allow});
    out.t_load += phase.seconds();
    phase.reset();
    ImportanceOptions io;
    io.criterion = Criterion::WandaSp;
    io.layers.assign(l + 1, false);
    io.layers[l] = true;
    ImportanceScores s = compute_importance(weights, backend, par, samples, io);
    out.t_importance += phase.seconds();
    out.scores.loss = s.loss;
    out.scores.samples = s.samples;
    out.scores.tokens = s.tokens;
    out.plan[l] =
        prune_layer_lowest(out.plan[l], s.layers[l], counts.heads_removed, counts.channels_removed);
    out.scores.layers[l] = std::move(s.layers[l]);
    if (progress) progress(static_cast<int>(l), layer_time.seconds());
  }
  return out;
}

}  // namespace resp
