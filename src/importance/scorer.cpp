#include "importance/scorer.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "model/gradient_pass.h"

namespace resp {

namespace {

void reduce(Communicator& comm, std::vector<double>& v) {
  if (!v.empty())
    comm.all_reduce(Tensor(v.data(), DType::F64, Shape{static_cast<int64_t>(v.size())}));
}

// out += factor * the backend's per-group sums of the term over a (and b): only the sums leave
// the device. An absent a (a layer pruned to zero heads or channels) adds nothing.
void add_group_sums(Backend& be, std::vector<double>& out, GroupReduce kind, const Tensor& a,
                    const Tensor& b, bool by_rows, int64_t per_group, double factor = 1.0) {
  if (!a.empty()) be.group_reduce(out, kind, a, b, by_rows, per_group, factor);
}

// Rank-local accumulators of one layer: per local head and per local channel.
struct LocalSums {
  std::vector<double> head_q, head_o;  // vectorize: signed sums; wanda: unused
  std::vector<double> ch_gate, ch_up, ch_down;
  std::vector<double> attn_sq, act_sq;  // wanda: per input column of o_proj / down_proj
};

std::vector<LocalSums> make_local_sums(const ModelWeights& w) {
  const int64_t D = w.config.head_dim;
  std::vector<LocalSums> sums(w.layers.size());
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const auto hq = static_cast<size_t>(w.layers[l].n_heads);
    const auto F = static_cast<size_t>(w.layers[l].d_ff);
    LocalSums& s = sums[l];
    s.head_q.assign(hq, 0.0);
    s.head_o.assign(hq, 0.0);
    s.ch_gate.assign(F, 0.0);
    s.ch_up.assign(F, 0.0);
    s.ch_down.assign(F, 0.0);
    s.attn_sq.assign(hq * static_cast<size_t>(D), 0.0);
    s.act_sq.assign(F, 0.0);
  }
  return sums;
}

// Sums taylor's gradients G across DP replicas layer by layer. A layer's G is final once the
// backward of the replica's last local sample has passed it, so its all-reduce starts there and
// runs while the layers below are differentiated (the backward visits layers last to first).
// Ranks whose last sample had no backward (no local samples, or nothing to predict) start the
// same reductions after their loop, in the same order, so every rank issues one identical
// sequence. Reducing tensor by tensor is elementwise the same sum as one reduction at the end.
class LayerGradReducer {
 public:
  LayerGradReducer(Communicator& dp, const ModelGrads& g)
      : dp_(dp), g_(g), started_(g.layers.size(), false) {}

  void start(size_t layer) {
    if (started_[layer]) return;
    started_[layer] = true;
    const LayerGrads& L = g_.layers[layer];
    for (const Tensor* t : {&L.attn_norm, &L.wq, &L.bq, &L.wk, &L.bk, &L.wv, &L.bv, &L.q_norm,
                            &L.k_norm, &L.wo, &L.bo, &L.mlp_norm, &L.wg, &L.wu, &L.wd})
      if (!t->empty()) pending_.push_back(dp_.all_reduce_async(*t));
    // Without an asynchronous progress thread MPI advances non-blocking collectives only inside
    // MPI calls: poking the earlier ones here keeps them moving during the backward.
    for (auto& r : pending_) r->test();
  }
  // Starts what the backward did not, then waits for everything.
  void finish() {
    for (size_t l = started_.size(); l-- > 0;) start(l);
    for (const Tensor* t : {&g_.embed, &g_.final_norm, &g_.lm_head}) {
      if (t->empty() || (t == &g_.lm_head && t->data() == g_.embed.data())) continue;
      pending_.push_back(dp_.all_reduce_async(*t));
    }
    for (auto& r : pending_) r->wait();
    pending_.clear();
  }

 private:
  Communicator& dp_;
  const ModelGrads& g_;
  std::vector<bool> started_;
  std::vector<std::unique_ptr<CommRequest>> pending_;
};

// Activation statistics of the criteria that need them, reduced on the backend per sample and
// layer: wanda-sp's squared column norms of o_proj's and down_proj's inputs (forward), and
// taylor-vectorize's per-head / per-channel dot products of each projection's output with its
// gradient, i.e. sum over the structure of W * G (backward).
class Observer final : public ActivationObserver {
 public:
  Observer(Backend& be, std::vector<LocalSums>& sums, int64_t head_dim,
           const std::vector<bool>& layers)
      : be_(be), sums_(sums), D_(head_dim), layers_(layers) {}
  bool want_forward = false, want_backward = false;
  // Set during the last local sample's backward: start each layer's DP gradient reduction.
  LayerGradReducer* reduce_after_layer = nullptr;

  void on_forward(const LayerActivations& a) override {
    if (!want_forward || !selected(a.layer)) return;
    LocalSums& s = sums_[static_cast<size_t>(a.layer)];
    add_group_sums(be_, s.attn_sq, GroupReduce::Square, a.attn_out, {}, false, 1);
    add_group_sums(be_, s.act_sq, GroupReduce::Square, a.mlp_act, {}, false, 1);
  }

  void on_backward(const LayerActivations& a) override {
    if (reduce_after_layer) reduce_after_layer->start(static_cast<size_t>(a.layer));
    if (!want_backward || !selected(a.layer)) return;
    LocalSums& s = sums_[static_cast<size_t>(a.layer)];
    if (!a.d_q_proj_out.empty()) {
      add_group_sums(be_, s.head_q, GroupReduce::Product, weight_part(a.q_proj_out, a.q_bias),
                     a.d_q_proj_out, false, D_);
      add_group_sums(be_, s.head_o, GroupReduce::Product, a.attn_out, a.d_attn_out, false, D_);
    }
    if (!a.d_mlp_act.empty()) {
      add_group_sums(be_, s.ch_gate, GroupReduce::Product, a.gate_out, a.d_gate_out, false, 1);
      add_group_sums(be_, s.ch_up, GroupReduce::Product, a.up_out, a.d_up_out, false, 1);
      add_group_sums(be_, s.ch_down, GroupReduce::Product, a.mlp_act, a.d_mlp_act, false, 1);
    }
  }

 private:
  // w.G covers the weight only, so q_proj's output y = x W^T + b counts without its bias: y - b,
  // rounded in f32 as y was, in a scratch tensor on the backend (y + (-b) is that exactly).
  Tensor weight_part(const Tensor& y, const Tensor& bias) {
    if (bias.empty()) return y;
    const size_t need = (static_cast<size_t>(y.numel()) + static_cast<size_t>(bias.numel())) *
                        dtype_size(DType::F32);
    if (scratch_.bytes() < need) scratch_ = be_.allocate(need);
    const Tensor neg_bias = scratch_.tensor(DType::F32, bias.shape());
    const Tensor out = scratch_.tensor(DType::F32, y.shape(), bias.nbytes());
    be_.copy(neg_bias, bias);
    be_.scale(neg_bias, -1.0f);
    be_.copy(out, y);
    be_.add_bias(out, neg_bias);
    return out;
  }
  bool selected(int layer) const { return layers_.empty() || layers_[static_cast<size_t>(layer)]; }
  Backend& be_;
  std::vector<LocalSums>& sums_;
  int64_t D_;
  const std::vector<bool>& layers_;
  Buffer scratch_;  // weight_part's result, reused across layers and samples
};

// What this replica's samples contributed.
struct LocalRun {
  double loss_sum = 0;
  int64_t used = 0, tokens = 0;
};

// Runs this replica's share of the calibration samples (sample i on replica i % dp): forward
// passes for wanda-sp, forward + backward for the gradient criteria (gradients accumulate in
// `grads`; the DP reduction of each layer's starts during the last local backward). The
// observer adds its statistics to `sums`.
LocalRun run_local_samples(const ModelWeights& w, Backend& be, const ParallelContext& par,
                           std::span<const CalibrationSample> samples, const ImportanceOptions& opt,
                           ModelGrads& grads, LayerGradReducer* grad_reducer,
                           std::vector<LocalSums>& sums) {
  if (samples.empty()) throw UsageError("no calibration samples");
  const ParallelLayout& L = par.layout;
  const auto is_local = [&](size_t i) {
    return static_cast<int>(i % static_cast<size_t>(L.dp)) == L.dp_rank;
  };
  GradientPass pass(w, be, *par.tp);
  Observer obs(be, sums, w.config.head_dim, opt.layers);
  obs.want_forward = opt.criterion == Criterion::WandaSp;
  obs.want_backward = opt.criterion == Criterion::TaylorVectorize;
  int64_t local_total = 0, local_done = 0;
  size_t last_local = samples.size();
  for (size_t i = 0; i < samples.size(); ++i)
    if (is_local(i)) {
      ++local_total;
      last_local = i;
    }
  LocalRun run;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (!is_local(i)) continue;
    const CalibrationSample& s = samples[i];
    if (opt.criterion == Criterion::WandaSp) {
      // Wanda-sp calibrates on activations of every token of the sequence.
      if (!s.tokens.empty()) {
        pass.forward_observe(s.tokens, obs);
        ++run.used;
        run.tokens += static_cast<int64_t>(s.tokens.size());
      }
    } else {
      const auto weights = loss_weights(s, opt.loss);
      if (weights.empty()) {
        log_warn("calibration sample ", s.id, " has no tokens to predict; skipped");
      } else {
        if (i == last_local) obs.reduce_after_layer = grad_reducer;
        const auto r = pass.forward_backward(s.tokens, weights, grads, &obs);
        obs.reduce_after_layer = nullptr;
        run.loss_sum += r.loss;
        run.tokens += r.predicted;
        ++run.used;
      }
    }
    ++local_done;
    if (opt.progress) opt.progress(local_done, local_total);
  }
  return run;
}

// Sums the counters and statistics over the DP replicas, before any absolute value, and checks
// the loss. Checked after the reductions, so every rank sees the same values and stops together.
void reduce_over_replicas(Communicator& dp, const LocalRun& run, std::vector<LocalSums>& sums,
                          bool needs_samples, ImportanceScores& out) {
  std::vector<double> counters = {run.loss_sum, static_cast<double>(run.used),
                                  static_cast<double>(run.tokens)};
  reduce(dp, counters);
  out.samples = static_cast<int64_t>(counters[1]);
  out.tokens = static_cast<int64_t>(counters[2]);
  out.mean_loss = out.samples ? counters[0] / static_cast<double>(out.samples) : 0.0;
  if (!std::isfinite(out.mean_loss))
    throw NumericError(cat("importance: the calibration loss is not finite (", out.mean_loss,
                           "); the model or its traces produce NaN/Inf"));
  if (needs_samples && out.samples == 0)
    throw UsageError("no calibration sample had a token to score");
  for (auto& s : sums)
    for (auto* v : {&s.head_q, &s.head_o, &s.ch_gate, &s.ch_up, &s.ch_down, &s.attn_sq, &s.act_sq})
      reduce(dp, *v);
}

// Scores of one layer's local heads and channels, in local order.
struct UnitScores {
  std::vector<double> heads, chans;
};

UnitScores zero_scores(const LayerWeights& W) {
  return {std::vector<double>(static_cast<size_t>(W.n_heads), 0.0),
          std::vector<double>(static_cast<size_t>(W.d_ff), 0.0)};
}

// Adds the term summed over each local head's weights (D rows of q_proj, D columns of o_proj)
// and each channel's (its row of gate_proj and up_proj, its column of down_proj), of W alone or
// of W and its gradient G.
void add_structure_sums(Backend& be, GroupReduce kind, const LayerWeights& W, const LayerGrads* G,
                        int64_t D, double factor, UnitScores& u) {
  const auto grad = [&](Tensor LayerGrads::*t) { return G ? G->*t : Tensor(); };
  add_group_sums(be, u.heads, kind, W.wq, grad(&LayerGrads::wq), true, D, factor);
  add_group_sums(be, u.heads, kind, W.wo, grad(&LayerGrads::wo), false, D, factor);
  add_group_sums(be, u.chans, kind, W.wg, grad(&LayerGrads::wg), true, 1, factor);
  add_group_sums(be, u.chans, kind, W.wu, grad(&LayerGrads::wu), true, 1, factor);
  add_group_sums(be, u.chans, kind, W.wd, grad(&LayerGrads::wd), false, 1, factor);
}

// This rank's scores of layer l's local heads and channels under the criterion, from the
// (replica-summed) gradients `G` or statistics `s` over N samples.
UnitScores local_scores(Backend& be, const ModelConfig& c, const LayerWeights& W,
                        const LayerGrads* G, const LocalSums& s, Criterion criterion, double N) {
  const int64_t D = c.head_dim, hq = W.n_heads, F = W.d_ff;
  UnitScores u = zero_scores(W);
  // Block normalisation (constant, dense sizes) puts heads and channels on one scale.
  const double head_norm = 4.0 * static_cast<double>(D) * static_cast<double>(c.hidden_size);
  const double chan_norm = 3.0 * static_cast<double>(c.intermediate_size);
  switch (criterion) {
    case Criterion::Taylor:  // sum over the structure of |W * G| / N
      add_structure_sums(be, GroupReduce::AbsProduct, W, G, D, 1.0 / N, u);
      for (double& v : u.heads) v /= head_norm;
      for (double& v : u.chans) v /= chan_norm;
      break;
    case Criterion::Magnitude:  // L2 norm of the structure's weights
      add_structure_sums(be, GroupReduce::Square, W, nullptr, D, 1.0, u);
      for (double& v : u.heads) v = std::sqrt(v);
      for (double& v : u.chans) v = std::sqrt(v);
      break;
    case Criterion::WandaSp: {  // sum over input columns of o_proj / down_proj of |W| * ||X||
      std::vector<double> col_o(static_cast<size_t>(hq * D), 0.0);
      std::vector<double> col_d(static_cast<size_t>(F), 0.0);
      add_group_sums(be, col_o, GroupReduce::Abs, W.wo, {}, false, 1);
      add_group_sums(be, col_d, GroupReduce::Abs, W.wd, {}, false, 1);
      for (size_t j = 0; j < col_o.size(); ++j)
        u.heads[j / static_cast<size_t>(D)] += col_o[j] * std::sqrt(s.attn_sq[j]);
      for (size_t ch = 0; ch < col_d.size(); ++ch)
        u.chans[ch] = col_d[ch] * std::sqrt(s.act_sq[ch]);
      break;
    }
    case Criterion::TaylorVectorize:  // |sum over the structure of W * G| / N
      for (size_t h = 0; h < u.heads.size(); ++h)
        u.heads[h] = std::fabs(s.head_q[h] + s.head_o[h]) / N / head_norm;
      for (size_t ch = 0; ch < u.chans.size(); ++ch)
        u.chans[ch] = std::fabs(s.ch_gate[ch] + s.ch_up[ch] + s.ch_down[ch]) / N / chan_norm;
      break;
  }
  return u;
}

// Layer l's scores in its kept order with original ids: each rank places its own heads and
// channels, and an fp64 all-reduce over TP gathers them (every entry is non-zero on one rank
// only). A non-finite score (an overflowing gradient) would rank arbitrarily: stop before a plan.
LayerScores gather_layer_scores(Communicator& tp, const LayerShape& shape, const LayerShard& shard,
                                const UnitScores& local, size_t l) {
  LayerScores ls;
  ls.head_ids = shape.heads;
  ls.channel_ids = shape.channels;
  ls.heads.assign(shape.heads.size(), 0.0);
  ls.channels.assign(shape.channels.size(), 0.0);
  for (size_t i = 0; i < shard.head_pos.size(); ++i)
    ls.heads[static_cast<size_t>(shard.head_pos[i])] = local.heads[i];
  for (size_t i = 0; i < shard.channel_pos.size(); ++i)
    ls.channels[static_cast<size_t>(shard.channel_pos[i])] = local.chans[i];
  reduce(tp, ls.heads);
  reduce(tp, ls.channels);
  for (const auto* v : {&ls.heads, &ls.channels})
    for (size_t i = 0; i < v->size(); ++i)
      if (!std::isfinite((*v)[i]))
        throw NumericError(cat("importance: layer ", l, " ", v == &ls.heads ? "head " : "channel ",
                               v == &ls.heads ? ls.head_ids[i] : ls.channel_ids[i],
                               " has a non-finite score (", (*v)[i], ")"));
  return ls;
}

}  // namespace

ImportanceScores compute_importance(const ModelWeights& w, Backend& be, const ParallelContext& par,
                                    std::span<const CalibrationSample> samples,
                                    const ImportanceOptions& opt) {
  const size_t n_layers = w.layers.size();
  if (!opt.layers.empty() && opt.layers.size() != n_layers)
    throw ConfigError(cat("importance: layer selection of ", opt.layers.size(),
                          " entries for a model of ", n_layers, " layers"));
  ImportanceScores out;
  out.criterion = opt.criterion;
  out.loss = opt.loss;
  out.source = needs_data(opt.criterion) ? opt.source : "none";

  // 1. This replica's samples: gradients (taylor, summed over replicas layer by layer during
  //    the last backward) and activation statistics (taylor-vectorize, wanda-sp).
  std::vector<LocalSums> sums = make_local_sums(w);
  ModelGrads grads;
  if (needs_gradients(opt.criterion)) grads = make_grads(w, be, GradSelection::Prunable);
  std::optional<LayerGradReducer> grad_reducer;
  if (opt.criterion == Criterion::Taylor && par.dp->size() > 1)
    grad_reducer.emplace(*par.dp, grads);
  LocalRun run;
  if (needs_data(opt.criterion))
    run = run_local_samples(w, be, par, samples, opt, grads,
                            grad_reducer ? &*grad_reducer : nullptr, sums);

  // 2. Everything summed over the data-parallel replicas (before any absolute value).
  if (grad_reducer) grad_reducer->finish();
  reduce_over_replicas(*par.dp, run, sums, needs_data(opt.criterion), out);
  const double N = static_cast<double>(std::max<int64_t>(out.samples, 1));

  // 3. Each layer: local scores (reduced on the backend), gathered across tensor-parallel ranks.
  for (size_t l = 0; l < n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    UnitScores local = zero_scores(lw);
    if (opt.layers.empty() || opt.layers[l])  // not selected: zeros
      local = local_scores(be, w.config, lw, grads.layers.empty() ? nullptr : &grads.layers[l],
                           sums[l], opt.criterion, N);
    out.layers.push_back(
        gather_layer_scores(*par.tp, w.config.layers[l], w.plan.layers[l], local, l));
  }
  // With RESP_COMM_CHECK, a rank that skipped or added a collective above fails here, on every
  // rank, instead of pairing with whatever collective comes next.
  par.tp->check_in_sync("end of importance");
  par.dp->check_in_sync("end of importance");
  return out;
}

}  // namespace resp
