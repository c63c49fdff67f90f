// `resp bench generate`: generation throughput of a random-weight model through the real
// Generator (continuous batching over the KV cache, greedy, logits + argmax every step).
//
//   resp bench generate [--config qwen3-100m|qwen3-tiny|CONFIG.json] [--batches 1,8,32]
//                       [--prompt-len 256] [--new-tokens 256] [--threads N] [--json FILE]
// For each batch size B: B prompts of --prompt-len random tokens are prefilled in one step and
// then decoded for --new-tokens steps (no EOS). Reported: prefill tokens/s (the prefill step),
// decode tokens/s (the decode-only steps: B tokens per step) and the end-to-end rate.
// tools/bench_generate_torch.py measures the same model in PyTorch for comparison.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/bench_commands.h"
#include "app/commands.h"
#include "app/runtime_flags.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_isa.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "generate/generator.h"
#include "model/decoder.h"
#include "model/model_shard.h"

namespace resp::app {

void register_bench_generate(CLI::App& bench, Action* selected);

namespace {

struct BenchGenerateOptions {
  std::string config = "qwen3-100m";
  std::string batches = "1,8,32";
  int prompt_len = 256;
  int new_tokens = 256;
  RuntimeFlags runtime;
  std::string json_out;
};

std::vector<int> parse_batches(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const int b = std::stoi(item, &used);
      if (used != item.size() || b < 1) throw std::invalid_argument(item);
      out.push_back(b);
    } catch (const std::exception&) {
      throw UsageError(
          cat("--batches: expected positive integers separated by commas, got '", s, "'"));
    }
  }
  if (out.empty()) throw UsageError("--batches is empty");
  return out;
}

int run_bench_generate(const BenchGenerateOptions& o) {
  const std::vector<int> batches = parse_batches(o.batches);
  Runtime rt = start_runtime(o.runtime);
  const ModelConfig config = parse_model_config(bench_preset(o.config), o.config);
  if (o.prompt_len < 1 || o.new_tokens < 1 ||
      o.prompt_len + o.new_tokens > config.max_position_embeddings)
    throw UsageError(cat("--prompt-len + --new-tokens must fit max_position_embeddings ",
                         config.max_position_embeddings));
  const ModelWeights w = random_model_shard(config, *rt.par.tp, *rt.backend, 1234);
  Decoder dec(w, *rt.backend, *rt.par.tp);
  const bool root = rt.par.layout.rank == 0;

  GenerationConfig g;
  g.sampling.temperature = 0.0;  // greedy, as the PyTorch reference
  g.eos_ids.clear();             // every sequence runs the full --new-tokens
  auto requests = [&](int B, int len, uint64_t salt) {
    std::vector<GenerationRequest> r(static_cast<size_t>(B));
    for (int b = 0; b < B; ++b) {
      r[static_cast<size_t>(b)].id = std::to_string(b);
      for (int t = 0; t < len; ++t)
        r[static_cast<size_t>(b)].prompt.push_back(static_cast<int32_t>(
            random_u64(salt, static_cast<uint64_t>(b), static_cast<uint64_t>(t)) %
            static_cast<uint64_t>(config.vocab_size)));
    }
    return r;
  };
  {  // warm-up: workspace, cache and BLAS threads
    GenerationConfig gw = g;
    gw.max_new_tokens = 4;
    GeneratorOptions go;
    go.slots = 2;
    Generator warm(w, dec, *rt.par.tp, gw, go);
    warm.generate(requests(2, 32, 99));
  }
  nlohmann::json runs = nlohmann::json::array();
  if (root)
    std::printf(
        "generate: %s, %.1fM params, prompts %d tokens, %d new tokens, greedy, cpu isa %s, "
        "omp wait %s\n",
        o.config.c_str(), config.parameter_count() / 1e6, o.prompt_len, o.new_tokens,
        cpu_isa_name(active_cpu_isa()), cpu::omp_wait_name().c_str());
  for (const int B : batches) {
    GenerationConfig gb = g;
    gb.max_new_tokens = o.new_tokens;
    GeneratorOptions go;
    go.slots = B;
    go.max_prefill_tokens = B * o.prompt_len;  // the whole batch prefilled in one step
    Generator gen(w, dec, *rt.par.tp, gb, go);
    const auto res = gen.generate(requests(B, o.prompt_len, 7));
    const GenerationStats& st = gen.stats();
    const double prefill_tps = st.prefill_seconds > 0 ? st.prompt_tokens / st.prefill_seconds : 0;
    const double decode_tps = st.decode_seconds > 0 ? st.decode_only_tokens / st.decode_seconds : 0;
    const double ms_per_step =
        st.decode_steps > 0 ? 1e3 * st.decode_seconds / static_cast<double>(st.decode_steps) : 0;
    nlohmann::json r = {
        {"batch", B},
        {"prompt_tokens", st.prompt_tokens},
        {"generated_tokens", st.generated_tokens},
        {"prefill_seconds", st.prefill_seconds},
        {"prefill_tokens_per_s", prefill_tps},
        {"decode_steps", st.decode_steps},
        {"decode_seconds", st.decode_seconds},
        {"decode_tokens_per_s", decode_tps},
        {"decode_ms_per_step", ms_per_step},
        {"seconds", st.seconds},
        {"tokens_per_s", st.generated_tokens / st.seconds},
        {"first_tokens", res[0].tokens.size() >= 8 ? std::vector<int32_t>(res[0].tokens.begin(),
                                                                          res[0].tokens.begin() + 8)
                                                   : res[0].tokens}};
    if (root)
      std::printf(
          "  batch %3d: prefill %8.0f tok/s | decode %8.1f tok/s (%.2f ms/step) | "
          "end-to-end %8.1f tok/s\n",
          B, prefill_tps, decode_tps, ms_per_step, st.generated_tokens / st.seconds);
    runs.push_back(r);
  }
  nlohmann::json out = {{"bench", "generate"},
                        {"config", o.config},
                        {"params", config.parameter_count()},
                        {"prompt_len", o.prompt_len},
                        {"new_tokens", o.new_tokens},
                        {"threads", o.runtime.threads.value_or(0)},
                        {"tp", rt.par.layout.tp},
                        {"runs", runs}};
  out.update(bench_host_fields());
  if (root) emit_bench_result(out, o.json_out);
  return 0;
}

}  // namespace

void register_bench_generate(CLI::App& bench, Action* selected) {
  auto opts = std::make_shared<BenchGenerateOptions>();
  CLI::App* gen = bench.add_subcommand(
      "generate", "Generation throughput (prefill and decode tokens/s) of a random-weight model");
  gen->add_option("--config", opts->config, "Preset (qwen3-100m, qwen3-tiny) or config.json path");
  gen->add_option("--batches", opts->batches, "Batch sizes, comma-separated (default 1,8,32)");
  gen->add_option("--prompt-len", opts->prompt_len, "Prompt tokens per sequence (default 256)");
  gen->add_option("--new-tokens", opts->new_tokens, "Generated tokens per sequence (default 256)");
  add_runtime_flags(*gen, opts->runtime);
  gen->add_option("--json", opts->json_out, "Also write the result JSON here");
  gen->callback([opts, selected] { *selected = [opts] { return run_bench_generate(*opts); }; });
}

}  // namespace resp::app
