// JSONL input and output for the CLI: records carry their line numbers so errors can point at
// them, and output files appear under their final name only when complete.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace resp::app {

struct JsonlRecord {
  size_t line = 0;  // 1-based line number in the file
  nlohmann::json value;
};

// Reads every non-blank line; throws UsageError "FILE:LINE: ..." on malformed JSON or a
// non-object line, IoError when the file cannot be read.
std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path);
// The first `limit` records (all when limit is 0); UsageError "PATH: no WHAT" when none is left.
std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path, int64_t limit,
                                    const char* what);

// Writes to PATH.tmp and renames to PATH on commit(); if destroyed without commit(), removes
// the temporary file so a crash or error never leaves a partial file under the final name.
// An empty path writes to stdout.
class AtomicOutput {
 public:
  explicit AtomicOutput(const std::filesystem::path& path);
  ~AtomicOutput();
  std::ostream& stream();
  void commit();

 private:
  std::filesystem::path path_, tmp_;
  std::ofstream file_;
  bool committed_ = false;
};

// Parses an optional integer token list field: throws UsageError naming the line when wrong.
std::vector<int32_t> token_list(const JsonlRecord& r, const char* key);

}  // namespace resp::app
