#include "generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace resp {

Sampler::Sampler(SamplingParams params) : p_(params) {
  p_.validate();
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = -1;
  float bv = 0.0f;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float v = logits[i];
    if (std::isnan(v)) continue;
    if (best < 0 || v > bv) {
      best = static_cast<int32_t>(i);
      bv = v;
    }
  }
  return best < 0 ? 0 : best;
}

uint64_t prompt_key(std::string_view id) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : id) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

double Sampler::uniform(uint64_t seed, uint64_t key, uint64_t step) {
  return static_cast<double>(random_u64(seed, key, step) >> 11) * (1.0 / 9007199254740992.0);
}

void Sampler::prepare(std::span<const float> logits) {
  const int64_t V = static_cast<int64_t>(logits.size());
  if (V == 0) throw ShapeError("Sampler: empty logits row");
  kept_.clear();
  prob_.clear();
  if (p_.greedy()) {
    kept_.push_back(argmax(logits));
    prob_.push_back(1.0);
    return;
  }
  // Sampling order: larger logit first, then lower id; NaN behaves as -inf.
  auto val = [&](int32_t i) {
    const float v = logits[static_cast<size_t>(i)];
    return std::isnan(v) ? -std::numeric_limits<float>::infinity() : v;
  };
  auto before = [&](int32_t a, int32_t b) {
    const float va = val(a), vb = val(b);
    return va > vb || (va == vb && a < b);
  };
  const double inv_t = 1.0 / p_.temperature;
  const float mx = val(argmax(logits));
  if (std::isinf(mx) && mx < 0) {  // nothing is possible: fall back to the argmax
    kept_.push_back(argmax(logits));
    prob_.push_back(1.0);
    return;
  }
  auto weight = [&](int32_t i) { return std::exp((static_cast<double>(val(i)) - mx) * inv_t); };

  order_.resize(static_cast<size_t>(V));
  std::iota(order_.begin(), order_.end(), 0);
  // The candidates: top-k if set, else every token. `total` is their unnormalised mass.
  int64_t n = V;
  if (p_.top_k > 0 && p_.top_k < V) n = p_.top_k;
  double total = 0.0;
  if (n < V) {
    std::nth_element(order_.begin(), order_.begin() + n - 1, order_.end(), before);
    order_.resize(static_cast<size_t>(n));
    for (const int32_t i : order_) total += weight(i);
  } else {
    for (int64_t i = 0; i < V; ++i) total += weight(static_cast<int32_t>(i));
  }
  if (p_.top_p >= 1.0) {
    // No nucleus: every candidate is kept. Top-k candidates are sorted; the full vocabulary
    // stays in id order (sorting 150k ids per token would cost more than the rest of sampling).
    if (n < V) std::sort(order_.begin(), order_.end(), before);
    kept_.assign(order_.begin(), order_.end());
  } else {
    // Nucleus: sort a growing prefix until it holds top_p of the candidates' mass.
    const double need = p_.top_p * total;
    int64_t m = std::min<int64_t>(n, 64);
    for (;;) {
      std::partial_sort(order_.begin(), order_.begin() + m, order_.begin() + n, before);
      double cum = 0.0;
      int64_t keep = -1;
      for (int64_t j = 0; j < m; ++j) {
        cum += weight(order_[static_cast<size_t>(j)]);
        if (cum >= need) {
          keep = j + 1;
          break;
        }
      }
      if (keep < 0 && m == n) keep = n;  // rounding: take everything
      if (keep > 0) {
        kept_.assign(order_.begin(), order_.begin() + keep);
        break;
      }
      m = std::min<int64_t>(n, m * 4);
    }
  }
  double kept_total = 0.0;
  prob_.resize(kept_.size());
  for (size_t j = 0; j < kept_.size(); ++j) kept_total += (prob_[j] = weight(kept_[j]));
  for (double& p : prob_) p /= kept_total;
}

std::vector<std::pair<int32_t, double>> Sampler::distribution(std::span<const float> logits) {
  prepare(logits);
  std::vector<std::pair<int32_t, double>> d(kept_.size());
  for (size_t j = 0; j < kept_.size(); ++j) d[j] = {kept_[j], prob_[j]};
  return d;
}

int32_t Sampler::sample(std::span<const float> logits, double u) {
  if (p_.greedy()) return argmax(logits);
  prepare(logits);
  double cum = 0.0;
  for (size_t j = 0; j < kept_.size(); ++j) {
    cum += prob_[j];
    if (u < cum) return kept_[j];
  }
  return kept_.back();
}

}  // namespace resp
