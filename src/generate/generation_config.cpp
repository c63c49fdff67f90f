#include "generate/generation_config.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace resp {

void SamplingParams::validate() const {
  if (!std::isfinite(temperature) || temperature < 0)
    throw UsageError(
        cat("temperature must be a finite number >= 0 (0 = greedy), got ", temperature));
  if (!(top_p > 0.0 && top_p <= 1.0)) throw UsageError(cat("top_p must be in (0, 1], got ", top_p));
  if (top_k < 0) throw UsageError(cat("top_k must be >= 0 (0 = off), got ", top_k));
}

void GenerationConfig::validate() const {
  sampling.validate();
  if (max_new_tokens < 1)
    throw UsageError(cat("max_new_tokens must be >= 1, got ", max_new_tokens));
  for (const auto& s : stop)
    if (s.empty()) throw UsageError("a stop string must not be empty");
}

namespace {

void add_ids(std::vector<int32_t>& ids, const nlohmann::json& v, const std::string& source) {
  auto add = [&](const nlohmann::json& e) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > INT32_MAX)
      throw FormatError(
          cat(source, ": eos_token_id must hold non-negative integers, got ", e.dump()));
    const auto id = static_cast<int32_t>(e.get<int64_t>());
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  if (v.is_null()) return;
  if (v.is_array()) {
    for (const auto& e : v) add(e);
  } else {
    add(v);
  }
}

template <typename T>
std::optional<T> number_field(const nlohmann::json& j, const char* key, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_number())
    throw FormatError(cat(source, ": \"", key, "\" must be a number, got ", it->dump()));
  // Converting a double outside T's range (top_k: 1e300) is undefined behaviour.
  if constexpr (std::is_integral_v<T>) {
    const double v = it->get<double>();
    if (!(v >= static_cast<double>(std::numeric_limits<T>::min()) &&
          v <= static_cast<double>(std::numeric_limits<T>::max())))
      throw FormatError(cat(source, ": \"", key, "\" = ", it->dump(), " is out of range"));
  }
  return it->get<T>();
}

}  // namespace

GenerationConfig GenerationConfig::from_json(const nlohmann::json& g, const ModelConfig& config,
                                             const std::string& source) {
  GenerationConfig c;
  c.eos_ids = config.eos_token_ids;
  if (g.is_null()) return c;
  if (!g.is_object()) throw FormatError(cat(source, ": expected a JSON object"));
  if (auto it = g.find("eos_token_id"); it != g.end()) add_ids(c.eos_ids, *it, source);
  for (const int32_t id : c.eos_ids)
    if (id >= config.vocab_size)
      throw FormatError(cat(source, ": eos_token_id ", id,
                            " is not a token id in [0, vocab_size=", config.vocab_size, ")"));
  if (auto t = number_field<double>(g, "temperature", source)) c.sampling.temperature = *t;
  if (auto p = number_field<double>(g, "top_p", source)) c.sampling.top_p = *p;
  if (auto k = number_field<int>(g, "top_k", source)) c.sampling.top_k = std::max(0, *k);
  if (auto n = number_field<int>(g, "max_new_tokens", source); n && *n > 0) c.max_new_tokens = *n;
  if (auto it = g.find("do_sample"); it != g.end() && it->is_boolean() && !it->get<bool>())
    c.sampling.temperature = 0.0;
  try {
    c.sampling.validate();
  } catch (const UsageError& e) {
    throw FormatError(cat(source, ": ", e.what()));
  }
  return c;
}

GenerationConfig GenerationConfig::for_model(const std::filesystem::path& model_dir,
                                             const ModelConfig& config) {
  const auto path = model_dir / "generation_config.json";
  std::ifstream in(path);
  if (!in) return from_json(nlohmann::json(), config, path.string());
  nlohmann::json g;
  try {
    g = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(cat(path.string(), ": malformed JSON (", e.what(), ")"));
  }
  return from_json(g, config, path.string());
}

nlohmann::json GenerationConfig::to_json() const {
  return {{"temperature", sampling.temperature},
          {"top_p", sampling.top_p},
          {"top_k", sampling.top_k},
          {"greedy", sampling.greedy()},
          {"max_new_tokens", max_new_tokens},
          {"eos_ids", eos_ids},
          {"stop", stop},
          {"seed", seed}};
}

void SamplingOverrides::apply(SamplingParams& p) const {
  if (temperature) p.temperature = *temperature;
  if (top_p) p.top_p = *top_p;
  if (top_k) p.top_k = *top_k;
}

}  // namespace resp
