#include "importance/scorer.h"

#include <cmath>
#include <memory>
#include <optional>

#include "core/error.h"
#include "core/log.h"
#include "model/gradient_pass.h"

namespace resp {

namespace {

std::vector<float> to_host(Backend& be, const Tensor& t) {
  if (t.empty()) return {};  // absent (e.g. a layer pruned to zero heads)
  std::vector<float> h(static_cast<size_t>(t.numel()));
  if (!h.empty()) be.copy(Tensor(h.data(), DType::F32, t.shape()), t);
  return h;
}

void reduce(Communicator& comm, std::vector<double>& v) {
  if (!v.empty())
    comm.all_reduce(Tensor(v.data(), DType::F64, Shape{static_cast<int64_t>(v.size())}));
}

// Rank-local accumulators of one layer: per local head and per local channel.
struct LocalSums {
  std::vector<double> head_q, head_o;  // vectorize: signed sums; wanda: unused
  std::vector<double> ch_gate, ch_up, ch_down;
  std::vector<double> attn_sq, act_sq;  // wanda: per input column of o_proj / down_proj
};

// Sum over rows r and columns c of x*y on [T, n] host data, grouped into blocks of `group`
// columns: out[j] += sum_t sum_{c in block j} x[t, c] * y[t, c].
void grouped_dot(const std::vector<float>& x, const std::vector<float>& y, int64_t T, int64_t n,
                 int64_t group, std::vector<double>& out) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = 0; c < n; ++c)
      out[static_cast<size_t>(c / group)] +=
          static_cast<double>(x[static_cast<size_t>(t * n + c)]) *
          y[static_cast<size_t>(t * n + c)];
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
    if (!a.attn_out.empty()) square_sums(a.attn_out, s.attn_sq);
    if (!a.mlp_act.empty()) square_sums(a.mlp_act, s.act_sq);
  }

  void on_backward(const LayerActivations& a) override {
    if (reduce_after_layer) reduce_after_layer->start(static_cast<size_t>(a.layer));
    if (!want_backward || !selected(a.layer)) return;
    LocalSums& s = sums_[static_cast<size_t>(a.layer)];
    const int64_t T = a.tokens;
    if (!a.d_q_proj_out.empty()) {
      const int64_t n = a.q_proj_out.dim(1);
      auto y = to_host(be_, a.q_proj_out), dy = to_host(be_, a.d_q_proj_out);
      if (!a.q_bias.empty()) {  // w.g over the weight only: subtract the bias part of y
        const auto b = to_host(be_, a.q_bias);
        for (int64_t t = 0; t < T; ++t)
          for (int64_t c = 0; c < n; ++c)
            y[static_cast<size_t>(t * n + c)] -= b[static_cast<size_t>(c)];
      }
      grouped_dot(y, dy, T, n, D_, s.head_q);
      grouped_dot(to_host(be_, a.attn_out), to_host(be_, a.d_attn_out), T, n, D_, s.head_o);
    }
    if (!a.d_mlp_act.empty()) {
      const int64_t F = a.mlp_act.dim(1);
      grouped_dot(to_host(be_, a.gate_out), to_host(be_, a.d_gate_out), T, F, 1, s.ch_gate);
      grouped_dot(to_host(be_, a.up_out), to_host(be_, a.d_up_out), T, F, 1, s.ch_up);
      grouped_dot(to_host(be_, a.mlp_act), to_host(be_, a.d_mlp_act), T, F, 1, s.ch_down);
    }
  }

 private:
  void square_sums(const Tensor& x, std::vector<double>& out) {
    const auto h = to_host(be_, x);
    const int64_t T = x.dim(0), n = x.dim(1);
    for (int64_t t = 0; t < T; ++t)
      for (int64_t c = 0; c < n; ++c) {
        const double v = h[static_cast<size_t>(t * n + c)];
        out[static_cast<size_t>(c)] += v * v;
      }
  }
  bool selected(int layer) const { return layers_.empty() || layers_[static_cast<size_t>(layer)]; }
  Backend& be_;
  std::vector<LocalSums>& sums_;
  int64_t D_;
  const std::vector<bool>& layers_;
};

}  // namespace

ImportanceScores compute_importance(const ModelWeights& w, Backend& be, const ParallelContext& par,
                                    std::span<const CalibrationSample> samples,
                                    const ImportanceOptions& opt) {
  const auto& c = w.config;
  const ParallelLayout& L = par.layout;
  const int64_t H = c.hidden_size, D = c.head_dim;
  const size_t n_layers = w.layers.size();
  ImportanceScores out;
  out.criterion = opt.criterion;
  out.loss = opt.loss;
  out.source = needs_data(opt.criterion) ? opt.source : "none";

  if (!opt.layers.empty() && opt.layers.size() != n_layers)
    throw ConfigError(cat("importance: layer selection of ", opt.layers.size(),
                          " entries for a model of ", n_layers, " layers"));
  const auto selected = [&](size_t l) { return opt.layers.empty() || opt.layers[l]; };
  std::vector<LocalSums> sums(n_layers);
  for (size_t l = 0; l < n_layers; ++l) {
    const auto& lw = w.layers[l];
    sums[l].head_q.assign(static_cast<size_t>(lw.n_heads), 0.0);
    sums[l].head_o.assign(static_cast<size_t>(lw.n_heads), 0.0);
    sums[l].ch_gate.assign(static_cast<size_t>(lw.d_ff), 0.0);
    sums[l].ch_up.assign(static_cast<size_t>(lw.d_ff), 0.0);
    sums[l].ch_down.assign(static_cast<size_t>(lw.d_ff), 0.0);
    sums[l].attn_sq.assign(static_cast<size_t>(lw.n_heads * D), 0.0);
    sums[l].act_sq.assign(static_cast<size_t>(lw.d_ff), 0.0);
  }

  // ---- run the local share of the calibration samples ---------------------------------------
  ModelGrads grads;
  if (opt.criterion == Criterion::Taylor)
    grads = make_grads(w, be, GradSelection::Prunable);
  else if (opt.criterion == Criterion::TaylorVectorize)
    grads = make_grads(w, be, GradSelection::Prunable);
  double loss_sum = 0;
  int64_t used = 0, tokens = 0;
  std::optional<LayerGradReducer> grad_reducer;
  if (opt.criterion == Criterion::Taylor && par.dp->size() > 1)
    grad_reducer.emplace(*par.dp, grads);
  if (needs_data(opt.criterion)) {
    if (samples.empty()) throw UsageError("no calibration samples");
    GradientPass pass(w, be, *par.tp);
    Observer obs(be, sums, D, opt.layers);
    obs.want_forward = opt.criterion == Criterion::WandaSp;
    obs.want_backward = opt.criterion == Criterion::TaylorVectorize;
    int64_t local_total = 0, local_done = 0;
    size_t last_local = samples.size();
    for (size_t i = 0; i < samples.size(); ++i)
      if (static_cast<int>(i % static_cast<size_t>(L.dp)) == L.dp_rank) {
        ++local_total;
        last_local = i;
      }
    for (size_t i = 0; i < samples.size(); ++i) {
      if (static_cast<int>(i % static_cast<size_t>(L.dp)) != L.dp_rank) continue;
      const CalibrationSample& s = samples[i];
      if (opt.criterion == Criterion::WandaSp) {
        // Wanda-sp calibrates on activations of every token of the sequence.
        if (!s.tokens.empty()) {
          pass.forward_observe(s.tokens, obs);
          ++used;
          tokens += static_cast<int64_t>(s.tokens.size());
        }
      } else {
        const auto weights = loss_weights(s, opt.loss);
        if (weights.empty()) {
          log_warn("calibration sample ", s.id, " has no tokens to predict; skipped");
        } else {
          if (i == last_local && grad_reducer) obs.reduce_after_layer = &*grad_reducer;
          const auto r = pass.forward_backward(s.tokens, weights, grads, &obs);
          obs.reduce_after_layer = nullptr;
          loss_sum += r.loss;
          tokens += r.predicted;
          ++used;
        }
      }
      ++local_done;
      if (opt.progress) opt.progress(local_done, local_total);
    }
  }

  // ---- reduce across data-parallel replicas (before any absolute value) ----------------------
  if (grad_reducer) grad_reducer->finish();
  std::vector<double> counters = {loss_sum, static_cast<double>(used), static_cast<double>(tokens)};
  reduce(*par.dp, counters);
  out.samples = static_cast<int64_t>(counters[1]);
  out.tokens = static_cast<int64_t>(counters[2]);
  out.mean_loss = out.samples ? counters[0] / static_cast<double>(out.samples) : 0.0;
  // Checked after the reductions, so every rank sees the same value and stops together.
  if (!std::isfinite(out.mean_loss))
    throw NumericError(cat("importance: the calibration loss is not finite (", out.mean_loss,
                           "); the model or its traces produce NaN/Inf"));
  if (needs_data(opt.criterion) && out.samples == 0)
    throw UsageError("no calibration sample had a token to score");
  const double N = std::max<int64_t>(out.samples, 1);
  for (auto& s : sums) {
    for (auto* v : {&s.head_q, &s.head_o, &s.ch_gate, &s.ch_up, &s.ch_down, &s.attn_sq, &s.act_sq})
      reduce(*par.dp, *v);
  }

  // ---- local scores, then gather across tensor-parallel ranks -------------------------------
  // Block normalisation (constant, dense sizes) puts heads and channels on one scale.
  const double head_norm = 4.0 * static_cast<double>(D) * static_cast<double>(H);
  const double chan_norm = 3.0 * static_cast<double>(c.intermediate_size);
  for (size_t l = 0; l < n_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    const LayerShard& shard = w.plan.layers[l];
    const LayerShape& shape = c.layers[l];
    const int64_t hq = lw.n_heads, F = lw.d_ff;
    std::vector<double> heads(static_cast<size_t>(hq), 0.0), chans(static_cast<size_t>(F), 0.0);
    const LocalSums& s = sums[l];

    if (!selected(l)) {
      // not scored: zeros
    } else if (opt.criterion == Criterion::Taylor || opt.criterion == Criterion::Magnitude ||
               opt.criterion == Criterion::WandaSp) {
      const auto wq = to_host(be, lw.wq), wo = to_host(be, lw.wo), wg = to_host(be, lw.wg),
                 wu = to_host(be, lw.wu), wd = to_host(be, lw.wd);
      std::vector<float> gq, go, gg, gu, gd;
      if (opt.criterion == Criterion::Taylor) {
        const LayerGrads& G = grads.layers[l];
        gq = to_host(be, G.wq);
        go = to_host(be, G.wo);
        gg = to_host(be, G.wg);
        gu = to_host(be, G.wu);
        gd = to_host(be, G.wd);
      }
      const int64_t qcols = hq * D;
      // Per-element contribution of weight i under each criterion.
      auto elem = [&](const std::vector<float>& wv, const std::vector<float>& gv, size_t i) {
        if (opt.criterion == Criterion::Taylor)
          return std::fabs(static_cast<double>(wv[i]) * gv[i] / N);
        return static_cast<double>(wv[i]) * wv[i];  // magnitude: squared, sqrt later
      };
      if (opt.criterion == Criterion::WandaSp) {
        for (int64_t j = 0; j < qcols; ++j) {
          double col = 0;
          for (int64_t r = 0; r < H; ++r) col += std::fabs(wo[static_cast<size_t>(r * qcols + j)]);
          heads[static_cast<size_t>(j / D)] += col * std::sqrt(s.attn_sq[static_cast<size_t>(j)]);
        }
        for (int64_t ch = 0; ch < F; ++ch) {
          double col = 0;
          for (int64_t r = 0; r < H; ++r) col += std::fabs(wd[static_cast<size_t>(r * F + ch)]);
          chans[static_cast<size_t>(ch)] = col * std::sqrt(s.act_sq[static_cast<size_t>(ch)]);
        }
      } else {
        for (int64_t h = 0; h < hq; ++h) {
          double acc = 0;
          for (int64_t r = h * D; r < (h + 1) * D; ++r)
            for (int64_t k = 0; k < H; ++k) acc += elem(wq, gq, static_cast<size_t>(r * H + k));
          for (int64_t r = 0; r < H; ++r)
            for (int64_t k = h * D; k < (h + 1) * D; ++k)
              acc += elem(wo, go, static_cast<size_t>(r * qcols + k));
          heads[static_cast<size_t>(h)] = acc;
        }
        for (int64_t ch = 0; ch < F; ++ch) {
          double acc = 0;
          for (int64_t k = 0; k < H; ++k) {
            acc += elem(wg, gg, static_cast<size_t>(ch * H + k));
            acc += elem(wu, gu, static_cast<size_t>(ch * H + k));
            acc += elem(wd, gd, static_cast<size_t>(k * F + ch));
          }
          chans[static_cast<size_t>(ch)] = acc;
        }
        if (opt.criterion == Criterion::Magnitude) {
          for (double& v : heads) v = std::sqrt(v);
          for (double& v : chans) v = std::sqrt(v);
        } else {
          for (double& v : heads) v /= head_norm;
          for (double& v : chans) v /= chan_norm;
        }
      }
    } else {  // taylor-vectorize: |sum over the structure of w*G| / N
      for (int64_t h = 0; h < hq; ++h)
        heads[static_cast<size_t>(h)] =
            std::fabs(s.head_q[static_cast<size_t>(h)] + s.head_o[static_cast<size_t>(h)]) / N /
            head_norm;
      for (int64_t ch = 0; ch < F; ++ch)
        chans[static_cast<size_t>(ch)] =
            std::fabs(s.ch_gate[static_cast<size_t>(ch)] + s.ch_up[static_cast<size_t>(ch)] +
                      s.ch_down[static_cast<size_t>(ch)]) /
            N / chan_norm;
    }

    LayerScores ls;
    ls.head_ids = shape.heads;
    ls.channel_ids = shape.channels;
    ls.heads.assign(shape.heads.size(), 0.0);
    ls.channels.assign(shape.channels.size(), 0.0);
    for (size_t i = 0; i < shard.head_pos.size(); ++i)
      ls.heads[static_cast<size_t>(shard.head_pos[i])] = heads[i];
    for (size_t i = 0; i < shard.channel_pos.size(); ++i)
      ls.channels[static_cast<size_t>(shard.channel_pos[i])] = chans[i];
    reduce(*par.tp, ls.heads);  // each entry is non-zero on exactly one TP rank
    reduce(*par.tp, ls.channels);
    // A non-finite score (an overflowing gradient) would rank arbitrarily: stop before a plan.
    for (const auto* v : {&ls.heads, &ls.channels})
      for (size_t i = 0; i < v->size(); ++i)
        if (!std::isfinite((*v)[i]))
          throw NumericError(cat("importance: layer ", l, " ", v == &ls.heads ? "head " : "channel ",
                                 v == &ls.heads ? ls.head_ids[i] : ls.channel_ids[i],
                                 " has a non-finite score (", (*v)[i], ")"));
    out.layers.push_back(std::move(ls));
  }
  // With RESP_COMM_CHECK, a rank that skipped or added a collective above fails here, on every
  // rank, instead of pairing with whatever collective comes next.
  par.tp->check_in_sync("end of importance");
  par.dp->check_in_sync("end of importance");
  return out;
}

}  // namespace resp
