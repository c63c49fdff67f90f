#include "importance/calibration.h"

namespace resp {

std::vector<float> loss_weights(const CalibrationSample& s, LossMode mode) {
  const int64_t T = static_cast<int64_t>(s.tokens.size());
  if (T < 2) return {};
  std::vector<float> w(static_cast<size_t>(T - 1), 0.0f);
  if (mode == LossMode::Full) {
    std::fill(w.begin(), w.end(), 1.0f / static_cast<float>(T - 1));
    return w;
  }
  const int64_t first = std::max<int64_t>(s.prompt_len, 1);  // first predicted response token
  const int64_t n = T - first;
  if (n <= 0) return {};
  const double inv = 1.0 / static_cast<double>(n);
  for (int64_t t = first - 1; t < T - 1; ++t) w[static_cast<size_t>(t)] = static_cast<float>(inv);
  return w;
}

}  // namespace resp
