// Benchmark subcommands that live in their own files and hang under `resp bench` (registered
// by register_bench in cmd_bench.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "app/commands.h"

namespace resp::app {

// A benchmark model config: a preset (qwen3-100m, qwen3-tiny) or a config.json path.
nlohmann::json bench_preset(const std::string& name);

// A benchmark's result: one JSON line on stdout, and indented into `json_out` when given
// (IoError when it cannot be written).
void emit_bench_result(const nlohmann::json& result, const std::string& json_out);

// What a CPU result depends on beyond its options: {"cpu_isa": the kernels' ISA level in use,
// "omp_wait": the OpenMP wait policy in force}, to merge into a result (json::update).
nlohmann::json bench_host_fields();

// `resp bench backward`: forward + backward (GradientPass) throughput vs forward only.
void register_bench_backward(CLI::App& bench, Action* selected);
// `resp bench generate`: decode / prefill throughput (continuous batching).
void register_bench_generate(CLI::App& bench, Action* selected);
// `resp bench checkpoint`: run checkpoint write/read throughput.
void register_bench_checkpoint(CLI::App& bench, Action* selected);
// `resp bench gemm`: decode-step GEMMs, the few-rows kernel vs OpenBLAS sgemm.
void register_bench_gemm(CLI::App& bench, Action* selected);
// `resp bench threads`: one vs several threads per op family (the CPU work thresholds).
void register_bench_threads(CLI::App& bench, Action* selected);

}  // namespace resp::app
