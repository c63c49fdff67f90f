// `resp importance`: scores for every query head and MLP channel of a model from calibration
// data, written as HDF5 (ckpt/scores_file.h).
//   self: traces from `resp generate` ({"prompt_tokens", "output_tokens"}), prompt masked
//   gold: dataset rows (--task gsm8k|mathqa); the gold rationale is the response to RESP's
//         calibration prompt (chat template, thinking auto: on when the template has a
//         thinking mode; --thinking, --system)
//   text: {"text"} rows, full-sequence loss
#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/calibration_input.h"
#include "app/commands.h"
#include "app/jsonl.h"
#include "app/runtime_flags.h"
#include "ckpt/scores_file.h"
#include "core/log.h"
#include "core/timer.h"
#include "importance/scorer.h"
#include "model/model_config.h"
#include "model/model_shard.h"

namespace resp::app {

namespace {

struct ImportanceCliOptions {
  std::string model, traces, out, criterion = "taylor", loss, source = "self", task, chat_format;
  std::string thinking, system_prompt;
  RuntimeFlags runtime;
  int64_t limit = 0;
};

int run_importance(const ImportanceCliOptions& o) {
  const Criterion criterion = parse_criterion(o.criterion);
  if (o.source != "self" && o.source != "gold" && o.source != "text")
    throw UsageError(cat("unknown --source \"", o.source, "\" (choose self, gold, text)"));
  // Plain text has no prompt/response split: its natural loss is the full-sequence one.
  const LossMode loss =
      parse_loss_mode(o.loss.empty() ? (o.source == "text" ? "full" : "decode-only") : o.loss);
  if (o.source == "text" && loss == LossMode::DecodeOnly)
    throw UsageError("--source text has no response to mask: use --loss full");
  if (needs_data(criterion) && o.traces.empty())
    throw UsageError(
        cat("--criterion ", o.criterion, " needs calibration data: pass --traces FILE.jsonl"));

  Runtime rt = start_runtime(o.runtime);
  const ParallelLayout& L = rt.par.layout;
  const ModelConfig config = load_model_config(o.model);
  std::vector<CalibrationSample> samples;
  if (needs_data(criterion)) {
    CalibrationInput in;
    in.path = o.traces;
    in.source = o.source;
    in.task = o.task;
    in.model_dir = o.model;
    in.chat_format = o.chat_format;
    in.thinking = o.thinking;
    in.system_prompt = o.system_prompt;
    in.limit = o.limit;
    samples = load_calibration(in, config);
  }
  const ModelWeights weights = load_model_shard(o.model, config, *rt.par.tp, *rt.backend);
  log_info("importance: ", criterion_name(criterion), ", loss ", loss_mode_name(loss), ", source ",
           o.source, ", ", samples.size(), " samples; ", L.str());

  ImportanceOptions opt;
  opt.criterion = criterion;
  opt.loss = loss;
  opt.source = o.source;
  Stopwatch timer;
  opt.progress = [&](int64_t done, int64_t total) {
    if (done == total || done % 16 == 0)
      log_info("  ", done, "/", total, " samples on this replica, ", timer.seconds(), " s");
  };
  const ImportanceScores scores = compute_importance(weights, *rt.backend, rt.par, samples, opt);
  log_info("scored ", scores.samples, " samples (", scores.tokens, " loss tokens, mean loss ",
           scores.mean_loss, ") in ", timer.seconds(), " s");
  if (L.rank == 0) write_scores_h5(o.out, scores, o.model);
  rt.par.world->barrier();
  return 0;
}

}  // namespace

void register_importance(CLI::App& root, Action* selected) {
  auto o = std::make_shared<ImportanceCliOptions>();
  CLI::App* cmd =
      root.add_subcommand("importance", "Score attention heads and MLP channels (HDF5 out)");
  cmd->add_option("--model", o->model, "Hugging Face model directory")->required();
  cmd->add_option("--traces", o->traces,
                  "Calibration JSONL: traces (self), dataset rows (gold) or {\"text\"} (text)");
  cmd->add_option("--criterion", o->criterion, "taylor | taylor-vectorize | wanda-sp | magnitude");
  cmd->add_option("--loss", o->loss, "decode-only (default) | full (default for --source text)");
  cmd->add_option("--source", o->source, "self | gold | text");
  cmd->add_option("--task", o->task, "gsm8k | mathqa (for --source gold)");
  cmd->add_option("--chat-format", o->chat_format,
                  "Hand-written chat format instead of the model's own template (gold)");
  cmd->add_option("--thinking", o->thinking,
                  "Thinking mode of the gold prompts: auto (default) | on | off")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  cmd->add_option("--system", o->system_prompt, "System prompt of the gold prompts");
  cmd->add_option("--limit", o->limit, "Use only the first N records")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--out", o->out, "Output scores (.h5)")->required();
  add_runtime_flags(*cmd, o->runtime);
  cmd->callback([o, selected] { *selected = [o] { return run_importance(*o); }; });
}

}  // namespace resp::app
