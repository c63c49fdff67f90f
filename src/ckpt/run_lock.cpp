#include "ckpt/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/log.h"

namespace resp {

RunLock::RunLock(const std::filesystem::path& run_dir) {
  const std::string path = (run_dir / ".lock").string();
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw IoError(cat("cannot open ", path, ": ", std::strerror(errno)));
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      char holder[256] = {};
      const ssize_t n = ::pread(fd, holder, sizeof holder - 1, 0);
      ::close(fd);
      std::string who = n > 0 ? std::string(holder, static_cast<size_t>(n)) : "another process";
      while (!who.empty() && (who.back() == '\n' || who.back() == ' ')) who.pop_back();
      throw UsageError(cat(run_dir.string(), " is in use by a running resp prune (", who,
                           "); wait for it to finish or choose another --out"));
    }
    ::close(fd);
    log_warn("cannot lock ", path, " (", std::strerror(err),
             "); this file system has no flock: do not run two resp prune on one directory");
    return;
  }
  char host[128] = {};
  ::gethostname(host, sizeof host - 1);
  const std::string who = cat("pid ", ::getpid(), " on ", host, "\n");
  if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, who.data(), who.size(), 0) < 0)
    log_warn("cannot record the holder in ", path);
  fd_ = fd;
}

RunLock::~RunLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace resp
