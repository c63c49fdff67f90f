// Progress reporting for long generation runs, on stderr: a redrawn progress bar with tokens/s,
// sequences done/total and ETA when stderr is a terminal; otherwise one plain line every
// `interval` seconds (CI, Slurm logs) and a final line.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/timer.h"

namespace resp {

struct GenerationProgress {
  int64_t done = 0;              // sequences finished
  int64_t total = 0;             // sequences to generate
  int64_t generated_tokens = 0;  // new tokens so far
  int64_t prompt_tokens = 0;     // prompt tokens prefilled so far
  double seconds = 0.0;          // since generation started
};

class ProgressPrinter {
 public:
  enum class Mode { Auto, Bar, Lines, Off };
  // `label` prefixes every line ("generate", "eval gsm8k"). Auto: Bar on a TTY, else Lines.
  // `interval` (seconds) between plain lines; the environment variable RESP_PROGRESS_INTERVAL
  // overrides it when set.
  explicit ProgressPrinter(std::string label, Mode mode = Mode::Auto, double interval = 30.0,
                           std::FILE* out = stderr);
  ~ProgressPrinter();

  void update(const GenerationProgress& p);
  // Prints the final state (and ends the bar's line).
  void finish(const GenerationProgress& p);

  // "1h02m", "3m05s", "12s".
  static std::string format_duration(double seconds);
  // The text of one report (no newline / carriage return).
  static std::string format(const std::string& label, const GenerationProgress& p, bool bar);

 private:
  void print(const GenerationProgress& p, bool final);
  std::string label_;
  Mode mode_;
  double interval_;
  std::FILE* out_;
  Stopwatch since_print_;
  bool printed_ = false, finished_ = false;
  GenerationProgress last_;
};

}  // namespace resp
