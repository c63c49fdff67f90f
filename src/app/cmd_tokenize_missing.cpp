// Placeholder used only while the tokenizer layer is absent from the build.
#include <CLI/CLI.hpp>

#include "app/commands.h"

namespace resp::app {
void register_tokenize(CLI::App&, Action*) {}
}  // namespace resp::app
