// Collectives over real MPI, run by ctest under `mpiexec -n 2` and `-n 4` (see CMakeLists.txt):
// counters, the asynchronous all-reduce, and the collective-sequence verification that turns a
// rank skipping a collective into a CommError on every rank instead of a deadlock or silently
// mixed data. Collectives come first in every test and assertions after them (mpi_test.h).
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "calibration_samples.h"
#include "comm/checked_communicator.h"
#include "comm/parallel_layout.h"
#include "importance/scorer.h"
#include "model/shard_plan.h"
#include "mpi_test.h"
#include "test_util.h"

using namespace resp;
using namespace resp::test;

namespace {

Tensor f32(std::vector<float>& v) {
  return Tensor(v.data(), DType::F32, Shape{static_cast<int64_t>(v.size())});
}
Tensor f64(std::vector<double>& v) {
  return Tensor(v.data(), DType::F64, Shape{static_cast<int64_t>(v.size())});
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// Simulates a bug in the calling code: forwards everything except the `skip`-th all_reduce
// (counting from 0), which it drops, as an `if` around a collective would on one rank.
class SkipNthAllReduce final : public Communicator {
 public:
  SkipNthAllReduce(std::unique_ptr<Communicator> inner, int64_t skip)
      : inner_(std::move(inner)), skip_(skip) {}
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  std::string name() const override { return inner_->name(); }
  void all_reduce(const Tensor& x, ReduceOp op) override {
    if (n_++ == skip_) return;
    inner_->all_reduce(x, op);
  }
  void all_gather(const Tensor& out, const Tensor& in) override { inner_->all_gather(out, in); }
  void broadcast(const Tensor& x, int root) override { inner_->broadcast(x, root); }
  void barrier() override { inner_->barrier(); }
  void check_in_sync(const char* where) override { inner_->check_in_sync(where); }
  std::unique_ptr<Communicator> release() { return std::move(inner_); }

 private:
  std::unique_ptr<Communicator> inner_;
  int64_t skip_, n_ = 0;
};

}  // namespace

// One rank on a GPU without NCCL: its MPI communicators see device tensors. A communicator of
// size 1 (each rank split off alone) is the identity on them and must neither refuse them nor
// touch their memory; the tensors here are CUDA-tagged views of host memory, so a host access
// would go unnoticed, and the values prove nothing was written. Its all_gather into another
// buffer goes through the device copy it was given. A bigger communicator still refuses them.
TEST(MpiComm, OneRankCommunicatorTakesDeviceTensors) {
  auto world = mpi_runtime().world();
  auto alone = world->split(world->rank(), 0, "alone");
  std::vector<float> mem = {1, 2, 3, 4, 5, 6, 7, 8};
  const Tensor x(mem.data(), DType::F32, Shape{4}, Device::CUDA);
  const Tensor y(mem.data() + 4, DType::F32, Shape{4}, Device::CUDA);
  std::string error;
  try {
    alone->all_reduce(x);
    alone->all_reduce(x, ReduceOp::Max);
    alone->all_reduce_async(x)->wait();
    alone->broadcast(x, 0);
    alone->all_gather(x, x);  // in place: nothing to copy
  } catch (const Error& e) {
    error = e.what();
  }
  std::string without_copy;
  try {
    alone->all_gather(y, x);
  } catch (const CommError& e) {
    without_copy = e.what();
  }
  int copies = 0;
  Tensor copied_to, copied_from;
  alone->set_device_copy([&](const Tensor& dst, const Tensor& src) {
    ++copies;
    copied_to = dst;
    copied_from = src;
  });
  alone->all_gather(y, x);
  std::string bad_root;
  try {
    alone->broadcast(x, 1);
  } catch (const CommError& e) {
    bad_root = e.what();
  }
  std::string on_world;
  try {
    world->all_reduce(x);  // every rank throws before MPI is called: no rank is left waiting
  } catch (const CommError& e) {
    on_world = e.what();
  }

  EXPECT_EQ(alone->size(), 1);
  EXPECT_EQ(error, "");
  EXPECT_EQ(mem, (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_NE(without_copy.find("device"), std::string::npos) << without_copy;
  EXPECT_EQ(copies, 1);
  EXPECT_EQ(copied_to.data(), y.data());
  EXPECT_EQ(copied_from.data(), x.data());
  EXPECT_NE(bad_root.find("root 1"), std::string::npos) << bad_root;
  EXPECT_NE(on_world.find("host tensors"), std::string::npos) << on_world;
}

TEST(MpiComm, CountersRecordPayloadPerCollective) {
  const ParallelContext par = make_parallel_context(mpi_runtime(), 1, /*verify=*/true);
  Communicator& c = *par.world;
  const int p = c.size(), r = c.rank();
  std::vector<float> a(10, static_cast<float>(r + 1));
  c.all_reduce(f32(a));
  std::vector<double> in(3, r), out(static_cast<size_t>(3 * p));
  c.all_gather(f64(out), f64(in));
  std::vector<int32_t> b(5, r == 1 ? 7 : 0);
  c.broadcast(Tensor(b.data(), DType::I32, Shape{5}), 1);
  std::vector<float> big(1000, 1.0f);
  auto req = c.all_reduce_async(f32(big));
  req->test();
  req->wait();
  c.barrier();
  const CommStats s = c.stats();

  EXPECT_EQ(a[0], static_cast<float>(p * (p + 1) / 2));
  EXPECT_EQ(out[static_cast<size_t>(3 * (p - 1))], p - 1);
  EXPECT_EQ(b[4], 7);
  EXPECT_EQ(big[999], static_cast<float>(p));
  EXPECT_EQ(s.all_reduce.calls, 2);
  EXPECT_EQ(s.all_reduce.elements, 1010);
  EXPECT_EQ(s.all_reduce.bytes, 4040);
  EXPECT_EQ(s.all_gather.calls, 1);
  EXPECT_EQ(s.all_gather.bytes, 24 * p);  // the gathered output
  EXPECT_EQ(s.broadcast.bytes, 20);
  EXPECT_EQ(s.barrier.calls, 1);
  EXPECT_EQ(s.total_bytes(), 4040 + 24 * p + 20);  // verification traffic is not counted
  EXPECT_GE(s.seconds, 0.0);
  // Sub-communicators of one rank move nothing and count nothing.
  EXPECT_EQ(par.tp->size(), 1);
  EXPECT_EQ(par.tp->stats().total_bytes(), 0);
}

TEST(MpiComm, AsyncAllReducesMatchBlockingOnes) {
  const ParallelContext par = make_parallel_context(mpi_runtime(), 1, /*verify=*/true);
  Communicator& c = *par.world;
  // Several in flight at once, waited in reverse order: each equals its blocking twin bit for bit.
  std::vector<std::vector<float>> async(4), blocking(4);
  std::vector<std::unique_ptr<CommRequest>> reqs;
  for (size_t k = 0; k < 4; ++k) {
    async[k].resize(257 * (k + 1));
    for (size_t i = 0; i < async[k].size(); ++i)
      async[k][i] = std::sin(static_cast<float>(i * (k + 1) + static_cast<size_t>(c.rank())));
    blocking[k] = async[k];
    reqs.push_back(c.all_reduce_async(f32(async[k])));
  }
  for (size_t k = 4; k-- > 0;) reqs[k]->wait();
  for (auto& b : blocking) c.all_reduce(f32(b));
  for (size_t k = 0; k < 4; ++k) EXPECT_EQ(async[k], blocking[k]) << k;
}

TEST(MpiComm, SkippedCollectiveFailsOnEveryRank) {
  const ParallelContext par = make_parallel_context(mpi_runtime(), 1, /*verify=*/true);
  Communicator& c = *par.world;
  const bool buggy = c.rank() == c.size() - 1;
  std::vector<float> a(8, 1.0f);
  std::vector<double> b(4, 1.0);
  std::string err;
  try {
    if (!buggy) c.all_reduce(f32(a));  // the last rank "forgets" this one
    c.all_reduce(f64(b));
  } catch (const CommError& e) {
    err = e.what();
  }
  // The mismatch is found before any payload moved, and the ranks stay in step: the
  // communicator keeps working after the error.
  const double after = c.all_reduce_scalar(1.0);

  EXPECT_TRUE(contains(err, "collective sequence mismatch")) << err;
  EXPECT_TRUE(contains(err, "all_reduce of 8 F32 elements")) << err;
  EXPECT_TRUE(contains(err, "all_reduce of 4 F64 elements")) << err;
  EXPECT_EQ(a[0], 1.0f);
  EXPECT_EQ(b[0], 1.0);
  EXPECT_EQ(after, c.size());
}

TEST(MpiComm, SkipAmongSameShapedCollectivesIsCaughtAtTheSyncPoint) {
  const ParallelContext par = make_parallel_context(mpi_runtime(), 1, /*verify=*/true);
  Communicator& c = *par.world;
  const bool buggy = c.rank() == c.size() - 1;
  std::vector<float> x(16, 1.0f);
  std::string err;
  try {
    // Same shape three times (like the per-layer reductions): a skip cannot show in the shapes,
    // so the buggy rank's sync point meets the others' third all_reduce.
    for (int k = 0; k < 3; ++k)
      if (!(buggy && k == 1)) c.all_reduce(f32(x));
    c.check_in_sync("end of phase");
  } catch (const CommError& e) {
    err = e.what();
  }
  const double after = c.all_reduce_scalar(1.0);

  EXPECT_TRUE(contains(err, "collective sequence mismatch")) << err;
  EXPECT_TRUE(contains(err, "at call #2 all_reduce of 16 F32 elements")) << err;
  // Each rank names its own sync point; the others' only by their (differing) hash.
  EXPECT_TRUE(
      contains(err, buggy ? "check_in_sync('end of phase')" : "check_in_sync(another point)"))
      << err;
  EXPECT_EQ(after, c.size());
}

TEST(MpiComm, WithoutVerificationSyncPointsCostNothing) {
  const ParallelContext par = make_parallel_context(mpi_runtime(), 1, /*verify=*/false);
  Communicator& c = *par.world;
  // Only rank 0 calls it: were it a collective, the all_reduce below would pair with it.
  if (c.rank() == 0) c.check_in_sync("rank 0 only");
  const double sum = c.all_reduce_scalar(2.0);
  EXPECT_EQ(sum, 2.0 * c.size());
  EXPECT_EQ(c.stats().all_reduce.calls, 1);
}

// The bug the verification is for, in real code: tensor-parallel taylor importance where one TP
// rank drops one of GradientPass's all-reduces. The dropped reductions all have shape [T, H], so
// without verification the ranks would pair different layers' partial sums and go on; with it,
// every rank throws CommError. Without the bug the same setup equals one rank.
TEST(MpiImportance, SkippedTensorParallelReductionFailsOnEveryRank) {
  const int world = mpi_runtime().world_size();
  const fs::path dir = fixture_models() / "qwen3-f32";  // 2 KV heads: at tp=4 two ranks own none
  const ModelConfig cfg = load_model_config(dir);
  auto backend = make_cpu_backend(1);
  const std::vector<CalibrationSample> samples =
      test::read_calibration_samples(dir / "calibration.jsonl");
  ImportanceOptions opt;
  opt.criterion = Criterion::Taylor;

  const ParallelContext one = ParallelContext::single();
  const ModelWeights full = load_weights(dir, cfg, make_shard_plan(cfg, 1, 0), *backend);
  const ImportanceScores ref = compute_importance(full, *backend, one, samples, opt);

  // tp = world, dp = 1: every rank is in the one TP group that sees the bug.
  ParallelContext par = make_parallel_context(mpi_runtime(), world, /*verify=*/true);
  const ModelWeights shard =
      load_weights(dir, cfg, make_shard_plan(cfg, world, par.layout.tp_rank), *backend);
  const ImportanceScores good = compute_importance(shard, *backend, par, samples, opt);

  std::vector<std::string> errors;
  for (int64_t skip : {0, 5}) {
    std::string err;
    // Only TP rank 1 has the bug (skip -1: never).
    auto buggy =
        std::make_unique<SkipNthAllReduce>(std::move(par.tp), par.layout.tp_rank == 1 ? skip : -1);
    SkipNthAllReduce* handle = buggy.get();
    par.tp = std::move(buggy);
    try {
      compute_importance(shard, *backend, par, samples, opt);
    } catch (const CommError& e) {
      err = e.what();
    }
    par.tp = handle->release();
    errors.push_back(err);
  }
  // Still in step after both failures.
  const double after = par.world->all_reduce_scalar(1.0);

  EXPECT_EQ(after, world);
  for (const auto& err : errors) {
    EXPECT_TRUE(contains(err, "collective sequence mismatch on communicator 'tp'")) << err;
  }
  ASSERT_EQ(good.layers.size(), ref.layers.size());
  for (size_t l = 0; l < ref.layers.size(); ++l) {
    for (size_t i = 0; i < ref.layers[l].heads.size(); ++i)
      EXPECT_NEAR(good.layers[l].heads[i], ref.layers[l].heads[i],
                  1e-5 * std::fabs(ref.layers[l].heads[i]));
    for (size_t i = 0; i < ref.layers[l].channels.size(); ++i)
      EXPECT_NEAR(good.layers[l].channels[i], ref.layers[l].channels[i],
                  1e-5 * std::fabs(ref.layers[l].channels[i]));
  }
}

// Checks the main's failure agreement: fails on the last rank only, so the ctest entry that
// runs it (RESP_MPI_TEST_EXPECT_FAILURE=1) must see every rank exit non-zero and rank 0 name
// the failing rank. Skipped in normal runs.
TEST(MpiTestMain, FailureOnOneRankIsReportedByAll) {
  if (!std::getenv("RESP_MPI_TEST_EXPECT_FAILURE")) GTEST_SKIP() << "self-check of the main";
  const auto world = mpi_runtime().world();
  EXPECT_NE(world->rank(), world->size() - 1) << "deliberate failure on the last rank";
}
