// Run-time choice of the instruction set for the CPU backend's hot kernels (few-rows GEMM,
// attention). The default build compiles for baseline x86-64 so that one binary runs on every
// node of a cluster; the kernels are compiled once more per ISA level (kernels_avx2.cpp,
// kernels_avx512.cpp) and the best level this CPU supports is picked here, once per process.
//
// RESP_CPU_ISA=baseline|avx2|avx512 overrides the choice (e.g. to make a mixed AVX2/AVX-512
// fleet compute bit-identical GEMMs, or to test a path); a level the CPU lacks is refused.
#pragma once

#include <optional>
#include <string_view>

namespace resp {

// Ordered: every level includes the ones before it.
enum class CpuIsa { Baseline, Avx2, Avx512 };

// "baseline", "avx2" or "avx512" (the names RESP_CPU_ISA takes).
const char* cpu_isa_name(CpuIsa isa);

// The ISA named `name` (as cpu_isa_name spells it), or nullopt.
std::optional<CpuIsa> parse_cpu_isa(std::string_view name);

// The best level this CPU (and this build: non-x86 builds have only Baseline) supports:
// Avx2 needs AVX2 and FMA, Avx512 needs AVX-512 F, BW, VL and DQ (with OS support for their
// registers, which __builtin_cpu_supports checks).
CpuIsa detect_cpu_isa();

// True when the kernels of `isa` can run here (isa <= detect_cpu_isa()).
bool cpu_isa_supported(CpuIsa isa);

// The level to use given RESP_CPU_ISA's value (null or empty: `best`): a pure function of its
// arguments, for tests. Throws UsageError for an unknown name and UnsupportedError for a level
// above `best`.
CpuIsa select_cpu_isa(const char* env_value, CpuIsa best);

// The level the kernels use in this process: select_cpu_isa(getenv("RESP_CPU_ISA"),
// detect_cpu_isa()), decided on the first call (thread-safe) and fixed afterwards. Throws as
// select_cpu_isa does.
CpuIsa active_cpu_isa();

}  // namespace resp
