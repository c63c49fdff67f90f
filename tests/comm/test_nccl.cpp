// NcclCommunicator on one GPU (one rank): collectives on device tensors go through NCCL on the
// backend's stream, host tensors through the host communicator, errors are typed. The device
// choice rule runs everywhere; the rest is skipped without a CUDA device.
#include <gtest/gtest.h>

#include <nccl.h>

#include <atomic>
#include <cstdlib>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "comm/nccl_communicator.h"
#include "gpu_test.h"
#include "thread_comm.h"

namespace resp {
namespace {

TEST(NcclDevice, LocalRankModuloVisibleDevices) {
  EXPECT_EQ(device_for_local_rank(0, 1), 0);
  EXPECT_EQ(device_for_local_rank(5, 4), 1);
  EXPECT_EQ(device_for_local_rank(3, 8), 3);
  EXPECT_THROW(device_for_local_rank(0, 0), CommError);
}

// ---- set-up pieces that run without a GPU ------------------------------------------------------

// What the fake cudaSetDevice saw: the device and the thread that asked.
std::atomic<int> g_set_device{-1};
std::thread::id g_set_thread;
cudaError_t record_set_device(int device) {
  g_set_thread = std::this_thread::get_id();
  g_set_device.store(device);
  return cudaSuccess;
}
cudaError_t refuse_set_device(int) {
  return cudaErrorInvalidDevice;
}

TEST(NcclWatchdog, ThreadSelectsItsDeviceBeforeItsBody) {
  g_set_device.store(-1);
  int seen_in_body = -2;
  std::thread::id body_thread;
  std::string error = "not run";
  std::thread t =
      nccl_detail::start_device_thread(3, &record_set_device, [&](const std::string& setup_error) {
        seen_in_body = g_set_device.load();
        body_thread = std::this_thread::get_id();
        error = setup_error;
      });
  const std::thread::id spawned = t.get_id();
  t.join();
  EXPECT_EQ(seen_in_body, 3);        // selected before the body ran
  EXPECT_EQ(g_set_thread, spawned);  // on the watchdog's own thread, not the caller's
  EXPECT_EQ(body_thread, spawned);
  EXPECT_NE(spawned, std::this_thread::get_id());
  EXPECT_EQ(error, "");
}

TEST(NcclWatchdog, FailedDeviceSelectionReachesTheBody) {
  std::string error;
  nccl_detail::start_device_thread(2, &refuse_set_device, [&](const std::string& e) {
    error = e;
  }).join();
  EXPECT_NE(error.find("cudaSetDevice(2)"), std::string::npos) << error;
  EXPECT_NE(error.find("cudaErrorInvalidDevice"), std::string::npos) << error;
}

// Three ranks over threads: the id rank 0 makes reaches every rank; when rank 0 cannot make one,
// every rank throws (before, the others waited forever in ncclCommInitRank).
void share_on_three_ranks(int rank0_result, std::vector<nccl_detail::UniqueId>& ids,
                          std::vector<std::string>& errors) {
  test::ThreadGroup group(3);
  ids.assign(3, {});
  errors.assign(3, "");
  std::vector<std::thread> ranks;
  for (int r = 0; r < 3; ++r)
    ranks.emplace_back([&, r] {
      test::ThreadComm comm(group, r);
      try {
        ids[static_cast<size_t>(r)] = nccl_detail::share_unique_id(
            comm,
            [&](nccl_detail::UniqueId& id) {
              for (size_t i = 0; i < id.size(); ++i) id[i] = static_cast<char>(i * 7 + 1);
              return rank0_result;
            },
            "tp");
      } catch (const CommError& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  for (auto& t : ranks) t.join();
}

TEST(NcclBootstrap, RankZerosIdReachesEveryRank) {
  std::vector<nccl_detail::UniqueId> ids;
  std::vector<std::string> errors;
  share_on_three_ranks(ncclSuccess, ids, errors);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(errors[static_cast<size_t>(r)], "") << "rank " << r;
    EXPECT_EQ(ids[static_cast<size_t>(r)][5], static_cast<char>(36)) << "rank " << r;
    EXPECT_EQ(ids[static_cast<size_t>(r)], ids[0]) << "rank " << r;
  }
}

TEST(NcclBootstrap, RankZeroFailureFailsEveryRank) {
  std::vector<nccl_detail::UniqueId> ids;
  std::vector<std::string> errors;
  share_on_three_ranks(ncclSystemError, ids, errors);
  for (int r = 0; r < 3; ++r) {
    const std::string& e = errors[static_cast<size_t>(r)];
    EXPECT_NE(e.find("ncclGetUniqueId for tp failed on rank 0 of 3"), std::string::npos)
        << "rank " << r << ": " << e;
    EXPECT_NE(e.find(ncclGetErrorString(ncclSystemError)), std::string::npos) << e;
  }
}

TEST(NcclSwitch, ForceCollectivesFromEnvironment) {
  unsetenv("RESP_NCCL_FORCE_COLLECTIVES");
  EXPECT_FALSE(nccl_force_collectives_from_env());
  setenv("RESP_NCCL_FORCE_COLLECTIVES", "0", 1);
  EXPECT_FALSE(nccl_force_collectives_from_env());
  setenv("RESP_NCCL_FORCE_COLLECTIVES", "1", 1);
  EXPECT_TRUE(nccl_force_collectives_from_env());
  unsetenv("RESP_NCCL_FORCE_COLLECTIVES");
}

// ---- one GPU ---------------------------------------------------------------------------------

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    RESP_REQUIRE_GPU();
    backend = std::make_unique<CudaBackend>(0);
    comm = std::make_unique<NcclCommunicator>(std::make_unique<SelfCommunicator>(),
                                              backend->stream(), 0, "tp", 900.0, force());
  }
  virtual bool force() const { return false; }
  Tensor upload(Buffer& buf, const std::vector<float>& h) {
    const Shape s{static_cast<int64_t>(h.size())};
    buf = backend->allocate_tensor(DType::F32, s);
    const Tensor t = buf.tensor(DType::F32, s);
    backend->copy(t, Tensor(const_cast<float*>(h.data()), DType::F32, s));
    return t;
  }
  std::vector<float> download(const Tensor& t) {
    std::vector<float> h(static_cast<size_t>(t.numel()));
    backend->copy(Tensor(h.data(), DType::F32, t.shape()), t);
    return h;
  }
  std::unique_ptr<CudaBackend> backend;
  std::unique_ptr<NcclCommunicator> comm;
};

TEST_F(Nccl, OneRankCollectivesKeepOrGatherData) {
  EXPECT_EQ(comm->rank(), 0);
  EXPECT_EQ(comm->size(), 1);
  std::vector<float> h(1001);
  std::iota(h.begin(), h.end(), -3.0f);
  Buffer a, b;
  const Tensor x = upload(a, h);
  comm->all_reduce(x);
  comm->broadcast(x, 0);
  EXPECT_EQ(download(x), h);
  const Tensor out = upload(b, std::vector<float>(1001, 0.0f));
  comm->all_gather(out, x);
  EXPECT_EQ(download(out), h);
  comm->barrier();
}

// One rank: the async all-reduce completes and leaves the data; a blocking collective after it
// and backend work on the compute stream see the same values (the ordering across streams).
TEST_F(Nccl, AllReduceAsyncCompletesInStreamOrder) {
  std::vector<float> h(4097);
  std::iota(h.begin(), h.end(), 0.5f);
  Buffer a;
  const Tensor x = upload(a, h);
  auto r = comm->all_reduce_async(x);
  ASSERT_NE(r, nullptr);
  r->wait();
  EXPECT_TRUE(r->test());
  backend->scale(x, 2.0f);
  comm->all_reduce(x);
  std::vector<float> want = h;
  for (float& v : want) v *= 2.0f;
  EXPECT_EQ(download(x), want);
  // Host tensors go to the host communicator's async path.
  std::vector<double> v = {1.0, 2.0};
  auto hr = comm->all_reduce_async(Tensor(v.data(), DType::F64, Shape{2}));
  hr->wait();
  EXPECT_EQ(v, (std::vector<double>{1.0, 2.0}));
  comm->barrier();
}

TEST_F(Nccl, HostTensorsUseTheHostCommunicator) {
  std::vector<double> v = {1.5, 2.5};
  comm->all_reduce(Tensor(v.data(), DType::F64, Shape{2}));
  EXPECT_EQ(v, (std::vector<double>{1.5, 2.5}));
  EXPECT_DOUBLE_EQ(comm->all_reduce_scalar(4.0), 4.0);
}

TEST_F(Nccl, BadArgumentsThrowTypedErrors) {
  Buffer a, b;
  const Tensor x = upload(a, std::vector<float>(8, 1.0f));
  const Tensor y = upload(b, std::vector<float>(9, 1.0f));
  EXPECT_THROW(comm->broadcast(x, 1), CommError);
  EXPECT_THROW(comm->all_gather(y, x), ShapeError);
  std::vector<float> host(8);
  EXPECT_THROW(comm->all_gather(Tensor(host.data(), DType::F32, Shape{8}), x), CommError);
}

// The same communicator with the one-rank shortcuts off: every collective below is a real
// ncclAllReduce / ncclBroadcast / ncclAllGather on one GPU, ordered on the streams.
class NcclForced : public Nccl {
 protected:
  bool force() const override { return true; }
};

TEST_F(NcclForced, OneRankCollectivesRunThroughNccl) {
  ASSERT_TRUE(comm->forcing_collectives());
  std::vector<float> h(1001);
  std::iota(h.begin(), h.end(), -3.0f);
  Buffer a, b, c;
  const Tensor x = upload(a, h);
  comm->all_reduce(x);
  comm->all_reduce(x, ReduceOp::Max);
  comm->broadcast(x, 0);
  EXPECT_EQ(download(x), h);
  const Tensor out = upload(b, std::vector<float>(1001, 0.0f));
  comm->all_gather(out, x);
  EXPECT_EQ(download(out), h);
  // Async on the communicator's stream, then work on the compute stream and a blocking one.
  const Tensor y = upload(c, h);
  auto r = comm->all_reduce_async(y);
  r->wait();
  backend->scale(y, 2.0f);
  comm->all_reduce(y);
  std::vector<float> want = h;
  for (float& v : want) v *= 2.0f;
  EXPECT_EQ(download(y), want);
  comm->barrier();
  const CommStats st = comm->stats();
  EXPECT_EQ(st.all_reduce.calls, 4);
  EXPECT_EQ(st.all_reduce.elements, 4 * 1001);
  EXPECT_EQ(st.broadcast.calls, 1);
  EXPECT_EQ(st.all_gather.calls, 1);
  EXPECT_EQ(st.all_gather.bytes, 1001 * 4);
}

// Unforced, one rank issues nothing to NCCL and counts nothing (CommStats' rule).
TEST_F(Nccl, OneRankShortcutsCountNothing) {
  Buffer a;
  const Tensor x = upload(a, std::vector<float>(16, 1.0f));
  comm->all_reduce(x);
  comm->broadcast(x, 0);
  EXPECT_EQ(comm->stats().total_bytes(), 0);
  EXPECT_FALSE(comm->forcing_collectives());
}

}  // namespace
}  // namespace resp
