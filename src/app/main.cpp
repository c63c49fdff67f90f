// Entry point: parse the command line, run the chosen subcommand, map errors to exit codes.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "app/commands.h"
#include "app/omp_wait.h"
#include "backend/cpu/cpu_isa.h"
#include "comm/mpi_communicator.h"
#include "core/error.h"
#include "core/version.h"

int main(int argc, char** argv) {
  // Before anything else: libgomp has read its environment already, and this may re-execute.
  resp::app::apply_default_omp_wait(argc, argv);
  CLI::App root{"resp: self-reflective structured pruning (RESP) of reasoning language models"};
  // The version line names the CPU kernels' ISA too: what a job log needs to explain the speed
  // (or a refused RESP_CPU_ISA) of a node.
  root.set_version_flag("--version", [] {
    std::string isa;
    try {
      isa = resp::cpu_isa_name(resp::active_cpu_isa());
    } catch (const std::exception& e) {
      isa = e.what();
    }
    return std::string("resp ") + RESP_VERSION + " (cpu isa: " + isa + ")";
  });
  root.require_subcommand(1);
  root.fallthrough(false);
  resp::app::Action selected;
  resp::app::register_logprobs(root, &selected);
  resp::app::register_bench(root, &selected);
  resp::app::register_tokenize(root, &selected);
  resp::app::register_generate(root, &selected);
  resp::app::register_eval(root, &selected);
  resp::app::register_importance(root, &selected);
  resp::app::register_prune(root, &selected);
  resp::app::register_export(root, &selected);
  resp::app::register_synth(root, &selected);
  resp::app::register_train(root, &selected);
  resp::app::register_import_gguf(root, &selected);

  try {
    root.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return root.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line and exit 2, like every other usage error (CLI11's own codes are 100+).
    std::string msg = e.what();
    for (char& c : msg)
      if (c == '\n') c = ' ';
    std::fprintf(stderr, "resp: error: %s (see resp --help)\n", msg.c_str());
    return 2;
  }
  int code = 0;
  try {
    return selected ? selected() : 2;
  } catch (const resp::UsageError& e) {
    std::fprintf(stderr, "resp: error: %s\n", e.what());
    code = 2;
  } catch (const resp::ConfigError& e) {
    std::fprintf(stderr, "resp: error: %s\n", e.what());
    code = 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "resp: error: %s\n", e.what());
    code = 1;
  }
  resp::MpiRuntime::shutdown_after_error(code);
  return code;
}
