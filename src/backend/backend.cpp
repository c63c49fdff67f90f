#include "backend/backend.h"

namespace resp {

void Backend::linear(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias,
                     float beta) {
  gemm(x, false, w, true, y, 1.0f, beta);
  if (!bias.empty()) add_bias(y, bias);
}

}  // namespace resp
