// `resp bench threads`: where the CPU backend's op families start paying for a second thread,
// the measurement behind the work thresholds of src/backend/cpu/cpu_parallel.h.
//   resp bench threads [--threads 2] [--rounds 7] [--json FILE]
// Per family, one representative op at sizes 2^10 .. 2^24 work units, timed on one thread and
// on --threads threads with every threshold 0 (always parallel), alternating round by round;
// the ratio is the median over rounds. Also timed: --threads threads with the shipped
// thresholds of this process's wait policy (cpu_parallel.h), which should track the faster. The
// suggested threshold is the smallest size from which every larger size runs at least 10 % faster
// on the threads.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/bench_commands.h"
#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_parallel.h"
#include "core/error.h"
#include "core/timer.h"

namespace resp::app {

namespace {

struct ThreadsBenchOptions {
  int threads = 2;
  int rounds = 7;
  std::string json_out;
};

// Owns host buffers for one op's operands; `copies` sets of weights rotate so that large
// operands come from DRAM, as in a decode step.
struct Operands {
  std::vector<std::vector<float>> bufs;
  float* add(int64_t n, float value) {
    bufs.emplace_back(static_cast<size_t>(n), value);
    return bufs.back().data();
  }
};

// One family's op at a given size: `run(backend)` performs it once.
struct Case {
  std::string family;
  int64_t work;
  std::function<void(CpuBackend&)> run;
  std::shared_ptr<Operands> data;
};

Tensor f32(float* p, Shape s) {
  return Tensor(p, DType::F32, std::move(s));
}

// Rotating copies of an operand of `n` floats: enough to exceed the last-level cache.
int copies_for(int64_t n) {
  constexpr int64_t kColdFloats = int64_t{64} << 20 >> 2;  // 64 MiB
  return static_cast<int>(std::clamp<int64_t>(kColdFloats / std::max<int64_t>(n, 1), 1, 64));
}

std::vector<Case> make_cases() {
  std::vector<Case> cases;
  for (int e = 10; e <= 24; e += 2) {
    const int64_t w = int64_t{1} << e;
    {  // elementwise: add of two [1, w] rows
      auto d = std::make_shared<Operands>();
      const Tensor a = f32(d->add(w, 1.0f), {1, w}), b = f32(d->add(w, 2.0f), {1, w});
      const Tensor o = f32(d->add(w, 0.0f), {1, w});
      cases.push_back({"elementwise", w, [=](CpuBackend& be) { be.add(o, a, b); }, d});
    }
    {  // transcendental: swiglu of [1, w]
      auto d = std::make_shared<Operands>();
      const Tensor g = f32(d->add(w, 0.5f), {1, w}), u = f32(d->add(w, 2.0f), {1, w});
      const Tensor o = f32(d->add(w, 0.0f), {1, w});
      cases.push_back({"transcendental", w, [=](CpuBackend& be) { be.swiglu(o, g, u); }, d});
    }
    if (w >= 512) {  // rowwise: rmsnorm of [w / 512, 512]
      auto d = std::make_shared<Operands>();
      const int64_t r = w / 512;
      const Tensor x = f32(d->add(w, 0.5f), {r, 512}), o = f32(d->add(w, 0.0f), {r, 512});
      const Tensor g = f32(d->add(512, 1.0f), {512});
      cases.push_back({"rowwise", w, [=](CpuBackend& be) { be.rmsnorm(o, x, g, 1e-6f); }, d});
    }
    if (w >= 1024) {  // gemm: one decode row against [w / 512, 512] weights (cold)
      auto d = std::make_shared<Operands>();
      const int64_t n = w / 512;
      const Tensor a = f32(d->add(512, 0.01f), {1, 512}), c = f32(d->add(n, 0.0f), {1, n});
      std::vector<Tensor> ws;
      for (int i = 0; i < copies_for(w); ++i) ws.push_back(f32(d->add(w, 0.02f), {n, 512}));
      auto next = std::make_shared<size_t>(0);
      cases.push_back({"gemm", w,
                       [=](CpuBackend& be) {
                         be.gemm(a, false, ws[*next % ws.size()], true, c);
                         ++*next;
                       },
                       d});
    }
    if (w >= (int64_t{1} << 14)) {  // blas: 96 rows (sgemm) against [w / (96 * 128), 128]
      auto d = std::make_shared<Operands>();
      const int64_t n = w / (96 * 128);
      const Tensor a = f32(d->add(96 * 128, 0.01f), {96, 128}),
                   c = f32(d->add(96 * n, 0.0f), {96, n});
      const Tensor b = f32(d->add(n * 128, 0.02f), {n, 128});
      cases.push_back({"blas", w, [=](CpuBackend& be) { be.gemm(a, false, b, true, c); }, d});
    }
    if (w >= 2048) {  // attention: one decode row, 8 heads of 64 over 2 KV heads, w / 1024 keys
      auto d = std::make_shared<Operands>();
      const int64_t keys = w / 1024;
      const Tensor q = f32(d->add(8 * 64, 0.1f), {1, 8, 64}),
                   o = f32(d->add(8 * 64, 0.0f), {1, 8, 64});
      const Tensor k = f32(d->add(keys * 2 * 64, 0.2f), {keys, 2, 64});
      const Tensor v = f32(d->add(keys * 2 * 64, 0.3f), {keys, 2, 64});
      auto kvh =
          std::make_shared<std::vector<int32_t>>(std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1});
      const Tensor kv(kvh->data(), DType::I32, Shape{8});
      cases.push_back({"attention", w,
                       [=](CpuBackend& be) {
                         (void)kvh;  // keeps the head map alive with the case
                         be.attention(o, q, k, v, kv, keys - 1, 0.125f);
                       },
                       d});
    }
  }
  std::stable_sort(cases.begin(), cases.end(),
                   [](const Case& x, const Case& y) { return x.family < y.family; });
  return cases;
}

// Seconds per call of `c` on `be`: enough calls for ~5 ms.
double time_case(const Case& c, CpuBackend& be) {
  c.run(be);  // warm-up
  int reps = 1;
  for (;;) {
    Stopwatch t;
    for (int i = 0; i < reps; ++i) c.run(be);
    const double s = t.seconds();
    if (s >= 5e-3 || reps >= (1 << 20)) return s / reps;
    reps = s <= 0 ? reps * 16 : std::max(reps * 2, static_cast<int>(reps * 6e-3 / s));
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int64_t shipped_threshold(const std::string& family) {
  const cpu::ParallelThresholds& t = cpu::default_parallel_thresholds();
  if (family == "elementwise") return t.elementwise;
  if (family == "transcendental") return t.transcendental;
  if (family == "rowwise") return t.rowwise;
  if (family == "gemm") return t.gemm;
  if (family == "blas") return t.blas;
  return t.attention;
}

int run_bench_threads(const ThreadsBenchOptions& o) {
  if (o.threads < 2) throw UsageError("--threads must be >= 2 (compared against one thread)");
  if (o.rounds < 1) throw UsageError("--rounds must be >= 1");
  CpuBackend one(1, active_cpu_isa());
  CpuBackend always(o.threads, active_cpu_isa(), cpu::kAlwaysParallel);
  CpuBackend shipped(o.threads, active_cpu_isa(), cpu::default_parallel_thresholds());
  const std::vector<Case> cases = make_cases();
  std::printf("threads: 1 vs %d threads per op family, cpu isa %s, omp wait %s, %d rounds\n",
              always.threads(), cpu_isa_name(active_cpu_isa()), cpu::omp_wait_name().c_str(),
              o.rounds);
  std::printf("  %-15s %10s %10s %10s %10s %8s\n", "family", "work", "1t us", "Nt us", "Nt-ship us",
              "1t/Nt");
  nlohmann::json rows = nlohmann::json::array(), suggested = nlohmann::json::object();
  std::string family;
  std::vector<std::pair<int64_t, double>> ratios;  // of the current family
  auto close_family = [&] {
    if (family.empty()) return;
    // Smallest size from which every larger size gains >= 10 %.
    int64_t at = -1;
    for (auto it = ratios.rbegin(); it != ratios.rend() && it->second >= 1.1; ++it) at = it->first;
    suggested[family] = at;
    std::printf("  %-15s suggested threshold %s (shipped %lld)\n", family.c_str(),
                at < 0 ? "none: never faster" : std::to_string(at).c_str(),
                static_cast<long long>(shipped_threshold(family)));
    ratios.clear();
  };
  for (const Case& c : cases) {
    if (c.family != family) {
      close_family();
      family = c.family;
    }
    std::vector<double> t1, tn, ts, r;
    for (int i = 0; i < o.rounds; ++i) {
      t1.push_back(time_case(c, one));
      tn.push_back(time_case(c, always));
      ts.push_back(time_case(c, shipped));
      r.push_back(t1.back() / tn.back());
    }
    const double ratio = median(r);
    ratios.emplace_back(c.work, ratio);
    std::printf("  %-15s %10lld %10.2f %10.2f %10.2f %8.2f\n", c.family.c_str(),
                static_cast<long long>(c.work), 1e6 * median(t1), 1e6 * median(tn),
                1e6 * median(ts), ratio);
    std::fflush(stdout);
    rows.push_back({{"family", c.family},
                    {"work", c.work},
                    {"us_1t", 1e6 * median(t1)},
                    {"us_nt", 1e6 * median(tn)},
                    {"us_nt_shipped", 1e6 * median(ts)},
                    {"ratio_1t_over_nt", ratio}});
  }
  close_family();
  nlohmann::json out = {{"bench", "threads"},
                        {"threads", always.threads()},
                        {"rounds", o.rounds},
                        {"rows", rows},
                        {"suggested", suggested}};
  out.update(bench_host_fields());
  emit_bench_result(out, o.json_out);
  return 0;
}

}  // namespace

void register_bench_threads(CLI::App& bench, Action* selected) {
  auto opts = std::make_shared<ThreadsBenchOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "threads", "Per op family: one thread vs several, the CPU backend's work thresholds");
  cmd->add_option("--threads", opts->threads, "Threads compared against one (default 2)");
  cmd->add_option("--rounds", opts->rounds, "Alternating rounds per size (default 7)");
  cmd->add_option("--json", opts->json_out, "Also write the result JSON here");
  cmd->callback([opts, selected] { *selected = [opts] { return run_bench_threads(*opts); }; });
}

}  // namespace resp::app
