#include "backend/cpu/cpu_isa.h"

#include <cstdlib>
#include <string>

#include "core/error.h"
#include "core/log.h"

namespace resp {

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Baseline:
      return "baseline";
    case CpuIsa::Avx2:
      return "avx2";
    case CpuIsa::Avx512:
      return "avx512";
  }
  return "unknown";
}

std::optional<CpuIsa> parse_cpu_isa(std::string_view name) {
  for (CpuIsa isa : {CpuIsa::Baseline, CpuIsa::Avx2, CpuIsa::Avx512})
    if (name == cpu_isa_name(isa)) return isa;
  return std::nullopt;
}

namespace {

CpuIsa probe_cpu_isa() {
#if defined(RESP_CPU_DISPATCH_X86)
  __builtin_cpu_init();  // needed when called before libgcc's own constructor (static init)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return CpuIsa::Avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::Avx2;
#endif
  return CpuIsa::Baseline;
}

}  // namespace

CpuIsa detect_cpu_isa() {
  static const CpuIsa best = probe_cpu_isa();  // checked on every kernel call: probe once
  return best;
}

bool cpu_isa_supported(CpuIsa isa) {
  return static_cast<int>(isa) <= static_cast<int>(detect_cpu_isa());
}

CpuIsa select_cpu_isa(const char* env_value, CpuIsa best) {
  if (env_value == nullptr || *env_value == '\0') return best;
  const std::optional<CpuIsa> want = parse_cpu_isa(env_value);
  if (!want)
    throw UsageError(cat("RESP_CPU_ISA='", env_value,
                         "' is not one of baseline, avx2, avx512 (unset it to pick the best)"));
  if (static_cast<int>(*want) > static_cast<int>(best))
    throw UnsupportedError(cat("RESP_CPU_ISA=", env_value, ": this CPU (or build) supports only ",
                               cpu_isa_name(best),
                               " (avx2 needs AVX2+FMA, avx512 needs AVX-512 F/BW/VL/DQ)"));
  return *want;
}

CpuIsa active_cpu_isa() {
  static const CpuIsa isa = [] {
    const CpuIsa best = detect_cpu_isa();
    const CpuIsa chosen = select_cpu_isa(std::getenv("RESP_CPU_ISA"), best);
    log_debug("cpu kernels: ", cpu_isa_name(chosen), " (best supported: ", cpu_isa_name(best), ")");
    return chosen;
  }();
  return isa;
}

}  // namespace resp
