#include "app/jsonl.h"

#include <iostream>

#include "core/error.h"

namespace resp::app {

std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw IoError(cat("cannot open ", path.string()));
  std::vector<JsonlRecord> out;
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    JsonlRecord r;
    r.line = n;
    try {
      r.value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
      throw UsageError(cat(path.string(), ":", n, ": malformed JSON (", e.what(), ")"));
    }
    if (!r.value.is_object())
      throw UsageError(cat(path.string(), ":", n, ": expected a JSON object per line"));
    out.push_back(std::move(r));
  }
  if (in.bad()) throw IoError(cat("error reading ", path.string()));
  return out;
}

std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path, int64_t limit,
                                    const char* what) {
  auto records = read_jsonl(path);
  if (limit > 0 && static_cast<int64_t>(records.size()) > limit)
    records.resize(static_cast<size_t>(limit));
  if (records.empty()) throw UsageError(cat(path.string(), ": no ", what));
  return records;
}

AtomicOutput::AtomicOutput(const std::filesystem::path& path) : path_(path) {
  if (path_.empty()) return;
  tmp_ = path_;
  tmp_ += ".tmp";
  file_.open(tmp_, std::ios::out | std::ios::trunc);
  if (!file_) throw IoError(cat("cannot write ", tmp_.string()));
}

AtomicOutput::~AtomicOutput() {
  if (!path_.empty() && !committed_) {
    file_.close();
    std::error_code ec;
    std::filesystem::remove(tmp_, ec);
  }
}

std::ostream& AtomicOutput::stream() {
  return path_.empty() ? std::cout : file_;
}

void AtomicOutput::commit() {
  if (path_.empty()) {
    std::cout.flush();
    return;
  }
  file_.flush();
  file_.close();
  if (file_.fail()) throw IoError(cat("error writing ", tmp_.string()));
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec)
    throw IoError(cat("cannot rename ", tmp_.string(), " to ", path_.string(), ": ", ec.message()));
  committed_ = true;
}

std::vector<int32_t> token_list(const JsonlRecord& r, const char* key) {
  auto it = r.value.find(key);
  if (it == r.value.end()) throw UsageError(cat("line ", r.line, ": missing \"", key, "\""));
  if (!it->is_array()) throw UsageError(cat("line ", r.line, ": \"", key, "\" must be an array"));
  std::vector<int32_t> ids;
  ids.reserve(it->size());
  for (const auto& e : *it) {
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > INT32_MAX)
      throw UsageError(
          cat("line ", r.line, ": \"", key, "\" must hold non-negative integers, got ", e.dump()));
    ids.push_back(static_cast<int32_t>(e.get<int64_t>()));
  }
  return ids;
}

}  // namespace resp::app
