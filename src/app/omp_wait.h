// How resp's OpenMP threads wait between parallel regions, chosen once at start-up.
//
// A decode step is hundreds of short parallel regions. Threads that sleep between them (passive)
// pay a wake-up per region: on an idle 2-core machine resp's two-thread decode ran at half the
// speed of spinning threads (SmolLM2 shape, batch 8: 96-105 against 188-211 tok/s). Threads that
// spin take the core from whatever else runs there, and on a shared machine the team then waits
// for its own descheduled members (the tiny model's `resp eval --limit 5`: 1 s on one thread, 7-8 s
// on two under libgomp's long default spin). So resp looks before it chooses: when the CPUs it
// may run on are idle enough for its threads, they spin for a bounded time before sleeping
// (GOMP_SPINCOUNT=kSpinCount); otherwise they sleep at once (OMP_WAIT_POLICY=PASSIVE). A user's
// OMP_WAIT_POLICY or GOMP_SPINCOUNT always wins. docs/performance.md, "Threads".
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace resp::app {

// Spin iterations before a waiting thread sleeps, when resp chooses to spin. Long enough to
// span the gap between two parallel regions of a decode step, short enough that a core taken
// by another job later costs ~1.5x rather than the 7x of libgomp's 300000 (docs/performance.md).
inline constexpr int kSpinCount = 30000;

// One CPU's time counters from /proc/stat (jiffies): idle (idle + iowait) and all states.
struct CpuTimes {
  int cpu = 0;
  uint64_t idle = 0;
  uint64_t total = 0;
};

// The per-CPU lines ("cpuN user nice system idle iowait irq softirq steal ...") of /proc/stat's
// text; the aggregate "cpu" line and malformed lines are skipped.
std::vector<CpuTimes> parse_proc_stat(std::string_view text);

// How many of the `allowed` CPUs were idle between the two samples: the sum of their idle
// fractions. A CPU missing from either sample or without ticks counts as busy.
double idle_cpus(const std::vector<CpuTimes>& before, const std::vector<CpuTimes>& after,
                 const std::vector<int>& allowed);

// The thread count the command line asks for: the value of --threads N / --threads=N (the last
// one), else OMP_NUM_THREADS's (`omp_num_threads`, may be null), else 0 (all CPUs; a YAML
// parallel.threads is not seen here). Unparsable values count as 0.
int requested_threads(int argc, const char* const* argv, const char* omp_num_threads);

enum class OmpWait { Spin, Passive };

// Spin when this process's threads (requested, 0 = one per allowed CPU, times the ranks that
// share these CPUs: the launcher's ranks on this node when the affinity mask is the whole
// machine, else 1) fit on the allowed CPUs that were idle, with half a CPU of slack for the
// sampling; one thread has no team to wait for.
OmpWait choose_omp_wait(int threads, int allowed_cpus, double idle, int sharing_ranks);

// The default wait policy: unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set, samples the allowed
// CPUs for ~30 ms, sets the environment for the choice and executes this program again (libgomp
// reads it when it is loaded, before main()). Returns when nothing is to be done or the re-exec
// failed (resp then runs with libgomp's defaults).
void apply_default_omp_wait(int argc, char** argv);

}  // namespace resp::app
