#include "generate/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "core/error.h"

namespace resp {

ProgressPrinter::ProgressPrinter(std::string label, Mode mode, double interval, std::FILE* out)
    : label_(std::move(label)), mode_(mode), interval_(interval), out_(out) {
  if (mode_ == Mode::Auto) mode_ = (out_ && isatty(fileno(out_))) ? Mode::Bar : Mode::Lines;
  if (const char* e = std::getenv("RESP_PROGRESS_INTERVAL")) {
    char* end = nullptr;
    const double v = std::strtod(e, &end);
    if (end != e && v >= 0) interval_ = v;
  }
  if (mode_ == Mode::Bar) interval_ = std::min(interval_, 0.25);
}

ProgressPrinter::~ProgressPrinter() {
  // A bar left mid-line (an error unwound past finish()) still ends its line.
  if (mode_ == Mode::Bar && printed_ && !finished_) std::fputc('\n', out_);
}

std::string ProgressPrinter::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "--";
  const auto t = static_cast<int64_t>(std::llround(s));
  if (t >= 3600) return cat(t / 3600, "h", (t / 60 % 60 < 10 ? "0" : ""), t / 60 % 60, "m");
  if (t >= 60) return cat(t / 60, "m", (t % 60 < 10 ? "0" : ""), t % 60, "s");
  return cat(t, "s");
}

std::string ProgressPrinter::format(const std::string& label, const GenerationProgress& p,
                                    bool bar) {
  const double frac =
      p.total > 0 ? static_cast<double>(p.done) / static_cast<double>(p.total) : 1.0;
  const double tps = p.seconds > 0 ? static_cast<double>(p.generated_tokens) / p.seconds : 0.0;
  // ETA from the sequence rate once some are done; before that, unknown.
  const double eta =
      p.done > 0 ? p.seconds * static_cast<double>(p.total - p.done) / static_cast<double>(p.done)
                 : -1.0;
  std::string s = label + " ";
  if (bar) {
    constexpr int kWidth = 24;
    const int fill = static_cast<int>(frac * kWidth);
    s += '[';
    s.append(static_cast<size_t>(fill), '#');
    s.append(static_cast<size_t>(kWidth - fill), '.');
    s += "] ";
  }
  char buf[160];
  std::snprintf(buf, sizeof buf,
                "%lld/%lld seqs (%.0f%%)  %lld tokens  %.1f tok/s  elapsed %s  ETA %s",
                static_cast<long long>(p.done), static_cast<long long>(p.total), 100.0 * frac,
                static_cast<long long>(p.generated_tokens), tps, format_duration(p.seconds).c_str(),
                p.done >= p.total ? "0s" : format_duration(eta).c_str());
  return s + buf;
}

void ProgressPrinter::print(const GenerationProgress& p, bool final) {
  if (mode_ == Mode::Off || !out_) return;
  const std::string line = format(label_, p, mode_ == Mode::Bar);
  if (mode_ == Mode::Bar) {
    std::fprintf(out_, "\r%s\033[K%s", line.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(out_, "%s\n", line.c_str());
  }
  std::fflush(out_);
  printed_ = true;
  since_print_.reset();
}

void ProgressPrinter::update(const GenerationProgress& p) {
  last_ = p;
  if (since_print_.seconds() >= interval_) print(p, false);
}

void ProgressPrinter::finish(const GenerationProgress& p) {
  if (finished_) return;
  print(p, true);
  finished_ = true;
}

}  // namespace resp
