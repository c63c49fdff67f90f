#include "backend/backend.h"

namespace resp {

void Backend::linear(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias,
                     float beta) {
  gemm(x, false, w, true, y, 1.0f, beta);
  if (!bias.empty()) add_bias(y, bias);
}

void Backend::linear_backward(const Tensor& dx, const Tensor& dw, const Tensor& db,
                              const Tensor& dy, const Tensor& x, const Tensor& w, float dx_beta) {
  if (!dw.empty()) gemm(dy, true, x, false, dw, 1.0f, 1.0f);
  if (!dx.empty()) gemm(dy, false, w, false, dx, 1.0f, dx_beta);
  if (!db.empty()) sum_rows(db, dy);
}

}  // namespace resp
