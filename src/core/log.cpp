#include "core/log.h"

#include <cstdio>
#include <mutex>

namespace resp {

namespace {
// The one piece of process state: written at start-up, read by every log call.
LogContext g_ctx;
std::mutex g_mutex;
}  // namespace

void set_log_context(const LogContext& ctx) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_ctx = ctx;
}

const LogContext& log_context() {
  return g_ctx;
}

void log_line(LogLevel level, const std::string& msg) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (level < g_ctx.level) return;
  if (level < LogLevel::Warn && !g_ctx.all_ranks && g_ctx.rank != 0) return;
  static const char* names[] = {"debug", "info", "warn", "error", ""};
  std::string line;
  if (g_ctx.world > 1) line = cat("[r", g_ctx.rank, "/", g_ctx.world, "] ");
  if (level != LogLevel::Info) line += cat(names[static_cast<int>(level)], ": ");
  line += msg;
  line += '\n';
  std::fputs(line.c_str(), stderr);
}

}  // namespace resp
