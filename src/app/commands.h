// Subcommand registration. Each register_* adds its subcommand(s) to `root`; when the user
// selects one, CLI11 calls back and the command stores what to run in `*selected`. The action
// returns the process exit code; errors are thrown as resp::Error and reported by main().
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace resp::app {

using Action = std::function<int()>;

void register_logprobs(CLI::App& root, Action* selected);
void register_bench(CLI::App& root, Action* selected);
void register_tokenize(CLI::App& root, Action* selected);  // tokenize + detokenize
void register_generate(CLI::App& root, Action* selected);
void register_eval(CLI::App& root, Action* selected);
void register_importance(CLI::App& root, Action* selected);
void register_prune(CLI::App& root, Action* selected);  // prune + inspect
void register_export(CLI::App& root, Action* selected);
void register_synth(CLI::App& root, Action* selected);  // synth-math
void register_train(CLI::App& root, Action* selected);
void register_import_gguf(CLI::App& root, Action* selected);

}  // namespace resp::app
