// `resp logprobs`: per-token log-probabilities of given token sequences under a model.
// Sequences are split over data-parallel replicas by index; each replica runs its share with
// the model sharded over its TP group; results are summed across DP so rank 0 writes them all.
#include <CLI/CLI.hpp>
#include <iomanip>

#include "app/commands.h"
#include "app/jsonl.h"
#include "app/runtime_flags.h"
#include "core/log.h"
#include "core/timer.h"
#include "model/decoder.h"
#include "model/model_config.h"
#include "model/model_shard.h"

namespace resp::app {

namespace {

struct LogprobsOptions {
  std::string model, input, out;
  RuntimeFlags runtime;
};

int run_logprobs(const LogprobsOptions& o) {
  Runtime rt = start_runtime(o.runtime);
  const ParallelLayout& L = rt.par.layout;
  const ModelConfig config = load_model_config(o.model);
  const auto records = read_jsonl(o.input);
  std::vector<std::vector<int32_t>> seqs;
  for (const auto& r : records) {
    auto ids = token_list(r, "tokens");
    if (ids.empty()) throw UsageError(cat(o.input, ":", r.line, ": \"tokens\" is empty"));
    for (int32_t id : ids)
      if (id >= config.vocab_size)
        throw UsageError(cat(o.input, ":", r.line, ": token id ", id,
                             " outside the vocabulary [0, ", config.vocab_size, ")"));
    if (static_cast<int64_t>(ids.size()) > config.max_position_embeddings)
      throw UsageError(cat(o.input, ":", r.line, ": ", ids.size(),
                           " tokens exceed max_position_embeddings ",
                           config.max_position_embeddings));
    seqs.push_back(std::move(ids));
  }

  Stopwatch load_timer;
  const ModelWeights weights = load_model_shard(o.model, config, *rt.par.tp, *rt.backend);
  log_info("loaded ", arch_name(config.arch), " (", config.parameter_count() / 1e6, "M params, ",
           config.num_layers, " layers) in ", load_timer.seconds(), " s; ", L.str());

  // Flat result buffer, one slot per predicted token of every sequence, reduced over DP.
  std::vector<size_t> offset(seqs.size() + 1, 0);
  for (size_t i = 0; i < seqs.size(); ++i) offset[i + 1] = offset[i] + seqs[i].size() - 1;
  std::vector<double> all(offset.back(), 0.0);
  Decoder decoder(weights, *rt.backend, *rt.par.tp);
  Stopwatch timer;
  size_t tokens = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (static_cast<int>(i % static_cast<size_t>(L.dp)) != L.dp_rank) continue;
    const auto lp = decoder.sequence_logprobs(seqs[i]);
    std::copy(lp.begin(), lp.end(), all.begin() + static_cast<std::ptrdiff_t>(offset[i]));
    tokens += seqs[i].size();
  }
  if (!all.empty())
    rt.par.dp->all_reduce(Tensor(all.data(), DType::F64, Shape{static_cast<int64_t>(all.size())}));
  log_info("scored ", seqs.size(), " sequences (", tokens, " tokens on this replica) in ",
           timer.seconds(), " s");

  if (L.rank == 0) {
    AtomicOutput out(o.out);
    for (size_t i = 0; i < seqs.size(); ++i) {
      nlohmann::json line;
      const auto& rec = records[i].value;
      line["id"] = rec.contains("id") ? rec["id"] : nlohmann::json(i);
      line["logprobs"] =
          std::vector<double>(all.begin() + static_cast<std::ptrdiff_t>(offset[i]),
                              all.begin() + static_cast<std::ptrdiff_t>(offset[i + 1]));
      out.stream() << line.dump() << '\n';
    }
    out.commit();
  }
  rt.par.world->barrier();
  return 0;
}

}  // namespace

void register_logprobs(CLI::App& root, Action* selected) {
  auto opts = std::make_shared<LogprobsOptions>();
  CLI::App* cmd = root.add_subcommand(
      "logprobs", "Log-probability of every next token of given token sequences (JSONL in/out)");
  cmd->add_option("--model", opts->model, "Hugging Face model directory")->required();
  cmd->add_option("--input", opts->input, "JSONL: {\"tokens\": [int, ...], \"id\"?: ...} per line")
      ->required();
  cmd->add_option("--out", opts->out, "Output JSONL (default: stdout)");
  add_runtime_flags(*cmd, opts->runtime);
  cmd->callback([opts, selected] { *selected = [opts] { return run_logprobs(*opts); }; });
}

}  // namespace resp::app
