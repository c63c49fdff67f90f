// `resp bench checkpoint`: write/read throughput of run checkpoints at the paper's scale
// (Qwen3-8B plan and scores: 36 layers x 32 heads x 12288 channels; 500 traces of 2.1k tokens).
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "app/bench_commands.h"
#include "ckpt/run_checkpoint.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"

namespace resp::app {

namespace {

struct CheckpointBenchOptions {
  int layers = 36, heads = 32, channels = 12288, traces = 500, tokens = 2100, repeat = 3;
  std::string dir;
};

int run_bench_checkpoint(const CheckpointBenchOptions& o) {
  RunState s;
  s.iteration = 0;
  s.config_yaml = "model: bench\n";
  s.model = "bench";
  for (int l = 0; l < o.layers; ++l) {
    LayerPlan p;
    LayerScores sc;
    for (int h = 0; h < o.heads; ++h) {
      p.heads.push_back(h);
      sc.head_ids.push_back(h);
      sc.heads.push_back(uniform01(1, static_cast<uint64_t>(l), static_cast<uint64_t>(h)));
    }
    for (int c = 0; c < o.channels; ++c) {
      p.channels.push_back(c);
      sc.channel_ids.push_back(c);
      sc.channels.push_back(uniform01(2, static_cast<uint64_t>(l), static_cast<uint64_t>(c)));
    }
    s.plan.push_back(std::move(p));
    s.scores.layers.push_back(std::move(sc));
  }
  for (int i = 0; i < o.traces; ++i) {
    TraceRecord t;
    t.id = std::to_string(i);
    for (int k = 0; k < o.tokens; ++k)
      (k < 100 ? t.prompt : t.output)
          .push_back(static_cast<int32_t>(
              random_u64(3, static_cast<uint64_t>(i), static_cast<uint64_t>(k)) % 151936));
    t.finish = "eos";
    s.traces.push_back(std::move(t));
  }
  const std::filesystem::path dir =
      o.dir.empty() ? std::filesystem::temp_directory_path() / "resp-bench-checkpoint"
                    : std::filesystem::path(o.dir);
  std::filesystem::create_directories(dir);
  double write_s = 0, read_s = 0, bytes = 0;
  for (int r = 0; r < o.repeat; ++r) {
    s.iteration = r;
    IterationRecord rec;  // a checkpoint's history ends at its own iteration
    rec.iteration = r;
    s.history.push_back(rec);
    Stopwatch w;
    write_run_checkpoint(dir, s);
    write_s += w.seconds();
    bytes = static_cast<double>(std::filesystem::file_size(checkpoint_path(dir, r)));
    Stopwatch rd;
    const RunState back = read_run_checkpoint(checkpoint_path(dir, r));
    read_s += rd.seconds();
    if (back.traces.size() != s.traces.size()) throw FormatError("checkpoint read back differs");
  }
  if (o.dir.empty()) std::filesystem::remove_all(dir);
  const double mb = bytes / 1e6;
  const nlohmann::json j = {{"bench", "checkpoint"},
                            {"mb", mb},
                            {"write_s", write_s / o.repeat},
                            {"read_s", read_s / o.repeat},
                            {"write_mb_per_s", mb * o.repeat / write_s},
                            {"read_mb_per_s", mb * o.repeat / read_s}};
  std::printf(
      "checkpoint: %.1f MB per iteration; write %.3f s (%.0f MB/s incl. fsync-free rename), read "
      "%.3f s (%.0f MB/s)\n%s\n",
      mb, write_s / o.repeat, mb * o.repeat / write_s, read_s / o.repeat, mb * o.repeat / read_s,
      j.dump().c_str());
  return 0;
}

}  // namespace

void register_bench_checkpoint(CLI::App& bench, Action* selected) {
  auto o = std::make_shared<CheckpointBenchOptions>();
  CLI::App* cmd = bench.add_subcommand("checkpoint", "Run checkpoint write/read throughput");
  cmd->add_option("--layers", o->layers);
  cmd->add_option("--heads", o->heads);
  cmd->add_option("--channels", o->channels);
  cmd->add_option("--traces", o->traces);
  cmd->add_option("--tokens", o->tokens, "Tokens per trace (prompt + output)");
  cmd->add_option("--repeat", o->repeat)->check(CLI::PositiveNumber);
  cmd->add_option("--dir", o->dir, "Where to write (default: a temporary directory)");
  cmd->callback([o, selected] { *selected = [o] { return run_bench_checkpoint(*o); }; });
}

}  // namespace resp::app
