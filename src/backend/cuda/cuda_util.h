// Error checks and owning wrappers for CUDA runtime and cuBLAS objects. Everything the CUDA
// backend and the NCCL communicator hold on the device is one of these types, so an exception
// thrown halfway through construction releases what was already made.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "backend/backend.h"
#include "core/error.h"

namespace resp::cuda {

inline void check(cudaError_t rc, const char* op) {
  if (rc != cudaSuccess)
    throw DeviceError(cat("CUDA: ", op, ": ", cudaGetErrorName(rc), ": ", cudaGetErrorString(rc)));
}

inline void check(cublasStatus_t rc, const char* op) {
  if (rc != CUBLAS_STATUS_SUCCESS)
    throw DeviceError(
        cat("cuBLAS: ", op, ": ", cublasGetStatusName(rc), ": ", cublasGetStatusString(rc)));
}

// Kernel launches report configuration errors only through cudaGetLastError.
inline void check_launch(const char* op) {
  check(cudaGetLastError(), op);
}

// What cudaGetDeviceCount's result means, as a pure function of what the runtime reported, so
// that every branch is testable on a machine without a GPU. `count`: the device count (read
// only on success); `driver_version`: cudaDriverGetVersion's value (CUDA version the driver
// supports, 12040 = 12.4; 0 = no driver installed); `runtime_version`: the CUDA runtime this
// build links (CUDART_VERSION); `driver_release`: the kernel module's version ("550.54.15"),
// empty when unknown.
CudaProbe classify_device_probe(cudaError_t rc, int count, int driver_version, int runtime_version,
                                std::string_view driver_release);

// The oldest Linux driver release that runs `runtime_version` ("580" for CUDA 13.x), or "" when
// this code does not know it.
std::string_view min_driver_for_runtime(int runtime_version);

// The driver release in the text of /proc/driver/nvidia/version ("... Kernel Module  550.54.15
// ..." gives "550.54.15"); "" when there is none.
std::string driver_release_from_proc(std::string_view text);

// Probes the real runtime (never throws, so callers can probe on any machine) and classifies
// the result with classify_device_probe.
CudaProbe probe_devices();

// Number of usable devices; 0 when there is no driver, no device, or the driver is unusable
// (probe_devices() says why).
inline int device_count() {
  return probe_devices().devices;
}

struct DeviceFree {
  void operator()(void* p) const noexcept { cudaFree(p); }
};
struct HostFree {
  void operator()(void* p) const noexcept { cudaFreeHost(p); }
};
struct StreamDestroy {
  void operator()(cudaStream_t s) const noexcept { cudaStreamDestroy(s); }
};
struct EventDestroy {
  void operator()(cudaEvent_t e) const noexcept { cudaEventDestroy(e); }
};
struct CublasDestroy {
  void operator()(cublasHandle_t h) const noexcept { cublasDestroy(h); }
};

using DevicePtr = std::unique_ptr<void, DeviceFree>;
using PinnedPtr = std::unique_ptr<void, HostFree>;
using Stream = std::unique_ptr<std::remove_pointer_t<cudaStream_t>, StreamDestroy>;
using Cublas = std::unique_ptr<std::remove_pointer_t<cublasHandle_t>, CublasDestroy>;
using Event = std::unique_ptr<std::remove_pointer_t<cudaEvent_t>, EventDestroy>;

inline DevicePtr device_alloc(size_t bytes, const char* what) {
  void* p = nullptr;
  if (bytes > 0) check(cudaMalloc(&p, bytes), what);
  return DevicePtr(p);
}

// Device memory that only grows; contents are not kept across growth. Scratch for ops on one
// stream: reuse across ops is safe because the stream orders them.
class Scratch {
 public:
  void* get(size_t bytes, cudaStream_t stream) {
    if (bytes > bytes_) {
      // Kernels still queued may use the old block: let them finish before it is freed.
      check(cudaStreamSynchronize(stream), "scratch resize");
      mem_.reset();
      bytes_ = 0;
      mem_ = device_alloc(bytes + bytes / 2, "scratch cudaMalloc");
      bytes_ = bytes + bytes / 2;
    }
    return mem_.get();
  }

 private:
  DevicePtr mem_;
  size_t bytes_ = 0;
};

}  // namespace resp::cuda
