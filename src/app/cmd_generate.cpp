// `resp generate`: continuations of prompts with the model's own sampling settings (RESP's
// self-generated calibration traces). Prompts are split over data-parallel replicas by index;
// each replica decodes its share with continuous batching on its TP group; world rank 0 writes
// every trace, in input order, to a file that appears only when complete.
//
//   resp generate --model DIR --prompts FILE.jsonl --out traces.jsonl [--chat]
//                 [--thinking auto|on|off] [--system TEXT]
//                 [--task gsm8k|mathqa] [--max-new-tokens N] [--temperature T] [--top-p P]
//                 [--top-k K] [--seed S] [--batch-size B] [--stop STR]... [--limit N]
// Input lines: {"id"?, "prompt": "..."} (plain text, or one user turn with --chat),
// {"id"?, "messages": [{"role", "content"}, ...]} (always through the chat template), or, with
// --task, dataset rows (GSM8K / MathQA) turned into RESP's calibration prompt.
// Output lines: {"id", "prompt_tokens", "output_tokens", "n_prompt_tokens", "n_output_tokens",
// "text", "finish_reason": "eos"|"length"|"stop"[, "stop"]}.
#include <CLI/CLI.hpp>

#include "app/commands.h"
#include "app/generation_flags.h"
#include "app/jsonl.h"
#include "app/runtime_flags.h"
#include "core/log.h"
#include "core/timer.h"
#include "generate/data_parallel.h"
#include "generate/progress.h"
#include "generate/session.h"
#include "generate/tasks.h"

namespace resp::app {

namespace {

struct GenerateOptions {
  std::string model, prompts, out, task;
  int limit = 0;
  GenerationFlags flags;
  RuntimeFlags runtime;
};

std::string id_key(const nlohmann::json& id) {
  return id.is_string() ? id.get<std::string>() : id.dump();
}

std::vector<ChatMessage> parse_messages(const JsonlRecord& r, const std::string& where) {
  const auto& m = r.value.at("messages");
  if (!m.is_array() || m.empty())
    throw UsageError(cat(where, ": \"messages\" must be a non-empty array"));
  std::vector<ChatMessage> out;
  for (const auto& e : m) {
    if (!e.is_object() || !e.contains("role") || !e.contains("content") || !e["role"].is_string() ||
        !e["content"].is_string())
      throw UsageError(
          cat(where, ": every message needs string \"role\" and \"content\", got ", e.dump()));
    out.push_back({e["role"].get<std::string>(), e["content"].get<std::string>()});
  }
  return out;
}

int run_generate(const GenerateOptions& o) {
  Stopwatch wall;
  std::optional<Task> task;
  if (!o.task.empty()) task = parse_task(o.task);
  if (o.limit < 0) throw UsageError(cat("--limit must be >= 0, got ", o.limit));
  Runtime rt = start_runtime(o.runtime);
  const ParallelLayout& L = rt.par.layout;

  const auto records = read_jsonl(o.prompts, o.limit, "prompts");

  GenerationSession S(o.model, o.flags, 2048);
  const ChatOptions chat_opts = S.chat_options();
  const bool chat_prompts = o.flags.chat.value_or(false);
  std::vector<GenerationRequest> requests;
  std::vector<nlohmann::json> ids;
  for (size_t i = 0; i < records.size(); ++i) {
    const JsonlRecord& r = records[i];
    const std::string where = cat(o.prompts, ":", r.line);
    const nlohmann::json id = r.value.contains("id") ? r.value["id"] : nlohmann::json(i);
    std::string text;
    bool raw = false;
    try {
      if (task) {
        text = calibration_prompt(*task, r.value, S.chat(), chat_opts.thinking,
                                  chat_opts.system_prompt);
      } else if (r.value.contains("messages")) {
        if (r.value.contains("prompt"))
          throw UsageError("has both \"prompt\" and \"messages\"; give one");
        text = S.chat().render(parse_messages(r, where), chat_opts);
      } else if (r.value.contains("prompt")) {
        const auto& p = r.value["prompt"];
        if (!p.is_string()) throw UsageError(cat("\"prompt\" must be a string, got ", p.dump()));
        text = p.get<std::string>();
        if (text.empty()) throw UsageError("empty prompt");
        if (chat_prompts) {
          text = S.chat().render({ChatMessage{"user", text}}, chat_opts);
        } else {
          if (!chat_opts.system_prompt.empty())
            throw UsageError("--system needs --chat (a plain-text prompt has no system message)");
          raw = true;
        }
      } else {
        throw UsageError("needs \"prompt\" or \"messages\" (or use --task for dataset rows)");
      }
    } catch (const UsageError& e) {
      const std::string msg = e.what();
      throw UsageError(msg.rfind(where, 0) == 0 ? msg : cat(where, ": ", msg));
    }
    auto tokens = S.encode(text, raw);
    S.check_prompt(tokens, where);
    requests.push_back({id_key(id), std::move(tokens)});
    ids.push_back(id);
  }

  S.load(*rt.backend, *rt.par.tp);
  ProgressPrinter printer(
      L.dp > 1 ? cat("generate [replica 0 of ", L.dp, "]") : "generate",
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

  if (L.rank == 0) {
    AtomicOutput out(o.out);
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      nlohmann::json line = {{"id", ids[i]},
                             {"prompt_tokens", requests[i].prompt},
                             {"output_tokens", r.tokens},
                             {"n_prompt_tokens", requests[i].prompt.size()},
                             {"n_output_tokens", r.tokens.size()},
                             {"text", S.decode(r.tokens)},
                             {"finish_reason", finish_reason_name(r.finish)}};
      if (r.finish == FinishReason::Stop) line["stop"] = r.stop;
      out.stream() << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }
    out.commit();
  }
  log_info("generated ", stats.generated_tokens, " tokens for ", results.size(), " prompts in ",
           stats.seconds, " s (", stats.seconds > 0 ? stats.generated_tokens / stats.seconds : 0.0,
           " tok/s; ", L.str(), "); wall ", wall.seconds(), " s");
  rt.par.world->barrier();
  return 0;
}

}  // namespace

void register_generate(CLI::App& root, Action* selected) {
  auto opts = std::make_shared<GenerateOptions>();
  CLI::App* cmd = root.add_subcommand(
      "generate", "Generate continuations of prompts (self-generated calibration traces)");
  cmd->add_option("--model", opts->model, "Hugging Face model directory")->required();
  cmd->add_option("--prompts", opts->prompts,
                  "JSONL: {\"id\", \"prompt\"} or {\"id\", \"messages\"} per line, or dataset rows "
                  "with --task")
      ->required();
  cmd->add_option("--out", opts->out, "Output JSONL of traces")->required();
  cmd->add_option("--task", opts->task,
                  "Input rows are gsm8k | mathqa dataset rows: build RESP's calibration prompt");
  cmd->add_option("--limit", opts->limit, "Use only the first N input lines (0 = all)");
  add_generation_flags(*cmd, opts->flags);
  add_runtime_flags(*cmd, opts->runtime);
  cmd->callback([opts, selected] { *selected = [opts] { return run_generate(*opts); }; });
}

}  // namespace resp::app
