// `resp bench backward`: gradient throughput of a random-weight model.
//   resp bench backward --config qwen3-100m|qwen3-tiny|CONFIG.json [--seq 2048] [--samples 2]
//                       [--threads N] [--json OUT] [--profile]
// Runs GradientPass::forward_backward (decode-only-like loss: the first quarter of the positions
// weighted 0, the rest 1/n; prunable-matrix gradients accumulated as `resp importance` does) on
// --samples random sequences, and compares it with forward-only passes on the same sequences:
//   - fwd: Decoder prefill, then the vocabulary projection and cross-entropy on the rows the
//     loss needs (the forward half of the same work; the reference for the fwd+bwd / fwd ratio),
//   - fwd_observe: GradientPass::forward_observe (stores activations, no vocabulary projection).
// Wall and process CPU times are reported (CPU time is steadier on a shared machine). Peak
// memory is VmHWM of /proc/self/status. --profile wraps the backend in a per-op timer.
// tools/bench_backward_torch.py runs the same model and work in PyTorch.
#include <time.h>
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "app/bench_commands.h"
#include "app/runtime_flags.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/timer.h"
#include "model/decoder.h"
#include "model/gradient_pass.h"
#include "model/gradients.h"
#include "model/model_shard.h"

namespace resp::app {

namespace {

struct BackwardBenchOptions {
  std::string config = "qwen3-100m";
  int seq = 2048;
  int samples = 2;
  RuntimeFlags runtime;  // no --tp: the gradient pass of one rank
  std::string json_out;
  bool profile = false;
};

// Peak resident set size (VmHWM) in MiB, or -1 where /proc is unavailable.
double peak_rss_mib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream is(line.substr(6));
      double kb = 0;
      is >> kb;
      return kb / 1024.0;
    }
  }
  return -1.0;
}

struct NoopObserver final : ActivationObserver {};

// CPU time of the whole process (all threads) since construction: on a shared machine, wall
// time also counts other processes' load, CPU time mostly does not.
class CpuClock {
 public:
  CpuClock() : start_(now()) {}
  double seconds() const { return now() - start_; }

 private:
  static double now() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  }
  double start_;
};

// A Backend that forwards every call to `inner` and adds its wall time to a per-op total
// (synchronizing after each call). gemm calls are keyed by their transposes: NT is the forward
// linear (x W^T), NN the input gradient (dY W), TN the weight gradient (dY^T X).
class TimingBackend final : public Backend {
 public:
  explicit TimingBackend(Backend& inner) : in_(inner) {}
  Device device() const override { return in_.device(); }
  std::string name() const override { return in_.name() + "+timing"; }
  DType weight_dtype() const override { return in_.weight_dtype(); }
  Buffer allocate(size_t bytes) override { return in_.allocate(bytes); }
  void copy(const Tensor& d, const Tensor& s) override {
    time("copy", [&] { in_.copy(d, s); });
  }
  void fill(const Tensor& d, float v) override {
    time("fill", [&] { in_.fill(d, v); });
  }
  void synchronize() override { in_.synchronize(); }
  void gemm(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
            float beta) override {
    const char* key =
        ta ? (tb ? "gemm TT" : "gemm TN (dW)") : (tb ? "gemm NT (fwd)" : "gemm NN (dX)");
    time(key, [&] { in_.gemm(a, ta, b, tb, c, alpha, beta); });
    const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1),
                  n = tb ? b.dim(0) : b.dim(1);
    flops_[key] += 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  }
  void add_bias(const Tensor& y, const Tensor& b) override {
    time("add_bias", [&] { in_.add_bias(y, b); });
  }
  void rmsnorm(const Tensor& o, const Tensor& x, const Tensor& w, float e) override {
    time("rmsnorm", [&] { in_.rmsnorm(o, x, w, e); });
  }
  void rope(const Tensor& x, const Tensor& p, const Tensor& f) override {
    time("rope", [&] { in_.rope(x, p, f); });
  }
  void attention(const Tensor& o, const Tensor& q, const Tensor& k, const Tensor& v,
                 const Tensor& kvh, int64_t off, float s) override {
    time("attention", [&] { in_.attention(o, q, k, v, kvh, off, s); });
  }
  void attention_decode_batch(const Tensor& o, const Tensor& q, const Tensor& kn, const Tensor& vn,
                              const Tensor& kc, const Tensor& vc, const Tensor& slots,
                              const Tensor& pos, const Tensor& kvh, float s) override {
    time("attention",
         [&] { in_.attention_decode_batch(o, q, kn, vn, kc, vc, slots, pos, kvh, s); });
  }
  void swiglu(const Tensor& o, const Tensor& g, const Tensor& u) override {
    time("swiglu", [&] { in_.swiglu(o, g, u); });
  }
  void embedding(const Tensor& o, const Tensor& t, const Tensor& i) override {
    time("embedding", [&] { in_.embedding(o, t, i); });
  }
  void add(const Tensor& o, const Tensor& a, const Tensor& b) override {
    time("add", [&] { in_.add(o, a, b); });
  }
  void scale(const Tensor& x, float a) override {
    time("scale", [&] { in_.scale(x, a); });
  }
  void softmax(const Tensor& o, const Tensor& x) override {
    time("softmax", [&] { in_.softmax(o, x); });
  }
  void log_softmax(const Tensor& o, const Tensor& x) override {
    time("log_softmax", [&] { in_.log_softmax(o, x); });
  }
  void sum_rows(const Tensor& o, const Tensor& x) override {
    time("sum_rows", [&] { in_.sum_rows(o, x); });
  }
  void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy, const Tensor& x,
                        const Tensor& w, float e) override {
    time("rmsnorm_backward", [&] { in_.rmsnorm_backward(dx, dw, dy, x, w, e); });
  }
  void rope_backward(const Tensor& dx, const Tensor& p, const Tensor& f) override {
    time("rope_backward", [&] { in_.rope_backward(dx, p, f); });
  }
  void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                          const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kvh,
                          int64_t off, float s) override {
    time("attention_backward",
         [&] { in_.attention_backward(dq, dk, dv, dout, q, k, v, kvh, off, s); });
  }
  void swiglu_backward(const Tensor& dg, const Tensor& du, const Tensor& d, const Tensor& g,
                       const Tensor& u) override {
    time("swiglu_backward", [&] { in_.swiglu_backward(dg, du, d, g, u); });
  }
  void embedding_backward(const Tensor& dt, const Tensor& d, const Tensor& i) override {
    time("embedding_backward", [&] { in_.embedding_backward(dt, d, i); });
  }
  void cross_entropy(const Tensor& l, const Tensor& x, const Tensor& t, const Tensor& w) override {
    time("cross_entropy", [&] { in_.cross_entropy(l, x, t, w); });
  }
  void group_reduce(std::span<double> out, GroupReduce kind, const Tensor& a, const Tensor& b,
                    bool by_rows, int64_t per_group, double factor) override {
    time("group_reduce", [&] { in_.group_reduce(out, kind, a, b, by_rows, per_group, factor); });
  }

  void reset() {
    secs_.clear();
    flops_.clear();
  }
  nlohmann::json report() const {
    std::vector<std::pair<double, std::string>> v;
    for (const auto& [k, s] : secs_) v.emplace_back(s, k);
    std::sort(v.rbegin(), v.rend());
    nlohmann::json j = nlohmann::json::array();
    for (const auto& [s, k] : v) {
      nlohmann::json e = {{"op", k}, {"seconds", s}};
      if (auto it = flops_.find(k); it != flops_.end()) e["gflops"] = it->second / s / 1e9;
      j.push_back(e);
    }
    return j;
  }

 private:
  template <typename F>
  void time(const char* key, F&& f) {
    Stopwatch t;
    f();
    in_.synchronize();
    secs_[key] += t.seconds();
  }
  Backend& in_;
  std::map<std::string, double> secs_, flops_;
};

int run_bench_backward(const BackwardBenchOptions& o) {
  Runtime rt = start_runtime(o.runtime);
  const ModelConfig config = parse_model_config(bench_preset(o.config), o.config);
  if (o.seq < 2 || o.seq > config.max_position_embeddings)
    throw UsageError(cat("--seq must be in [2, ", config.max_position_embeddings, "]"));
  std::unique_ptr<TimingBackend> timing;
  if (o.profile) timing = std::make_unique<TimingBackend>(*rt.backend);
  Backend& be = o.profile ? static_cast<Backend&>(*timing) : *rt.backend;
  const ModelWeights w = random_model_shard(config, *rt.par.tp, be, 1234);
  const double rss_weights = peak_rss_mib();

  // Sequences and the decode-only-like loss weights: positions predicting tokens in the first
  // quarter ("prompt") weigh 0, the rest 1/n.
  const int64_t T = o.seq, V = config.vocab_size, H = config.hidden_size;
  std::vector<std::vector<int32_t>> seqs(static_cast<size_t>(o.samples));
  for (size_t b = 0; b < seqs.size(); ++b)
    for (int64_t t = 0; t < T; ++t)
      seqs[b].push_back(static_cast<int32_t>(random_u64(7, b, static_cast<uint64_t>(t)) %
                                             static_cast<uint64_t>(V)));
  const int64_t prompt = T / 4;
  std::vector<float> loss_w(static_cast<size_t>(T - 1), 0.0f);
  int64_t n_pred = 0;
  for (int64_t t = 0; t < T - 1; ++t) n_pred += (t + 1 >= prompt);
  for (int64_t t = 0; t < T - 1; ++t)
    if (t + 1 >= prompt) loss_w[static_cast<size_t>(t)] = 1.0f / static_cast<float>(n_pred);

  GradientPass gp(w, be, *rt.par.tp);
  ModelGrads grads = make_grads(w, be, GradSelection::Prunable);
  NoopObserver noop;
  const double tokens = static_cast<double>(o.samples) * static_cast<double>(T);

  // Warm-up: allocates and first-touches the activation store.
  gp.forward_observe(seqs[0], noop);
  be.synchronize();

  // (1) forward only, storing activations (no vocabulary projection).
  if (timing) timing->reset();
  const CpuClock c_obs;
  Stopwatch t_obs;
  for (const auto& s : seqs) gp.forward_observe(s, noop);
  be.synchronize();
  const double secs_observe = t_obs.seconds(), cpu_observe = c_obs.seconds();
  nlohmann::json prof_observe = timing ? timing->report() : nlohmann::json();

  // (2) forward + backward.
  if (timing) timing->reset();
  double loss = 0, wsum = 0;
  const CpuClock c_fb;
  Stopwatch t_fb;
  for (const auto& s : seqs) {
    const GradientPass::Result r = gp.forward_backward(s, loss_w, grads);
    loss += r.loss;
    wsum += r.weight_sum;
  }
  be.synchronize();
  const double secs_fb = t_fb.seconds(), cpu_fb = c_fb.seconds();
  nlohmann::json prof_fb = timing ? timing->report() : nlohmann::json();
  const double rss_grad = peak_rss_mib();

  // (3) the same forward with the loss but without stored activations: Decoder prefill, then
  // the vocabulary projection and cross-entropy on the 128-row blocks the loss needs (as
  // GradientPass does).
  Decoder dec(w, be, *rt.par.tp);
  constexpr int64_t kBlk = 128;
  std::vector<int64_t> loss_blocks;  // first row of each 128-row block with a weighted row
  int64_t head_rows = 0;
  for (int64_t t0 = 0; t0 < T - 1; t0 += kBlk) {
    const int64_t n = std::min<int64_t>(kBlk, T - 1 - t0);
    bool any = false;
    for (int64_t i = 0; i < n; ++i) any = any || loss_w[static_cast<size_t>(t0 + i)] != 0.0f;
    if (!any) continue;
    loss_blocks.push_back(t0);
    head_rows += n;
  }
  Buffer logits_buf = be.allocate_tensor(DType::F32, {kBlk, V});
  Buffer aux_buf = be.allocate(static_cast<size_t>(3 * kBlk) * 4);
  std::vector<int32_t> blk_targets;
  auto forward_loss = [&](const std::vector<int32_t>& s) {
    const Tensor h = dec.forward_hidden(s);
    for (int64_t t0 : loss_blocks) {
      const int64_t n = std::min<int64_t>(kBlk, T - 1 - t0);
      const Tensor logits = logits_buf.tensor(DType::F32, {n, V});
      const Tensor tg = aux_buf.tensor(DType::I32, {n}),
                   wt = aux_buf.tensor(DType::F32, {n}, kBlk * 4),
                   ls = aux_buf.tensor(DType::F32, {n}, 2 * kBlk * 4);
      blk_targets.assign(s.begin() + t0 + 1, s.begin() + t0 + 1 + n);
      be.copy(tg, Tensor(blk_targets.data(), DType::I32, Shape{n}));
      be.copy(wt, Tensor(loss_w.data() + t0, DType::F32, Shape{n}));
      dec.logits(logits, h.slice_rows(t0, n));
      be.cross_entropy(ls, logits, tg, wt);
    }
  };
  forward_loss(seqs[0]);  // warm-up (decoder workspace)
  be.synchronize();
  if (timing) timing->reset();
  const CpuClock c_fwd;
  Stopwatch t_fwd;
  for (const auto& s : seqs) forward_loss(s);
  be.synchronize();
  const double secs_fwd = t_fwd.seconds(), cpu_fwd = c_fwd.seconds();
  nlohmann::json prof_fwd = timing ? timing->report() : nlohmann::json();
  const double rss_end = peak_rss_mib();

  // Work estimate (matmul FLOPs, attention excluded): the layer matmuls and the lm_head on the
  // 128-row blocks holding a weighted row; the backward adds dX of every matmul and dW of the
  // prunable ones (q, o, gate, up, down).
  double layer_params = 0, prunable_params = 0;
  for (const auto& L : config.layers) {
    const double q = static_cast<double>(L.n_heads()) * config.head_dim,
                 kv = static_cast<double>(L.n_kv_heads()) * config.head_dim, f = L.d_ff();
    layer_params += static_cast<double>(H) * (2 * q + 2 * kv + 3 * f);
    prunable_params += static_cast<double>(H) * (2 * q + 3 * f);
  }
  const double head = static_cast<double>(V) * H;
  const double fwd_flops = o.samples * (2.0 * layer_params * T + 2.0 * head * head_rows);
  const double fb_flops =
      o.samples * (4.0 * layer_params * T + 4.0 * head * head_rows + 2.0 * prunable_params * T);

  nlohmann::json r = {{"bench", "backward"},
                      {"config", o.config},
                      {"params", config.parameter_count()},
                      {"samples", o.samples},
                      {"seq", T},
                      {"threads", o.runtime.threads.value_or(0)},
                      {"loss_weighted_positions", n_pred},
                      {"mean_loss", wsum > 0 ? loss / wsum : 0.0},
                      {"fwd_bwd_seconds", secs_fb},
                      {"fwd_bwd_cpu_seconds", cpu_fb},
                      {"fwd_bwd_tokens_per_s", tokens / secs_fb},
                      {"fwd_bwd_gflops_est", fb_flops / secs_fb / 1e9},
                      {"fwd_seconds", secs_fwd},
                      {"fwd_cpu_seconds", cpu_fwd},
                      {"fwd_tokens_per_s", tokens / secs_fwd},
                      {"fwd_gflops_est", fwd_flops / secs_fwd / 1e9},
                      {"fwd_observe_seconds", secs_observe},
                      {"fwd_observe_cpu_seconds", cpu_observe},
                      {"fwd_observe_tokens_per_s", tokens / secs_observe},
                      {"ratio_fwd_bwd_over_fwd", secs_fb / secs_fwd},
                      {"ratio_fwd_bwd_over_fwd_cpu", cpu_fb / cpu_fwd},
                      {"ratio_fwd_bwd_over_fwd_observe", secs_fb / secs_observe},
                      {"rss_after_weights_mib", rss_weights},
                      {"peak_rss_after_fwd_bwd_mib", rss_grad},
                      {"peak_rss_mib", rss_end},
                      {"profiled", o.profile}};
  if (o.profile) {
    r["profile_fwd_bwd"] = prof_fb;
    r["profile_fwd_observe"] = prof_observe;
    r["profile_fwd"] = prof_fwd;
  }
  if (rt.par.layout.rank == 0) {
    std::printf(
        "forward+backward: %s, %.1fM params, %d x %lld tokens (%lld positions in the loss)%s\n",
        o.config.c_str(), config.parameter_count() / 1e6, o.samples, static_cast<long long>(T),
        static_cast<long long>(n_pred), o.profile ? " [profiled: per-op sync]" : "");
    std::printf("  fwd+bwd     %8.1f tokens/s  (%.2f s, cpu %.2f s, ~%.1f GFLOP/s)\n",
                tokens / secs_fb, secs_fb, cpu_fb, fb_flops / secs_fb / 1e9);
    std::printf("  fwd + loss  %8.1f tokens/s  (%.2f s, cpu %.2f s, ~%.1f GFLOP/s)\n",
                tokens / secs_fwd, secs_fwd, cpu_fwd, fwd_flops / secs_fwd / 1e9);
    std::printf(
        "  fwd observe %8.1f tokens/s  (%.2f s, cpu %.2f s; stores activations, no lm_head)\n",
        tokens / secs_observe, secs_observe, cpu_observe);
    std::printf("  fwd+bwd / fwd = %.2fx (cpu time %.2fx), / fwd observe = %.2fx\n",
                secs_fb / secs_fwd, cpu_fb / cpu_fwd, secs_fb / secs_observe);
    std::printf("  peak RSS %.0f MiB after fwd+bwd (%.0f MiB after weights), %.0f MiB at the end\n",
                rss_grad, rss_weights, rss_end);
    if (o.profile) {
      std::printf("  fwd+bwd time by op:\n");
      for (const auto& e : prof_fb) {
        std::printf("    %-22s %8.3f s", e["op"].get<std::string>().c_str(),
                    e["seconds"].get<double>());
        if (e.contains("gflops")) std::printf("  %6.1f GFLOP/s", e["gflops"].get<double>());
        std::printf("\n");
      }
    }
    emit_bench_result(r, o.json_out);
  }
  return 0;
}

}  // namespace

void register_bench_backward(CLI::App& bench, Action* selected) {
  auto opts = std::make_shared<BackwardBenchOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "backward",
      "Forward+backward (gradient) throughput of a random-weight model vs forward only");
  cmd->add_option("--config", opts->config, "Preset (qwen3-100m, qwen3-tiny) or config.json path");
  cmd->add_option("--seq", opts->seq, "Tokens per sequence")->check(CLI::PositiveNumber);
  cmd->add_option("--samples", opts->samples, "Sequences")->check(CLI::PositiveNumber);
  add_runtime_flags(*cmd, opts->runtime, {.tp = false});
  cmd->add_option("--json", opts->json_out, "Also write the result JSON here");
  cmd->add_flag("--profile", opts->profile, "Time every backend op (synchronizes after each)");
  cmd->callback([opts, selected] { *selected = [opts] { return run_bench_backward(*opts); }; });
}

}  // namespace resp::app
