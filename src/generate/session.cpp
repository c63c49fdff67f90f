#include "generate/session.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "model/model_shard.h"

namespace resp {

Thinking parse_thinking(const std::string& s) {
  return parse_thinking_setting(s, "--thinking");
}

GenerationSession::GenerationSession(const std::filesystem::path& model_dir,
                                     const GenerationFlags& flags, int default_max_new_tokens)
    : dir_(model_dir),
      flags_(flags),
      config_(load_model_config(model_dir)),
      tokenizer_(Tokenizer::load(model_dir)) {
  parse_thinking(flags_.thinking);
  if (flags_.batch_size < 1)
    throw UsageError(cat("--batch-size must be >= 1, got ", flags_.batch_size));
  if (flags_.max_context < 0)
    throw UsageError(cat("--max-context must be >= 0, got ", flags_.max_context));
  gen_ = GenerationConfig::for_model(model_dir, config_);
  flags_.sampling.apply(gen_.sampling);
  gen_.max_new_tokens = flags_.max_new_tokens.value_or(default_max_new_tokens);
  gen_.seed = flags_.seed;
  gen_.stop = flags_.stop;
  gen_.validate();
}

int GenerationSession::context() const {
  const int model_ctx = config_.max_position_embeddings;
  return flags_.max_context > 0 ? std::min(flags_.max_context, model_ctx) : model_ctx;
}

const ChatFormat& GenerationSession::chat() const {
  if (!chat_)
    chat_.emplace(ChatFormat::for_tokenizer(tokenizer_, flags_.chat_format, dir_.string()));
  return *chat_;
}

ChatOptions GenerationSession::chat_options() const {
  ChatOptions o;
  o.add_generation_prompt = true;
  o.thinking = parse_thinking(flags_.thinking);
  o.system_prompt = flags_.system_prompt;
  return o;
}

bool GenerationSession::thinking_output(bool chat_mode) const {
  return chat_mode && chat().thinks(parse_thinking(flags_.thinking));
}

std::vector<int32_t> GenerationSession::encode(const std::string& text, bool raw) const {
  return tokenizer_.encode(text, raw);
}

std::string GenerationSession::decode(const std::vector<int32_t>& ids) const {
  const int32_t V = tokenizer_.vocab_size();
  std::vector<int32_t> known;
  known.reserve(ids.size());
  for (const int32_t id : ids)
    if (id >= 0 && id < V && !tokenizer_.token(id).empty()) known.push_back(id);
  return tokenizer_.decode(known, /*skip_special=*/true);
}

void GenerationSession::check_prompt(const std::vector<int32_t>& ids,
                                     const std::string& where) const {
  if (ids.empty()) throw UsageError(cat(where, ": empty prompt"));
  for (const int32_t id : ids)
    if (id < 0 || id >= config_.vocab_size)
      throw UsageError(cat(where, ": token id ", id, " outside the model's vocabulary [0, ",
                           config_.vocab_size, ")"));
  if (static_cast<int64_t>(ids.size()) >= context())
    throw UsageError(cat(where, ": prompt of ", ids.size(),
                         " tokens is too long for the context of ", context(),
                         " tokens (prompt + generated; max_position_embeddings ",
                         config_.max_position_embeddings, ")"));
}

void GenerationSession::load(Backend& backend, Communicator& tp) {
  Stopwatch t;
  weights_ = std::make_unique<ModelWeights>(load_model_shard(dir_, config_, tp, backend));
  decoder_ = std::make_unique<Decoder>(*weights_, backend, tp);
  GeneratorOptions go;
  go.slots = flags_.batch_size;
  go.max_prefill_tokens = flags_.max_prefill_tokens;
  go.max_context = flags_.max_context;
  generator_ = std::make_unique<Generator>(*weights_, *decoder_, tp, gen_, go, &tokenizer_);
  log_info("loaded ", arch_name(config_.arch), " (", config_.parameter_count() / 1e6, "M params, ",
           config_.num_layers, " layers) from ", dir_.string(), " in ", t.seconds(), " s");
}

Generator& GenerationSession::generator() {
  if (!generator_) throw Error("GenerationSession: load() the model first");
  return *generator_;
}

}  // namespace resp
