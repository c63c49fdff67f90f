// Importance criteria and the scores they produce. Formulas: docs/importance.md (scorer.cpp
// computes them).
#pragma once

#include <string>
#include <vector>

namespace resp {

enum class Criterion { Taylor, TaylorVectorize, WandaSp, Magnitude };
enum class LossMode { DecodeOnly, Full };

Criterion parse_criterion(const std::string& s);  // throws UsageError listing the choices
std::string criterion_name(Criterion c);
LossMode parse_loss_mode(const std::string& s);
std::string loss_mode_name(LossMode m);
bool needs_gradients(Criterion c);
bool needs_data(Criterion c);

struct LayerScores {
  std::vector<int> head_ids;     // original ids of the layer's kept query heads
  std::vector<int> channel_ids;  // original ids of the kept MLP channels
  std::vector<double> heads;     // one score per kept head (same order)
  std::vector<double> channels;  // one score per kept channel
};

struct ImportanceScores {
  Criterion criterion = Criterion::Taylor;
  LossMode loss = LossMode::DecodeOnly;
  std::string source;    // self | gold | text | none
  int64_t samples = 0;   // samples that contributed (all replicas)
  int64_t tokens = 0;    // loss positions with non-zero weight (all replicas)
  double mean_loss = 0;  // mean over samples of the per-sample loss
  std::vector<LayerScores> layers;
};

}  // namespace resp
