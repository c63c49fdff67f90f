// `resp bench gemm`: the decode-step GEMMs of a model on the CPU, resp's few-rows kernel against
// OpenBLAS sgemm (which packs every weight block first), with weights cold as in decoding.
//   resp bench gemm [--config qwen3-100m|CONFIG.json] [--rows 1,8,32,64] [--threads N]
// One "step" multiplies M activation rows by every linear weight of every layer and the
// lm_head, each weight a separate buffer (the whole model, so nothing stays in cache between
// steps). Reported per row count: ms per step and GFLOP/s for both, and their largest
// difference relative to the output's scale (a sanity check, not a test).
#include <cblas.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "app/bench_commands.h"
#include "backend/cpu/cpu_isa.h"
#include "backend/cpu/gemm_few_rows.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/model_config.h"

namespace resp::app {

namespace {

struct GemmBenchOptions {
  std::string config = "qwen3-100m";
  std::string rows = "1,8,32,64";
  int threads = 1;
  int repeat = 3;
  std::string json_out;
};

struct Weight {
  int64_t n = 0, k = 0;  // [out, in]
  std::vector<float> data;
};

std::vector<int64_t> parse_rows(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 1 || v > kGemmFewRowsMax)
      throw UsageError(cat("--rows: '", item, "' is not a row count in 1..", kGemmFewRowsMax));
    out.push_back(v);
  }
  if (out.empty()) throw UsageError("--rows: give at least one row count");
  return out;
}

int run_bench_gemm(const GemmBenchOptions& o) {
  if (!gemm_few_rows_available())
    throw UnsupportedError(cat("bench gemm: no few-rows kernel for the cpu isa ",
                               cpu_isa_name(active_cpu_isa()),
                               " (needs AVX2+FMA or AVX-512; see RESP_CPU_ISA)"));
  if (o.threads < 1) throw UsageError("--threads must be >= 1");
  const std::vector<int64_t> row_counts = parse_rows(o.rows);
  const ModelConfig c = parse_model_config(bench_preset(o.config), o.config);
  const int64_t h = c.hidden_size, q = int64_t{c.num_heads} * c.head_dim,
                kv = int64_t{c.num_kv_heads} * c.head_dim, f = c.intermediate_size;
  std::vector<Weight> weights;
  for (int l = 0; l < c.num_layers; ++l)
    for (auto [n, k] : {std::pair{q, h}, {kv, h}, {kv, h}, {h, q}, {f, h}, {f, h}, {h, f}})
      weights.push_back({n, k, {}});
  weights.push_back({c.vocab_size, h, {}});
  double flops_per_row = 0;
  int64_t max_k = 0, max_n = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    Weight& w = weights[i];
    w.data.resize(static_cast<size_t>(w.n * w.k));
    for (size_t j = 0; j < w.data.size(); ++j)
      w.data[j] = 0.05f * (2.0f * uniform01(7, i, j) - 1.0f);
    flops_per_row += 2.0 * static_cast<double>(w.n * w.k);
    max_k = std::max(max_k, w.k);
    max_n = std::max(max_n, w.n);
  }
  const int64_t max_m = *std::max_element(row_counts.begin(), row_counts.end());
  std::vector<float> a(static_cast<size_t>(max_m * max_k));
  for (size_t j = 0; j < a.size(); ++j) a[j] = 2.0f * uniform01(8, 0, j) - 1.0f;
  std::vector<float> c_few(static_cast<size_t>(max_m * max_n)), c_blas(c_few.size());
  openblas_set_num_threads(o.threads);

  std::printf("gemm: %s, %zu weight matrices (%.0f MB f32), %d thread(s), best of %d, cpu isa %s\n",
              o.config.c_str(), weights.size(), flops_per_row / 2 * 4 / 1e6, o.threads, o.repeat,
              cpu_isa_name(active_cpu_isa()));
  nlohmann::json runs = nlohmann::json::array();
  for (const int64_t m : row_counts) {
    double best_few = 1e300, best_blas = 1e300, worst_rel = 0;
    for (int r = 0; r < o.repeat; ++r) {
      Stopwatch t1;
      for (const Weight& w : weights)
        gemm_few_rows(a.data(), w.k, w.data.data(), w.k, c_few.data(), w.n, m, w.n, w.k, 1.0f, 0.0f,
                      o.threads);
      best_few = std::min(best_few, t1.seconds());
      Stopwatch t2;
      for (const Weight& w : weights)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
                    static_cast<blasint>(w.n), static_cast<blasint>(w.k), 1.0f, a.data(),
                    static_cast<blasint>(w.k), w.data.data(), static_cast<blasint>(w.k), 0.0f,
                    c_blas.data(), static_cast<blasint>(w.n));
      best_blas = std::min(best_blas, t2.seconds());
    }
    // Both hold the last weight's (the lm_head's) product: compare them.
    const Weight& last = weights.back();
    double scale = 0;
    for (int64_t i = 0; i < m * last.n; ++i)
      scale = std::max(scale, std::fabs(static_cast<double>(c_blas[static_cast<size_t>(i)])));
    for (int64_t i = 0; i < m * last.n; ++i)
      worst_rel = std::max(worst_rel, std::fabs(static_cast<double>(c_few[static_cast<size_t>(i)]) -
                                                c_blas[static_cast<size_t>(i)]) /
                                          std::max(scale, 1e-30));
    const double flops = flops_per_row * static_cast<double>(m);
    std::printf(
        "  rows %3lld: few-rows %8.2f ms/step %6.1f GFLOP/s | OpenBLAS sgemm %8.2f ms/step %6.1f "
        "GFLOP/s | %.2fx | max diff %.1e\n",
        static_cast<long long>(m), best_few * 1e3, flops / best_few * 1e-9, best_blas * 1e3,
        flops / best_blas * 1e-9, best_blas / best_few, worst_rel);
    runs.push_back({{"rows", m},
                    {"few_rows_ms", best_few * 1e3},
                    {"few_rows_gflops", flops / best_few * 1e-9},
                    {"sgemm_ms", best_blas * 1e3},
                    {"sgemm_gflops", flops / best_blas * 1e-9},
                    {"speedup", best_blas / best_few},
                    {"max_rel_diff", worst_rel}});
  }
  nlohmann::json j = {{"bench", "gemm"},
                      {"config", o.config},
                      {"threads", o.threads},
                      {"vector_width", gemm_few_rows_width()},
                      {"runs", runs}};
  j.update(bench_host_fields());
  emit_bench_result(j, o.json_out);
  return 0;
}

}  // namespace

void register_bench_gemm(CLI::App& bench, Action* selected) {
  auto opts = std::make_shared<GemmBenchOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "gemm", "Decode-step GEMMs: the few-rows kernel vs OpenBLAS sgemm, weights cold");
  cmd->add_option("--config", opts->config, "Preset (qwen3-100m, qwen3-tiny) or config.json path");
  cmd->add_option("--rows", opts->rows, "Activation rows per GEMM, comma-separated (1..64)");
  cmd->add_option("--threads", opts->threads, "CPU threads (default 1)");
  cmd->add_option("--repeat", opts->repeat, "Steps timed per row count (best is reported)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--json", opts->json_out, "Also write the result JSON here");
  cmd->callback([opts, selected] { *selected = [opts] { return run_bench_gemm(*opts); }; });
}

}  // namespace resp::app
