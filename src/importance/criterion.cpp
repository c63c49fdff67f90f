#include "importance/criterion.h"

#include "core/error.h"

namespace resp {

Criterion parse_criterion(const std::string& s) {
  if (s == "taylor") return Criterion::Taylor;
  if (s == "taylor-vectorize") return Criterion::TaylorVectorize;
  if (s == "wanda-sp") return Criterion::WandaSp;
  if (s == "magnitude") return Criterion::Magnitude;
  throw UsageError(
      cat("unknown criterion \"", s, "\" (choose taylor, taylor-vectorize, wanda-sp, magnitude)"));
}

std::string criterion_name(Criterion c) {
  switch (c) {
    case Criterion::Taylor:
      return "taylor";
    case Criterion::TaylorVectorize:
      return "taylor-vectorize";
    case Criterion::WandaSp:
      return "wanda-sp";
    case Criterion::Magnitude:
      return "magnitude";
  }
  return "?";
}

LossMode parse_loss_mode(const std::string& s) {
  if (s == "decode-only") return LossMode::DecodeOnly;
  if (s == "full") return LossMode::Full;
  throw UsageError(cat("unknown loss \"", s, "\" (choose decode-only, full)"));
}

std::string loss_mode_name(LossMode m) {
  return m == LossMode::DecodeOnly ? "decode-only" : "full";
}

bool needs_gradients(Criterion c) {
  return c == Criterion::Taylor || c == Criterion::TaylorVectorize;
}
bool needs_data(Criterion c) {
  return c != Criterion::Magnitude;
}

}  // namespace resp
