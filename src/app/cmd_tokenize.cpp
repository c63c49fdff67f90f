// `resp tokenize` and `resp detokenize`: text (or chat messages) <-> token ids with the model's
// own tokenizer.json, exactly as Hugging Face tokenizers / apply_chat_template produce them.
//
//   resp tokenize --model DIR (--text S | --input FILE.jsonl) [--chat] [--thinking auto|on|off]
//                 [--system TEXT] [--chat-format qwen3|qwen2.5|deepseek-r1|llama3]
//                 [--date "26 Jul 2024"] [--no-special-tokens]
//     Chat rendering is the model's own template (as apply_chat_template; without --thinking
//     the template's default), or a hand-written format with --chat-format.
//     --text: one line {"ids": [...]}; --input: lines {"id"?, "text"} or {"id"?, "messages"}
//     -> {"id": ..., "ids": [...]} (id = the record's, or its 0-based index).
//   resp detokenize --model DIR (--ids "1,2,3" | --input FILE.jsonl) [--skip-special]
//     -> {"text": ...} / {"id": ..., "text": ...}
#include <CLI/CLI.hpp>
#include <iostream>
#include <optional>

#include "app/commands.h"
#include "app/jsonl.h"
#include "core/error.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"

namespace resp::app {

namespace {

using ojson = nlohmann::ordered_json;

struct TokenizeOptions {
  std::string model, text, input, thinking, chat_format, date, system_prompt;
  bool has_text = false, has_input = false;
  bool chat = false;
  bool no_special = false;
};

struct DetokenizeOptions {
  std::string model, ids, input;
  bool has_ids = false, has_input = false;
  bool skip_special = false;
};

void print_line(const ojson& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

std::vector<ChatMessage> parse_messages(const nlohmann::json& arr, const std::string& where) {
  if (!arr.is_array() || arr.empty())
    throw UsageError(cat(where, ": \"messages\" must be a non-empty list"));
  std::vector<ChatMessage> m;
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto& x = arr[i];
    if (!x.is_object() || !x.contains("role") || !x["role"].is_string() || !x.contains("content") ||
        !x["content"].is_string())
      throw UsageError(
          cat(where, ": messages[", i, "] must be {\"role\": string, \"content\": string}"));
    for (const char* unsupported : {"tool_calls", "reasoning_content"})
      if (x.contains(unsupported))
        throw UsageError(cat(where, ": messages[", i, "]: \"", unsupported,
                             "\" is not supported by the chat formats"));
    m.push_back({x["role"].get<std::string>(), x["content"].get<std::string>()});
  }
  return m;
}

class Tokenize {
 public:
  explicit Tokenize(const TokenizeOptions& o) : o_(o), tok_(Tokenizer::load(o.model)) {
    // Without --thinking the template's own default, as apply_chat_template without kwargs.
    if (!o.thinking.empty()) chat_opts_.thinking = parse_thinking_setting(o.thinking);
    if (!o.date.empty()) chat_opts_.date_string = o.date;
    chat_opts_.system_prompt = o.system_prompt;
  }

  std::vector<int32_t> text(const std::string& s) const {
    if (!o_.chat) return tok_.encode(s, !o_.no_special);
    return chat({{"user", s}}, true);
  }

  std::vector<int32_t> chat(const std::vector<ChatMessage>& m, bool gen_prompt) const {
    if (!format_) format_.emplace(ChatFormat::for_tokenizer(tok_, o_.chat_format, o_.model));
    ChatOptions co = chat_opts_;
    co.add_generation_prompt = gen_prompt;
    // The rendered text carries its own BOS (where the template has one), as with
    // apply_chat_template(tokenize=True).
    return tok_.encode(format_->render(m, co), false);
  }

 private:
  const TokenizeOptions& o_;
  Tokenizer tok_;
  ChatOptions chat_opts_;
  mutable std::optional<ChatFormat> format_;
};

int run_tokenize(const TokenizeOptions& o) {
  if (o.has_text == o.has_input)
    throw UsageError("tokenize: give exactly one of --text and --input");
  const bool text_mode = o.has_text;
  if (text_mode && !o.chat &&
      (!o.thinking.empty() || !o.chat_format.empty() || !o.date.empty() ||
       !o.system_prompt.empty()))
    throw UsageError("tokenize: --thinking, --system, --chat-format and --date need --chat");
  const Tokenize t(o);
  if (text_mode) {
    print_line(ojson{{"ids", t.text(o.text)}});
    return 0;
  }
  const auto records = read_jsonl(o.input);
  std::vector<ojson> out;
  out.reserve(records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    const JsonlRecord& r = records[i];
    const std::string where = cat(o.input, ":", r.line);
    const auto& v = r.value;
    const bool has_text = v.contains("text"), has_messages = v.contains("messages");
    if (has_text == has_messages)
      throw UsageError(cat(where, ": expected exactly one of \"text\" and \"messages\""));
    std::vector<int32_t> ids;
    try {
      if (has_text) {
        if (!v["text"].is_string()) throw UsageError(cat(where, ": \"text\" must be a string"));
        ids = t.text(v["text"].get<std::string>());
      } else {
        bool gen = true;
        if (v.contains("add_generation_prompt")) {
          if (!v["add_generation_prompt"].is_boolean())
            throw UsageError(cat(where, ": \"add_generation_prompt\" must be a boolean"));
          gen = v["add_generation_prompt"].get<bool>();
        }
        ids = t.chat(parse_messages(v["messages"], where), gen);
      }
    } catch (const UsageError& e) {
      const std::string msg = e.what();
      if (msg.rfind(where, 0) == 0) throw;
      throw UsageError(cat(where, ": ", msg));
    }
    ojson line;
    line["id"] = v.contains("id") ? ojson(v["id"]) : ojson(i);
    line["ids"] = std::move(ids);
    out.push_back(std::move(line));
  }
  for (const auto& line : out) print_line(line);
  std::cout.flush();
  return 0;
}

std::vector<int32_t> parse_id_list(const std::string& s) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t e = s.find(',', pos);
    if (e == std::string::npos) e = s.size();
    std::string item = s.substr(pos, e - pos);
    const size_t b = item.find_first_not_of(" \t");
    const size_t l = item.find_last_not_of(" \t");
    item = b == std::string::npos ? "" : item.substr(b, l - b + 1);
    if (item.empty() && e == s.size() && pos > 0) break;  // trailing comma
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || v < 0 || v > INT32_MAX)
      throw UsageError(cat("--ids: '", item, "' is not a token id (expected e.g. \"1,2,3\")"));
    ids.push_back(static_cast<int32_t>(v));
    pos = e + 1;
  }
  return ids;
}

int run_detokenize(const DetokenizeOptions& o) {
  if (o.has_ids == o.has_input)
    throw UsageError("detokenize: give exactly one of --ids and --input");
  const Tokenizer tok = Tokenizer::load(o.model);
  if (o.has_ids) {
    print_line(ojson{{"text", tok.decode(parse_id_list(o.ids), o.skip_special)}});
    return 0;
  }
  const auto records = read_jsonl(o.input);
  std::vector<ojson> out;
  for (size_t i = 0; i < records.size(); ++i) {
    const JsonlRecord& r = records[i];
    const std::string where = cat(o.input, ":", r.line);
    ojson line;
    line["id"] = r.value.contains("id") ? ojson(r.value["id"]) : ojson(i);
    try {
      line["text"] = tok.decode(token_list(r, "ids"), o.skip_special);
    } catch (const UsageError& e) {
      const std::string msg = e.what();
      if (msg.rfind(where, 0) == 0) throw;
      throw UsageError(cat(where, ": ", msg));
    }
    out.push_back(std::move(line));
  }
  for (const auto& line : out) print_line(line);
  std::cout.flush();
  return 0;
}

}  // namespace

void register_tokenize(CLI::App& root, Action* selected) {
  auto to = std::make_shared<TokenizeOptions>();
  CLI::App* tk = root.add_subcommand(
      "tokenize", "Text or chat messages -> token ids (JSON lines), exact to Hugging Face");
  tk->add_option("--model", to->model, "Model directory with tokenizer.json")->required();
  auto* text = tk->add_option("--text", to->text, "Text to tokenize");
  auto* input = tk->add_option("--input", to->input,
                               "JSONL file: {\"id\"?, \"text\"} or {\"id\"?, \"messages\": [...]}");
  text->excludes(input);
  tk->add_flag("--chat", to->chat,
               "Render --text (or each \"text\") as one user turn with the chat template and "
               "the generation prompt");
  tk->add_option("--thinking", to->thinking,
                 "Thinking mode of the chat template: auto | on | off (default: the template's)")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  tk->add_option("--system", to->system_prompt,
                 "System prompt: a leading system message in each chat rendering");
  tk->add_option("--chat-format", to->chat_format,
                 "Hand-written chat format instead of the model's own chat template")
      ->check(CLI::IsMember({"qwen3", "qwen2.5", "deepseek-r1", "llama3"}));
  tk->add_option("--date", to->date,
                 "Date the template sees (date_string, strftime_now; Llama-3's 'Today Date'); "
                 "default 26 Jul 2024");
  tk->add_flag("--no-special-tokens", to->no_special,
               "Plain text: do not add the tokenizer's special tokens (Llama-3's BOS)");
  tk->callback([to, selected, text, input] {
    to->has_text = text->count() > 0;
    to->has_input = input->count() > 0;
    *selected = [to] { return run_tokenize(*to); };
  });

  auto dopt = std::make_shared<DetokenizeOptions>();
  CLI::App* dt = root.add_subcommand("detokenize", "Token ids -> text (JSON lines)");
  dt->add_option("--model", dopt->model, "Model directory with tokenizer.json")->required();
  auto* ids = dt->add_option("--ids", dopt->ids, "Comma-separated token ids, e.g. \"1,2,3\"");
  auto* din = dt->add_option("--input", dopt->input, "JSONL file: {\"id\"?, \"ids\": [...]}");
  ids->excludes(din);
  dt->add_flag("--skip-special", dopt->skip_special, "Leave out special tokens");
  dt->callback([dopt, selected, ids, din] {
    dopt->has_ids = ids->count() > 0;
    dopt->has_input = din->count() > 0;
    *selected = [dopt] { return run_detokenize(*dopt); };
  });
}

}  // namespace resp::app
