// `resp prune`: the main job (RESP progressive pruning with regeneration, or one-shot Wanda-sp
// with schedule.mode one-shot), and `resp inspect`.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "app/commands.h"
#include "app/runtime_flags.h"
#include "core/log.h"
#include "driver/prune_config.h"
#include "driver/prune_run.h"

namespace resp::app {

namespace {

struct PruneCliOptions {
  std::string config, out;
  std::vector<std::string> sets;
  RuntimeFlags runtime;
  bool resume = false;
  int max_iterations = 0;
};

int run_prune_cmd(const PruneCliOptions& o) {
  // First thing: a signal that arrives during start-up must also mean "stop after the next
  // checkpoint", not "die".
  install_stop_signal_handlers();
  // A bad config is an error before MPI starts work.
  PruneConfig cfg = load_prune_config(o.config, o.sets);
  // A flag on the command line wins over the file and every --set, as if it were the last --set.
  cfg.tp = o.runtime.tp.value_or(cfg.tp);
  cfg.threads = o.runtime.threads.value_or(cfg.threads);
  std::filesystem::path out = o.out;
  if (out.empty()) out = std::filesystem::path("runs") / std::filesystem::path(o.config).stem();

  Runtime rt = start_runtime(cfg.tp, cfg.threads, o.runtime.device);
  const std::string layout = describe_layout(rt);  // collective
  if (rt.par.layout.rank == 0) {
    std::fprintf(stderr, "# resp prune: %s\n", layout.c_str());
    std::fprintf(stderr, "# resp prune: effective configuration (saved as %s)\n%s",
                 (out / "config.yaml").string().c_str(), to_yaml(cfg).c_str());
  }
  PruneRunOptions ro;
  ro.config = cfg;
  ro.run_dir = out;
  ro.resume = o.resume;
  ro.max_iterations = o.max_iterations;
  ro.stop_requested = stop_signal_received;
  const PruneRunResult r = run_prune(ro, rt.par, *rt.backend);
  if (rt.par.layout.rank == 0) {
    std::cout << describe_run(out) << std::flush;
    if (r.finished)
      std::fprintf(stderr, "resp prune: finished; checkpoints in %s\n", out.string().c_str());
  }
  rt.par.world->barrier();
  return 0;
}

}  // namespace

void register_prune(CLI::App& root, Action* selected) {
  auto o = std::make_shared<PruneCliOptions>();
  CLI::App* cmd =
      root.add_subcommand("prune", "RESP progressive structured pruning (the main job)");
  cmd->add_option("--config", o->config, "Run configuration (YAML; see configs/)")->required();
  cmd->add_option("--set", o->sets, "Override a key: section.key=value (repeatable)");
  cmd->add_option("--out", o->out, "Run directory (default: runs/<config name>)");
  cmd->add_flag("--resume", o->resume, "Continue from the newest complete checkpoint in --out");
  add_runtime_flags(*cmd, o->runtime, {.config_keys = true});
  cmd->add_option(
         "--max-iterations", o->max_iterations,
         "Stop (checkpointed, resumable) after this many iterations (one-shot: targets) in "
         "this process")
      ->check(CLI::NonNegativeNumber);
  cmd->callback([o, selected] { *selected = [o] { return run_prune_cmd(*o); }; });

  auto dir = std::make_shared<std::string>();
  auto layers = std::make_shared<bool>(false);
  CLI::App* ins = root.add_subcommand("inspect", "Per-iteration table of a prune run");
  ins->add_option("run", *dir, "Run directory")->required();
  ins->add_flag("--layers", *layers, "Also show what each layer keeps");
  ins->callback([dir, layers, selected] {
    *selected = [dir, layers] {
      std::cout << describe_run(*dir, *layers);
      return 0;
    };
  });
}

}  // namespace resp::app
