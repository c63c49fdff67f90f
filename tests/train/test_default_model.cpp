// The embedded default model (models/resp-math-tiny, trained by tools/make_default_model.sh)
// really solves the held-out synthetic problems: greedy accuracy on a fixed 200-problem slice,
// with a margin below the figure docs/training.md states so that noise cannot flip it.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace resp {
namespace {

namespace fs = std::filesystem;

TEST(DefaultModel, SolvesTheHeldOutSlice) {
  const fs::path root = test::source_dir();
  const fs::path model = root / "models/resp-math-tiny";
  ASSERT_TRUE(fs::exists(model / "model.safetensors")) << "the embedded model is missing";
  test::TempDir d;
  const auto r = test::run_resp(
      "eval --model " + model.string() + " --task gsm8k --data " +
      (root / "data/synthetic-math/test.jsonl").string() +
      " --shots 0 --chat --thinking on --temperature 0 --max-new-tokens 160 --limit 200"
      " --batch-size 16 --threads 1 --quiet --out " +
      (d / "eval.json").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto res = nlohmann::json::parse(test::read_text(d / "eval.json"));
  const auto& s = res.contains("summary") ? res["summary"] : res;
  EXPECT_EQ(s["n"].get<int>(), 200);
  EXPECT_GE(s["accuracy"]["flexible"].get<double>(), 0.85) << s.dump();
  EXPECT_GE(s["accuracy"]["strict"].get<double>(), 0.85) << s.dump();
  EXPECT_LE(s["truncation_rate"].get<double>(), 0.02) << s.dump();
}

}  // namespace
}  // namespace resp
