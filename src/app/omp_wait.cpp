#include "app/omp_wait.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>

namespace resp::app {

namespace {

// A decimal integer making up all of `s`, or `fallback`.
int parse_int(std::string_view s, int fallback) {
  int v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && end == s.data() + s.size() ? v : fallback;
}

std::vector<CpuTimes> read_proc_stat() {
  std::ifstream in("/proc/stat");
  if (!in) return {};
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return parse_proc_stat(text);
}

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

// Ranks that the launcher started on this node: Open MPI's and MPICH/Hydra's count, else srun's
// tasks spread over the step's nodes, else 1.
int local_ranks() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS"})
    if (const char* v = std::getenv(name)) {
      const int n = parse_int(v, 1);
      if (n > 1) return n;
    }
  const char* tasks = std::getenv("SLURM_STEP_NUM_TASKS");
  const char* nodes = std::getenv("SLURM_STEP_NUM_NODES");
  if (tasks != nullptr && nodes != nullptr) {
    const int t = parse_int(tasks, 1), n = parse_int(nodes, 1);
    if (t > 1 && n >= 1) return (t + n - 1) / n;
  }
  return 1;
}

// CPUs the team would keep busy spinning (threads x ranks sharing the CPUs), or 0 when it could
// not spin: a single thread has no team to wait for, and more than the allowed CPUs never fit.
double spin_demand(int threads, int allowed_cpus, int sharing_ranks) {
  if (allowed_cpus < 2) return 0;
  const int team = threads > 0 ? std::min(threads, allowed_cpus) : allowed_cpus;
  if (team < 2) return 0;
  const double needed = static_cast<double>(team) * static_cast<double>(std::max(1, sharing_ranks));
  return needed <= allowed_cpus ? needed : 0;
}

}  // namespace

std::vector<CpuTimes> parse_proc_stat(std::string_view text) {
  std::vector<CpuTimes> out;
  std::istringstream lines{std::string(text)};
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() < 4 || line.compare(0, 3, "cpu") != 0 || line[3] < '0' || line[3] > '9')
      continue;
    std::istringstream fields(line.substr(3));
    CpuTimes t;
    uint64_t v[8] = {};  // user nice system idle iowait irq softirq steal
    if (!(fields >> t.cpu)) continue;
    int n = 0;
    while (n < 8 && fields >> v[n]) ++n;
    if (n < 4) continue;  // idle is the fourth; older kernels stop after it
    t.idle = v[3] + v[4];
    for (int i = 0; i < n; ++i) t.total += v[i];
    out.push_back(t);
  }
  return out;
}

double idle_cpus(const std::vector<CpuTimes>& before, const std::vector<CpuTimes>& after,
                 const std::vector<int>& allowed) {
  const auto find = [](const std::vector<CpuTimes>& v, int cpu) -> const CpuTimes* {
    for (const CpuTimes& t : v)
      if (t.cpu == cpu) return &t;
    return nullptr;
  };
  double idle = 0;
  for (int cpu : allowed) {
    const CpuTimes* a = find(before, cpu);
    const CpuTimes* b = find(after, cpu);
    if (a == nullptr || b == nullptr || b->total <= a->total || b->idle < a->idle) continue;
    idle += std::min(
        1.0, static_cast<double>(b->idle - a->idle) / static_cast<double>(b->total - a->total));
  }
  return idle;
}

int requested_threads(int argc, const char* const* argv, const char* omp_num_threads) {
  int threads = -1;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--threads" && i + 1 < argc)
      threads = std::max(0, parse_int(argv[++i], 0));
    else if (arg.rfind("--threads=", 0) == 0)
      threads = std::max(0, parse_int(arg.substr(10), 0));
  }
  if (threads >= 0) return threads;
  // OMP_NUM_THREADS may be a list ("4,2": nested levels); the first level is what resp uses.
  if (omp_num_threads != nullptr) {
    const std::string_view v = omp_num_threads;
    return std::max(0, parse_int(v.substr(0, v.find(',')), 0));
  }
  return 0;
}

OmpWait choose_omp_wait(int threads, int allowed_cpus, double idle, int sharing_ranks) {
  const double needed = spin_demand(threads, allowed_cpus, sharing_ranks);
  return needed > 0 && idle >= needed - 0.5 ? OmpWait::Spin : OmpWait::Passive;
}

void apply_default_omp_wait(int argc, char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
  OmpWait choice = OmpWait::Passive;
  const std::vector<int> allowed = allowed_cpus();
  const int threads = requested_threads(argc, argv, std::getenv("OMP_NUM_THREADS"));
  // A mask narrower than the machine: the launcher bound each rank to its own CPUs, so the other
  // ranks' threads run elsewhere. The whole machine: they all share these CPUs.
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  const int ranks = online > 0 && static_cast<long>(allowed.size()) < online ? 1 : local_ranks();
  // Sample only where the answer could be "spin".
  if (spin_demand(threads, static_cast<int>(allowed.size()), ranks) > 0) {
    const std::vector<CpuTimes> before = read_proc_stat();
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    const std::vector<CpuTimes> after = read_proc_stat();
    choice = choose_omp_wait(threads, static_cast<int>(allowed.size()),
                             idle_cpus(before, after, allowed), ranks);
  }
  const int rc = choice == OmpWait::Spin
                     ? setenv("GOMP_SPINCOUNT", std::to_string(kSpinCount).c_str(), 0)
                     : setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
  if (rc != 0) return;
  execv("/proc/self/exe", argv);
}

}  // namespace resp::app
