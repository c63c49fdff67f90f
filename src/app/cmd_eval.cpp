// `resp eval`: accuracy of a model on GSM8K or MathQA following RESP's protocol
// (shared/docs/resp-method.md): GSM8K 8-shot chain of thought (or --shots 0), MathQA 0-shot,
// through the model's chat template with thinking auto by default (on when the template has a
// thinking mode), sampled with the model's settings.
// Answers are extracted deterministically (strict and flexible, see
// generate/answer_extraction.h): by this project's extractor, or (--extract lm-eval) by
// lm-evaluation-harness's gsm8k_cot rules. With a chat template the GSM8K exemplars are separate
// user/assistant turns (--no-fewshot-as-multiturn: one user turn).
//
//   resp eval --model DIR --task gsm8k|mathqa --data FILE.jsonl --out results.json
//             [--items results.items.jsonl] [--shots N] [--limit N]
//             [--extract resp|lm-eval] [--[no-]fewshot-as-multiturn] [generation flags]
// Writes the per-item JSONL first, then the results JSON (both atomically): a results file
// exists only for a complete run.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/commands.h"
#include "app/jsonl.h"
#include "app/runtime.h"
#include "core/log.h"
#include "core/timer.h"
#include "generate/data_parallel.h"
#include "generate/evaluator.h"
#include "generate/progress.h"
#include "generate/session.h"
#include "generate/tasks.h"

namespace resp::app {

namespace {

struct EvalOptions {
  std::string model, task, data, out, items;
  std::optional<int> shots;
  int limit = 0;
  std::string extract = "resp";
  std::optional<bool> fewshot_as_multiturn;  // unset: on with a chat template
  GenerationFlags flags;
};

// results.json -> results.items.jsonl (next to it).
std::filesystem::path default_items_path(const std::filesystem::path& out) {
  std::filesystem::path p = out;
  p.replace_extension();
  p += ".items.jsonl";
  return p;
}

int run_eval(const EvalOptions& o) {
  Stopwatch wall;
  const Task task = parse_task(o.task);
  const Extractor extractor = parse_extractor(o.extract);
  if (extractor == Extractor::LmEval && task != Task::Gsm8k)
    throw UsageError(
        cat("--extract lm-eval supports only --task gsm8k (lm-evaluation-harness's "
            "gsm8k_cot rules), not ",
            task_name(task)));
  if (o.limit < 0) throw UsageError(cat("--limit must be >= 0, got ", o.limit));
  const int shots = o.shots.value_or(task == Task::Gsm8k ? 8 : 0);
  if (task == Task::Gsm8k && (shots < 0 || shots > 8))
    throw UsageError(cat("--shots for gsm8k must be in [0, 8], got ", shots));
  if (task == Task::MathQA && shots != 0)
    throw UsageError(cat("mathqa is evaluated 0-shot; --shots ", shots, " is not supported"));
  const std::filesystem::path items_path =
      o.items.empty() ? default_items_path(o.out) : std::filesystem::path(o.items);
  if (items_path == std::filesystem::path(o.out))
    throw UsageError("--items must differ from --out");
  // Both outputs are files: refuse a directory before anything is written beside it.
  for (const auto& p : {std::filesystem::path(o.out), items_path})
    if (std::filesystem::is_directory(p))
      throw UsageError(cat(p.string(), " is a directory; --out and --items name files"));
  Runtime rt = start_runtime(o.flags.tp, o.flags.threads, o.flags.device);
  const ParallelLayout& L = rt.par.layout;

  auto rows = read_jsonl(o.data);
  if (o.limit > 0 && rows.size() > static_cast<size_t>(o.limit))
    rows.resize(static_cast<size_t>(o.limit));
  if (rows.empty()) throw UsageError(cat(o.data, ": no rows"));

  GenerationSession S(o.model, o.flags, task == Task::Gsm8k ? 2048 : 4096);
  const bool chat = o.flags.chat.value_or(S.has_chat_template());
  if (!chat && !o.flags.system_prompt.empty())
    throw UsageError(
        "--system needs a chat template (it was used with --no-chat or a model without one)");
  if (!chat && o.fewshot_as_multiturn.value_or(false))
    throw UsageError(
        "--fewshot-as-multiturn needs a chat template (it was used with --no-chat or "
        "a model without one)");
  // The exemplars as separate turns: only through a chat template and with GSM8K exemplars.
  const bool multiturn =
      chat && task == Task::Gsm8k && shots > 0 && o.fewshot_as_multiturn.value_or(true);
  EvalPromptOptions po;
  po.task = task;
  po.shots = shots;
  po.chat = chat ? &S.chat() : nullptr;
  po.thinking = parse_thinking(o.flags.thinking);
  po.system_prompt = o.flags.system_prompt;
  po.fewshot_as_multiturn = multiturn;
  // A plain-text few-shot prompt continues with the next "Q:" once the answer is given.
  if (!chat && task == Task::Gsm8k && shots > 0) S.generation_config().stop.push_back("\n\nQ:");

  std::vector<GenerationRequest> requests;
  std::vector<std::string> prompts;
  std::vector<nlohmann::json> ids;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string where = cat(o.data, ":", rows[i].line);
    std::string text;
    try {
      task_gold(task, rows[i].value);  // a row without a gold answer fails before generating
      text = eval_prompt(po, rows[i].value);
    } catch (const UsageError& e) {
      throw UsageError(cat(where, ": ", e.what()));
    }
    auto tokens = S.encode(text, !chat);
    S.check_prompt(tokens, where);
    const nlohmann::json id =
        rows[i].value.contains("id") ? rows[i].value["id"] : nlohmann::json(i);
    requests.push_back({id.is_string() ? id.get<std::string>() : id.dump(), std::move(tokens)});
    prompts.push_back(std::move(text));
    ids.push_back(id);
  }

  S.load(*rt.backend, *rt.par.tp, L.tp, L.tp_rank);
  ProgressPrinter printer(
      cat("eval ", task_name(task), L.dp > 1 ? cat(" [replica 0 of ", L.dp, "]") : ""),
      (L.rank == 0 && !o.flags.quiet) ? ProgressPrinter::Mode::Auto : ProgressPrinter::Mode::Off);
  GenerationProgress last;
  GenerationStats stats;
  const auto results = generate_data_parallel(
      S.generator(), requests, *rt.par.dp,
      [&](const GenerationProgress& p) {
        last = p;
        printer.update(p);
      },
      &stats);
  printer.finish(last);

  Evaluator ev(task, S.thinking_output(chat), extractor);
  std::vector<nlohmann::json> items;
  for (size_t i = 0; i < results.size(); ++i)
    items.push_back(
        ev.add(i, ids[i], rows[i].value, prompts[i], S.decode(results[i].tokens), results[i]));
  nlohmann::json summary = ev.summary();

  if (L.rank == 0) {
    const auto& gc = S.generator().config();
    nlohmann::json res = {
        {"task", task_name(task)},
        {"model", o.model},
        {"data", o.data},
        {"items_file", items_path.string()},
        {"wall_time_s", wall.seconds()},
        {"generation",
         {{"seconds", stats.seconds},
          {"prompt_tokens", stats.prompt_tokens},
          {"generated_tokens", stats.generated_tokens},
          {"tokens_per_s", stats.seconds > 0 ? stats.generated_tokens / stats.seconds : 0.0}}},
        {"settings",
         {{"shots", shots},
          {"fewshot_as_multiturn", multiturn},
          {"extract", extractor_name(extractor)},
          {"chat", chat},
          {"chat_format", chat ? S.chat().name() : "none"},
          {"thinking", S.thinking_output(chat)},
          {"system_prompt", o.flags.system_prompt},
          {"temperature", gc.sampling.temperature},
          {"top_p", gc.sampling.top_p},
          {"top_k", gc.sampling.top_k},
          {"greedy", gc.sampling.greedy()},
          {"max_new_tokens", gc.max_new_tokens},
          {"seed", gc.seed},
          {"stop", gc.stop},
          {"eos_ids", gc.eos_ids},
          {"batch_size", o.flags.batch_size},
          {"limit", o.limit},
          {"tp", L.tp},
          {"dp", L.dp}}}};
    res.update(summary);
    {
      AtomicOutput out(items_path);
      for (const auto& it : items)
        out.stream() << it.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
      out.commit();
    }
    AtomicOutput out(o.out);
    out.stream() << res.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    out.commit();
    std::fprintf(stderr,
                 "%s: accuracy strict %.4f flexible %.4f (n=%lld); mean %.1f / p95 %.0f generated "
                 "tokens; truncated %.1f%%; %.1f s\n",
                 task_name(task), summary["accuracy"]["strict"].get<double>(),
                 summary["accuracy"]["flexible"].get<double>(),
                 static_cast<long long>(summary["n"].get<int64_t>()),
                 summary["generated_tokens"]["mean"].get<double>(),
                 summary["generated_tokens"]["p95"].get<double>(),
                 100.0 * summary["truncation_rate"].get<double>(), wall.seconds());
  }
  rt.par.world->barrier();
  return 0;
}

}  // namespace

void register_eval(CLI::App& root, Action* selected) {
  auto opts = std::make_shared<EvalOptions>();
  CLI::App* cmd =
      root.add_subcommand("eval", "Accuracy on GSM8K or MathQA (RESP's evaluation protocol)");
  cmd->add_option("--model", opts->model, "Hugging Face model directory")->required();
  cmd->add_option("--task", opts->task, "gsm8k | mathqa")->required();
  cmd->add_option("--data", opts->data, "Dataset JSONL (GSM8K or MathQA fields)")->required();
  cmd->add_option("--out", opts->out, "Results JSON")->required();
  cmd->add_option("--items", opts->items,
                  "Per-item JSONL (default: next to --out, e.g. results.items.jsonl)");
  cmd->add_option_function<int>(
      "--shots", [o = opts.get()](const int& v) { o->shots = v; },
      "GSM8K chain-of-thought exemplars, 0..8 (default 8); MathQA: 0");
  cmd->add_option("--limit", opts->limit, "Evaluate only the first N rows (0 = all)");
  cmd->add_option("--extract", opts->extract,
                  "Answer extractor: resp (default) | lm-eval (lm-evaluation-harness gsm8k_cot "
                  "filters and exact_match; gsm8k only)");
  cmd->add_flag_function(
      "--fewshot-as-multiturn,!--no-fewshot-as-multiturn",
      [o = opts.get()](int64_t n) { o->fewshot_as_multiturn = n > 0; },
      "With --chat and GSM8K shots: each exemplar as its own user and assistant turn (default; "
      "--no-fewshot-as-multiturn: all exemplars in one user turn)");
  add_generation_flags(cmd, opts->flags);
  cmd->callback([opts, selected] { *selected = [opts] { return run_eval(*opts); }; });
}

}  // namespace resp::app
