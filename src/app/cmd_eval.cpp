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
#include "app/generation_flags.h"
#include "app/jsonl.h"
#include "app/runtime_flags.h"
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
  RuntimeFlags runtime;
};

// results.json -> results.items.jsonl (next to it).
std::filesystem::path default_items_path(const std::filesystem::path& out) {
  std::filesystem::path p = out;
  p.replace_extension();
  p += ".items.jsonl";
  return p;
}

// What the options resolve to, checked before the runtime starts.
struct EvalPlan {
  Task task = Task::Gsm8k;
  Extractor extractor = Extractor::Resp;
  int shots = 0;
  std::filesystem::path items_path;
};

EvalPlan check_eval_options(const EvalOptions& o) {
  EvalPlan p;
  p.task = parse_task(o.task);
  p.extractor = parse_extractor(o.extract);
  if (p.extractor == Extractor::LmEval && p.task != Task::Gsm8k)
    throw UsageError(
        cat("--extract lm-eval supports only --task gsm8k (lm-evaluation-harness's "
            "gsm8k_cot rules), not ",
            task_name(p.task)));
  if (o.limit < 0) throw UsageError(cat("--limit must be >= 0, got ", o.limit));
  p.shots = o.shots.value_or(p.task == Task::Gsm8k ? 8 : 0);
  if (p.task == Task::Gsm8k && (p.shots < 0 || p.shots > 8))
    throw UsageError(cat("--shots for gsm8k must be in [0, 8], got ", p.shots));
  if (p.task == Task::MathQA && p.shots != 0)
    throw UsageError(cat("mathqa is evaluated 0-shot; --shots ", p.shots, " is not supported"));
  p.items_path = o.items.empty() ? default_items_path(o.out) : std::filesystem::path(o.items);
  if (p.items_path == std::filesystem::path(o.out))
    throw UsageError("--items must differ from --out");
  // Both outputs are files: refuse a directory before anything is written beside it.
  for (const auto& path : {std::filesystem::path(o.out), p.items_path})
    if (std::filesystem::is_directory(path))
      throw UsageError(cat(path.string(), " is a directory; --out and --items name files"));
  return p;
}

// How the prompts are written: through the chat template or as plain text, the exemplars as
// separate turns or one, and the stop string of a plain-text few-shot prompt.
EvalPromptOptions eval_prompt_options(const EvalOptions& o, const EvalPlan& plan, bool chat,
                                      GenerationSession& S) {
  if (!chat && !o.flags.system_prompt.empty())
    throw UsageError(
        "--system needs a chat template (it was used with --no-chat or a model without one)");
  if (!chat && o.fewshot_as_multiturn.value_or(false))
    throw UsageError(
        "--fewshot-as-multiturn needs a chat template (it was used with --no-chat or "
        "a model without one)");
  EvalPromptOptions po;
  po.task = plan.task;
  po.shots = plan.shots;
  po.chat = chat ? &S.chat() : nullptr;
  po.thinking = parse_thinking(o.flags.thinking);
  po.system_prompt = o.flags.system_prompt;
  // The exemplars as separate turns: only through a chat template and with GSM8K exemplars.
  po.fewshot_as_multiturn =
      chat && plan.task == Task::Gsm8k && plan.shots > 0 && o.fewshot_as_multiturn.value_or(true);
  // A plain-text few-shot prompt continues with the next "Q:" once the answer is given.
  if (!chat && plan.task == Task::Gsm8k && plan.shots > 0)
    S.generation_config().stop.push_back("\n\nQ:");
  return po;
}

// One request per dataset row, with its prompt text and id; a bad row fails before generating.
struct EvalRequests {
  std::vector<GenerationRequest> requests;
  std::vector<std::string> prompts;
  std::vector<nlohmann::json> ids;
};

EvalRequests eval_requests(const std::vector<JsonlRecord>& rows, const EvalPromptOptions& po,
                           bool chat, const GenerationSession& S, const std::string& data) {
  EvalRequests r;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string where = cat(data, ":", rows[i].line);
    std::string text;
    try {
      task_gold(po.task, rows[i].value);  // a row without a gold answer fails before generating
      text = eval_prompt(po, rows[i].value);
    } catch (const UsageError& e) {
      throw UsageError(cat(where, ": ", e.what()));
    }
    auto tokens = S.encode(text, !chat);
    S.check_prompt(tokens, where);
    const nlohmann::json id =
        rows[i].value.contains("id") ? rows[i].value["id"] : nlohmann::json(i);
    r.requests.push_back({id.is_string() ? id.get<std::string>() : id.dump(), std::move(tokens)});
    r.prompts.push_back(std::move(text));
    r.ids.push_back(id);
  }
  return r;
}

// The results file: the summary, how generation went and every setting that shaped it.
nlohmann::json eval_results(const EvalOptions& o, const EvalPlan& plan, const EvalPromptOptions& po,
                            bool chat, GenerationSession& S, const GenerationStats& stats,
                            const ParallelLayout& L, const nlohmann::json& summary, double wall_s) {
  const auto& gc = S.generator().config();
  nlohmann::json res = {
      {"task", task_name(plan.task)},
      {"model", o.model},
      {"data", o.data},
      {"items_file", plan.items_path.string()},
      {"wall_time_s", wall_s},
      {"generation",
       {{"seconds", stats.seconds},
        {"prompt_tokens", stats.prompt_tokens},
        {"generated_tokens", stats.generated_tokens},
        {"tokens_per_s", stats.seconds > 0 ? stats.generated_tokens / stats.seconds : 0.0}}},
      {"settings",
       {{"shots", plan.shots},
        {"fewshot_as_multiturn", po.fewshot_as_multiturn},
        {"extract", extractor_name(plan.extractor)},
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
  return res;
}

// The per-item JSONL first, then the results JSON, each atomically: a results file exists
// only for a complete run.
void write_eval_outputs(const EvalPlan& plan, const std::string& out,
                        const std::vector<nlohmann::json>& items, const nlohmann::json& res) {
  {
    AtomicOutput f(plan.items_path);
    for (const auto& it : items)
      f.stream() << it.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    f.commit();
  }
  AtomicOutput f(out);
  f.stream() << res.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  f.commit();
}

int run_eval(const EvalOptions& o) {
  Stopwatch wall;
  const EvalPlan plan = check_eval_options(o);
  Runtime rt = start_runtime(o.runtime);
  const ParallelLayout& L = rt.par.layout;

  const auto rows = read_jsonl(o.data, o.limit, "rows");

  GenerationSession S(o.model, o.flags, plan.task == Task::Gsm8k ? 2048 : 4096);
  const bool chat = o.flags.chat.value_or(S.has_chat_template());
  const EvalPromptOptions po = eval_prompt_options(o, plan, chat, S);
  const EvalRequests req = eval_requests(rows, po, chat, S, o.data);

  S.load(*rt.backend, *rt.par.tp);
  ProgressPrinter printer(
      cat("eval ", task_name(plan.task), L.dp > 1 ? cat(" [replica 0 of ", L.dp, "]") : ""),
      (L.rank == 0 && !o.flags.quiet) ? ProgressPrinter::Mode::Auto : ProgressPrinter::Mode::Off);
  GenerationProgress last;
  GenerationStats stats;
  const auto results = generate_data_parallel(
      S.generator(), req.requests, *rt.par.dp,
      [&](const GenerationProgress& p) {
        last = p;
        printer.update(p);
      },
      &stats);
  printer.finish(last);

  Evaluator ev(plan.task, S.thinking_output(chat), plan.extractor);
  std::vector<nlohmann::json> items;
  for (size_t i = 0; i < results.size(); ++i)
    items.push_back(ev.add(i, req.ids[i], rows[i].value, req.prompts[i],
                           S.decode(results[i].tokens), results[i]));
  nlohmann::json summary = ev.summary();

  if (L.rank == 0) {
    write_eval_outputs(plan, o.out, items,
                       eval_results(o, plan, po, chat, S, stats, L, summary, wall.seconds()));
    std::fprintf(stderr,
                 "%s: accuracy strict %.4f flexible %.4f (n=%lld); mean %.1f / p95 %.0f generated "
                 "tokens; truncated %.1f%%; %.1f s\n",
                 task_name(plan.task), summary["accuracy"]["strict"].get<double>(),
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
  add_generation_flags(*cmd, opts->flags);
  add_runtime_flags(*cmd, opts->runtime);
  cmd->callback([opts, selected] { *selected = [opts] { return run_eval(*opts); }; });
}

}  // namespace resp::app
