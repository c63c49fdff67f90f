// Backward ops of the CPU backend (see backend.h for the contracts). Attention backward works
// per (query head, block of query rows) with sgemm on the block's causal slice of the score
// matrix (recomputed), so its cost follows the GEMM rate and skips the masked upper triangle;
// everything else is OpenMP loops with double accumulation where sums decide accuracy.
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/fast_math.h"
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
int64_t rows_for(const Tensor& t, int64_t cols) {
  return cols ? t.numel() / cols : 0;
}

void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
           int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

constexpr int64_t kAttnBlock = 64;  // query rows per attention-backward work item

// Attention backward of one block of query rows [t0, t0 + tb) of one head, whose keys/values
// are Kg/Vg (row stride ldk). The block's rows see keys 0..q_offset + t0 + tb - 1 (nb keys), so
// only that causal slice of the score matrix is computed. Writes dQ rows (overwrite) and adds
// into dK/dV rows 0..nb-1 (row stride ldd). P and dP are scratch of tb * nb floats.
void attention_backward_block(const float* Qh, const float* dOh, float* dQh, int64_t ldq,
                              const float* Kg, const float* Vg, int64_t ldk, float* dK, float* dV,
                              int64_t ldd, int64_t t0, int64_t tb, int64_t q_offset, int64_t D,
                              float scale, float* P, float* dP) {
  const int64_t nb = q_offset + t0 + tb;
  const float* Q = Qh + t0 * ldq;
  const float* dO = dOh + t0 * ldq;
  // P = softmax(scale * Q K^T) with the causal mask (row t0+i sees keys 0..q_offset+t0+i).
  sgemm(false, true, tb, nb, D, scale, Q, ldq, Kg, ldk, 0.0f, P, nb);
  for (int64_t i = 0; i < tb; ++i) {
    float* row = P + i * nb;
    const int64_t n = q_offset + t0 + i + 1;
    const float inv = static_cast<float>(1.0 / exp_minus_max(row, row, n));
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) row[j] *= inv;
    std::fill(row + n, row + nb, 0.0f);
  }
  // dV += P^T dO ; dP = dO V^T
  sgemm(true, false, nb, D, tb, 1.0f, P, nb, dO, ldq, 1.0f, dV, ldd);
  sgemm(false, true, tb, nb, D, 1.0f, dO, ldq, Vg, ldk, 0.0f, dP, nb);
  // dS = P * (dP - rowsum(P * dP)), stored in dP (zero where masked since P = 0 there).
  for (int64_t i = 0; i < tb; ++i) {
    const float* pr = P + i * nb;
    float* dr = dP + i * nb;
    const int64_t n = q_offset + t0 + i + 1;
    double dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < n; ++j) dot += static_cast<double>(pr[j]) * dr[j];
    const float d = static_cast<float>(dot);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) dr[j] = pr[j] * (dr[j] - d);
    std::fill(dr + n, dr + nb, 0.0f);
  }
  // dQ = scale * dS K ; dK += scale * dS^T Q
  sgemm(false, false, tb, D, nb, scale, dP, nb, Kg, ldk, 0.0f, dQh + t0 * ldq, ldq);
  sgemm(true, false, nb, D, tb, scale, dP, nb, Q, ldq, 1.0f, dK, ldd);
}

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
  const int nt = threads_for(R * N, thresholds_.elementwise);
#pragma omp parallel for num_threads(nt) if (nt > 1)
  for (int64_t n = 0; n < N; ++n) {
    double s = 0;
    for (int64_t r = 0; r < R; ++r) s += xp[r * N + n];
    o[n] += static_cast<float>(s);
  }
}

void CpuBackend::rmsnorm_backward(const Tensor& dx, const Tensor& dw, const Tensor& dy,
                                  const Tensor& x, const Tensor& w, float eps) {
  for (auto [n, t] : {std::pair{"dx", &dx}, {"dy", &dy}, {"x", &x}, {"w", &w}})
    need_f32("rmsnorm_backward", n, *t);
  const int64_t D = w.numel();
  need(D > 0 && x.dim(x.rank() - 1) == D && x.numel() == dy.numel() && x.numel() == dx.numel(),
       "rmsnorm_backward",
       cat("x ", x.str(), ", dy ", dy.str(), ", dx ", dx.str(), " vs w ", w.str()));
  if (!dw.empty()) {
    need_f32("rmsnorm_backward", "dw", dw);
    need(dw.numel() == D, "rmsnorm_backward", cat("dw ", dw.str(), " must match w ", w.str()));
  }
  const int64_t R = rows_for(x, D);
  const float* xp = x.f32();
  const float* dyp = dy.f32();
  const float* wp = w.f32();
  float* dxp = dx.f32();
  const int nt = threads_for(R * D, thresholds_.rowwise);
  // dw sums over rows in fixed chunks (partials in double, added in chunk order), so its bits
  // do not depend on the thread count.
  constexpr int64_t kRowChunks = 8;
  const int64_t chunks = std::min(kRowChunks, R);
  std::vector<double> dw_part(dw.empty() ? 0 : static_cast<size_t>(chunks * D), 0.0);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t ch = 0; ch < chunks; ++ch) {
    double* dwt = dw_part.empty() ? nullptr : dw_part.data() + ch * D;
    for (int64_t r = R * ch / chunks; r < R * (ch + 1) / chunks; ++r) {
      const float* xr = xp + r * D;
      const float* dyr = dyp + r * D;
      double ss = 0;
#pragma omp simd reduction(+ : ss)
      for (int64_t i = 0; i < D; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(D) + eps);
      double gx = 0;  // sum over i of g_i * x_i, g = dy * w
#pragma omp simd reduction(+ : gx)
      for (int64_t i = 0; i < D; ++i) gx += static_cast<double>(dyr[i] * wp[i]) * xr[i];
      if (dwt) {
#pragma omp simd
        for (int64_t i = 0; i < D; ++i) dwt[i] += static_cast<double>(dyr[i]) * xr[i] * inv;
      }
      // dx = inv * (g - xhat * mean(g * xhat)) = inv * g - x * inv^3 * gx / D. dx may alias dy:
      // each element is read before it is written, at the same index.
      const double c = inv * inv * inv * gx / static_cast<double>(D);
      float* dxr = dxp + r * D;
#pragma omp simd
      for (int64_t i = 0; i < D; ++i)
        dxr[i] = static_cast<float>(inv * static_cast<double>(dyr[i] * wp[i]) - c * xr[i]);
    }
  }
  if (!dw.empty()) {
    float* dwp = dw.f32();
    for (int64_t i = 0; i < D; ++i) {
      double s = 0;
      for (int64_t ch = 0; ch < chunks; ++ch) s += dw_part[static_cast<size_t>(ch * D + i)];
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
  const int nt = threads_for(T * H * D, thresholds_.rowwise);
#pragma omp parallel for num_threads(nt) if (nt > 1)
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
  for (auto [n, t] : {std::pair{"dq", &dq},
                      {"dk", &dk},
                      {"dv", &dv},
                      {"dout", &dout},
                      {"q", &q},
                      {"k", &k},
                      {"v", &v}})
    need_f32(op, n, *t);
  if (kv_of_head.device() != Device::CPU)
    throw ShapeError(cat(op, ": kv_of_head ", kv_of_head.str(), " is not host memory"));
  const AttentionDims dims =
      check_attention_backward_args(dq, dk, dv, dout, q, k, v, kv_of_head, q_offset);
  const int64_t T = dims.t, Hq = dims.hq, D = dims.d, Hkv = dims.hkv;
  const int32_t* kvh = kv_of_head.i32();
  for (int64_t h = 0; h < Hq; ++h)
    need(kvh[h] >= 0 && kvh[h] < Hkv, op,
         cat("kv_of_head[", h, "] = ", kvh[h], " outside [0, ", Hkv, ")"));
  std::fill(dk.f32(), dk.f32() + dk.numel(), 0.0f);
  std::fill(dv.f32(), dv.f32() + dv.numel(), 0.0f);
  if (T == 0 || Hq == 0 || D == 0) return;
  const int64_t N = q_offset + T;  // keys any query sees
  const int64_t ldq = Hq * D, ldk = Hkv * D;
  const int64_t nblk = (T + kAttnBlock - 1) / kAttnBlock;
  std::vector<std::vector<int64_t>> heads_of(static_cast<size_t>(Hkv));
  for (int64_t h = 0; h < Hq; ++h) heads_of[static_cast<size_t>(kvh[h])].push_back(h);
  // Multiply-adds of the five products: 5 * D * (keys seen) per query row and head.
  const int64_t work = 5 * Hq * D * T * (q_offset + (T + 1) / 2);
  const int nt = threads_for(work, thresholds_.attention);
  // dK/dV of a key sum over every (head, query block) item of its KV group. The items are dealt
  // round-robin (largest blocks first) to kLanes lanes, each summing its items in index order in
  // a private [N, D] pair, and the lanes are added in lane order. The lanes, not the threads,
  // fix the order of every sum, so one thread and any number of threads give the same bits.
  constexpr int64_t kLanes = 4;
  const cpu::BlasThreads blas(1, threads_);  // inside the items OpenBLAS runs on one thread
  std::vector<float> part(static_cast<size_t>(kLanes) * 2 * static_cast<size_t>(N * D));
  auto lane_k = [&](int64_t lane) { return part.data() + lane * 2 * N * D; };
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    std::vector<float> P(static_cast<size_t>(std::min(T, kAttnBlock) * N)), dP(P.size());
    for (int64_t g = 0; g < Hkv; ++g) {
      const std::vector<int64_t>& hs = heads_of[static_cast<size_t>(g)];
      if (hs.empty()) continue;  // same decision on every thread
      const int64_t nh = static_cast<int64_t>(hs.size());
      const int64_t items = nh * nblk, lanes = std::min(kLanes, items);
#pragma omp for schedule(static, 1)
      for (int64_t lane = 0; lane < lanes; ++lane) {
        float* lk = lane_k(lane);
        float* lv = lk + N * D;
        std::fill(lk, lk + 2 * N * D, 0.0f);
        for (int64_t it = lane; it < items; it += kLanes) {
          const int64_t b = nblk - 1 - it / nh, h = hs[static_cast<size_t>(it % nh)];
          attention_backward_block(q.f32() + h * D, dout.f32() + h * D, dq.f32() + h * D, ldq,
                                   k.f32() + g * D, v.f32() + g * D, ldk, lk, lv, D, b * kAttnBlock,
                                   std::min(kAttnBlock, T - b * kAttnBlock), q_offset, D, scale,
                                   P.data(), dP.data());
        }
      }  // implicit barrier: every lane is complete
#pragma omp for schedule(static)
      for (int64_t j = 0; j < N; ++j) {
        float* dkr = dk.f32() + j * ldk + g * D;
        float* dvr = dv.f32() + j * ldk + g * D;
        for (int64_t lane = 0; lane < lanes; ++lane) {
          const float* pk = lane_k(lane) + j * D;
          const float* pv = pk + N * D;
#pragma omp simd
          for (int64_t d = 0; d < D; ++d) {
            dkr[d] += pk[d];
            dvr[d] += pv[d];
          }
        }
      }  // implicit barrier before the lanes are cleared for the next group
    }
  }
}

void CpuBackend::swiglu_backward(const Tensor& dgate, const Tensor& dup, const Tensor& dout,
                                 const Tensor& gate, const Tensor& up) {
  for (auto [n, t] :
       {std::pair{"dgate", &dgate}, {"dup", &dup}, {"dout", &dout}, {"gate", &gate}, {"up", &up}})
    need_f32("swiglu_backward", n, *t);
  need(dgate.shape() == gate.shape() && dup.shape() == gate.shape() &&
           dout.shape() == gate.shape() && up.shape() == gate.shape(),
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
  // Element i is read before it is written at the same index, so dgate may alias dout.
  const int nt = threads_for(n, thresholds_.transcendental);
#pragma omp parallel for simd num_threads(nt) if (nt > 1)
  for (int64_t i = 0; i < n; ++i) {
    const float s = 1.0f / (1.0f + exp_f32(-g[i]));
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
       "embedding_backward",
       cat("dtable ", dtable.str(), ", dout ", dout.str(), ", ids ", ids.str()));
  const int64_t T = dout.dim(0), H = dout.dim(1), V = dtable.dim(0);
  const int32_t* id = ids.i32();
  for (int64_t t = 0; t < T; ++t)
    need(id[t] >= 0 && id[t] < V, "embedding_backward", cat("id ", id[t], " outside [0, ", V, ")"));
  float* tab = dtable.f32();
  const float* d = dout.f32();
  // Columns in parallel: rows with the same id then never race.
  const int nt = threads_for(T * H, thresholds_.elementwise);
#pragma omp parallel for num_threads(nt) if (nt > 1)
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
       "cross_entropy",
       cat("logits ", logits.str(), " targets ", targets.str(), " weights ", weights.str(),
           " losses ", losses.str()));
  const int64_t R = logits.dim(0), V = logits.dim(1);
  const int32_t* tg = targets.i32();
  for (int64_t r = 0; r < R; ++r)
    need(tg[r] >= 0 && tg[r] < V, "cross_entropy", cat("target ", tg[r], " outside [0, ", V, ")"));
  float* x = logits.f32();
  const float* w = weights.f32();
  float* ls = losses.f32();
  const int nt = threads_for(R * V, thresholds_.transcendental);
#pragma omp parallel for num_threads(nt) if (nt > 1)
  for (int64_t r = 0; r < R; ++r) {
    float* row = x + r * V;
    const float xt = row[tg[r]];
    float mx = 0.0f;  // one exp per element: the numerators are kept in place
    const double sum = exp_minus_max(row, row, V, &mx);
    ls[r] = static_cast<float>(static_cast<double>(mx) + std::log(sum) - static_cast<double>(xt));
    const float scale = static_cast<float>(static_cast<double>(w[r]) / sum);
#pragma omp simd
    for (int64_t j = 0; j < V; ++j) row[j] *= scale;
    row[tg[r]] -= w[r];
  }
}

}  // namespace resp
