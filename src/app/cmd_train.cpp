// `resp train`: full-parameter AdamW training (src/train), data-parallel over MPI.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/commands.h"
#include "app/runtime_flags.h"
#include "core/error.h"
#include "train/trainer.h"

namespace resp::app {

namespace {

struct TrainCliOptions {
  std::string config, out;
  std::vector<std::string> sets;
  bool resume = false;
  RuntimeFlags runtime;  // --threads only: training runs on the CPU with tp 1
  int max_steps = 0;
};

int run_train_cmd(const TrainCliOptions& o) {
  install_stop_signal_handlers();  // checkpoint after the current step, exit 0
  TrainRunOptions ro;
  ro.config = load_train_config(o.config, o.sets);
  // The flag wins over the file and every --set, as if it were the last --set.
  ro.config.threads = o.runtime.threads.value_or(ro.config.threads);
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
  add_runtime_flags(*cmd, o->runtime, {.tp = false, .device = false, .config_keys = true});
  cmd->add_option("--max-steps", o->max_steps,
                  "Stop (checkpointed, resumable) after this many steps in this process")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([o, selected] { *selected = [o] { return run_train_cmd(*o); }; });
}

}  // namespace resp::app
