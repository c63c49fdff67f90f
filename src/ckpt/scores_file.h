// Importance scores as HDF5 (readable with h5py):
//   /layers/NNNN/heads        float64 [kept heads]     one score per query head
//   /layers/NNNN/channels     float64 [kept channels]  one score per MLP channel
//   /layers/NNNN/head_ids     int32   original ids of those heads (dense numbering)
//   /layers/NNNN/channel_ids  int32   original ids of those channels
// root attributes: format="resp-scores", schema_version, criterion, loss, source, samples,
// tokens, mean_loss, model, num_layers.
#pragma once

#include <filesystem>
#include <string>

#include "ckpt/h5.h"
#include "importance/criterion.h"

namespace resp {

constexpr int kScoresSchemaVersion = 1;

// Writes atomically (PATH.tmp, then rename).
void write_scores_h5(const std::filesystem::path& path, const ImportanceScores& scores,
                     const std::string& model);
// Reads and validates a scores file; throws FormatError naming the problem.
ImportanceScores read_scores_h5(const std::filesystem::path& path);

// One layer's scores under HDF5 group `g` (shared with run checkpoints).
void write_layer_scores(h5::File& f, const std::string& g, const LayerScores& scores);
LayerScores read_layer_scores(const h5::File& f, const std::string& g);

}  // namespace resp
