#include "app/calibration_input.h"

#include <optional>
#include "app/jsonl.h"
#include "core/error.h"
#include "driver/calibration_sources.h"
#include "generate/tasks.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace resp::app {

namespace {

void check_vocab(const CalibrationSample& s, const ModelConfig& c, const std::string& where) {
  for (int32_t id : s.tokens)
    if (id < 0 || id >= c.vocab_size)
      throw UsageError(
          cat(where, ": token id ", id, " outside the vocabulary [0, ", c.vocab_size, ")"));
  if (static_cast<int64_t>(s.tokens.size()) > c.max_position_embeddings)
    throw UsageError(cat(where, ": ", s.tokens.size(), " tokens exceed max_position_embeddings ",
                         c.max_position_embeddings));
}

std::string id_of(const JsonlRecord& r, size_t index) {
  auto it = r.value.find("id");
  if (it == r.value.end()) return std::to_string(index);
  return it->is_string() ? it->get<std::string>() : it->dump();
}

}  // namespace

std::vector<CalibrationSample> load_calibration(const CalibrationInput& in,
                                                const ModelConfig& config) {
  const auto records = read_jsonl(in.path, in.limit, "calibration records");
  std::vector<CalibrationSample> out;
  out.reserve(records.size());

  if (in.source == "self") {
    for (size_t i = 0; i < records.size(); ++i) {
      const JsonlRecord& r = records[i];
      const std::string where = cat(in.path, ":", r.line);
      CalibrationSample s;
      s.id = id_of(r, i);
      if (r.value.contains("prompt_tokens")) {
        s.tokens = token_list(r, "prompt_tokens");
        s.prompt_len = static_cast<int>(s.tokens.size());
        const auto outp = token_list(r, "output_tokens");
        s.tokens.insert(s.tokens.end(), outp.begin(), outp.end());
      } else if (r.value.contains("tokens")) {
        s.tokens = token_list(r, "tokens");
        const auto pl = r.value.find("prompt_len");
        s.prompt_len = (pl != r.value.end() && pl->is_number_integer()) ? pl->get<int>() : 0;
      } else {
        throw UsageError(cat(where, ": a trace needs \"prompt_tokens\" and \"output_tokens\""));
      }
      check_vocab(s, config, where);
      out.push_back(std::move(s));
    }
    return out;
  }

  const Tokenizer tok = Tokenizer::load(in.model_dir);
  std::optional<ChatFormat> chat;
  Task task = Task::Gsm8k;
  if (in.source == "gold") {
    task = parse_task(in.task);
    chat = ChatFormat::for_tokenizer(tok, in.chat_format, in.model_dir);
  } else if (in.source != "text") {
    throw UsageError(cat("unknown calibration source \"", in.source, "\""));
  }
  const Thinking thinking = parse_thinking_setting(in.thinking, "--thinking");
  if (chat) chat->resolve(thinking);  // thinking on without a thinking mode fails up front
  for (size_t i = 0; i < records.size(); ++i) {
    const JsonlRecord& r = records[i];
    const std::string where = cat(in.path, ":", r.line);
    DatasetRow row;
    row.id = id_of(r, i);
    row.value = r.value;
    row.line = r.line;
    CalibrationSample s =
        in.source == "gold" ? gold_sample(task, row, tok, &*chat, thinking, where, in.system_prompt)
                            : text_sample(row, tok, where);
    check_vocab(s, config, where);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace resp::app
