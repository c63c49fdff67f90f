// `resp bench`: throughput benchmarks (never run as timed tests).
//   resp bench forward --config qwen3-100m|CONFIG.json [--batch 8] [--seq 512]
// Prefill tokens/s of a random-weight model and the fraction of this machine's sgemm rate it
// reaches, counting 2 * (matmul parameters) * tokens FLOPs.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/bench_commands.h"
#include "app/commands.h"
#include "app/runtime_flags.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_isa.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/decoder.h"
#include "model/model_shard.h"

namespace resp::app {

void emit_bench_result(const nlohmann::json& result, const std::string& json_out) {
  std::printf("%s\n", result.dump().c_str());
  if (json_out.empty()) return;
  std::ofstream f(json_out);
  f << result.dump(2) << '\n';
  if (!f) throw IoError(cat("cannot write ", json_out));
}

nlohmann::json bench_host_fields() {
  return {{"cpu_isa", cpu_isa_name(active_cpu_isa())}, {"omp_wait", cpu::omp_wait_name()}};
}

nlohmann::json bench_preset(const std::string& name) {
  if (name == "qwen3-100m")
    return {{"architectures", {"Qwen3ForCausalLM"}},
            {"hidden_size", 768},
            {"num_hidden_layers", 12},
            {"num_attention_heads", 12},
            {"num_key_value_heads", 4},
            {"head_dim", 64},
            {"intermediate_size", 2048},
            {"vocab_size", 32000},
            {"max_position_embeddings", 4096},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 1000000.0},
            {"tie_word_embeddings", false}};
  if (name == "qwen3-tiny")
    return {{"architectures", {"Qwen3ForCausalLM"}},
            {"hidden_size", 128},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 4},
            {"num_key_value_heads", 2},
            {"head_dim", 32},
            {"intermediate_size", 256},
            {"vocab_size", 1000},
            {"max_position_embeddings", 4096}};
  std::ifstream in(name);
  if (!in)
    throw UsageError(cat("--config: \"", name,
                         "\" is neither a preset (qwen3-100m, qwen3-tiny) nor a readable file"));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError(cat(name, ": malformed JSON (", e.what(), ")"));
  }
}

namespace {

struct BenchOptions {
  std::string config = "qwen3-100m";
  int batch = 8;
  int seq = 512;
  RuntimeFlags runtime;
  std::string json_out;
};

// Sustained sgemm rate of this backend on the model's dominant GEMM shape (GFLOP/s).
double sgemm_rate(Backend& be, int64_t M, int64_t N, int64_t K) {
  Buffer a = be.allocate_tensor(DType::F32, {M, K});
  Buffer b = be.allocate_tensor(DType::F32, {N, K});
  Buffer c = be.allocate_tensor(DType::F32, {M, N});
  const Tensor A = a.tensor(DType::F32, {M, K}), B = b.tensor(DType::F32, {N, K}),
               C = c.tensor(DType::F32, {M, N});
  be.fill(A, 0.01f);
  be.fill(B, 0.02f);
  be.gemm(A, false, B, true, C);  // warm-up
  be.synchronize();
  int reps = 0;
  Stopwatch t;
  while (t.seconds() < 1.5 || reps < 3) {
    be.gemm(A, false, B, true, C);
    ++reps;
  }
  be.synchronize();
  return 2.0 * static_cast<double>(M) * N * K * reps / t.seconds() / 1e9;
}

int run_bench_forward(const BenchOptions& o) {
  Runtime rt = start_runtime(o.runtime);
  const ModelConfig config = parse_model_config(bench_preset(o.config), o.config);
  if (o.seq < 2 || o.seq > config.max_position_embeddings)
    throw UsageError(cat("--seq must be in [2, ", config.max_position_embeddings, "]"));
  const ModelWeights w = random_model_shard(config, *rt.par.tp, *rt.backend, 1234);
  Decoder dec(w, *rt.backend, *rt.par.tp);

  int64_t matmul_params = static_cast<int64_t>(config.vocab_size) * config.hidden_size;  // lm_head
  for (const auto& L : config.layers)
    matmul_params +=
        static_cast<int64_t>(config.hidden_size) *
        (2 * L.n_heads() * config.head_dim + 2 * L.n_kv_heads() * config.head_dim + 3 * L.d_ff());
  std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(o.batch));
  for (size_t b = 0; b < seqs.size(); ++b)
    for (int t = 0; t < o.seq; ++t)
      seqs[b].push_back(static_cast<int32_t>(random_u64(7, b, static_cast<uint64_t>(t)) %
                                             static_cast<uint64_t>(config.vocab_size)));

  const Tensor warm = dec.forward_hidden(seqs[0]);
  Buffer logits_buf = rt.backend->allocate_tensor(DType::F32, {o.seq, config.vocab_size});
  const Tensor logits = logits_buf.tensor(DType::F32, {o.seq, config.vocab_size});
  dec.logits(logits, warm);
  rt.backend->synchronize();
  Stopwatch t;
  for (const auto& s : seqs) {
    const Tensor h = dec.forward_hidden(s);
    dec.logits(logits, h);  // prefill computes logits for every position
  }
  rt.backend->synchronize();
  const double secs = t.seconds();
  const double tokens = static_cast<double>(o.batch) * o.seq;
  const double flops = 2.0 * static_cast<double>(matmul_params) * tokens;
  double attn_flops = 0;
  for (const auto& L : config.layers)
    attn_flops +=
        2.0 * o.batch * static_cast<double>(o.seq) * (o.seq + 1) * L.n_heads() * config.head_dim;
  // The machine's reference rate: a large square sgemm on the same threads.
  const double gemm = sgemm_rate(*rt.backend, 2048, 2048, 2048);
  const double achieved = flops / secs / 1e9;

  nlohmann::json r = {{"bench", "forward"},
                      {"config", o.config},
                      {"params", config.parameter_count()},
                      {"matmul_params", matmul_params},
                      {"batch", o.batch},
                      {"seq", o.seq},
                      {"threads", o.runtime.threads.value_or(0)},
                      {"seconds", secs},
                      {"tokens_per_s", tokens / secs},
                      {"gflops", achieved},
                      {"attention_gflop", attn_flops / 1e9},
                      {"sgemm_gflops", gemm},
                      {"fraction_of_sgemm", achieved / gemm}};
  r.update(bench_host_fields());
  if (rt.par.layout.rank == 0) {
    std::printf("forward prefill: %s, %.1fM params, %d x %d tokens, cpu isa %s\n", o.config.c_str(),
                config.parameter_count() / 1e6, o.batch, o.seq, cpu_isa_name(active_cpu_isa()));
    std::printf("  %.0f tokens/s, %.1f GFLOP/s (2*params*tokens), sgemm %.1f GFLOP/s -> %.0f%%\n",
                tokens / secs, achieved, gemm, 100.0 * achieved / gemm);
    emit_bench_result(r, o.json_out);
  }
  return 0;
}

}  // namespace

void register_bench(CLI::App& root, Action* selected) {
  CLI::App* bench = root.add_subcommand("bench", "Throughput benchmarks");
  bench->require_subcommand(1);
  auto opts = std::make_shared<BenchOptions>();
  CLI::App* fwd = bench->add_subcommand("forward", "Prefill throughput of a random-weight model");
  fwd->add_option("--config", opts->config, "Preset (qwen3-100m, qwen3-tiny) or config.json path");
  fwd->add_option("--batch", opts->batch, "Sequences")->check(CLI::PositiveNumber);
  fwd->add_option("--seq", opts->seq, "Tokens per sequence")->check(CLI::PositiveNumber);
  add_runtime_flags(*fwd, opts->runtime);
  fwd->add_option("--json", opts->json_out, "Also write the result JSON here");
  fwd->callback([opts, selected] { *selected = [opts] { return run_bench_forward(*opts); }; });
  register_bench_backward(*bench, selected);
  register_bench_generate(*bench, selected);
  register_bench_checkpoint(*bench, selected);
  register_bench_gemm(*bench, selected);
  register_bench_threads(*bench, selected);
}

}  // namespace resp::app
