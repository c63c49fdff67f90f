// Reads a fixture model's calibration.jsonl (prompt_tokens + output_tokens per line, written by
// tools/make_grad_fixtures.py) into the samples importance and gradient tests score.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "importance/calibration.h"
#include "test_util.h"

namespace resp::test {

inline std::vector<CalibrationSample> read_calibration_samples(const std::filesystem::path& file) {
  std::vector<CalibrationSample> out;
  for (const auto& j : parse_jsonl(read_text(file))) {
    CalibrationSample s;
    s.id = j["id"].get<std::string>();
    s.tokens = j["prompt_tokens"].get<std::vector<int32_t>>();
    s.prompt_len = static_cast<int>(s.tokens.size());
    for (int32_t t : j["output_tokens"].get<std::vector<int32_t>>()) s.tokens.push_back(t);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace resp::test
