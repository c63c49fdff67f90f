// The model's bf16 weight path without a GPU. `Bf16Storage` is the CPU backend with
// weight_dtype() = BF16: copy() converts F32 <-> BF16 (round to nearest even), and gemm() and
// group_reduce() widen a BF16 operand to F32 before the CPU op, i.e. bf16 storage with f32
// compute. Every consumer of the weights (forward, cached decode, the backward of importance,
// the scorer's reductions) must then produce exactly what the F32 CPU backend produces on a
// copy of the weights rounded to bf16 where the model stores bf16: the projection matrices and
// the lm_head (a tied one as a rounded copy of the table), not the norms, biases or embedding
// table. Exact equality pins down both which tensors are stored in bf16 and that nothing reads
// them as F32.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "calibration_samples.h"
#include "comm/parallel_layout.h"
#include "core/dtype.h"
#include "importance/scorer.h"
#include "model/decoder.h"
#include "model/kv_cache.h"
#include "model/model_weights.h"
#include "model/shard_plan.h"
#include "test_util.h"

namespace resp {
namespace {

using namespace resp::test;

class Bf16Storage final : public Backend {
 public:
  Bf16Storage() : in_(make_cpu_backend(1)) {}
  Device device() const override { return in_->device(); }
  std::string name() const override { return "cpu+bf16-storage"; }
  DType weight_dtype() const override { return DType::BF16; }
  Buffer allocate(size_t bytes) override { return in_->allocate(bytes); }
  void copy(const Tensor& d, const Tensor& s) override {
    if (d.dtype() == s.dtype()) return in_->copy(d, s);
    ASSERT_TRUE(d.is_contiguous() && s.is_contiguous() && d.numel() == s.numel());
    ++conversions;
    const int64_t n = d.numel();
    if (s.dtype() == DType::F32 && d.dtype() == DType::BF16) {
      for (int64_t i = 0; i < n; ++i) d.as<uint16_t>()[i] = f32_to_bf16(s.as<float>()[i]);
    } else {
      ASSERT_TRUE(s.dtype() == DType::BF16 && d.dtype() == DType::F32);
      for (int64_t i = 0; i < n; ++i) d.as<float>()[i] = bf16_to_f32(s.as<uint16_t>()[i]);
    }
  }
  void fill(const Tensor& d, float v) override { in_->fill(d, v); }
  void synchronize() override { in_->synchronize(); }
  void gemm(const Tensor& a, bool ta, const Tensor& b, bool tb, const Tensor& c, float alpha,
            float beta) override {
    std::vector<float> wa, wb;
    in_->gemm(widen(a, wa), ta, widen(b, wb), tb, c, alpha, beta);
  }
  void add_bias(const Tensor& y, const Tensor& b) override { in_->add_bias(y, f32(b)); }
  void rmsnorm(const Tensor& o, const Tensor& x, const Tensor& w, float e) override {
    in_->rmsnorm(o, x, f32(w), e);
  }
  void rope(const Tensor& x, const Tensor& p, const Tensor& f) override { in_->rope(x, p, f); }
  void attention(const Tensor& o, const Tensor& q, const Tensor& k, const Tensor& v,
                 const Tensor& kvh, int64_t off, float s) override {
    in_->attention(o, q, k, v, kvh, off, s);
  }
  void swiglu(const Tensor& o, const Tensor& g, const Tensor& u) override { in_->swiglu(o, g, u); }
  void embedding(const Tensor& o, const Tensor& t, const Tensor& i) override {
    in_->embedding(o, f32(t), i);
  }
  void add(const Tensor& o, const Tensor& a, const Tensor& b) override { in_->add(o, a, b); }
  void scale(const Tensor& x, float a) override { in_->scale(x, a); }
  void softmax(const Tensor& o, const Tensor& x) override { in_->softmax(o, x); }
  void log_softmax(const Tensor& o, const Tensor& x) override { in_->log_softmax(o, x); }
  void sum_rows(const Tensor& o, const Tensor& x) override { in_->sum_rows(o, x); }
  void rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy, const Tensor& x,
                        const Tensor& w, float e) override {
    in_->rmsnorm_backward(dx, dw, dy, x, f32(w), e);
  }
  void rope_backward(const Tensor& dx, const Tensor& p, const Tensor& f) override {
    in_->rope_backward(dx, p, f);
  }
  void attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& dout,
                          const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& kvh,
                          int64_t off, float s) override {
    in_->attention_backward(dq, dk, dv, dout, q, k, v, kvh, off, s);
  }
  void swiglu_backward(const Tensor& dg, const Tensor& du, const Tensor& dout, const Tensor& g,
                       const Tensor& u) override {
    in_->swiglu_backward(dg, du, dout, g, u);
  }
  void embedding_backward(const Tensor& dt, const Tensor& dout, const Tensor& ids) override {
    in_->embedding_backward(dt, dout, ids);
  }
  void cross_entropy(const Tensor& l, const Tensor& x, const Tensor& t, const Tensor& w) override {
    in_->cross_entropy(l, x, t, w);
  }
  // Like gemm, the importance reductions read weight matrices: a BF16 operand a is widened.
  void group_reduce(std::span<double> out, GroupReduce kind, const Tensor& a, const Tensor& b,
                    bool by_rows, int64_t per_group, double factor) override {
    std::vector<float> wa;
    in_->group_reduce(out, kind, widen(a, wa), f32(b), by_rows, per_group, factor);
  }

  int64_t conversions = 0;  // copies that converted (the weight uploads and host reads)

 private:
  // Only gemm may see a BF16 tensor: anything else reading one is a bug in the model.
  static const Tensor& f32(const Tensor& t) {
    if (t.dtype() != DType::F32 && !t.empty())
      throw ShapeError(
          cat("bf16-storage backend: non-gemm op given ", t.str(), " in ", dtype_name(t.dtype())));
    return t;
  }
  // A BF16 gemm operand as packed F32 rows (exact), any other operand as it is.
  static Tensor widen(const Tensor& t, std::vector<float>& buf) {
    if (t.dtype() != DType::BF16) return t;
    const int64_t r = t.dim(0), c = t.dim(1), ld = r <= 1 ? c : t.stride(0);
    buf.resize(static_cast<size_t>(r * c));
    for (int64_t i = 0; i < r; ++i)
      for (int64_t j = 0; j < c; ++j)
        buf[static_cast<size_t>(i * c + j)] = bf16_to_f32(t.as<uint16_t>()[i * ld + j]);
    return Tensor(buf.data(), DType::F32, Shape{r, c});
  }

  std::unique_ptr<Backend> in_;
};

// The F32 weights rounded where the model stores bf16 (in place: CPU weights are host memory).
// A tied lm_head becomes a rounded copy of the embedding table, held in `tied_copy`, while the
// table itself (read by the embedding lookup) stays F32.
void round_stored_matrices(ModelWeights& w, std::vector<float>& tied_copy) {
  auto round = [](const Tensor& t) {
    if (t.empty()) return;
    float* p = t.f32();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = bf16_to_f32(f32_to_bf16(p[i]));
  };
  for (const LayerWeights& L : w.layers)
    for (const Tensor* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.wg, &L.wu, &L.wd}) round(*t);
  if (w.config.tie_word_embeddings) {
    tied_copy.assign(w.embed.f32(), w.embed.f32() + w.embed.numel());
    w.lm_head = Tensor(tied_copy.data(), DType::F32, w.embed.shape());
  }
  round(w.lm_head);
}

std::vector<CalibrationSample> calibration(const fs::path& dir) {
  if (!fs::exists(dir / "calibration.jsonl")) return {};
  return test::read_calibration_samples(dir / "calibration.jsonl");
}

class Bf16Weights : public ::testing::TestWithParam<std::string> {};

TEST_P(Bf16Weights, ModelMatchesF32OnRoundedWeightsExactly) {
  const fs::path dir = fixture_models() / GetParam();
  const ModelConfig config = load_model_config(dir);
  const ShardPlan plan = make_shard_plan(config, 1, 0);
  auto cpu = make_cpu_backend(1);
  ModelWeights ref = load_weights(dir, config, plan, *cpu);
  std::vector<float> tied_lm_head;
  round_stored_matrices(ref, tied_lm_head);
  Bf16Storage bf;
  const ModelWeights w = load_weights(dir, config, plan, bf);

  // Storage: matrices and the lm_head in bf16 (a tied one as its own copy), the rest in f32.
  EXPECT_EQ(w.layers[0].wq.dtype(), DType::BF16);
  EXPECT_EQ(w.layers[0].wd.dtype(), DType::BF16);
  EXPECT_EQ(w.layers[0].attn_norm.dtype(), DType::F32);
  EXPECT_EQ(w.embed.dtype(), DType::F32);
  EXPECT_EQ(w.lm_head.dtype(), DType::BF16);
  EXPECT_NE(w.lm_head.data(), w.embed.data());
  if (config.tie_word_embeddings) {  // the CPU's F32 weights keep one table for both
    const ModelWeights plain = load_weights(dir, config, plan, *cpu);
    EXPECT_EQ(plain.lm_head.data(), plain.embed.data());
  }
  EXPECT_LT(w.bytes(), ref.bytes());
  EXPECT_GT(bf.conversions, 0);

  SelfCommunicator self;
  Decoder dr(ref, *cpu, self), db(w, bf, self);
  int checked = 0;
  for (const auto& j : parse_jsonl(read_text(dir / "reference.jsonl"))) {
    const auto tokens = j["tokens"].get<std::vector<int32_t>>();
    const auto a = dr.sequence_logprobs(tokens), b = db.sequence_logprobs(tokens);
    EXPECT_EQ(a, b) << j["id"];
    checked += static_cast<int>(a.size());
  }
  EXPECT_GT(checked, 10);

  // Cached prefill of two sequences, then decode steps through the batched attention.
  KvCache cr(ref, *cpu, 2, 32), cb(w, bf, 2, 32);
  const auto V = static_cast<int32_t>(config.vocab_size);
  std::vector<int32_t> p0 = {1, 7 % V, 11 % V, 3, 5}, p1 = {6 % V, 2};
  std::vector<Decoder::Chunk> chunks = {{0, p0}, {1, p1}};
  for (int step = 0; step < 4; ++step) {
    const Tensor hr = dr.forward_cached(chunks, cr), hb = db.forward_cached(chunks, cb);
    const std::vector<float> a(hr.f32(), hr.f32() + hr.numel());
    const std::vector<float> b(hb.f32(), hb.f32() + hb.numel());
    EXPECT_EQ(a, b) << "step " << step;
    p0 = {static_cast<int32_t>((13 * step + 1) % V)};
    p1 = {static_cast<int32_t>((7 * step + 3) % V)};
    chunks = {{1, p1}, {0, p0}};
  }

  const auto samples = calibration(dir);
  if (samples.empty()) return;
  const ParallelContext par = ParallelContext::single();
  for (Criterion crit : {Criterion::Taylor, Criterion::Magnitude}) {
    ImportanceOptions opt;
    opt.criterion = crit;
    const auto sa = compute_importance(ref, *cpu, par, samples, opt);
    const auto sb = compute_importance(w, bf, par, samples, opt);
    EXPECT_EQ(sa.mean_loss, sb.mean_loss);
    ASSERT_EQ(sa.layers.size(), sb.layers.size());
    for (size_t l = 0; l < sa.layers.size(); ++l) {
      EXPECT_EQ(sa.layers[l].heads, sb.layers[l].heads) << criterion_name(crit) << " layer " << l;
      EXPECT_EQ(sa.layers[l].channels, sb.layers[l].channels)
          << criterion_name(crit) << " layer " << l;
    }
  }
}

std::string test_name(const ::testing::TestParamInfo<std::string>& p) {
  std::string s = p.param;
  for (char& ch : s)
    if (ch == '-') ch = '_';
  return s;
}

INSTANTIATE_TEST_SUITE_P(Golden, Bf16Weights,
                         ::testing::Values("qwen3-f32", "qwen3-tied-bf16", "qwen2-sharded-f32",
                                           "llama31-bf16", "llama-mqa-f32"),
                         test_name);

}  // namespace
}  // namespace resp
