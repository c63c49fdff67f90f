// The model the driver tests prune: fixture qwen3-f32 (3 layers: 0 and 1 prunable, 2 protected)
// with the demo model's byte tokenizer, copied into a test's temporary directory.
#pragma once

#include "test_util.h"

namespace resp::test {

inline fs::path make_prune_model(const TempDir& d) {
  const fs::path m = d / "model";
  fs::copy(fixture_models() / "qwen3-f32", m, fs::copy_options::recursive);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fixture_models() / "qwen3-tiny-demo" / f, m / f);
  return m;
}

}  // namespace resp::test
