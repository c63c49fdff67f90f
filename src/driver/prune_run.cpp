#include "driver/prune_run.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "ckpt/run_checkpoint.h"
#include "ckpt/run_lock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "driver/calibration_sources.h"
#include "driver/wanda_one_shot.h"
#include "generate/data_parallel.h"
#include "generate/generator.h"
#include "importance/scorer.h"
#include "model/decoder.h"
#include "model/model_shard.h"
#include "model/safetensors.h"
#include "prune/plan.h"

namespace resp {

namespace fs = std::filesystem;

namespace {

// The configuration as it is saved in checkpoints, with the layout-only keys normalised so
// that a run may resume under a different tp / thread count.
std::string layout_free_yaml(PruneConfig c) {
  c.tp = 1;
  c.threads = 0;
  return to_yaml(c);
}

struct Calibration {
  std::vector<GenerationRequest> requests;  // self: prompts to generate from
  std::vector<TraceRecord> fixed;           // gold / text: samples that never change
};

std::vector<CalibrationSample> samples_of(const std::vector<TraceRecord>& traces) {
  std::vector<CalibrationSample> out;
  out.reserve(traces.size());
  for (const auto& t : traces) {
    CalibrationSample s;
    s.id = t.id;
    s.tokens = t.prompt;
    s.prompt_len = static_cast<int>(t.prompt.size());
    s.tokens.insert(s.tokens.end(), t.output.begin(), t.output.end());
    out.push_back(std::move(s));
  }
  return out;
}

// Which prompts a regeneration round redraws: all of them, or a keyed random subset.
std::vector<size_t> regen_subset(size_t n, double fraction, uint64_t seed, int round) {
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  if (fraction >= 1.0) return idx;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    return random_u64(seed, 0x7265676eull + static_cast<uint64_t>(round), a) <
           random_u64(seed, 0x7265676eull + static_cast<uint64_t>(round), b);
  });
  idx.resize(static_cast<size_t>(std::ceil(fraction * static_cast<double>(n))));
  std::sort(idx.begin(), idx.end());
  return idx;
}

int64_t count_heads(const PrunePlan& p) {
  int64_t n = 0;
  for (const auto& l : p) n += static_cast<int64_t>(l.heads.size());
  return n;
}
int64_t count_channels(const PrunePlan& p) {
  int64_t n = 0;
  for (const auto& l : p) n += static_cast<int64_t>(l.channels.size());
  return n;
}
int64_t count_kv(const ModelConfig& c) {
  int64_t n = 0;
  for (const auto& l : c.layers) n += l.n_kv_heads();
  return n;
}

// Rank 0 appends one line per iteration / target to RUN/timings.jsonl.
// A timings.jsonl record: `fields` plus what every record carries (the layout and how much the
// scores saw), so one-shot and progressive records share their columns.
nlohmann::json with_run_fields(const ParallelLayout& L, const ImportanceScores& scores,
                               nlohmann::json fields) {
  fields.update({{"world", L.world},
                 {"tp", L.tp},
                 {"dp", L.dp},
                 {"calibration_samples", scores.samples},
                 {"importance_tokens", scores.tokens}});
  return fields;
}

void append_timings(const fs::path& run, const nlohmann::json& j) {
  std::ofstream f(run / "timings.jsonl", std::ios::app);
  f << j.dump() << '\n';
  if (!f) log_warn("cannot append to ", (run / "timings.jsonl").string());
}

// Appends `rec` as iteration `it` of `state` and writes its checkpoint (rank 0 writes: the
// state is global and identical on every rank), recording the file's size and the time taken.
const IterationRecord& commit_iteration(const fs::path& run, RunState& state,
                                        const IterationRecord& rec, int it,
                                        const ParallelContext& par) {
  Stopwatch phase;
  state.iteration = it;
  state.history.push_back(rec);
  if (par.layout.rank == 0) {
    write_run_checkpoint(run, state);
    std::error_code ec;
    const auto bytes = fs::file_size(checkpoint_path(run, it), ec);
    state.history.back().checkpoint_mb = ec ? 0.0 : static_cast<double>(bytes) / 1e6;
  }
  par.world->barrier();
  state.history.back().t_checkpoint = phase.seconds();
  return state.history.back();
}

// After a complete checkpoint. With RESP_COMM_CHECK=1 every rank must have issued the same
// collectives by `where` (generation, importance, checkpoint); a rank that skipped one fails
// here, on all ranks. Then every rank votes on stopping (a signal, or max_iterations reached in
// this process), so all stop together; true when the run stops after `what` (never when no
// iteration is left).
bool stop_after_checkpoint(const PruneRunOptions& opt, const ParallelContext& par,
                           const char* where, const std::string& what, bool more_left,
                           int done_here) {
  par.tp->check_in_sync(where);
  par.dp->check_in_sync(where);
  par.world->check_in_sync(where);
  const double want_stop = (opt.stop_requested && opt.stop_requested()) ? 1.0 : 0.0;
  const bool stop = par.world->all_reduce_scalar(want_stop, ReduceOp::Max) > 0.0;
  if (!more_left || !(stop || (opt.max_iterations > 0 && done_here >= opt.max_iterations)))
    return false;
  log_info(stop ? "stop requested: " : "iteration limit reached: ", "checkpoint of ", what,
           " is complete; resume with --resume");
  return true;
}

// schedule.mode one-shot: Wanda-sp layer by layer from the dense model, once per target
// (wanda_one_shot.h); checkpoint k holds target k's plan. The plans are not nested: every
// target starts again from the dense model, so a resumed run only needs to know which targets
// are done (state.iteration).
PruneRunResult run_one_shot(const PruneRunOptions& opt, const ParallelContext& par,
                            Backend& backend, const ModelConfig& dense,
                            const CheckpointReader& reader, const std::vector<bool>& prot,
                            RunState& state) {
  const PruneConfig& cfg = opt.config;
  const ParallelLayout& L = par.layout;
  const fs::path& run = opt.run_dir;
  PruneRunResult result;
  // Every target's kept counts first: an unreachable target fails before any work.
  std::vector<UniformCounts> counts;
  for (double target : cfg.targets)
    counts.push_back(uniform_counts_for_sparsity(dense, prot, target, kOneShotTolerance));
  const int n_prunable = static_cast<int>(std::count(prot.begin(), prot.end(), false));
  log_info("one-shot wanda-sp: ", dense.num_layers, " layers (", n_prunable,
           " pruned layer by layer), ", state.traces.size(), " calibration samples (source ",
           cfg.source, "); ", L.str());
  for (const auto& u : counts)
    log_info("  target ", u.target, ": ratio ", std::setprecision(4), u.ratio,
             ", each layer removes ", u.heads_removed, " of ", dense.num_heads, " heads and ",
             u.channels_removed, " of ", dense.intermediate_size, " channels -> measured sparsity ",
             u.sparsity);
  const auto samples = samples_of(state.traces);
  double mean_out = 0;
  for (const auto& tr : state.traces) mean_out += static_cast<double>(tr.output.size());
  if (!state.traces.empty()) mean_out /= static_cast<double>(state.traces.size());

  const int n = static_cast<int>(cfg.targets.size());
  int done_here = 0;
  for (int k = state.iteration + 1; k < n; ++k) {
    const UniformCounts& u = counts[static_cast<size_t>(k)];
    Stopwatch whole;
    IterationRecord rec;
    rec.iteration = k;
    rec.ratio = u.ratio;
    rec.mean_output_tokens = mean_out;
    OneShotResult r = wanda_sp_one_shot(reader, dense, prot, samples, u, par, backend,
                                        [&](int layer, double sec) {
                                          log_info("  target ", u.target, ": layer ", layer,
                                                   " pruned (", std::setprecision(3), sec, " s)");
                                        });
    r.scores.source = cfg.source;
    rec.t_importance = r.t_importance;
    rec.t_prune = whole.seconds() - r.t_importance;
    rec.sparsity = measured_sparsity(dense, r.plan);
    if (!(std::fabs(rec.sparsity - u.target) <= kOneShotTolerance))
      throw Error(cat("one-shot target ", u.target, " ended at measured sparsity ", rec.sparsity));
    rec.heads_kept = count_heads(r.plan);
    rec.channels_kept = count_channels(r.plan);
    rec.kv_heads_kept = count_kv(apply_plan(dense, r.plan));
    state.plan = std::move(r.plan);
    state.scores = std::move(r.scores);

    const IterationRecord& h = commit_iteration(run, state, rec, k, par);
    log_info("target ", k, "/", n - 1, " (", u.target, "): measured sparsity ",
             std::setprecision(4), h.sparsity, ", kept ", h.heads_kept, " heads / ",
             h.channels_kept, " channels, times importance ", std::setprecision(3), h.t_importance,
             " s, prune ", h.t_prune, " s, ckpt ", h.t_checkpoint, " s");
    result.last_iteration = k;
    ++done_here;
    if (L.rank == 0)
      append_timings(run, with_run_fields(L, state.scores,
                                          {{"iteration", k},
                                           {"target", u.target},
                                           {"t_load", r.t_load},
                                           {"t_importance", h.t_importance},
                                           {"t_prune", h.t_prune - r.t_load},
                                           {"t_checkpoint", h.t_checkpoint},
                                           {"t_iteration", whole.seconds()}}));
    if (stop_after_checkpoint(opt, par, "end of one-shot target", cat("target ", k), k + 1 < n,
                              done_here)) {
      result.stopped = true;
      return result;
    }
  }
  result.finished = true;
  result.last_iteration = state.iteration;
  return result;
}

}  // namespace

namespace {

// ---- run_prune's steps ---------------------------------------------------------------------

// The run directory: the newest checkpoint's state when resuming (its configuration must be
// this one, layout aside), the lock (rank 0, held by the caller until the run ends) and
// config.yaml. Returns the checkpoint resumed from, if any.
std::optional<fs::path> open_run_dir(const PruneRunOptions& opt, const ParallelContext& par,
                                     RunState& state, std::optional<RunLock>& lock) {
  const PruneConfig& cfg = opt.config;
  const fs::path& run = opt.run_dir;
  std::optional<fs::path> resume_from;
  if (fs::exists(run)) {
    if (!fs::is_directory(run))
      throw UsageError(cat(run.string(), " exists and is not a directory"));
    if (opt.resume)
      resume_from = latest_checkpoint(run);
    else if (!list_checkpoints(run).empty())
      throw UsageError(cat(run.string(),
                           " already holds a run: pass --resume to continue it, or "
                           "choose a new --out (nothing was overwritten)"));
  }
  if (resume_from) {
    state = read_run_checkpoint(*resume_from);
    // Compared after a round trip through the schema, so that a run written before a key
    // existed (e.g. schedule.mode) resumes when the new key has its default. A saved
    // configuration this build cannot parse is reported as such: compared as raw text it could
    // only ever "differ", which would send the user looking for a change they did not make.
    std::string saved;
    try {
      saved = layout_free_yaml(parse_prune_config(state.config_yaml, {}, "checkpoint", "/"));
    } catch (const Error& e) {
      throw ConfigError(cat("cannot resume ", run.string(), ": the configuration saved in ",
                            resume_from->string(), " is not valid for this version of resp (",
                            e.what(), ")"));
    }
    if (saved != layout_free_yaml(cfg))
      throw ConfigError(cat("the configuration differs from the one of the run in ", run.string(),
                            " (only parallel.tp and parallel.threads may change on --resume); see ",
                            (run / "config.yaml").string()));
    log_info("resuming ", run.string(), " after iteration ", state.iteration, " (",
             resume_from->filename().string(), ", written with tp=", state.layout_tp,
             " dp=", state.layout_dp, ")");
  } else if (opt.resume) {
    log_info("--resume: no checkpoint in ", run.string(), " yet, starting from the beginning");
  }
  if (par.layout.rank == 0) {
    fs::create_directories(run);
    lock.emplace(run);  // before anything is written into the directory
    std::ofstream f(run / "config.yaml");
    f << to_yaml(cfg);
    if (!f) throw IoError(cat("cannot write ", (run / "config.yaml").string()));
  }
  par.world->barrier();
  return resume_from;
}

// The dense model's configuration; a checkpoint that is already pruned is refused.
ModelConfig load_dense_config(const PruneConfig& cfg) {
  ModelConfig dense = load_model_config(cfg.model);
  for (const auto& layer : dense.layers)
    if (layer.n_heads() != dense.num_heads || layer.d_ff() != dense.intermediate_size)
      throw ConfigError(cat(cfg.model, " is already pruned: start from the dense checkpoint"));
  return dense;
}

// Which layers pruning leaves alone: importance.protected_layers, or the default range.
std::vector<bool> protected_layer_mask(const PruneConfig& cfg, const ModelConfig& dense) {
  std::vector<bool> prot = default_protected_layers(dense.num_layers);
  if (cfg.protected_layers) {
    prot.assign(static_cast<size_t>(dense.num_layers), false);
    for (int l : *cfg.protected_layers) {
      if (l >= dense.num_layers)
        throw ConfigError(cat("importance.protected_layers: layer ", l, " >= ", dense.num_layers));
      prot[static_cast<size_t>(l)] = true;
    }
  }
  // A run that cannot remove anything would "finish" at sparsity ~0 against its target.
  if (std::find(prot.begin(), prot.end(), false) == prot.end())
    throw ConfigError(cat("importance.protected_layers protects all ", dense.num_layers,
                          " layers: nothing can be pruned"));
  return prot;
}

// What the calibration data needs: the tokenizer and chat format, and the prompts to generate
// from (source self) or the fixed samples (gold / text). Empty for a criterion without data.
struct CalibrationInputs {
  std::optional<Tokenizer> tok;
  std::optional<ChatFormat> chat;
  Calibration calib;
};

CalibrationInputs load_calibration_inputs(const PruneConfig& cfg, Criterion criterion) {
  CalibrationInputs in;
  if (!needs_data(criterion)) return in;
  in.tok = Tokenizer::load(cfg.model);
  const Task task = parse_task(cfg.task);
  const Thinking thinking = parse_thinking_setting(cfg.thinking, "generation.thinking");
  if (cfg.chat) {
    in.chat = ChatFormat::for_tokenizer(*in.tok, cfg.chat_format, cfg.model);
    in.chat->resolve(thinking);  // thinking: on without a thinking mode fails here, up front
  }
  const ChatFormat* chat = in.chat ? &*in.chat : nullptr;
  const auto rows = load_calibration_rows(cfg.prompts, cfg.num_prompts, cfg.shuffle_seed);
  for (const auto& row : rows) {
    const std::string where = cat(cfg.prompts, ":", row.line);
    if (cfg.source == "self") {
      GenerationRequest r;
      r.id = row.id;
      try {
        r.prompt = calibration_prompt_ids(task, row, *in.tok, chat, thinking, cfg.system_prompt);
      } catch (const UsageError& e) {
        throw UsageError(cat(where, ": ", e.what()));
      }
      in.calib.requests.push_back(std::move(r));
    } else {
      const CalibrationSample s =
          cfg.source == "gold"
              ? gold_sample(task, row, *in.tok, chat, thinking, where, cfg.system_prompt)
              : text_sample(row, *in.tok, where);
      TraceRecord t;
      t.id = s.id;
      t.prompt.assign(s.tokens.begin(), s.tokens.begin() + s.prompt_len);
      t.output.assign(s.tokens.begin() + s.prompt_len, s.tokens.end());
      t.finish = cfg.source;
      in.calib.fixed.push_back(std::move(t));
    }
  }
  log_info("calibration: ", rows.size(), " ", cfg.task, " prompts from ", cfg.prompts, " (source ",
           cfg.source, ", loss ", cfg.loss, ")");
  return in;
}

// How traces are sampled: the model's generation_config.json under the run's overrides.
GenerationConfig trace_generation_config(const PruneConfig& cfg, const ModelConfig& dense) {
  GenerationConfig g = GenerationConfig::for_model(cfg.model, dense);
  g.sampling.temperature = cfg.temperature;
  if (cfg.top_p) g.sampling.top_p = *cfg.top_p;
  if (cfg.top_k) g.sampling.top_k = *cfg.top_k;
  g.max_new_tokens = cfg.max_new_tokens;
  g.validate();
  return g;
}

// What one iteration measured beyond its IterationRecord, for timings.jsonl.
struct IterationTraffic {
  CommStats start, generate, importance;
  double t_load = 0;
  int64_t generated_tokens = 0, generated_sequences = 0;
};

// Regenerates the traces of all prompts, or of a keyed subset after the first round, with the
// current model; each round draws fresh samples (the round number is folded into the seed).
void regenerate_traces(const PruneConfig& cfg, const GenerationConfig& gen_cfg,
                       const CalibrationInputs& in, const ModelWeights& weights, Decoder& decoder,
                       const ParallelContext& par, int t, RunState& state, IterationRecord& rec,
                       IterationTraffic& traffic) {
  Stopwatch phase;
  const CommStats before_gen = comm_stats(par);
  GenerationConfig g = gen_cfg;
  g.seed = cfg.seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(state.regen_round);
  GeneratorOptions go;
  go.slots = cfg.batch_size;
  Generator gen(weights, decoder, *par.tp, g, go, &*in.tok);
  const auto& requests = in.calib.requests;
  const auto subset = regen_subset(requests.size(), state.traces.empty() ? 1.0 : cfg.regen_fraction,
                                   cfg.seed, state.regen_round);
  std::vector<GenerationRequest> reqs;
  for (size_t i : subset) reqs.push_back(requests[i]);
  Stopwatch gt;
  int64_t last_log = 0;
  const auto results = generate_data_parallel(gen, reqs, *par.dp, [&](const GenerationProgress& p) {
    if (gt.seconds() - static_cast<double>(last_log) >= 10.0) {
      last_log = static_cast<int64_t>(gt.seconds());
      log_info("  generating: ", p.done, "/", p.total, " sequences, ", p.generated_tokens,
               " tokens");
    }
  });
  if (state.traces.size() != requests.size()) state.traces.assign(requests.size(), TraceRecord{});
  for (size_t k = 0; k < subset.size(); ++k) {
    TraceRecord& tr = state.traces[subset[k]];
    tr.id = requests[subset[k]].id;
    tr.prompt = requests[subset[k]].prompt;
    tr.output = results[k].tokens;
    tr.finish = finish_reason_name(results[k].finish);
    traffic.generated_tokens += static_cast<int64_t>(results[k].tokens.size());
  }
  traffic.generated_sequences = static_cast<int64_t>(subset.size());
  traffic.generate = comm_stats(par) - before_gen;
  state.regen_pending = false;
  ++state.regen_round;
  rec.regenerated = true;
  rec.t_generate = phase.seconds();
  log_info("iteration ", t, ": generated ", subset.size(), " traces with the current model in ",
           rec.t_generate, " s (round ", state.regen_round, ")");
}

// Mean output length and truncated fraction of the traces the iteration scores with.
void record_trace_stats(const std::vector<TraceRecord>& traces, IterationRecord& rec) {
  if (traces.empty()) return;
  double sum = 0, trunc = 0;
  for (const auto& tr : traces) {
    sum += static_cast<double>(tr.output.size());
    trunc += tr.finish == "length" ? 1.0 : 0.0;
  }
  rec.mean_output_tokens = sum / static_cast<double>(traces.size());
  rec.truncated = trunc / static_cast<double>(traces.size());
}

// Importance of every head and channel of the current model on the current traces.
void score_current_model(const PruneConfig& cfg, Criterion criterion, const ModelWeights& weights,
                         Backend& backend, const ParallelContext& par, int t, RunState& state,
                         IterationRecord& rec, IterationTraffic& traffic) {
  Stopwatch phase;
  const CommStats before_imp = comm_stats(par);
  ImportanceOptions io;
  io.criterion = criterion;
  io.loss = parse_loss_mode(cfg.loss);
  io.source = cfg.source;
  const auto samples = samples_of(state.traces);
  try {
    state.scores = compute_importance(weights, backend, par, samples, io);
  } catch (const NumericError& e) {
    // Nothing of this iteration is written: the newest checkpoint stays the last good one.
    throw NumericError(cat("iteration ", t, ": ", e.what()));
  }
  rec.t_importance = phase.seconds();
  traffic.importance = comm_stats(par) - before_imp;
  rec.mean_loss = state.scores.mean_loss;
}

// The cumulative prune to rec.ratio; crossing a sparsity milestone asks for fresh traces.
void prune_current_model(const PruneConfig& cfg, const ModelConfig& dense, Ranking ranking,
                         const std::vector<bool>& prot, bool self_source, RunState& state,
                         IterationRecord& rec) {
  Stopwatch phase;
  const double before = measured_sparsity(dense, state.plan);
  state.plan = prune_to_ratio(dense, state.plan, state.scores, rec.ratio, ranking, prot);
  rec.sparsity = measured_sparsity(dense, state.plan);
  rec.heads_kept = count_heads(state.plan);
  rec.channels_kept = count_channels(state.plan);
  rec.kv_heads_kept = count_kv(apply_plan(dense, state.plan));
  rec.t_prune += phase.seconds();
  for (double m : cfg.milestones)
    if (before < m && rec.sparsity >= m && self_source) state.regen_pending = true;
}

// Rank 0's line of timings.jsonl for progressive iteration `r` (scaling studies:
// tools/scaling_study.py).
nlohmann::json iteration_timings(const IterationRecord& r, const IterationTraffic& traffic,
                                 const RunState& state, const ParallelContext& par,
                                 double t_iteration) {
  const ParallelLayout& L = par.layout;
  nlohmann::json j = with_run_fields(L, state.scores,
                                     {{"iteration", r.iteration},
                                      {"regenerated", r.regenerated},
                                      {"generated_sequences", traffic.generated_sequences},
                                      {"generated_tokens", traffic.generated_tokens},
                                      {"t_load", traffic.t_load},
                                      {"t_generate", r.t_generate},
                                      {"t_importance", r.t_importance},
                                      {"t_prune", r.t_prune - traffic.t_load},
                                      {"t_checkpoint", r.t_checkpoint},
                                      {"t_iteration", t_iteration}});
  const CommStats all = comm_stats(par) - traffic.start;
  auto comm_json = [](const CommStats& c) {
    return nlohmann::json{
        {"bytes", c.total_bytes()},
        {"all_reduce_bytes", c.all_reduce.bytes},
        {"all_gather_bytes", c.all_gather.bytes},
        {"broadcast_bytes", c.broadcast.bytes},
        {"calls", c.all_reduce.calls + c.all_gather.calls + c.broadcast.calls + c.barrier.calls},
        {"seconds", c.seconds}};
  };
  j["comm"] = {{"generate", comm_json(traffic.generate)},
               {"importance", comm_json(traffic.importance)},
               {"total", comm_json(all)}};
  return j;
}

}  // namespace

PruneRunResult run_prune(const PruneRunOptions& opt, const ParallelContext& par, Backend& backend) {
  const PruneConfig& cfg = opt.config;
  const ParallelLayout& L = par.layout;
  const fs::path& run = opt.run_dir;
  PruneRunResult result;

  RunState state;
  std::optional<RunLock> lock;  // held until the run returns or throws
  const std::optional<fs::path> resume_from = open_run_dir(opt, par, state, lock);

  const ModelConfig dense = load_dense_config(cfg);
  const CheckpointReader reader(cfg.model);
  const std::vector<bool> prot = protected_layer_mask(cfg, dense);
  const Criterion criterion = parse_criterion(cfg.criterion);
  const Ranking ranking = parse_ranking(cfg.ranking);
  const bool self_source = needs_data(criterion) && cfg.source == "self";
  const CalibrationInputs calibration = load_calibration_inputs(cfg, criterion);

  if (!resume_from) {
    state = RunState{};
    state.config_yaml = layout_free_yaml(cfg);
    state.model = cfg.model;
    state.seed = cfg.seed;
    state.plan = dense_plan(dense);
    state.regen_pending = self_source;  // the dense model's traces come first
    if (!self_source) state.traces = calibration.calib.fixed;
  }
  state.layout_tp = L.tp;
  state.layout_dp = L.dp;
  if (cfg.one_shot()) return run_one_shot(opt, par, backend, dense, reader, prot, state);

  const GenerationConfig gen_cfg =
      self_source ? trace_generation_config(cfg, dense) : GenerationConfig{};
  const int64_t units = total_units(dense);
  log_info("RESP: ", dense.num_layers, " layers, ", units, " prunable units (",
           dense.num_layers * dense.num_heads, " heads + ",
           int64_t{dense.num_layers} * dense.intermediate_size, " channels), ", cfg.iterations,
           " iterations to ratio ", cfg.final_ratio, ", criterion ", cfg.criterion, ", ranking ",
           cfg.ranking, "; ", L.str());

  int done_here = 0;
  for (int t = state.iteration + 1; t < cfg.iterations; ++t) {
    IterationRecord rec;
    rec.iteration = t;
    rec.ratio = cfg.ratio_at(t);
    Stopwatch whole;
    IterationTraffic traffic;
    traffic.start = comm_stats(par);

    // The current (pruned) model, materialised from the original checkpoint and the kept ids.
    const ModelConfig current = apply_plan(dense, state.plan);
    Stopwatch load;
    const ModelWeights weights =
        load_model_shard(reader, current, *par.tp, backend, {FileNumbering::Original});
    Decoder decoder(weights, backend, *par.tp);
    traffic.t_load = load.seconds();
    rec.t_prune += traffic.t_load;

    if (self_source && state.regen_pending)
      regenerate_traces(cfg, gen_cfg, calibration, weights, decoder, par, t, state, rec, traffic);
    record_trace_stats(state.traces, rec);
    score_current_model(cfg, criterion, weights, backend, par, t, state, rec, traffic);
    prune_current_model(cfg, dense, ranking, prot, self_source, state, rec);

    const IterationRecord& r = commit_iteration(run, state, rec, t, par);
    log_info("iteration ", t, "/", cfg.iterations - 1, ": ratio ", std::setprecision(3), r.ratio,
             " sparsity ", r.sparsity, ", kept ", r.heads_kept, " heads / ", r.channels_kept,
             " channels, loss ", r.mean_loss, ", times gen ", r.t_generate, " s, importance ",
             r.t_importance, " s, prune ", r.t_prune, " s, ckpt ", r.t_checkpoint, " s",
             state.regen_pending ? " -> milestone crossed: traces will be regenerated" : "");
    result.last_iteration = t;
    ++done_here;
    // Rank 0's view; appended per iteration, so a resumed run continues the file.
    if (L.rank == 0)
      append_timings(run, iteration_timings(r, traffic, state, par, whole.seconds()));
    if (stop_after_checkpoint(opt, par, "end of prune iteration", cat("iteration ", t),
                              t + 1 < cfg.iterations, done_here)) {
      result.stopped = true;
      return result;
    }
  }
  result.finished = true;
  result.last_iteration = state.iteration;
  return result;
}

namespace {

// `resp inspect` of a one-shot run: one row per target, each from its own checkpoint (the
// plans are not nested, so the latest checkpoint alone does not describe the others).
std::string describe_one_shot(const fs::path& run_dir, const RunState& s, const PruneConfig& cfg,
                              bool per_layer) {
  std::map<int, PrunePlan> plans;
  for (const fs::path& p : list_checkpoints(run_dir)) {
    // An unreadable checkpoint (e.g. cut short by a crash) must not hide the others: its row
    // shows "?", and the log says why.
    try {
      RunState r = read_run_checkpoint(p);
      if (r.iteration <= s.iteration) plans[r.iteration] = std::move(r.plan);
    } catch (const Error& e) {
      log_warn("inspect: skipping ", p.string(), " (", e.what(), ")");
    }
  }
  std::vector<bool> prot = default_protected_layers(static_cast<int>(s.plan.size()));
  if (cfg.protected_layers) {
    prot.assign(s.plan.size(), false);
    for (int l : *cfg.protected_layers)
      if (l >= 0 && static_cast<size_t>(l) < prot.size()) prot[static_cast<size_t>(l)] = true;
  }
  // Kept heads (or channels) of the unprotected layers: "n" when uniform, "lo-hi" otherwise.
  auto kept = [&](const PrunePlan& plan, bool heads) {
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t l = 0; l < plan.size() && l < prot.size(); ++l) {
      if (prot[l]) continue;
      const size_t n = heads ? plan[l].heads.size() : plan[l].channels.size();
      lo = std::min(lo, n);
      hi = std::max(hi, n);
    }
    if (lo == SIZE_MAX) return std::string("-");
    return lo == hi ? std::to_string(lo) : cat(lo, "-", hi);
  };
  std::ostringstream os;
  os << "run " << run_dir.string() << ": model " << s.model << ", one-shot " << cfg.criterion
     << " (layer by layer, the same kept counts in every unprotected layer), " << s.history.size()
     << " of " << cfg.targets.size() << " targets done, " << s.traces.size()
     << " calibration samples (" << cfg.source << ")\n";
  os << " iter  target   ratio  sparsity    error  heads  kv  channels  heads/layer  "
        "channels/layer   imp_s  prune_s  ckpt_s\n";
  char buf[320];
  for (const auto& r : s.history) {
    const double target = static_cast<size_t>(r.iteration) < cfg.targets.size()
                              ? cfg.targets[static_cast<size_t>(r.iteration)]
                              : std::nan("");
    const auto it = plans.find(r.iteration);
    const std::string hl = it == plans.end() ? "?" : kept(it->second, true);
    const std::string cl = it == plans.end() ? "?" : kept(it->second, false);
    std::snprintf(buf, sizeof buf,
                  "%5d  %6.3f  %6.4f  %8.4f  %+7.4f  %5lld %3lld  %8lld  %11s  %14s  %6.2f  %7.2f  "
                  "%6.2f\n",
                  r.iteration, target, r.ratio, r.sparsity, r.sparsity - target,
                  static_cast<long long>(r.heads_kept), static_cast<long long>(r.kv_heads_kept),
                  static_cast<long long>(r.channels_kept), hl.c_str(), cl.c_str(), r.t_importance,
                  r.t_prune, r.t_checkpoint);
    os << buf;
  }
  os << "(heads/layer, channels/layer: kept in each unprotected layer; resp export --run DIR "
        "--sparsity TARGET picks that target's checkpoint)\n";
  if (per_layer) {
    os << "\nlayer  protected";
    for (const auto& [it, plan] : plans) {
      std::snprintf(buf, sizeof buf, "  %14s",
                    cat("t=", static_cast<size_t>(it) < cfg.targets.size()
                                  ? cfg.targets[static_cast<size_t>(it)]
                                  : std::nan(""))
                        .c_str());
      os << buf;
    }
    os << "   (heads/channels kept)\n";
    for (size_t l = 0; l < s.plan.size(); ++l) {
      std::snprintf(buf, sizeof buf, "%5zu  %9s", l, l < prot.size() && prot[l] ? "yes" : "");
      os << buf;
      for (const auto& [it, plan] : plans) {
        std::snprintf(buf, sizeof buf, "  %14s",
                      cat(plan[l].heads.size(), "/", plan[l].channels.size()).c_str());
        os << buf;
      }
      os << "\n";
    }
  }
  return os.str();
}

}  // namespace

std::string describe_run(const fs::path& run_dir, bool per_layer) {
  const auto latest = latest_checkpoint(run_dir);
  if (!latest) throw UsageError(cat(run_dir.string(), ": no complete checkpoint"));
  const RunState s = read_run_checkpoint(*latest);
  // The table needs the configuration only for the one-shot layout and the report sparsities;
  // a run written by another version still gets its table, with the default report rows.
  std::optional<PruneConfig> cfg;
  try {
    cfg = parse_prune_config(s.config_yaml, {}, "checkpoint", "/");
  } catch (const Error& e) {
    log_warn("inspect: the configuration saved in ", latest->string(), " does not parse (",
             e.what(), "); showing the default report sparsities");
  }
  if (cfg && cfg->one_shot()) return describe_one_shot(run_dir, s, *cfg, per_layer);
  std::ostringstream os;
  os << "run " << run_dir.string() << ": model " << s.model << ", " << s.history.size()
     << " iterations done, traces generated " << s.regen_round << " time(s)\n";
  os << " iter  ratio  sparsity  heads  kv  channels  regen  out_tok  trunc   loss    gen_s  imp_s "
        " prune_s  ckpt_s\n";
  char buf[256];
  for (const auto& r : s.history) {
    std::snprintf(buf, sizeof buf,
                  "%5d  %5.3f  %8.4f  %5lld %3lld  %8lld  %5s  %7.1f  %5.2f  %6.3f  %6.2f %6.2f  "
                  "%7.2f  %6.2f\n",
                  r.iteration, r.ratio, r.sparsity, static_cast<long long>(r.heads_kept),
                  static_cast<long long>(r.kv_heads_kept), static_cast<long long>(r.channels_kept),
                  r.regenerated ? "yes" : "", r.mean_output_tokens, r.truncated, r.mean_loss,
                  r.t_generate, r.t_importance, r.t_prune, r.t_checkpoint);
    os << buf;
  }
  // The checkpoints closest to the sparsities the run reports (nested sub-networks).
  std::vector<double> report = {0.2, 0.3, 0.4, 0.5};
  if (cfg) report = cfg->report_sparsities;
  if (!s.history.empty() && !report.empty()) {
    os << "\ntarget  iteration  sparsity  heads  channels  (resp export --run DIR --sparsity S)\n";
    double highest = 0;
    for (const auto& r : s.history) highest = std::max(highest, r.sparsity);
    for (double target : report) {
      const IterationRecord* best = &s.history.front();
      for (const auto& r : s.history)
        if (std::fabs(r.sparsity - target) < std::fabs(best->sparsity - target)) best = &r;
      std::snprintf(buf, sizeof buf, "%6.2f  %9d  %8.4f  %5lld  %8lld", target, best->iteration,
                    best->sparsity, static_cast<long long>(best->heads_kept),
                    static_cast<long long>(best->channels_kept));
      os << buf;
      // A target beyond every checkpoint must not read as delivered: say so on its row.
      if (!sparsity_reached(highest, target))
        os << "  NOT REACHED (highest so far " << std::fixed << std::setprecision(4) << highest
           << std::defaultfloat << ")";
      os << "\n";
    }
  }
  if (per_layer) {
    os << "\nlayer  heads kept  channels kept   (latest iteration " << s.iteration << ")\n";
    for (size_t l = 0; l < s.plan.size(); ++l) {
      std::snprintf(buf, sizeof buf, "%5zu  %10zu  %13zu\n", l, s.plan[l].heads.size(),
                    s.plan[l].channels.size());
      os << buf;
    }
  }
  return os.str();
}

}  // namespace resp
