// NcclCommunicator on one GPU (one rank): collectives on device tensors go through NCCL on the
// backend's stream, host tensors through the host communicator, errors are typed. The device
// choice rule runs everywhere; the rest is skipped without a CUDA device.
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "comm/nccl_communicator.h"

namespace resp {
namespace {

TEST(NcclDevice, LocalRankModuloVisibleDevices) {
  EXPECT_EQ(device_for_local_rank(0, 1), 0);
  EXPECT_EQ(device_for_local_rank(5, 4), 1);
  EXPECT_EQ(device_for_local_rank(3, 8), 3);
  EXPECT_THROW(device_for_local_rank(0, 0), CommError);
}

class Nccl : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device (or no CUDA in this build)";
    backend = std::make_unique<CudaBackend>(0);
    comm = std::make_unique<NcclCommunicator>(std::make_unique<SelfCommunicator>(),
                                              backend->stream(), 0, "tp");
  }
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

}  // namespace
}  // namespace resp
