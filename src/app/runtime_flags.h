// The runtime flags of the compute commands (--tp, --threads, --device), registered by one
// helper so that every command spells, explains and checks them alike (the CLI is a contract),
// and carried as typed values into start_runtime and the prune / train configurations.
#pragma once

#include <optional>

#include "app/runtime.h"

namespace CLI {
class App;
}

namespace resp::app {

struct RuntimeFlags {
  std::optional<int> tp;       // --tp N (>= 1); unset: 1, or the config's parallel.tp
  std::optional<int> threads;  // --threads N (>= 0, 0: OMP_NUM_THREADS or all cores); unset: 0,
                               // or the config's parallel.threads
  DeviceChoice device = DeviceChoice::Auto;
};

// Which of the flags a command takes. `config_keys`: the command reads a YAML configuration
// whose parallel.tp / parallel.threads the flags replace (the help says so).
struct RuntimeFlagSelection {
  bool tp = true;
  bool threads = true;
  bool device = true;
  bool config_keys = false;
};

// Adds the selected flags to `cmd`; parsing writes them into `flags`, which must outlive it.
// Bad values (--tp 0, --threads -1, --device tpu) are CLI11 validation errors: one line naming
// the flag, exit code 2 (main.cpp).
void add_runtime_flags(CLI::App& cmd, RuntimeFlags& flags, RuntimeFlagSelection which = {});

// start_runtime(tp, threads, device) with the flags' values (tp 1, threads 0 when unset).
Runtime start_runtime(const RuntimeFlags& flags);

}  // namespace resp::app
