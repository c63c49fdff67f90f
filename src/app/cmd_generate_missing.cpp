// Placeholder used only while the generate layer is absent from the build.
#include <CLI/CLI.hpp>

#include "app/commands.h"

namespace resp::app {
void register_generate(CLI::App&, Action*) {}
void register_eval(CLI::App&, Action*) {}
void register_importance(CLI::App&, Action*) {}
void register_prune(CLI::App&, Action*) {}
void register_export(CLI::App&, Action*) {}
void register_bench_generate(CLI::App&, Action*) {}
void register_bench_checkpoint(CLI::App&, Action*) {}
void register_synth(CLI::App&, Action*) {}
void register_train(CLI::App&, Action*) {}
}  // namespace resp::app
