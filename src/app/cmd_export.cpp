// `resp export`: writes the model of one completed iteration of a `resp prune` run as a Hugging
// Face checkpoint directory (ckpt/export.h). The iteration is given directly (--iteration) or
// as the one whose measured sparsity is closest to --sparsity (ties: the earlier iteration).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "app/commands.h"
#include "ckpt/export.h"
#include "ckpt/run_checkpoint.h"
#include "core/error.h"
#include "core/log.h"
#include "model/model_config.h"
#include "prune/plan.h"

namespace resp::app {

namespace {

namespace fs = std::filesystem;

struct ExportOptions {
  std::string run, format, out, model;
  double sparsity_value = 0;
  int iteration_value = 0;
  std::optional<double> sparsity;  // set when --sparsity was given
  std::optional<int> iteration;    // set when --iteration was given
};

// iter_NNNN.h5 -> NNNN, else -1.
int iteration_of(const fs::path& p) {
  const std::string n = p.filename().string();
  if (n.size() < 9 || n.rfind("iter_", 0) != 0 || n.substr(n.size() - 3) != ".h5") return -1;
  const std::string digits = n.substr(5, n.size() - 8);
  if (digits.empty() || digits.size() > 9) return -1;
  for (char c : digits)
    if (c < '0' || c > '9') return -1;
  return std::stoi(digits);
}

struct Candidate {
  int iteration = -1;
  double sparsity = 0;
  fs::path path;
};

std::string list_iterations(const std::vector<Candidate>& cs) {
  std::string s;
  for (const auto& c : cs) s += (s.empty() ? "" : ", ") + std::to_string(c.iteration);
  return s;
}

int run_export(const ExportOptions& o) {
  const ExportFormat format = parse_export_format(o.format);
  if (o.sparsity.has_value() == o.iteration.has_value())
    throw UsageError("give exactly one of --sparsity S and --iteration N");
  if (o.sparsity && !(*o.sparsity >= 0.0 && *o.sparsity < 1.0))
    throw UsageError(cat("--sparsity ", *o.sparsity, " outside [0, 1)"));
  const fs::path run_dir = o.run;
  if (!fs::is_directory(run_dir)) throw UsageError(cat("run directory ", o.run, " does not exist"));
  // Refuse early, before reading anything large (export_model checks again).
  if (fs::exists(o.out) && (!fs::is_directory(o.out) || !fs::is_empty(o.out)))
    throw UsageError(
        cat("output ", o.out,
            " exists and is not empty; choose a new directory (nothing was overwritten)"));

  const auto latest = latest_checkpoint(run_dir);
  if (!latest)
    throw UsageError(cat(o.run, " holds no completed iteration (no readable iter_NNNN.h5)"));
  const RunState last = read_run_checkpoint(*latest);
  const std::string model_dir = o.model.empty() ? last.model : o.model;
  if (!fs::is_directory(model_dir))
    throw UsageError(cat("dense model directory ", model_dir,
                         o.model.empty() ? " (recorded in the run) does not exist; pass --model DIR"
                                         : " does not exist"));
  const ModelConfig dense = load_model_config(model_dir);

  // Completed iterations with a checkpoint on disk, with their measured sparsity.
  std::vector<Candidate> candidates;
  for (const fs::path& p : list_checkpoints(run_dir)) {
    Candidate c;
    c.iteration = iteration_of(p);
    c.path = p;
    if (c.iteration < 0 || c.iteration > last.iteration) continue;
    bool known = false;
    for (const IterationRecord& r : last.history)
      if (r.iteration == c.iteration) {
        c.sparsity = r.sparsity;
        known = true;
      }
    if (!known) {
      try {
        c.sparsity = measured_sparsity(dense, read_run_checkpoint(p).plan);
      } catch (const Error& e) {
        log_warn("skipping ", p.string(), ": ", e.what());
        continue;
      }
    }
    candidates.push_back(c);
  }
  if (candidates.empty()) throw UsageError(cat(o.run, " holds no completed iteration"));

  const Candidate* chosen = nullptr;
  if (o.iteration) {
    for (const auto& c : candidates)
      if (c.iteration == *o.iteration) chosen = &c;
    if (!chosen)
      throw UsageError(cat("iteration ", *o.iteration, " has no checkpoint in ", o.run,
                           " (available: ", list_iterations(candidates), ")"));
  } else {
    for (const auto& c : candidates)
      if (!chosen ||
          std::fabs(c.sparsity - *o.sparsity) < std::fabs(chosen->sparsity - *o.sparsity))
        chosen = &c;
  }
  std::printf("iteration %d: measured sparsity %.4f", chosen->iteration, chosen->sparsity);
  if (o.sparsity) {
    double highest = 0;
    for (const auto& c : candidates) highest = std::max(highest, c.sparsity);
    std::printf(" (closest to the requested %.4f)", *o.sparsity);
    // The nearest checkpoint of a run that stopped short is not the model that was asked for.
    if (!sparsity_reached(highest, *o.sparsity)) {
      std::printf(" -- requested sparsity NOT REACHED: the run's highest is %.4f", highest);
      log_warn("no checkpoint of ", o.run, " reached sparsity ", *o.sparsity, " (highest ", highest,
               "); exporting iteration ", chosen->iteration);
    }
  }
  std::printf("\n");
  std::fflush(stdout);

  const RunState state = chosen->path == *latest ? last : read_run_checkpoint(chosen->path);
  if (format == ExportFormat::Compact) {
    const std::string why = compact_incompatibility(dense, state.plan);
    if (!why.empty())
      throw ConfigError(
          cat("iteration ", chosen->iteration, " cannot be exported as compact: ", why));
  }
  export_model(model_dir, dense, state.plan, format, o.out);
  const ModelConfig pruned = apply_plan(dense, state.plan);
  std::printf("wrote %s (%s, %.1fM of %.1fM parameters)\n", o.out.c_str(),
              export_format_name(format).c_str(),
              static_cast<double>(pruned.parameter_count()) / 1e6,
              static_cast<double>(dense.parameter_count()) / 1e6);
  return 0;
}

}  // namespace

void register_export(CLI::App& root, Action* selected) {
  auto opts = std::make_shared<ExportOptions>();
  CLI::App* cmd = root.add_subcommand(
      "export",
      "Write a pruned model of a `resp prune` run as a Hugging Face checkpoint directory");
  cmd->add_option("--run", opts->run, "Run directory of `resp prune` (holds iter_NNNN.h5)")
      ->required();
  auto* sp = cmd->add_option(
      "--sparsity", opts->sparsity_value,
      "Export the iteration whose measured sparsity is closest to S (ties: earlier)");
  auto* it = cmd->add_option("--iteration", opts->iteration_value, "Export iteration N")
                 ->check(CLI::NonNegativeNumber);
  sp->excludes(it);
  it->excludes(sp);
  cmd->add_option(
         "--format", opts->format,
         "masked: original shapes, pruned weights zeroed; compact: standard smaller config "
         "(uniform, GQA-aligned plans only); hetero: per-layer shapes, loadable by resp")
      ->required()
      ->check(CLI::IsMember({"masked", "compact", "hetero"}));
  cmd->add_option("--out", opts->out, "Output directory (must not exist or be empty)")->required();
  cmd->add_option("--model", opts->model,
                  "Dense model directory (default: the one recorded in the run)");
  cmd->callback([opts, selected, sp, it] {
    if (sp->count() > 0) opts->sparsity = opts->sparsity_value;
    if (it->count() > 0) opts->iteration = opts->iteration_value;
    *selected = [opts] { return run_export(*opts); };
  });
}

}  // namespace resp::app
