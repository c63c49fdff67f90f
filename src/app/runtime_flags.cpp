#include "app/runtime_flags.h"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string>

namespace resp::app {

namespace {

// Checks run on the text before conversion. The messages are what main() prints after
// "--flag: "; CLI11's numeric range checks would print a range up to DBL_MAX.
bool parse_int(const std::string& s, long long& v) {
  if (s.empty()) return false;
  char* end = nullptr;
  v = std::strtoll(s.c_str(), &end, 10);
  return *end == '\0';
}

const CLI::Validator kPositive(
    [](std::string& s) {
      long long v = 0;
      return parse_int(s, v) && v >= 1 ? std::string() : std::string("must be an integer >= 1");
    },
    "POSITIVE");

const CLI::Validator kThreads(
    [](std::string& s) {
      long long v = 0;
      return parse_int(s, v) && v >= 0
                 ? std::string()
                 : std::string("must be an integer >= 0 (0: OMP_NUM_THREADS or all cores)");
    },
    "NONNEGATIVE");

const CLI::Validator kDevice(
    [](std::string& s) {
      return (s == "auto" || s == "cpu" || s == "cuda") ? std::string()
                                                        : std::string("must be cpu, cuda or auto");
    },
    "{auto,cpu,cuda}");

}  // namespace

void add_runtime_flags(CLI::App& cmd, RuntimeFlags& flags, RuntimeFlagSelection which) {
  if (which.tp)
    cmd.add_option_function<int>(
           "--tp", [&flags](const int& v) { flags.tp = v; },
           which.config_keys ? "Tensor-parallel ranks per replica (same as --set parallel.tp=N)"
                             : "Tensor-parallel ranks per replica (world = tp x dp)")
        ->check(kPositive);
  if (which.threads)
    cmd.add_option_function<int>(
           "--threads", [&flags](const int& v) { flags.threads = v; },
           which.config_keys ? "CPU threads per rank (same as --set parallel.threads=N)"
                             : "CPU threads per rank (default: OMP_NUM_THREADS or all)")
        ->check(kThreads);
  if (which.device)
    cmd.add_option_function<std::string>(
           "--device", [&flags](const std::string& v) { flags.device = parse_device_choice(v); },
           "cpu | cuda | auto (default auto: cuda when a GPU is visible)")
        ->check(kDevice);
}

Runtime start_runtime(const RuntimeFlags& flags) {
  return start_runtime(flags.tp.value_or(1), flags.threads.value_or(0), flags.device);
}

}  // namespace resp::app
