// Rank-prefixed logging to stderr. The prefix ("[r3/8] ") is set once at start-up by the app
// after the parallel runtime is up; library code only calls log_*.
#pragma once

#include <string>

#include "core/error.h"

namespace resp {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3, Quiet = 4 };

struct LogContext {
  int rank = 0;
  int world = 1;
  LogLevel level = LogLevel::Info;
  bool all_ranks = false;  // when false, Info/Debug lines print on rank 0 only
};

// Called once by the app before worker threads start; later calls replace the context.
void set_log_context(const LogContext& ctx);
const LogContext& log_context();
void log_line(LogLevel level, const std::string& msg);

template <typename... Args>
void log_info(Args&&... args) {
  log_line(LogLevel::Info, cat(std::forward<Args>(args)...));
}
template <typename... Args>
void log_warn(Args&&... args) {
  log_line(LogLevel::Warn, cat(std::forward<Args>(args)...));
}
template <typename... Args>
void log_debug(Args&&... args) {
  log_line(LogLevel::Debug, cat(std::forward<Args>(args)...));
}

}  // namespace resp
