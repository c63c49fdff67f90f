// The guard at the top of every GPU test. Without a usable CUDA device a GPU test skips, except
// where a GPU is expected: with RESP_GPU_TEST_REQUIRED=1 (tools/device-check.sh sets it when
// nvidia-smi lists a GPU) it fails instead, and it always fails when a GPU is there but
// unusable (driver too old for this build's runtime, runtime error), so a broken GPU setup can
// never pass as "no GPU here". The message names the reason the probe found.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <string_view>

#include "backend/backend.h"

namespace resp::test {

inline bool gpu_test_required() {
  const char* v = std::getenv("RESP_GPU_TEST_REQUIRED");
  return v && *v && std::string_view(v) != "0";
}

enum class GpuVerdict { Run, Skip, Fail };
// Pure, so that the rule itself is tested on machines without a GPU.
inline GpuVerdict gpu_verdict(const CudaProbe& probe, bool required) {
  if (probe.available()) return GpuVerdict::Run;
  return required || probe.broken() ? GpuVerdict::Fail : GpuVerdict::Skip;
}

}  // namespace resp::test

// In a test body or a fixture's SetUp() (a fatal failure there skips the body too).
#define RESP_REQUIRE_GPU()                                                                  \
  do {                                                                                      \
    const ::resp::CudaProbe resp_probe_ = ::resp::probe_cuda();                             \
    switch (::resp::test::gpu_verdict(resp_probe_, ::resp::test::gpu_test_required())) {    \
      case ::resp::test::GpuVerdict::Run:                                                   \
        break;                                                                              \
      case ::resp::test::GpuVerdict::Fail:                                                  \
        FAIL() << "GPU test cannot run: " << resp_probe_.reason                             \
               << (::resp::test::gpu_test_required() ? " (RESP_GPU_TEST_REQUIRED=1)" : ""); \
      case ::resp::test::GpuVerdict::Skip:                                                  \
        GTEST_SKIP() << "no usable CUDA device: " << resp_probe_.reason;                    \
    }                                                                                       \
  } while (0)
