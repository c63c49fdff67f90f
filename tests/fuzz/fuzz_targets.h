// Fuzz targets: one per reader of untrusted input. Each takes raw bytes, puts them where its
// reader expects them (a file in a scratch directory, with fixed valid companion files, or the
// bytes themselves for readers that take text), runs the reader and what consumes its result,
// and catches resp::Error: the typed rejection a malformed input must end in. Anything else (a
// crash, a sanitizer report, std::bad_alloc, a foreign exception) escapes and is a finding.
//
// The signature is libFuzzer's; the return value is 0 when the reader accepted the input and 1
// when it rejected it with a resp::Error (libFuzzer ignores it; the seeded driver counts it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace resp::fuzz {

int fuzz_safetensors(const uint8_t* data, size_t size);        // model.safetensors
int fuzz_safetensors_index(const uint8_t* data, size_t size);  // model.safetensors.index.json
int fuzz_model_config(const uint8_t* data, size_t size);       // config.json
int fuzz_generation_config(const uint8_t* data, size_t size);  // generation_config.json
int fuzz_tokenizer_json(const uint8_t* data, size_t size);     // tokenizer.json
int fuzz_tokenizer_config(const uint8_t* data, size_t size);   // tokenizer_config.json
int fuzz_chat_template(const uint8_t* data, size_t size);      // a Jinja chat template
int fuzz_prune_config(const uint8_t* data, size_t size);       // resp prune YAML
int fuzz_train_config(const uint8_t* data, size_t size);       // resp train YAML
int fuzz_jsonl(const uint8_t* data, size_t size);              // JSONL traces / prompts
int fuzz_run_checkpoint(const uint8_t* data, size_t size);     // iter_NNNN.h5, JSON-described
int fuzz_scores_h5(const uint8_t* data, size_t size);          // scores .h5, JSON-described
int fuzz_gguf(const uint8_t* data, size_t size);               // GGUF file + HF conversion
int fuzz_hdf5_bytes(const uint8_t* data, size_t size);         // raw bytes of a checkpoint

struct Target {
  const char* name;  // also the corpus folder: tests/fuzz/corpus/<name>/
  int (*run)(const uint8_t* data, size_t size);
  // Tokens the mutator splices in (syntax of the format; may be empty).
  std::vector<std::string> dictionary;
  // In the ctest suite. False for a target whose findings are a third party's (libhdf5).
  bool in_suite = true;
};

const std::vector<Target>& targets();
const Target* find_target(const std::string& name);

// The targets' scratch directory (created on first use, removed at exit). Fixed companion files
// come from the repository (RESP_SOURCE_DIR).
const std::filesystem::path& scratch_dir();
// The message of the last resp::Error a target caught (why the last rejected input was).
const std::string& last_rejection();

}  // namespace resp::fuzz
