// An advisory lock on a run directory (RUN/.lock, flock), held by rank 0 of `resp prune` for
// the whole run: a second `resp prune --out SAME --resume` started while one is running is
// refused instead of redoing the job beside it and racing on the checkpoints. The lock dies
// with its process (kill -9 included), so a crashed run never leaves a stale lock behind.
#pragma once

#include <filesystem>

namespace resp {

class RunLock {
 public:
  // Takes the lock or throws UsageError naming the holder (pid and host from the lock file).
  // On a file system without flock support (EINVAL/ENOLCK/ENOSYS) it warns and holds nothing.
  explicit RunLock(const std::filesystem::path& run_dir);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace resp
