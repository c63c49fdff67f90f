// `resp synth-math`: writes the synthetic word-problem splits (src/train/synthetic_math.h) as
// GSM8K-format JSONL, train and held-out test disjoint by question text.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>

#include "app/commands.h"
#include "app/jsonl.h"
#include "core/error.h"
#include "train/synthetic_math.h"

namespace resp::app {

namespace {

struct SynthArgs {
  std::filesystem::path out;
  uint64_t seed = 1;
  int64_t train = 20000;
  int64_t test = 500;
  SyntheticMathOptions options;
};

void write_split(const std::filesystem::path& path, const std::vector<SyntheticProblem>& rows) {
  AtomicOutput out(path);
  for (const auto& p : rows) out.stream() << p.to_row().dump() << "\n";
  out.commit();
}

int run_synth(const SynthArgs& a) {
  a.options.validate();
  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec) throw IoError("cannot create " + a.out.string() + ": " + ec.message());
  const auto train = make_synthetic_split(a.seed, 0, a.train, a.options);
  std::vector<std::string> seen;
  seen.reserve(train.size());
  for (const auto& p : train) seen.push_back(p.question);
  // The test split draws from a disjoint index range and skips any question of the train split.
  const auto test = make_synthetic_split(a.seed, uint64_t{1} << 40, a.test, a.options, seen);
  write_split(a.out / "train.jsonl", train);
  write_split(a.out / "test.jsonl", test);
  std::printf("wrote %s/train.jsonl (%lld problems) and test.jsonl (%lld)\n", a.out.c_str(),
              static_cast<long long>(train.size()), static_cast<long long>(test.size()));
  return 0;
}

}  // namespace

void register_synth(CLI::App& root, Action* selected) {
  auto args = std::make_shared<SynthArgs>();
  auto* cmd = root.add_subcommand(
      "synth-math", "Write synthetic GSM8K-style word problems (train.jsonl, test.jsonl)");
  cmd->add_option("--out", args->out, "output directory")->required();
  cmd->add_option("--seed", args->seed, "generator seed")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--train", args->train, "number of training problems")->capture_default_str();
  cmd->add_option("--test", args->test, "number of held-out problems")->capture_default_str();
  auto& o = args->options;
  cmd->add_option("--min-ops", o.min_ops, "fewest operations per problem")->capture_default_str();
  cmd->add_option("--max-ops", o.max_ops, "most operations per problem")->capture_default_str();
  cmd->add_option("--min-start", o.min_start, "smallest initial amount")->capture_default_str();
  cmd->add_option("--max-start", o.max_start, "largest initial amount")->capture_default_str();
  cmd->add_option("--max-addend", o.max_addend, "largest amount added or removed")
      ->capture_default_str();
  cmd->add_option("--max-factor", o.max_factor, "largest multiplier / divisor / pack count")
      ->capture_default_str();
  cmd->add_option("--max-pack", o.max_pack, "largest pack size")->capture_default_str();
  cmd->add_option("--max-value", o.max_value, "largest intermediate value")->capture_default_str();
  cmd->add_flag("--gold-markup", o.gold_markup,
                "write the gold `answer` in GSM8K's terse calculator-markup style");
  cmd->add_flag("--thinking", o.thinking,
                "also write a model-style `thinking` trace per problem (the testbed's training "
                "target)");
  cmd->callback([args, selected] { *selected = [args] { return run_synth(*args); }; });
}

}  // namespace resp::app
