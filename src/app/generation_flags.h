// The generation flags of `resp generate` and `resp eval` on a CLI11 command. The values are
// the generate layer's GenerationFlags (what GenerationSession reads); only their registration
// lives here, so that the library does not depend on the CLI.
#pragma once

#include "generate/session.h"

namespace CLI {
class App;
}

namespace resp::app {

// Parsing writes into `flags`, which must outlive it.
void add_generation_flags(CLI::App& cmd, GenerationFlags& flags);

}  // namespace resp::app
