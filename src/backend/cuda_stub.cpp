// make_cuda_backend() of builds without CUDA (RESP_ENABLE_CUDA=OFF or no toolkit found).
#include "backend/backend.h"
#include "core/error.h"

namespace resp {

std::unique_ptr<Backend> make_cuda_backend(int, DType) {
  throw UnsupportedError(
      "this build of resp has no CUDA backend (configure with RESP_ENABLE_CUDA)");
}

CudaProbe probe_cuda() {
  CudaProbe p;
  p.state = CudaProbe::State::NotBuilt;
  p.reason = "this build of resp has no CUDA backend";
  return p;
}

int cuda_device_count() {
  return 0;
}

}  // namespace resp
