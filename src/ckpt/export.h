// Export of a pruned model as a Hugging Face checkpoint directory that stock tools can load:
//   masked   original shapes and config; pruned heads' q_proj rows (and biases) and o_proj
//            columns, pruned channels' gate/up rows and down_proj columns are zero. Always
//            loadable by transformers / vLLM; no speed-up.
//   compact  a standard config with smaller num_attention_heads / num_key_value_heads /
//            intermediate_size; only when every layer keeps the same numbers and each kept KV
//            head serves the same number of query heads (GQA-aligned). Otherwise an error
//            that says why.
//   hetero   physically smaller per-layer shapes; config.json gains "resp_pruning": {"layers":
//            [{"heads": [...], "kv_heads": [...], "channels": [...]}, ...]} (original ids),
//            which resp loads (docs/checkpoint-format.md), and an "auto_map" naming the
//            modeling_resp_pruned.py / configuration_resp_pruned.py written next to the weights
//            (src/ckpt/python), so transformers loads it with trust_remote_code=True.
// Tensors keep the source dtype (bf16 stays bf16; rows are copied as raw bytes). Tokenizer and
// generation files are copied. The output directory is written atomically (OUT.tmp, rename).
#pragma once

#include <filesystem>
#include <string>

#include "model/model_config.h"
#include "prune/plan.h"

namespace resp {

enum class ExportFormat { Masked, Compact, Hetero };
ExportFormat parse_export_format(const std::string& s);  // UsageError listing the choices
std::string export_format_name(ExportFormat f);

// Empty when `plan` can be exported as `compact`, else the reason (one sentence).
std::string compact_incompatibility(const ModelConfig& dense, const PrunePlan& plan);

// `source_dir` holds the dense checkpoint whose config is `dense`. Throws UsageError when
// `out_dir` exists and is not empty (nothing is overwritten), ConfigError for compact when
// compact_incompatibility() is not empty.
void export_model(const std::filesystem::path& source_dir, const ModelConfig& dense,
                  const PrunePlan& plan, ExportFormat format, const std::filesystem::path& out_dir);

}  // namespace resp
