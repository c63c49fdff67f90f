// Generator: continuous batching over a fixed number of KV-cache slots.
//
// Every step is ONE Decoder::forward_cached call holding, for each busy slot, either its next
// decode token or a piece of its prompt (prefill), so new prompts are prefilled in the same pass
// as the other slots' decode step. A slot whose sequence finishes (EOS id, stop string, max new
// tokens, or the context is full) is refilled with the next prompt at the next step, so long-tail
// traces do not idle the batch. Long prompts are prefilled in pieces of at most
// `max_prefill_tokens` tokens per step (bounded activation memory).
//
// Determinism: token t of prompt p is drawn with u = uniform(seed, prompt_key(p.id), t), so the
// output depends only on the prompt, its id and the seed, never on batch size, slot or order
// (up to the floating-point rounding of batched GEMMs, which in practice never changes a token).
//
// Tensor parallelism: all ranks of a TP group call generate() with the same requests and run the
// same steps; tp rank 0 samples and broadcasts the tokens over the TP communicator, so every rank
// holds the same tokens bit for bit and takes the same control decisions.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "generate/generation_config.h"
#include "generate/progress.h"
#include "model/decoder.h"
#include "model/model_weights.h"

namespace resp {

class Tokenizer;

enum class FinishReason { Eos, Length, Stop };
const char* finish_reason_name(FinishReason r);  // "eos", "length", "stop"
FinishReason parse_finish_reason(std::string_view s);

struct GenerationRequest {
  std::string id;  // keys the sampling RNG (prompt_key(id))
  std::vector<int32_t> prompt;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated ids (the EOS id included when one ended it)
  FinishReason finish = FinishReason::Length;
  std::string stop;  // the stop string that ended it (finish == Stop)
};

struct GeneratorOptions {
  int slots = 8;                  // sequences decoded together (--batch-size)
  int max_prefill_tokens = 2048;  // prompt tokens prefilled per step, over all slots
  // Context limit of a sequence (prompt + output); 0: the model's max_position_embeddings.
  int max_context = 0;
};

struct GenerationStats {
  int64_t sequences = 0;
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;
  int64_t steps = 0;
  double seconds = 0.0;
  // Steps that carried prompt tokens vs steps that only decoded, and their time.
  int64_t prefill_steps = 0, decode_steps = 0;
  double prefill_seconds = 0.0, decode_seconds = 0.0;
  int64_t decode_only_tokens = 0;  // tokens generated in decode-only steps
};

class Generator {
 public:
  using ProgressFn = std::function<void(const GenerationProgress&)>;

  // `tokenizer` is needed only for stop strings (may be null otherwise). All references must
  // outlive the generator.
  Generator(const ModelWeights& weights, Decoder& decoder, Communicator& tp,
            GenerationConfig config, GeneratorOptions options,
            const Tokenizer* tokenizer = nullptr);

  const GenerationConfig& config() const { return config_; }
  const GeneratorOptions& options() const { return opts_; }
  // The context limit of one sequence (prompt + generated tokens).
  int context() const { return context_; }

  // Checks a prompt: non-empty, ids in the vocabulary, shorter than the context. Throws
  // UsageError starting with `where` (e.g. "prompts.jsonl:3").
  void check_prompt(std::span<const int32_t> prompt, const std::string& where) const;

  // Generates a continuation for every request; results in request order. Collective over the
  // TP communicator. `progress` (may be empty) is called after every step.
  std::vector<GenerationResult> generate(std::span<const GenerationRequest> requests,
                                         const ProgressFn& progress = {});

  // Counters of the last generate() call.
  const GenerationStats& stats() const { return stats_; }

 private:
  const ModelWeights& weights_;
  Decoder& decoder_;
  Communicator& tp_;
  GenerationConfig config_;
  GeneratorOptions opts_;
  const Tokenizer* tokenizer_;
  int context_;
  GenerationStats stats_;
};

}  // namespace resp
