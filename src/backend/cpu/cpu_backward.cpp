// Backward ops of the CPU backend (see backend.h for the contracts). Attention backward works
// per query head with sgemm on the [T, S] score matrix (recomputed), so its cost follows the
// GEMM rate; everything else is OpenMP loops with double accumulation where sums decide accuracy.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "core/error.h"

namespace resp {

namespace {

void need(bool ok, const char* op, const std::string& msg) {
  if (!ok) throw ShapeError(cat(op, ": ", msg));
}

void need_f32(const char* op, const char* what, const Tensor& t) {
  need(t.device() == Device::CPU, op, cat(what, " ", t.str(), " is not host memory"));
  need(t.dtype() == DType::F32, op, cat(what, " ", t.str(), " must be F32"));
  need(t.is_contiguous(), op, cat(what, " ", t.str(), " must be contiguous"));
}

// Rows x cols view of a contiguous tensor whose last dimension is `cols`.
int64_t rows_for(const Tensor& t, int64_t cols) { return cols ? t.numel() / cols : 0; }

}  // namespace

void CpuBackend::sum_rows(const Tensor& out, const Tensor& x) {
  need_f32("sum_rows", "out", out);
  need_f32("sum_rows", "x", x);
  const int64_t N = out.numel();
  need(N > 0 && x.numel() % N == 0 && x.dim(x.rank() - 1) == N, "sum_rows",
       cat("x ", x.str(), " must be [R, ", N, "] for out ", out.str()));
  const int64_t R = x.numel() / N;
  const float* xp = x.f32();
  float* o = out.f32();
#pragma omp parallel for num_threads(threads_) if (R * N > (1 << 16))
  for (int64_t n = 0; n < N; ++n) {
    double s = 0;
    for (int64_t r = 0; r < R; ++r) s += xp[r * N + n];
    o[n] += static_cast<float>(s);
  }
}

void CpuBackend::rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy,
                                  const Tensor& x, const Tensor& w, float eps) {
  for (auto [n, t] : {std::pair{"dx", &dx}, {"dy", &dy}, {"x", &x}, {"w", &w}}) need_f32("rmsnorm_backward", n, *t);
  const int64_t D = w.numel();
  need(D > 0 && x.dim(x.rank() - 1) == D && x.numel() == dy.numel() && x.numel() == dx.numel(),
       "rmsnorm_backward", cat("x ", x.str(), ", dy ", dy.str(), ", dx ", dx.str(), " vs w ", w.str()));
  if (!dw.empty()) {
    need_f32("rmsnorm_backward", "dw", dw);
    need(dw.numel() == D, "rmsnorm_backward", cat("dw ", dw.str(), " must match w ", w.str()));
  }
  const int64_t R = rows_for(x, D);
  const float* xp = x.f32();
  const float* dyp = dy.f32();
  const float* wp = w.f32();
  float* dxp = dx.f32();
  const int nt = R * D > (1 << 15) ? threads_ : 1;
  std::vector<double> dw_part(dw.empty() ? 0 : static_cast<size_t>(nt * D), 0.0);
#pragma omp parallel num_threads(nt)
  {
    const int tid = omp_get_thread_num();
    double* dwt = dw_part.empty() ? nullptr : dw_part.data() + static_cast<size_t>(tid) * D;
    std::vector<float> g(static_cast<size_t>(D));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < R; ++r) {
      const float* xr = xp + r * D;
      const float* dyr = dyp + r * D;
      double ss = 0;
      for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(D) + eps);
      double dot = 0;  // mean over i of g_i * xhat_i
      for (int64_t i = 0; i < D; ++i) {
        g[static_cast<size_t>(i)] = dyr[i] * wp[i];
        dot += static_cast<double>(g[static_cast<size_t>(i)]) * xr[i] * inv;
        if (dwt) dwt[i] += static_cast<double>(dyr[i]) * xr[i] * inv;
      }
      dot /= static_cast<double>(D);
      float* dxr = dxp + r * D;  // may alias dy: dy's row was fully read above
      for (int64_t i = 0; i < D; ++i)
        dxr[i] = static_cast<float>(inv * (g[static_cast<size_t>(i)] - xr[i] * inv * dot));
    }
  }
  if (!dw.empty()) {
    float* dwp = dw.f32();
    for (int64_t i = 0; i < D; ++i) {
      double s = 0;
      for (int t = 0; t < nt; ++t) s += dw_part[static_cast<size_t>(t * D + i)];
      dwp[i] += static_cast<float>(s);
    }
  }
}

void CpuBackend::rope_backward(const Tensor& dx, const Tensor& positions, const Tensor& inv_freq) {
  need_f32("rope_backward", "dx", dx);
  need_f32("rope_backward", "inv_freq", inv_freq);
  need(dx.rank() == 3 && dx.dim(2) % 2 == 0 && inv_freq.numel() == dx.dim(2) / 2, "rope_backward",
       cat("dx ", dx.str(), " must be [T, H, D] with inv_freq [D/2], got ", inv_freq.str()));
  need(positions.dtype() == DType::I32 && positions.numel() == dx.dim(0), "rope_backward",
       cat("positions ", positions.str(), " must be I32 [T] for dx ", dx.str()));
  const int64_t T = dx.dim(0), H = dx.dim(1), D = dx.dim(2), half = D / 2;
  const int32_t* pos = positions.i32();
  const float* f = inv_freq.f32();
  float* p = dx.f32();
#pragma omp parallel for num_threads(threads_) if (T * H * D > (1 << 15))
  for (int64_t t = 0; t < T; ++t) {
    std::vector<float> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
      const double a = static_cast<double>(pos[t]) * static_cast<double>(f[i]);
      c[static_cast<size_t>(i)] = static_cast<float>(std::cos(a));
      s[static_cast<size_t>(i)] = static_cast<float>(std::sin(a));
    }
    for (int64_t h = 0; h < H; ++h) {
      float* v = p + (t * H + h) * D;
      for (int64_t i = 0; i < half; ++i) {
        // Transpose of the forward rotation = rotation by the negative angle.
        const float a = v[i], b = v[i + half];
        v[i] = a * c[static_cast<size_t>(i)] + b * s[static_cast<size_t>(i)];
        v[i + half] = b * c[static_cast<size_t>(i)] - a * s[static_cast<size_t>(i)];
      }
    }
  }
}

void CpuBackend::attention_backward(const Tensor& dq, const Tensor& dk, const Tensor& dv,
                                    const Tensor& dout, const Tensor& q, const Tensor& k,
                                    const Tensor& v, const Tensor& kv_of_head, int64_t q_offset,
                                    float scale) {
  const char* op = "attention_backward";
  for (auto [n, t] : {std::pair{"dq", &dq}, {"dk", &dk}, {"dv", &dv}, {"dout", &dout}, {"q", &q},
                      {"k", &k}, {"v", &v}})
    need_f32(op, n, *t);
  need(q.rank() == 3 && k.rank() == 3 && v.shape() == k.shape() && dq.shape() == q.shape() &&
           dout.shape() == q.shape() && dk.shape() == k.shape() && dv.shape() == k.shape() &&
           k.dim(2) == q.dim(2),
       op, cat("q ", q.str(), " k ", k.str(), " v ", v.str(), " dq ", dq.str(), " dk ", dk.str(),
               " dv ", dv.str(), " dout ", dout.str()));
  const int64_t T = q.dim(0), Hq = q.dim(1), D = q.dim(2), S = k.dim(0), Hkv = k.dim(1);
  need(q_offset >= 0 && S >= q_offset + T, op, cat("S = ", S, " < q_offset ", q_offset, " + T ", T));
  need(kv_of_head.dtype() == DType::I32 && kv_of_head.numel() == Hq, op,
       cat("kv_of_head ", kv_of_head.str(), " must be I32 [", Hq, "]"));
  const int32_t* kvh = kv_of_head.i32();
  for (int64_t h = 0; h < Hq; ++h)
    need(kvh[h] >= 0 && kvh[h] < Hkv, op, cat("kv_of_head[", h, "] = ", kvh[h], " outside [0, ", Hkv, ")"));
  std::fill(dk.f32(), dk.f32() + dk.numel(), 0.0f);
  std::fill(dv.f32(), dv.f32() + dv.numel(), 0.0f);
  if (T == 0 || Hq == 0 || D == 0) return;
  const int64_t N = q_offset + T;  // keys any query sees
  const int64_t ldq = Hq * D, ldk = Hkv * D;
  // Groups in parallel (each owns its dK/dV); with fewer groups than threads, BLAS threads.
  const bool outer = Hkv >= threads_ && threads_ > 1;
#pragma omp parallel for num_threads(threads_) schedule(dynamic) if (outer)
  for (int64_t g = 0; g < Hkv; ++g) {
    std::vector<float> P(static_cast<size_t>(T * N)), dP(static_cast<size_t>(T * N));
    const float* Kg = k.f32() + g * D;
    const float* Vg = v.f32() + g * D;
    float* dKg = dk.f32() + g * D;
    float* dVg = dv.f32() + g * D;
    for (int64_t h = 0; h < Hq; ++h) {
      if (kvh[h] != g) continue;
      const float* Qh = q.f32() + h * D;
      const float* dOh = dout.f32() + h * D;
      float* dQh = dq.f32() + h * D;
      // P = softmax(scale * Q K^T) with the causal mask (row t sees keys 0..q_offset+t).
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T), static_cast<int>(N),
                  static_cast<int>(D), scale, Qh, static_cast<int>(ldq), Kg, static_cast<int>(ldk), 0.0f,
                  P.data(), static_cast<int>(N));
      for (int64_t t = 0; t < T; ++t) {
        float* row = P.data() + t * N;
        const int64_t n = q_offset + t + 1;
        float mx = row[0];
        for (int64_t j = 1; j < n; ++j) mx = std::max(mx, row[j]);
        double sum = 0;
        for (int64_t j = 0; j < n; ++j) {
          row[j] = std::exp(row[j] - mx);
          sum += row[j];
        }
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t j = 0; j < n; ++j) row[j] *= inv;
        for (int64_t j = n; j < N; ++j) row[j] = 0.0f;
      }
      // dV += P^T dO ; dP = dO V^T
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(N), static_cast<int>(D),
                  static_cast<int>(T), 1.0f, P.data(), static_cast<int>(N), dOh, static_cast<int>(ldq),
                  1.0f, dVg, static_cast<int>(ldk));
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(T), static_cast<int>(N),
                  static_cast<int>(D), 1.0f, dOh, static_cast<int>(ldq), Vg, static_cast<int>(ldk), 0.0f,
                  dP.data(), static_cast<int>(N));
      // dS = P * (dP - rowsum(P * dP)), stored in dP (zero where masked since P = 0 there).
      for (int64_t t = 0; t < T; ++t) {
        const float* pr = P.data() + t * N;
        float* dr = dP.data() + t * N;
        const int64_t n = q_offset + t + 1;
        double dot = 0;
        for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(pr[j]) * dr[j];
        const float d = static_cast<float>(dot);
        for (int64_t j = 0; j < n; ++j) dr[j] = pr[j] * (dr[j] - d);
        for (int64_t j = n; j < N; ++j) dr[j] = 0.0f;
      }
      // dQ = scale * dS K ; dK += scale * dS^T Q
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(T), static_cast<int>(D),
                  static_cast<int>(N), scale, dP.data(), static_cast<int>(N), Kg, static_cast<int>(ldk),
                  0.0f, dQh, static_cast<int>(ldq));
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(N), static_cast<int>(D),
                  static_cast<int>(T), scale, dP.data(), static_cast<int>(N), Qh, static_cast<int>(ldq),
                  1.0f, dKg, static_cast<int>(ldk));
    }
  }
}

void CpuBackend::swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                                 const Tensor& gate, const Tensor& up) {
  for (auto [n, t] : {std::pair{"dgate", &dgate}, {"dup", &dup}, {"dout", &dout}, {"gate", &gate}, {"up", &up}})
    need_f32("swiglu_backward", n, *t);
  need(dgate.shape() == gate.shape() && dup.shape() == gate.shape() && dout.shape() == gate.shape() &&
           up.shape() == gate.shape(),
       "swiglu_backward", cat("all tensors must have the shape of gate ", gate.str()));
  need(dgate.data() != gate.data() && dgate.data() != up.data() && dup.data() != gate.data() &&
           dup.data() != up.data() && dgate.data() != dup.data(),
       "swiglu_backward", "dgate/dup must not alias gate, up or each other");
  const int64_t n = gate.numel();
  const float* g = gate.f32();
  const float* u = up.f32();
  const float* d = dout.f32();
  float* dg = dgate.f32();
  float* du = dup.f32();
#pragma omp parallel for num_threads(threads_) if (n > (1 << 15))
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + std::exp(-g[i]));
    const float di = d[i];  // read before dgate (which may alias dout) is written
    du[i] = di * g[i] * s;
    dg[i] = di * u[i] * s * (1.0f + g[i] * (1.0f - s));
  }
}

void CpuBackend::embedding_backward(const Tensor& dtable, const Tensor& dout, const Tensor& ids) {
  need_f32("embedding_backward", "dtable", dtable);
  need_f32("embedding_backward", "dout", dout);
  need(dtable.rank() == 2 && dout.rank() == 2 && dout.dim(1) == dtable.dim(1) &&
           ids.dtype() == DType::I32 && ids.numel() == dout.dim(0),
       "embedding_backward", cat("dtable ", dtable.str(), ", dout ", dout.str(), ", ids ", ids.str()));
  const int64_t T = dout.dim(0), H = dout.dim(1), V = dtable.dim(0);
  const int32_t* id = ids.i32();
  for (int64_t t = 0; t < T; ++t)
    need(id[t] >= 0 && id[t] < V, "embedding_backward", cat("id ", id[t], " outside [0, ", V, ")"));
  float* tab = dtable.f32();
  const float* d = dout.f32();
  // Columns in parallel: rows with the same id then never race.
#pragma omp parallel for num_threads(threads_) if (T * H > (1 << 15))
  for (int64_t c = 0; c < H; ++c)
    for (int64_t t = 0; t < T; ++t) tab[id[t] * H + c] += d[t * H + c];
}

void CpuBackend::cross_entropy(const Tensor& losses, const Tensor& logits, const Tensor& targets,
                               const Tensor& weights) {
  need_f32("cross_entropy", "losses", losses);
  need_f32("cross_entropy", "logits", logits);
  need_f32("cross_entropy", "weights", weights);
  need(logits.rank() == 2 && targets.dtype() == DType::I32 && targets.numel() == logits.dim(0) &&
           weights.numel() == logits.dim(0) && losses.numel() == logits.dim(0),
       "cross_entropy", cat("logits ", logits.str(), " targets ", targets.str(), " weights ",
                            weights.str(), " losses ", losses.str()));
  const int64_t R = logits.dim(0), V = logits.dim(1);
  const int32_t* tg = targets.i32();
  for (int64_t r = 0; r < R; ++r)
    need(tg[r] >= 0 && tg[r] < V, "cross_entropy", cat("target ", tg[r], " outside [0, ", V, ")"));
  float* x = logits.f32();
  const float* w = weights.f32();
  float* ls = losses.f32();
#pragma omp parallel for num_threads(threads_) if (R * V > (1 << 15))
  for (int64_t r = 0; r < R; ++r) {
    float* row = x + r * V;
    float mx = row[0];
    for (int64_t j = 1; j < V; ++j) mx = std::max(mx, row[j]);
    double sum = 0;
    for (int64_t j = 0; j < V; ++j) sum += std::exp(static_cast<double>(row[j] - mx));
    const double lse = mx + std::log(sum);
    ls[r] = static_cast<float>(lse - row[tg[r]]);
    const double wr = w[r];
    for (int64_t j = 0; j < V; ++j) row[j] = static_cast<float>(wr * std::exp(row[j] - lse));
    row[tg[r]] -= static_cast<float>(wr);
  }
}

}  // namespace resp
