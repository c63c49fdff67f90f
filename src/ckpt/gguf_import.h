// Conversion of a GGUF checkpoint (llama.cpp) to a Hugging Face model directory that resp and
// transformers load: config.json, model.safetensors, tokenizer.json, tokenizer_config.json and
// generation_config.json. Supported: GGUF architectures llama, qwen2 and qwen3 with a byte-level
// BPE ("gpt2") tokenizer. Weights are dequantized exactly as ggml's reference does
// (model/ggml_quants.h) and written as f32 (default: every dequantized value is exactly
// representable) or bf16 (half the size, rounded). llama.cpp stores the llama architecture's
// q_proj / k_proj rows permuted for its interleaved RoPE; the import undoes that permutation as
// transformers' GGUF loader does. Details and the choices made: docs/gguf.md.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/safetensors_writer.h"
#include "core/dtype.h"
#include "model/gguf_file.h"

namespace resp {

struct GgufImportOptions {
  DType dtype = DType::F32;  // F32 or BF16
};

struct GgufImportSummary {
  std::string architecture;  // GGUF general.architecture
  std::string name;          // general.name (may be empty)
  size_t tensors = 0;
  size_t bytes = 0;                       // of the written tensors
  bool tokenizer = false;                 // tokenizer files written
  std::vector<std::string> tensor_types;  // "Q4_1 x210", ...
};

// The pieces, each checked against the file (FormatError / UnsupportedError naming it).
// config.json for the file's architecture.
nlohmann::ordered_json gguf_hf_config(const GgufFile& f, DType dtype);
// HF-named tensors in HF layout, filled by dequantizing from the mapped file (which must
// outlive the entries).
std::vector<TensorEntry> gguf_hf_tensors(const GgufFile& f, DType dtype);
// Whether the file carries a tokenizer (tokenizer.ggml.model).
bool gguf_has_tokenizer(const GgufFile& f);
// tokenizer.json text (its vocabulary is written in id order, by hand).
std::string gguf_tokenizer_json(const GgufFile& f);
nlohmann::ordered_json gguf_tokenizer_config(const GgufFile& f);
nlohmann::ordered_json gguf_generation_config(const GgufFile& f);

// Writes the model directory `out_dir` atomically (OUT.tmp, then rename). Throws UsageError
// when out_dir exists and is not an empty directory (nothing is overwritten).
GgufImportSummary import_gguf(const std::filesystem::path& gguf_path,
                              const std::filesystem::path& out_dir,
                              const GgufImportOptions& options = {});

}  // namespace resp
