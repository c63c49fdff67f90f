// `resp prune` as a batch job sees it: the SLURM_NTASKS world-size check (a wrong srun MPI
// plug-in starts singletons), the layout line printed once at start, and a stop signal that
// reaches only one rank of a 2-rank run (the ranks vote at the next checkpoint, all stop there,
// exit 0, and the run resumes to the same result as an uninterrupted one).
// The real-Slurm version of the last test is tools/slurm_local_test.sh (ctest label `slurm`).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "ckpt/run_checkpoint.h"
#include "driver/prune_model.h"
#include "test_util.h"

extern char** environ;

using namespace resp;
using namespace resp::test;

namespace {

fs::path write_config(const TempDir& d, const fs::path& model, int iterations) {
  write_text(d / "cfg.yaml", "model: " + model.string() + "\ndata:\n  task: gsm8k\n  prompts: " +
                                 (source_dir() / "data/gsm8k/train.jsonl").string() +
                                 "\n  num_prompts: 6\n"
                                 "generation:\n  max_new_tokens: 12\n  batch_size: 4\n"
                                 "schedule:\n  iterations: " +
                                 std::to_string(iterations) + "\n  final_ratio: 0.6\n");
  return d / "cfg.yaml";
}

int shell(const std::string& cmd) {
  const int s = std::system(cmd.c_str());
  return WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
}

bool have_mpiexec() {
  return std::system("command -v mpiexec >/dev/null 2>&1") == 0;
}

RunState final_state(const fs::path& run) {
  const auto p = latest_checkpoint(run);
  EXPECT_TRUE(p.has_value()) << run;
  return p ? read_run_checkpoint(*p) : RunState{};
}

// The child of `parent` whose environment says OMPI_COMM_WORLD_RANK=`rank` (-1: none yet).
pid_t find_rank_process(pid_t parent, int rank) {
  const std::string want = "OMPI_COMM_WORLD_RANK=" + std::to_string(rank);
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const std::string stat = read_text(e.path() / "stat");  // "pid (comm) state ppid ..."
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = -1;
    if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2 || ppid != parent)
      continue;
    const std::string env = read_text(e.path() / "environ");
    size_t pos = 0;
    while (pos < env.size()) {
      const size_t end = std::min(env.find('\0', pos), env.size());
      if (env.compare(pos, end - pos, want) == 0) return static_cast<pid_t>(std::stoi(name));
      pos = end + 1;
    }
  }
  return -1;
}

}  // namespace

TEST(PruneSlurm, WorldSizeMustEqualSlurmNtasks) {
  TempDir d;
  const auto cfg = write_config(d, make_prune_model(d), 3);
  const fs::path run = d / "run";
  // One process where Slurm started two tasks: what `srun --mpi=none` does to an OpenMPI
  // binary. Refused before any work, in one line, with a non-zero exit.
  auto r = run_resp("prune --config " + cfg.string() + " --out " + run.string(),
                    "SLURM_NTASKS=2 SLURM_JOB_ID=77");
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.rfind("resp: error:", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("MPI world size is 1 but SLURM_NTASKS=2"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--mpi=pmix"), std::string::npos) << r.err;
  EXPECT_FALSE(latest_checkpoint(run).has_value());

  // The matching count runs, and the layout line (once) names the job step.
  r = run_resp("prune --config " + cfg.string() + " --out " + run.string() + " --max-iterations 1",
               "SLURM_NTASKS=1 SLURM_JOB_ID=77 SLURM_STEP_ID=0");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string layout = "layout: 1 node, 1 rank (1 per node), tp=1 x dp=1, devices: cpu (";
  const size_t at = r.err.find(layout);
  EXPECT_NE(at, std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(layout, at + 1), std::string::npos) << "printed twice: " << r.err;
  EXPECT_NE(r.err.find("; slurm job 77.0, SLURM_NTASKS=1"), std::string::npos) << r.err;
  EXPECT_EQ(final_state(run).iteration, 0);
}

TEST(PruneSlurm, UsrOneToOneRankStopsBothAtACheckpointThenResumesExactly) {
  if (!have_mpiexec()) GTEST_SKIP() << "mpiexec not installed";
  constexpr int kIterations = 16;
  TempDir d;
  const auto cfg = write_config(d, make_prune_model(d), kIterations);
  const std::string bin = RESP_BINARY;
  ASSERT_EQ(shell(bin + " prune --config " + cfg.string() + " --out " + (d / "ref").string() +
                  " >/dev/null 2>&1"),
            0);
  const RunState ref = final_state(d / "ref");
  ASSERT_EQ(ref.iteration, kIterations - 1);

  // tp=1 x dp=2 under a matching SLURM_NTASKS; `exec` makes the spawned pid mpiexec's.
  const fs::path run = d / "run", err = d / "err";
  const std::string cmd = "SLURM_NTASKS=2 exec mpiexec -n 2 " + bin + " prune --config " +
                          cfg.string() + " --out " + run.string() + " --threads 1 >/dev/null 2>" +
                          err.string();
  const char* argv[] = {"sh", "-c", cmd.c_str(), nullptr};
  pid_t mpiexec = -1;
  ASSERT_EQ(posix_spawn(&mpiexec, "/bin/sh", nullptr, nullptr, const_cast<char**>(argv), environ),
            0);
  // After the first checkpoint (handlers are installed long before), USR1 to rank 1 only.
  pid_t rank1 = -1;
  int status = 0;
  bool exited = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (std::chrono::steady_clock::now() < deadline) {
    if (waitpid(mpiexec, &status, WNOHANG) == mpiexec) {
      exited = true;
      break;
    }
    if (fs::exists(run / "iter_0000.h5") && (rank1 = find_rank_process(mpiexec, 1)) > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_FALSE(exited) << "the run ended before its first checkpoint: " << read_text(err);
  ASSERT_GT(rank1, 0) << "no rank-1 process under mpiexec " << mpiexec;
  ASSERT_EQ(kill(rank1, SIGUSR1), 0);
  ASSERT_EQ(waitpid(mpiexec, &status, 0), mpiexec);
  const std::string log = read_text(err);
  ASSERT_TRUE(WIFEXITED(status)) << log;
  EXPECT_EQ(WEXITSTATUS(status), 0) << log;
  // Rank 0 logs, so it learnt of rank 1's signal through the vote.
  EXPECT_NE(log.find("stop requested"), std::string::npos) << log;
  EXPECT_NE(log.find("layout: 1 node, 2 ranks (2 per node), tp=1 x dp=2"), std::string::npos)
      << log;
  const RunState mid = final_state(run);
  EXPECT_GE(mid.iteration, 0);
  EXPECT_LT(mid.iteration, kIterations - 1) << "the stop did not happen mid-run";
  EXPECT_EQ(static_cast<int>(mid.history.size()), mid.iteration + 1);

  // Resume (one rank) to the end: the same plans, traces and sparsities as without the stop.
  ASSERT_EQ(shell(bin + " prune --config " + cfg.string() + " --out " + run.string() +
                  " --resume >/dev/null 2>&1"),
            0);
  const RunState fin = final_state(run);
  ASSERT_EQ(fin.iteration, ref.iteration);
  ASSERT_EQ(fin.plan.size(), ref.plan.size());
  for (size_t l = 0; l < ref.plan.size(); ++l) {
    EXPECT_EQ(fin.plan[l].heads, ref.plan[l].heads) << "layer " << l;
    EXPECT_EQ(fin.plan[l].channels, ref.plan[l].channels) << "layer " << l;
  }
  ASSERT_EQ(fin.history.size(), ref.history.size());
  for (size_t i = 0; i < ref.history.size(); ++i)
    EXPECT_EQ(fin.history[i].sparsity, ref.history[i].sparsity) << i;
  ASSERT_EQ(fin.traces.size(), ref.traces.size());
  for (size_t i = 0; i < ref.traces.size(); ++i)
    EXPECT_EQ(fin.traces[i].output, ref.traces[i].output) << i;
}
