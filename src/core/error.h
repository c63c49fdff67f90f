// Typed errors. Code deep inside the library throws these with full context (file, tensor,
// expected vs got); only the CLI turns them into one printed line and an exit code.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace resp {

template <typename... Args>
std::string cat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// A file could not be opened, read, mapped or written.
class IoError : public Error {
 public:
  using Error::Error;
};
// A file's contents are malformed or inconsistent (safetensors header, JSON, HDF5 shapes).
class FormatError : public Error {
 public:
  using Error::Error;
};
// A configuration value is unknown, missing or impossible.
class ConfigError : public Error {
 public:
  using Error::Error;
};
// The command line or an input record is wrong.
class UsageError : public Error {
 public:
  using Error::Error;
};
// Tensor shapes or dtypes passed to an operation do not fit together (a programming error).
class ShapeError : public Error {
 public:
  using Error::Error;
};
// A collective or the parallel runtime failed.
class CommError : public Error {
 public:
  using Error::Error;
};
// The GPU runtime, cuBLAS or NCCL reported an error (the message names the op and the library's
// own error string).
class DeviceError : public Error {
 public:
  using Error::Error;
};
// A computation produced NaN or Inf (a loss, gradient or score); the message names where.
class NumericError : public Error {
 public:
  using Error::Error;
};
// A requested feature exists in the input but is not supported (yet).
class UnsupportedError : public Error {
 public:
  using Error::Error;
};

#define RESP_CHECK_SHAPE(cond, ...)                                                  \
  do {                                                                               \
    if (!(cond)) throw ::resp::ShapeError(::resp::cat(__func__, ": ", __VA_ARGS__)); \
  } while (0)

}  // namespace resp
