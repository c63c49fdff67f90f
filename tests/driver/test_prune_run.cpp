// End-to-end tests of `resp prune` through the binary on a tiny model: schedule, protected
// layers, regeneration milestones, exact resume after kill -9 / signals / a layout change,
// multi-rank runs, and bad configurations.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "ckpt/run_checkpoint.h"
#include "ckpt/run_lock.h"
#include "core/error.h"
#include "driver/prune_model.h"
#include "test_util.h"

using namespace resp;
using namespace resp::test;

namespace {

fs::path write_config(const TempDir& d, const fs::path& model, const std::string& extra = "") {
  const std::string yaml = "model: " + model.string() + "\n" + "data:\n  task: gsm8k\n  prompts: " +
                           (source_dir() / "data/gsm8k/train.jsonl").string() +
                           "\n  num_prompts: 6\n"
                           "generation:\n  max_new_tokens: 12\n  batch_size: 4\n"
                           "schedule:\n  iterations: 6\n  final_ratio: 0.6\n" +
                           extra;
  write_text(d / "cfg.yaml", yaml);
  return d / "cfg.yaml";
}

RunState final_state(const fs::path& run) {
  const auto p = latest_checkpoint(run);
  EXPECT_TRUE(p.has_value()) << run;
  return read_run_checkpoint(*p);
}

void expect_same_plan(const RunState& a, const RunState& b) {
  ASSERT_EQ(a.iteration, b.iteration);
  ASSERT_EQ(a.plan.size(), b.plan.size());
  for (size_t l = 0; l < a.plan.size(); ++l) {
    EXPECT_EQ(a.plan[l].heads, b.plan[l].heads) << "layer " << l;
    EXPECT_EQ(a.plan[l].channels, b.plan[l].channels) << "layer " << l;
  }
  ASSERT_EQ(a.traces.size(), b.traces.size());
  for (size_t i = 0; i < a.traces.size(); ++i)
    EXPECT_EQ(a.traces[i].output, b.traces[i].output) << i;
  ASSERT_EQ(a.history.size(), b.history.size());
  for (size_t i = 0; i < a.history.size(); ++i) {
    EXPECT_EQ(a.history[i].sparsity, b.history[i].sparsity) << i;
    EXPECT_EQ(a.history[i].regenerated, b.history[i].regenerated) << i;
  }
}

bool have_mpiexec() {
  return std::system("command -v mpiexec >/dev/null 2>&1") == 0;
}

int shell(const std::string& cmd) {
  const int s = std::system(cmd.c_str());
  return WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
}

}  // namespace

TEST(PruneRun, ScheduleMilestonesAndProtectedLayers) {
  TempDir d;
  const auto cfg = write_config(d, make_prune_model(d));
  const auto r = run_resp("prune --config " + cfg.string() + " --out " + (d / "run").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("effective configuration"), std::string::npos);
  EXPECT_NE(r.out.find("sparsity"), std::string::npos);  // the summary table
  EXPECT_TRUE(fs::exists(d / "run/config.yaml"));
  const RunState s = final_state(d / "run");
  EXPECT_EQ(s.iteration, 5);
  ASSERT_EQ(s.history.size(), 6u);
  // Structural ratio reached: 0.6 of 3 * (6 + 100) units = 190, all from layers 0 and 1.
  int64_t kept = 0;
  for (const auto& l : s.plan) kept += static_cast<int64_t>(l.heads.size() + l.channels.size());
  EXPECT_EQ(318 - kept, 190);
  // The protected last layer is intact.
  EXPECT_EQ(s.plan[2].heads.size(), 6u);
  EXPECT_EQ(s.plan[2].channels.size(), 100u);
  // Regeneration: before iteration 0, then once after each iteration that crossed a milestone.
  EXPECT_TRUE(s.history[0].regenerated);
  int regens = 1;
  for (size_t i = 1; i < s.history.size(); ++i) {
    // Iteration i regenerates iff iteration i-1's prune crossed a milestone: from the sparsity
    // before it (the record of i-2; the dense model's is below 0.1) to the one after it.
    const double before = i >= 2 ? s.history[i - 2].sparsity : 0.0;
    const double after = s.history[i - 1].sparsity;
    bool crossed = false;
    for (double m : {0.1, 0.2, 0.3, 0.4, 0.5}) crossed = crossed || (before < m && after >= m);
    EXPECT_EQ(s.history[i].regenerated, crossed) << "iteration " << i;
    regens += s.history[i].regenerated ? 1 : 0;
  }
  EXPECT_EQ(s.regen_round, regens);
  EXPECT_GE(regens, 3);
  // Sparsity is monotone and measured per RESP's definition (> 0 even when nothing is pruned,
  // because norms count in the total).
  for (size_t i = 1; i < s.history.size(); ++i)
    EXPECT_GE(s.history[i].sparsity, s.history[i - 1].sparsity);
  EXPECT_GT(s.history[0].sparsity, 0.0);
  // inspect shows the table.
  const auto ins = run_resp("inspect " + (d / "run").string() + " --layers");
  EXPECT_EQ(ins.exit_code, 0);
  EXPECT_NE(ins.out.find("heads kept"), std::string::npos);
}

TEST(PruneRun, KillNineAtRandomPointsThenResumeIsExact) {
  TempDir d;
  const auto model = make_prune_model(d);
  const auto cfg = write_config(d, model);
  const std::string bin = RESP_BINARY;
  ASSERT_EQ(shell(bin + " prune --config " + cfg.string() + " --out " + (d / "ref").string() +
                  " >/dev/null 2>&1"),
            0);
  const RunState ref = final_state(d / "ref");
  // Kill at several wall-clock points (different phases: generation, importance, writes).
  const fs::path run = d / "killed";
  int kills = 0;
  for (const char* delay : {"0.3", "0.7", "1.1", "0.5", "0.9", "1.5"}) {
    const int rc = shell("timeout -s KILL " + std::string(delay) + " " + bin + " prune --config " +
                         cfg.string() + " --out " + run.string() + " --resume >/dev/null 2>&1");
    if (rc == 0) break;  // finished within the time box
    EXPECT_EQ(rc, 137);
    ++kills;
  }
  EXPECT_GE(kills, 1);
  ASSERT_EQ(shell(bin + " prune --config " + cfg.string() + " --out " + run.string() +
                  " --resume >/dev/null 2>&1"),
            0);
  expect_same_plan(final_state(run), ref);
}

TEST(PruneRun, SigtermCheckpointsAndExitsZero) {
  TempDir d;
  const auto cfg = write_config(d, make_prune_model(d));
  const std::string bin = RESP_BINARY;
  const fs::path run = d / "run";
  // SIGTERM after a moment: the run finishes its iteration, checkpoints and exits 0.
  const int rc =
      shell("timeout --preserve-status -s TERM 1.2 " + bin + " prune --config " + cfg.string() +
            " --out " + run.string() + " >/dev/null 2>" + (d / "err").string());
  EXPECT_EQ(rc, 0) << read_text(d / "err");
  const auto p = latest_checkpoint(run);
  ASSERT_TRUE(p.has_value());
  ASSERT_EQ(shell(bin + " prune --config " + cfg.string() + " --out " + run.string() +
                  " --resume >/dev/null 2>&1"),
            0);
  EXPECT_EQ(final_state(run).iteration, 5);
}

// Under mpirun: SIGTERM to the launcher (through tools/resp-mpirun, which forwards it as
// SIGUSR1 because Open MPI's mpirun aborts on TERM) checkpoints and exits 0; kill -9 of one
// rank ends the job in bounded time; either way --resume finishes identical to a clean run.
TEST(PruneRun, MpirunSignalsAndADyingRank) {
  if (!have_mpiexec()) GTEST_SKIP() << "mpiexec not installed";
  TempDir d;
  const auto cfg = write_config(d, make_prune_model(d));
  const std::string bin = RESP_BINARY;
  ASSERT_EQ(shell(bin + " prune --config " + cfg.string() + " --out " + (d / "ref").string() +
                  " >/dev/null 2>&1"),
            0);
  const std::string launch = "env MPIRUN=mpiexec " + (source_dir() / "tools/resp-mpirun").string() +
                             " -n 2 " + bin + " prune --config " + cfg.string() + " --threads 1";
  const fs::path run = d / "run";
  // TERM once the first checkpoint exists (a signal before the ranks are up would find no
  // handler: the launcher's start-up time varies with load).
  const int rc =
      shell("(" + launch + " --out " + run.string() + " >/dev/null 2>" + (d / "err").string() +
            " & pid=$!; while [ ! -e " + (run / "latest").string() +
            " ] && kill -0 $pid 2>/dev/null; do sleep 0.1; done; kill -TERM $pid; wait $pid)");
  EXPECT_EQ(rc, 0) << read_text(d / "err");
  ASSERT_TRUE(latest_checkpoint(run).has_value());
  ASSERT_EQ(shell(bin + " prune --config " + cfg.string() + " --out " + run.string() +
                  " --resume >/dev/null 2>&1"),
            0);
  expect_same_plan(final_state(run), final_state(d / "ref"));

  // One rank killed: the launcher returns (non-zero) well before the run could have finished.
  const fs::path run2 = d / "run2";
  const auto t0 = std::chrono::steady_clock::now();
  const int killed =
      shell("(" + launch + " --out " + run2.string() + " >/dev/null 2>&1 & sleep 3; " +
            "pkill -9 -n -f 'prune --config " + cfg.string() + " --threads 1 --out " +
            run2.string() + "'; wait) ; exit 0");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(killed, 0);
  EXPECT_LT(seconds, 60.0) << "the surviving rank hung";
  // ("[p]rune" keeps pgrep from matching the shell that runs it)
  EXPECT_EQ(shell("pgrep -f '[p]rune --config .*" + run2.string() + "' >/dev/null"), 1)
      << "a rank outlived the job";
  ASSERT_EQ(shell("mpiexec -n 2 " + bin + " prune --config " + cfg.string() +
                  " --threads 1 --out " + run2.string() + " --resume >/dev/null 2>&1"),
            0);
  expect_same_plan(final_state(run2), final_state(d / "ref"));
}

TEST(PruneRun, CheckpointFromTwoRanksResumesOnOne) {
  if (!have_mpiexec()) GTEST_SKIP() << "mpiexec not installed";
  TempDir d;
  const auto cfg = write_config(d, make_prune_model(d));
  const std::string bin = RESP_BINARY;
  ASSERT_EQ(shell(bin + " prune --config " + cfg.string() + " --out " + (d / "ref").string() +
                  " >/dev/null 2>&1"),
            0);
  // tp=2 x dp=2 for three iterations, then tp=1 to the end.
  const fs::path run = d / "run";
  ASSERT_EQ(
      shell("mpiexec -n 4 " + bin + " prune --config " + cfg.string() + " --out " + run.string() +
            " --tp 2 --threads 1 --max-iterations 3 >/dev/null 2>" + (d / "err").string()),
      0)
      << read_text(d / "err");
  const RunState mid = final_state(run);
  EXPECT_EQ(mid.iteration, 2);
  EXPECT_EQ(mid.layout_tp, 2);
  EXPECT_EQ(mid.layout_dp, 2);
  ASSERT_EQ(shell(bin + " prune --config " + cfg.string() + " --out " + run.string() +
                  " --resume >/dev/null 2>&1"),
            0);
  expect_same_plan(final_state(run), final_state(d / "ref"));
}

TEST(PruneRun, BadConfigsAndCorruptCheckpoints) {
  TempDir d;
  const auto model = make_prune_model(d);
  const fs::path run = d / "run";
  auto cfg = write_config(d, model, "schedul:\n  iterations: 3\n");
  auto r = run_resp("prune --config " + cfg.string() + " --out " + run.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown key \"schedul\""), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(run));
  cfg = write_config(d, model);
  r = run_resp("prune --config " + cfg.string() + " --out " + run.string() +
               " --set schedule.final_ratio=1.2");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("final_ratio"), std::string::npos);
  if (have_mpiexec()) {
    const int rc =
        shell("mpiexec -n 2 " + std::string(RESP_BINARY) + " prune --config " + cfg.string() +
              " --out " + run.string() + " --tp 3 >/dev/null 2>" + (d / "err").string());
    EXPECT_NE(rc, 0);
    EXPECT_NE(read_text(d / "err").find("does not divide"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(run / "iter_0000.h5"));
  r = run_resp("prune --config " + cfg.string() + " --out " + run.string() +
               " --set importance.protected_layers=[0,1,2]");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("nothing can be pruned"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(run / "iter_0000.h5"));

  // A finished run is never overwritten without --resume.
  ASSERT_EQ(
      run_resp("prune --config " + cfg.string() + " --out " + run.string() + " --max-iterations 2")
          .exit_code,
      0);
  const std::string before = read_text(run / "iter_0001.h5");
  r = run_resp("prune --config " + cfg.string() + " --out " + run.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--resume"), std::string::npos);
  EXPECT_EQ(read_text(run / "iter_0001.h5"), before);
  // A changed configuration cannot resume the run.
  r = run_resp("prune --config " + cfg.string() + " --out " + run.string() +
               " --resume --set schedule.iterations=9");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("differs"), std::string::npos);

  // A directory another resp prune holds is refused, not shared.
  {
    RunLock held(run);
    r = run_resp("prune --config " + cfg.string() + " --out " + run.string() + " --resume");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("is in use by a running resp prune"), std::string::npos) << r.err;
    EXPECT_EQ(read_text(run / "iter_0001.h5"), before);
  }

  // The newest checkpoint is truncated: inspect says so clearly; resume falls back to the
  // previous complete one; a leftover .tmp is ignored.
  write_text(run / "iter_0001.h5", before.substr(0, before.size() / 3));
  write_text(run / "iter_0002.h5.tmp", "partial");
  EXPECT_THROW(read_run_checkpoint(run / "iter_0001.h5"), Error);
  EXPECT_EQ(latest_checkpoint(run)->filename().string(), "iter_0000.h5");
  r = run_resp("prune --config " + cfg.string() + " --out " + run.string() + " --resume");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(final_state(run).iteration, 5);
}
