// `resp train`: full-parameter AdamW training (src/train), data-parallel over MPI.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/commands.h"
#include "app/runtime.h"
#include "core/error.h"
#include "train/trainer.h"

namespace resp::app {

namespace {

struct TrainCliOptions {
  std::string config, out;
  std::vector<std::string> sets;
  bool resume = false;
  int threads = -1, max_steps = 0;
};

int run_train_cmd(const TrainCliOptions& o) {
  install_stop_signal_handlers();  // checkpoint after the current step, exit 0
  std::vector<std::string> sets = o.sets;
  if (o.threads >= 0) sets.push_back(cat("parallel.threads=", o.threads));
  TrainRunOptions ro;
  ro.config = load_train_config(o.config, sets);
  ro.out = o.out.empty() ? std::filesystem::path("runs") / std::filesystem::path(o.config).stem()
                         : std::filesystem::path(o.out);
  ro.resume = o.resume;
  ro.max_steps = o.max_steps;
  ro.stop_requested = stop_signal_received;

  Runtime rt = start_runtime(1, ro.config.threads);
  if (rt.par.layout.rank == 0)
    std::fprintf(stderr, "# resp train: %s\n# effective configuration (saved as %s)\n%s",
                 describe_layout(rt).c_str(), (ro.out / "config.yaml").string().c_str(),
                 to_yaml(ro.config).c_str());
  else
    describe_layout(rt);  // collective
  const TrainRunResult r = run_training(ro, rt.par, *rt.backend);
  if (rt.par.layout.rank == 0 && r.finished)
    std::fprintf(stderr, "resp train: finished %d steps; model in %s\n", r.steps_done,
                 (ro.out / "model").string().c_str());
  return 0;
}

}  // namespace

void register_train(CLI::App& root, Action* selected) {
  auto o = std::make_shared<TrainCliOptions>();
  CLI::App* cmd = root.add_subcommand(
      "train", "Full-parameter AdamW training / fine-tuning (data-parallel over MPI)");
  cmd->add_option("--config", o->config, "Training configuration (YAML; see configs/train-*)")
      ->required();
  cmd->add_option("--set", o->sets, "Override a key: section.key=value (repeatable)");
  cmd->add_option("--out", o->out, "Run directory (default: runs/<config name>)");
  cmd->add_flag("--resume", o->resume, "Continue from the checkpoint in --out");
  cmd->add_option("--threads", o->threads, "CPU threads per rank (--set parallel.threads=N)");
  cmd->add_option("--max-steps", o->max_steps,
                  "Stop (checkpointed, resumable) after this many steps in this process")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([o, selected] { *selected = [o] { return run_train_cmd(*o); }; });
}

}  // namespace resp::app
