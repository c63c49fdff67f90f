// Checkpoint integrity: what rot, edits and a full disk do to run checkpoints. Each case is one
// of the fault campaign's findings (issue 17): a flipped data bit, an edited attribute, an
// offset pointing past the tokens, a file renamed to another iteration, ENOSPC mid-write.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <sys/mount.h>
#include <unistd.h>

#include <fstream>

#include "ckpt/h5.h"
#include "ckpt/run_checkpoint.h"
#include "ckpt/run_lock.h"
#include "core/error.h"
#include "test_util.h"

using namespace resp;
using namespace resp::test;

namespace {

// A small but complete run state; `fill` makes the traces big enough to matter on a tiny disk.
RunState make_state(int iteration, size_t trace_tokens = 40) {
  RunState s;
  s.iteration = iteration;
  s.model = "models/x";
  s.config_yaml = "model: models/x\n";
  s.seed = 7;
  for (int l = 0; l < 3; ++l) {
    s.plan.push_back({{0, 2, 3}, {1, 4, 5, 9}});
    LayerScores ls;
    ls.head_ids = {0, 2, 3};
    ls.channel_ids = {1, 4, 5, 9};
    ls.heads = {0.5, 0.25, 0.125};
    ls.channels = {1, 2, 3, 4};
    s.scores.layers.push_back(ls);
  }
  for (int i = 0; i < 4; ++i) {
    TraceRecord t;
    t.id = "p" + std::to_string(i);
    t.prompt = {11, 12, 13};
    for (size_t k = 0; k < trace_tokens; ++k) t.output.push_back(1000 + static_cast<int32_t>(k));
    t.finish = "eos";
    s.traces.push_back(t);
  }
  for (int it = 0; it <= iteration; ++it) {
    IterationRecord r;
    r.iteration = it;
    r.sparsity = 0.1 * (it + 1);
    s.history.push_back(r);
  }
  return s;
}

std::string bytes_of(const fs::path& p) {
  return read_text(p);
}

std::vector<unsigned char> raw_bytes(const fs::path& p) {
  const std::string t = read_text(p);
  return {t.begin(), t.end()};
}

void write_raw(const fs::path& p, const std::vector<unsigned char>& b) {
  write_text(p, std::string(b.begin(), b.end()));
}

// An edit made through libhdf5 breaks the seal; resealing it reaches the checks behind the seal
// (the content digest, the structural checks), as a careful forger would.
void reseal(const fs::path& p) {
  auto b = raw_bytes(p);
  h5::seal_image(b);
  write_raw(p, b);
}

// Rewrites one int64 root attribute in place, as h5py's `f.attrs["iteration"] = 15` would.
void edit_int_attribute(const fs::path& p, const char* key, int64_t value) {
  const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t a = H5Aopen_by_name(f, "/", key, H5P_DEFAULT, H5P_DEFAULT);
  ASSERT_GE(a, 0);
  ASSERT_GE(H5Awrite(a, H5T_NATIVE_INT64, &value), 0);
  H5Aclose(a);
  H5Fclose(f);
  reseal(p);
}

void overwrite_int64_dataset(const fs::path& p, const char* name, const std::vector<int64_t>& v) {
  const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  const hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  ASSERT_GE(d, 0);
  ASSERT_GE(H5Dwrite(d, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()), 0);
  H5Dclose(d);
  H5Fclose(f);
  reseal(p);
}

void delete_root_attribute(const fs::path& p, const char* key) {
  const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(f, 0);
  ASSERT_GE(H5Adelete(f, key), 0);
  H5Fclose(f);
  reseal(p);
}

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(CheckpointIntegrity, IntactFileCarriesADigestAndReadsBack) {
  TempDir d;
  write_run_checkpoint(d.path(), make_state(2));
  const fs::path p = checkpoint_path(d.path(), 2);
  const h5::File f = h5::File::open(p);
  ASSERT_TRUE(f.has_attr("/", h5::kDigestAttribute));
  EXPECT_EQ(f.attr_string("/", h5::kDigestAttribute), f.content_digest());
  const RunState s = read_run_checkpoint(p);
  EXPECT_EQ(s.iteration, 2);
  EXPECT_EQ(s.traces.size(), 4u);
  EXPECT_EQ(s.traces[3].output.back(), 1039);
  EXPECT_FALSE(fs::exists(p.string() + ".tmp"));
}

// Rot anywhere — superblock, object headers, B-trees, heaps, data, the seal itself — and
// truncation are refused by the seal before libhdf5 parses the file (libhdf5 can hang on a
// corrupt global heap: docs/fuzzing.md). h5py still reads the sealed file (the seal is an HDF5
// user block); the seal starts the file, the HDF5 signature follows at byte 512.
TEST(CheckpointIntegrity, TheSealRefusesRotAnywhereBeforeHdf5ParsesIt) {
  TempDir d;
  write_run_checkpoint(d.path(), make_state(1));
  const fs::path p = checkpoint_path(d.path(), 1);
  const auto good = raw_bytes(p);
  ASSERT_GT(good.size(), 1024u);
  EXPECT_EQ(std::string(good.begin(), good.begin() + 12), "RESP-SEAL 1\n");
  EXPECT_EQ(std::string(good.begin() + 513, good.begin() + 516), "HDF");
  EXPECT_EQ(h5::check_seal(good, p.string()), h5::SealState::Sealed);
  size_t refused = 0, tried = 0;
  for (size_t at = 3; at < good.size(); at += 61) {
    auto bad = good;
    bad[at] ^= static_cast<unsigned char>(1u << (at % 8));
    ++tried;
    try {
      h5::check_seal(bad, p.string());
    } catch (const FormatError& e) {
      ++refused;
      if (at % 7 == 0) {  // and through the reader, naming the file, on a sample of positions
        write_raw(p, bad);
        const std::string msg = message_of([&] { read_run_checkpoint(p); });
        EXPECT_NE(msg.find(p.string()), std::string::npos) << at << ": " << msg;
      }
    }
  }
  EXPECT_EQ(refused, tried);
  for (size_t keep : {size_t{0}, size_t{100}, size_t{600}, good.size() - 1}) {
    write_raw(p, std::vector<unsigned char>(good.begin(), good.begin() + keep));
    const std::string msg = message_of([&] { read_run_checkpoint(p); });
    EXPECT_FALSE(msg.empty()) << keep;
    EXPECT_NE(msg.find(p.string()), std::string::npos) << keep << ": " << msg;
  }
  // Files from before seals (HDF5 signature at byte 0) go on to the digest checks.
  std::vector<unsigned char> legacy(good.begin() + 512, good.end());
  EXPECT_EQ(h5::check_seal(legacy, "x.h5"), h5::SealState::Unsealed);
  write_raw(p, good);
  EXPECT_EQ(read_run_checkpoint(p).iteration, 1);
}

TEST(CheckpointIntegrity, EveryFlippedTraceTokenIsDetected) {
  TempDir d;
  write_run_checkpoint(d.path(), make_state(1));
  const fs::path p = checkpoint_path(d.path(), 1);
  const std::string good = bytes_of(p);
  // Token 1017 (0x03F9) of trace 0 as little-endian int32: flip one bit of it.
  const std::string needle("\xF9\x03\x00\x00", 4);
  const size_t at = good.find(needle);
  ASSERT_NE(at, std::string::npos);
  std::string bad = good;
  bad[at] = static_cast<char>(bad[at] ^ 0x10);
  write_text(p, bad);
  EXPECT_NE(message_of([&] { read_run_checkpoint(p); }).find("checksum mismatch"),
            std::string::npos);
  // Behind a forged seal, Fletcher32 and the content digest still catch it.
  reseal(p);
  const std::string msg = message_of([&] { read_run_checkpoint(p); });
  EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
  EXPECT_TRUE(msg.find("corrupt") != std::string::npos || msg.find("checksum") != std::string::npos)
      << msg;
}

TEST(CheckpointIntegrity, EditedAttributesAreDetected) {
  TempDir d;
  write_run_checkpoint(d.path(), make_state(3));
  const fs::path p = checkpoint_path(d.path(), 3);
  for (int64_t v : {15, -1}) {
    write_run_checkpoint(d.path(), make_state(3));
    edit_int_attribute(p, "iteration", v);
    const std::string msg = message_of([&] { read_run_checkpoint(p); });
    EXPECT_NE(msg.find("checksum mismatch"), std::string::npos) << v << ": " << msg;
  }
}

TEST(CheckpointIntegrity, AttributesMustAgreeWithNameAndHistoryEvenWithoutDigest) {
  TempDir d;
  // Files written before digests existed have none; the structural checks still hold.
  write_run_checkpoint(d.path(), make_state(3));
  const fs::path p = checkpoint_path(d.path(), 3);
  delete_root_attribute(p, h5::kDigestAttribute);
  EXPECT_EQ(read_run_checkpoint(p).iteration, 3);
  edit_int_attribute(p, "iteration", 15);
  EXPECT_NE(message_of([&] { read_run_checkpoint(p); }).find("named for 3"), std::string::npos);
  edit_int_attribute(p, "iteration", -1);
  EXPECT_NE(message_of([&] { read_run_checkpoint(p); }).find("negative"), std::string::npos);
  // Renamed to another iteration's name.
  write_run_checkpoint(d.path(), make_state(3));
  fs::rename(p, checkpoint_path(d.path(), 4));
  EXPECT_NE(
      message_of([&] { read_run_checkpoint(checkpoint_path(d.path(), 4)); }).find("named for 4"),
      std::string::npos);
}

TEST(CheckpointIntegrity, OffsetsPastTheTokensAreRejectedNotRead) {
  TempDir d;
  write_run_checkpoint(d.path(), make_state(0));
  const fs::path p = checkpoint_path(d.path(), 0);
  delete_root_attribute(p, h5::kDigestAttribute);
  // The fault campaign's crash: one offset far beyond the token count.
  overwrite_int64_dataset(p, "/traces/offsets", {0, 1 << 30, 86, 129, 172});
  const std::string msg = message_of([&] { read_run_checkpoint(p); });
  EXPECT_NE(msg.find("bad trace offsets"), std::string::npos) << msg;
}

TEST(CheckpointIntegrity, ResumeFallsBackToTheNewestIntactCheckpoint) {
  TempDir d;
  for (int it = 0; it <= 2; ++it) write_run_checkpoint(d.path(), make_state(it));
  const fs::path newest = checkpoint_path(d.path(), 2);
  std::string bad = bytes_of(newest);
  const size_t at = bad.find(std::string("\xF9\x03\x00\x00", 4));
  ASSERT_NE(at, std::string::npos);
  bad[at] = static_cast<char>(bad[at] ^ 0x01);
  write_text(newest, bad);
  const auto latest = latest_checkpoint(d.path());
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->filename().string(), "iter_0001.h5");
  EXPECT_EQ(list_checkpoints(d.path()).size(), 3u);  // the corrupt one is still listed
}

// ENOSPC in the middle of a checkpoint: one IoError naming the file and the reason, the
// previous checkpoint and `latest` untouched, no partial file; after space is freed the same
// write succeeds. Needs root to mount a small tmpfs (CI runs as root); skipped otherwise.
TEST(CheckpointIntegrity, FullDiskLeavesThePreviousCheckpointIntact) {
  TempDir d;
  const fs::path mnt = d / "tiny";
  fs::create_directories(mnt);
  if (::geteuid() != 0 || ::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=256k") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
  struct Unmount {
    fs::path p;
    ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
  } unmount{mnt};

  write_run_checkpoint(mnt, make_state(0));
  const std::string first = bytes_of(checkpoint_path(mnt, 0));
  const std::string latest_before = read_text(mnt / "latest");
  // Iteration 1 with 4 x 40k tokens (640 KB) cannot fit in 256 KB.
  std::string msg;
  try {
    write_run_checkpoint(mnt, make_state(1, 40000));
  } catch (const IoError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("No space left"), std::string::npos) << msg;
  EXPECT_NE(msg.find("iter_0001.h5.tmp"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(mnt / "iter_0001.h5.tmp"));
  EXPECT_FALSE(fs::exists(checkpoint_path(mnt, 1)));
  EXPECT_EQ(bytes_of(checkpoint_path(mnt, 0)), first);
  EXPECT_EQ(read_text(mnt / "latest"), latest_before);
  EXPECT_EQ(latest_checkpoint(mnt)->filename().string(), "iter_0000.h5");
  // Space is back (a smaller state fits): the write goes through.
  write_run_checkpoint(mnt, make_state(1));
  EXPECT_EQ(read_run_checkpoint(checkpoint_path(mnt, 1)).iteration, 1);
}

TEST(RunLock, SecondHolderIsRefusedUntilTheFirstLetsGo) {
  TempDir d;
  {
    RunLock first(d.path());
    ASSERT_TRUE(first.held());
    try {
      RunLock second(d.path());
      FAIL() << "a second lock was granted";
    } catch (const UsageError& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("in use"), std::string::npos) << m;
      EXPECT_NE(m.find("pid " + std::to_string(::getpid())), std::string::npos) << m;
    }
  }
  RunLock again(d.path());  // released with its holder
  EXPECT_TRUE(again.held());
}
