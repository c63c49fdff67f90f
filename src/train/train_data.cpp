#include "train/train_data.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"
#include "generate/tasks.h"

namespace resp {

namespace {

std::string string_field(const nlohmann::json& row, const char* key, const std::string& where) {
  const auto it = row.find(key);
  if (it == row.end() || !it->is_string())
    throw UsageError(cat(where, ": needs a string field \"", key, "\""));
  return it->get<std::string>();
}

}  // namespace

std::string gsm8k_thinking_response(const nlohmann::json& row) {
  std::string reasoning;
  if (const auto it = row.find("thinking"); it != row.end()) {
    if (!it->is_string()) throw UsageError("the \"thinking\" field must be a string");
    reasoning = py_strip(it->get<std::string>());
  } else {
    const std::string answer = row.at("answer").get<std::string>();
    const auto hashes = answer.rfind("####");
    reasoning = py_strip(answer.substr(0, hashes == std::string::npos ? 0 : hashes));
  }
  return "<think>\n" + reasoning + "\n</think>\n\nThe answer is " + task_gold(Task::Gsm8k, row) +
         ".";
}

TrainDataset load_train_dataset(const std::string& path, const std::string& format,
                                const Tokenizer& tok, const ChatFormat* chat, int max_length) {
  std::ifstream in(path);
  if (!in) throw IoError(cat("cannot open training data ", path));
  const bool needs_chat = format == "gsm8k-thinking" || format == "messages";
  if (needs_chat && !chat)
    throw ConfigError(cat("data.format ", format, " needs a tokenizer with a chat template"));
  const std::string& eos = tok.eos_token();
  if (format == "gsm8k-thinking" && eos.empty())
    throw ConfigError("data.format gsm8k-thinking needs an eos_token in tokenizer_config.json");

  TrainDataset out;
  std::string line;
  for (size_t lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = cat(path, ":", lineno);
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(cat(where, ": malformed JSON (", e.what(), ")"));
    }
    if (!row.is_object()) throw UsageError(cat(where, ": not a JSON object"));

    std::string prompt, response;
    if (format == "gsm8k-thinking") {
      const std::string question = string_field(row, "question", where);
      string_field(row, "answer", where);
      try {
        response = gsm8k_thinking_response(row) + eos;
      } catch (const Error& e) {
        throw UsageError(cat(where, ": ", e.what()));
      }
      prompt = chat->render({{"user", question}}, true, Thinking::On);
    } else if (format == "messages") {
      const auto it = row.find("messages");
      if (it == row.end() || !it->is_array() || it->empty())
        throw UsageError(cat(where, ": needs a non-empty \"messages\" array"));
      std::vector<ChatMessage> msgs;
      for (const auto& m : *it) {
        if (!m.is_object() || !m.contains("role") || !m.contains("content") ||
            !m["role"].is_string() || !m["content"].is_string())
          throw UsageError(cat(where, ": each message needs string \"role\" and \"content\""));
        msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
      }
      if (msgs.back().role != "assistant")
        throw UsageError(cat(where, ": the last message must be the assistant's (the response)"));
      const std::vector<ChatMessage> head(msgs.begin(), msgs.end() - 1);
      prompt = chat->render(head, true);
      const std::string full = chat->render(msgs, false);
      if (full.compare(0, prompt.size(), prompt) != 0)
        throw UsageError(cat(where,
                             ": the chat template does not render the conversation as "
                             "its prompt followed by the response"));
      response = full.substr(prompt.size());
      // Train up to the end-of-turn token, not the template's newline after it.
      const auto end = response.rfind(eos);
      if (!eos.empty() && end != std::string::npos) response.resize(end + eos.size());
    } else if (format == "prompt-completion") {
      prompt = string_field(row, "prompt", where);
      response = string_field(row, "completion", where);
    } else if (format == "text") {
      response = string_field(row, "text", where);
    } else {
      throw UsageError(cat("unknown data format \"", format, "\""));
    }

    TrainExample ex;
    ex.tokens = tok.encode(prompt);
    ex.prompt_len = static_cast<int32_t>(ex.tokens.size());
    const auto r = tok.encode(response);
    ex.tokens.insert(ex.tokens.end(), r.begin(), r.end());
    if (r.empty() || ex.tokens.size() < 2)
      throw UsageError(cat(where, ": the example has no response tokens to learn"));
    if (static_cast<int64_t>(ex.tokens.size()) > max_length) {
      ++out.skipped_too_long;
      continue;
    }
    out.examples.push_back(std::move(ex));
  }
  if (out.examples.empty())
    throw UsageError(cat(path, ": no usable training examples (", out.skipped_too_long,
                         " longer than data.max_length ", max_length, ")"));
  return out;
}

std::vector<float> loss_mask(const TrainExample& e, bool all_tokens) {
  const size_t T = e.tokens.size();
  std::vector<float> w(T > 0 ? T - 1 : 0, 0.0f);
  for (size_t t = 0; t + 1 < T; ++t)
    if (all_tokens || static_cast<int64_t>(t) + 1 >= e.prompt_len) w[t] = 1.0f;
  return w;
}

std::vector<int64_t> epoch_permutation(int64_t size, uint64_t seed, int64_t epoch) {
  if (size <= 0) throw UsageError("epoch_permutation: empty dataset");
  std::vector<int64_t> perm(static_cast<size_t>(size));
  std::iota(perm.begin(), perm.end(), int64_t{0});
  for (int64_t i = size - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(
        random_u64(seed, 0x7a11, static_cast<uint64_t>(epoch), static_cast<uint64_t>(i)) %
        static_cast<uint64_t>(i + 1));
    std::swap(perm[static_cast<size_t>(i)], perm[static_cast<size_t>(j)]);
  }
  return perm;
}

}  // namespace resp
