// gtest main for test binaries that ctest starts under mpiexec. Every rank runs every test.
// After each test the ranks all-reduce their pass/fail, so a failure on any rank is reported by
// rank 0 (which alone prints gtest's normal output) and makes every rank exit non-zero: mpiexec
// and ctest see the failure whichever rank had it. A test that deadlocks is ended by the ctest
// TIMEOUT of its registration, never by hanging CI.
#include <gtest/gtest.h>

#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "mpi_test.h"

namespace {

std::unique_ptr<resp::MpiRuntime> g_mpi;

// Ranks other than 0 keep quiet except for their own failures, prefixed with the rank.
class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed())
      std::fprintf(stderr, "[rank %d] %s:%d: failure\n%s\n", rank_,
                   r.file_name() ? r.file_name() : "?", r.line_number(), r.message());
  }

 private:
  int rank_;
};

// After each test: did it fail on any rank? Ranks that passed say so, so the log of rank 0
// shows the failure even when only another rank saw it.
class AgreeOnFailure : public testing::EmptyTestEventListener {
 public:
  AgreeOnFailure(resp::Communicator& world) : world_(world) {}
  void OnTestEnd(const testing::TestInfo& info) override {
    const int mine = info.result()->Failed() ? 1 : 0;
    // Bit r set when rank r failed (enough for the small rank counts of tests).
    const auto failed = world_.all_reduce_scalar_i64(mine ? (int64_t{1} << world_.rank()) : 0);
    if (failed == 0) return;
    any_failed_ = true;
    failed_ranks_ |= failed;
    if (!mine && world_.rank() == 0)
      std::fprintf(stderr, "[rank 0] %s.%s FAILED on rank(s) %s\n", info.test_suite_name(),
                   info.name(), ranks(failed).c_str());
  }
  bool any_failed() const { return any_failed_; }
  std::string failed_ranks() const { return ranks(failed_ranks_); }

 private:
  static std::string ranks(int64_t bits) {
    std::string s;
    for (int r = 0; r < 63; ++r)
      if (bits & (int64_t{1} << r)) {
        if (!s.empty()) s += ',';
        s += std::to_string(r);
      }
    return s;
  }
  resp::Communicator& world_;
  bool any_failed_ = false;
  int64_t failed_ranks_ = 0;
};

}  // namespace

resp::MpiRuntime& resp::test::mpi_runtime() {
  return *g_mpi;
}

int main(int argc, char** argv) {
  // Threads: one per rank, as in test_main.cpp (ranks share the cores).
  if (!std::getenv("OMP_NUM_THREADS")) {
    setenv("OMP_NUM_THREADS", "1", 0);
    omp_set_num_threads(1);
  }
  g_mpi = std::make_unique<resp::MpiRuntime>(&argc, &argv);
  const auto world = g_mpi->world();
  ::testing::InitGoogleTest(&argc, argv);
  auto& listeners = testing::UnitTest::GetInstance()->listeners();
  if (world->rank() != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new RankFailurePrinter(world->rank()));
  }
  auto* agree = new AgreeOnFailure(*world);  // owned by gtest once appended
  listeners.Append(agree);
  const int local = RUN_ALL_TESTS();
  const bool failed = world->all_reduce_scalar_i64(local != 0 || agree->any_failed() ? 1 : 0,
                                                   resp::ReduceOp::Max) != 0;
  // One line per rank that ctest can match (see tests/comm/CMakeLists.txt).
  std::fprintf(stderr, "[rank %d] mpi tests: exit %d%s\n", world->rank(), failed ? 1 : 0,
               failed ? (" (failed on rank(s) " + agree->failed_ranks() + ")").c_str() : "");
  return failed ? 1 : 0;
}
