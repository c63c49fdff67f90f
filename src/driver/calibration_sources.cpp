#include "driver/calibration_sources.h"

#include <fstream>

#include "core/error.h"
#include "core/rng.h"

namespace resp {

std::vector<DatasetRow> load_calibration_rows(const std::string& path, int n,
                                              uint64_t shuffle_seed) {
  std::ifstream in(path);
  if (!in) throw IoError(cat("cannot open ", path));
  std::vector<DatasetRow> rows;
  std::string line;
  size_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    DatasetRow r;
    r.line = lineno;
    try {
      r.value = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(cat(path, ":", lineno, ": malformed JSON (", e.what(), ")"));
    }
    if (!r.value.is_object()) throw UsageError(cat(path, ":", lineno, ": expected a JSON object"));
    auto it = r.value.find("id");
    r.id = it == r.value.end() ? std::to_string(rows.size())
                               : (it->is_string() ? it->get<std::string>() : it->dump());
    rows.push_back(std::move(r));
  }
  if (rows.empty()) throw UsageError(cat(path, ": no rows"));
  // Fisher-Yates with counter-based draws: the same seed gives the same order on every rank.
  for (size_t i = rows.size() - 1; i > 0; --i) {
    const size_t j = static_cast<size_t>(random_u64(shuffle_seed, 0x73687566ull, i) % (i + 1));
    std::swap(rows[i], rows[j]);
  }
  if (n > 0 && rows.size() > static_cast<size_t>(n)) rows.resize(static_cast<size_t>(n));
  return rows;
}

std::vector<int32_t> calibration_prompt_ids(Task task, const DatasetRow& row, const Tokenizer& tok,
                                            const ChatFormat* chat, Thinking thinking,
                                            const std::string& system_prompt) {
  if (chat) return tok.encode(calibration_prompt(task, row.value, *chat, thinking, system_prompt));
  return tok.encode(task_user_text(task, row.value), true);
}

CalibrationSample gold_sample(Task task, const DatasetRow& row, const Tokenizer& tok,
                              const ChatFormat* chat, Thinking thinking, const std::string& where,
                              const std::string& system_prompt) {
  CalibrationSample s;
  s.id = row.id;
  try {
    s.tokens = calibration_prompt_ids(task, row, tok, chat, thinking, system_prompt);
  } catch (const UsageError& e) {
    throw UsageError(cat(where, ": ", e.what()));
  }
  s.prompt_len = static_cast<int>(s.tokens.size());
  const char* field = task == Task::Gsm8k ? "answer" : "Rationale";
  auto it = row.value.find(field);
  if (it == row.value.end() || !it->is_string())
    throw UsageError(cat(where, ": gold calibration needs the string field \"", field, "\""));
  const auto response = tok.encode(it->get<std::string>());
  s.tokens.insert(s.tokens.end(), response.begin(), response.end());
  if (tok.eos_ids().empty())
    throw ConfigError("the tokenizer defines no eos token to end gold responses");
  s.tokens.push_back(tok.eos_ids().front());
  return s;
}

CalibrationSample text_sample(const DatasetRow& row, const Tokenizer& tok,
                              const std::string& where) {
  auto it = row.value.find("text");
  if (it == row.value.end() || !it->is_string())
    throw UsageError(cat(where, ": text calibration needs a string field \"text\""));
  CalibrationSample s;
  s.id = row.id;
  s.tokens = tok.encode(it->get<std::string>(), true);
  s.prompt_len = 0;
  return s;
}

}  // namespace resp
