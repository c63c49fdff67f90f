// The start-up choice of the OpenMP wait policy (src/app/omp_wait.h): its pieces on fixed
// inputs, and the resp binary honouring the user's choice and reporting its own.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "app/omp_wait.h"
#include "test_util.h"

namespace resp::app {
namespace {

constexpr const char* kStat =
    "cpu  100 0 50 1000 10 0 0 0 0 0\n"
    "cpu0 40 1 20 500 5 2 3 4 0 0\n"
    "cpu1 60 0 30 500 5\n"
    "cpu2 1 2 3\n"  // too short: skipped
    "cpux 1 2 3 4\n"
    "intr 12345 0 0\n"
    "cpu7 0 0 0 9 1 0 0 0\n";

TEST(OmpWait, ParsesPerCpuLinesOfProcStat) {
  const std::vector<CpuTimes> t = parse_proc_stat(kStat);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].cpu, 0);
  EXPECT_EQ(t[0].idle, 505u);
  EXPECT_EQ(t[0].total, 40u + 1 + 20 + 500 + 5 + 2 + 3 + 4);
  EXPECT_EQ(t[1].cpu, 1);
  EXPECT_EQ(t[1].idle, 505u);
  EXPECT_EQ(t[1].total, 595u);
  EXPECT_EQ(t[2].cpu, 7);
  EXPECT_EQ(t[2].idle, 10u);
  EXPECT_TRUE(parse_proc_stat("").empty());
}

TEST(OmpWait, CountsIdleCpusOfTheAllowedSetOnly) {
  const std::vector<CpuTimes> a = {{0, 100, 200}, {1, 100, 200}, {2, 100, 200}};
  const std::vector<CpuTimes> b = {{0, 110, 210}, {1, 102, 210}, {2, 100, 200}};
  EXPECT_DOUBLE_EQ(idle_cpus(a, b, {0}), 1.0);
  EXPECT_DOUBLE_EQ(idle_cpus(a, b, {0, 1}), 1.2);
  // No ticks (cpu 2) or absent (cpu 5): busy, never a division by zero.
  EXPECT_DOUBLE_EQ(idle_cpus(a, b, {0, 2, 5}), 1.0);
  EXPECT_DOUBLE_EQ(idle_cpus(a, b, {}), 0.0);
}

TEST(OmpWait, ReadsTheRequestedThreadCount) {
  const auto threads = [](std::vector<const char*> argv, const char* env) {
    return requested_threads(static_cast<int>(argv.size()), argv.data(), env);
  };
  EXPECT_EQ(threads({"resp", "bench", "generate"}, nullptr), 0);
  EXPECT_EQ(threads({"resp", "eval", "--threads", "3"}, "8"), 3);
  EXPECT_EQ(threads({"resp", "eval", "--threads=5"}, nullptr), 5);
  EXPECT_EQ(threads({"resp", "--threads", "2", "--threads=1"}, nullptr), 1);  // the last wins
  EXPECT_EQ(threads({"resp", "eval"}, "4,2"), 4);
  EXPECT_EQ(threads({"resp", "eval"}, "many"), 0);
  EXPECT_EQ(threads({"resp", "eval", "--threads", "x"}, "4"), 0);
  EXPECT_EQ(threads({"resp", "eval", "--threads"}, "4"), 4);  // no value: CLI11 will refuse it
}

TEST(OmpWait, SpinsOnlyWhenTheTeamFitsOnIdleCpus) {
  EXPECT_EQ(choose_omp_wait(2, 2, 2.0, 1), OmpWait::Spin);
  EXPECT_EQ(choose_omp_wait(0, 2, 1.6, 1), OmpWait::Spin);     // all CPUs, sampling slack
  EXPECT_EQ(choose_omp_wait(2, 2, 1.0, 1), OmpWait::Passive);  // a core taken
  EXPECT_EQ(choose_omp_wait(1, 8, 8.0, 1), OmpWait::Passive);  // no team
  EXPECT_EQ(choose_omp_wait(0, 1, 1.0, 1), OmpWait::Passive);
  EXPECT_EQ(choose_omp_wait(4, 16, 4.0, 1), OmpWait::Spin);
  EXPECT_EQ(choose_omp_wait(4, 16, 7.6, 2), OmpWait::Spin);  // two ranks of 4 on 16 CPUs
  EXPECT_EQ(choose_omp_wait(4, 16, 7.0, 2), OmpWait::Passive);
  EXPECT_EQ(choose_omp_wait(0, 16, 16.0, 2), OmpWait::Passive);  // two ranks of all CPUs
  EXPECT_EQ(choose_omp_wait(99, 4, 4.0, 1), OmpWait::Spin);      // capped at the CPUs
}

std::string reported_wait(const std::string& env, const std::string& threads) {
  test::TempDir tmp;
  const std::string json = (tmp / "b.json").string();
  const test::RunResult r = test::run_resp(
      "bench generate --config qwen3-tiny --batches 1 --prompt-len 4 --new-tokens 2 "
      "--device cpu --threads " +
          threads + " --json " + json,
      "env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT " + env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return nlohmann::json::parse(test::read_text(json)).value("omp_wait", "");
}

TEST(OmpWait, RespHonoursTheUsersChoiceAndReportsItsOwn) {
  EXPECT_EQ(reported_wait("OMP_WAIT_POLICY=active", "2"), "active");
  EXPECT_EQ(reported_wait("GOMP_SPINCOUNT=1234", "2"), "spin 1234");
  EXPECT_EQ(reported_wait("", "1"), "passive");  // one thread: no team to keep awake
  // Two threads: a bounded spin if both CPUs looked idle at start, else passive.
  const std::string two = reported_wait("", "2");
  EXPECT_TRUE(two == "spin " + std::to_string(kSpinCount) || two == "passive") << two;
}

}  // namespace
}  // namespace resp::app
