// Run checkpoints of `resp prune`: one HDF5 file per completed iteration, RUN/iter_NNNN.h5,
// written atomically (iter_NNNN.h5.tmp, close, rename) and then named in RUN/latest.
// A checkpoint holds everything a resumed run needs to continue exactly as an uninterrupted
// one, in global terms (kept ids in original numbering), so any TP/DP layout can resume it:
//   attrs      format="resp-run", schema_version, iteration, config (YAML), model, seed,
//              regen_round, regen_pending, layout_tp, layout_dp, history (JSON)
//   /plan/layers/NNNN/{heads,channels}                     int32, kept original ids
//   /scores/layers/NNNN/{heads,channels,head_ids,channel_ids}  the scores used at this iteration
//   /traces/{tokens,offsets,prompt_lengths,finish}  concatenated prompt+output ids; ids (JSON attr)
// Weights are not stored: no fine-tuning happens, so the original checkpoint + the plan define
// the pruned model exactly (export writes the weights).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "importance/criterion.h"
#include "prune/plan.h"

namespace resp {

constexpr int kRunSchemaVersion = 1;

struct TraceRecord {
  std::string id;
  std::vector<int32_t> prompt;
  std::vector<int32_t> output;
  std::string finish;  // eos | length | stop | gold | text
};

struct IterationRecord {
  int iteration = 0;
  double ratio = 0;
  double sparsity = 0;
  int64_t heads_kept = 0, channels_kept = 0, kv_heads_kept = 0;
  bool regenerated = false;       // traces regenerated before this iteration's importance
  double mean_output_tokens = 0;  // of the traces used at this iteration
  double truncated = 0;           // fraction of those traces that hit max_new_tokens
  double mean_loss = 0;
  double t_generate = 0, t_importance = 0, t_prune = 0, t_checkpoint = 0;
  double checkpoint_mb = 0;
};

struct RunState {
  int iteration = -1;  // last completed iteration
  std::string config_yaml;
  std::string model;
  uint64_t seed = 0;
  int regen_round = 0;         // how many times traces were (re)generated
  bool regen_pending = false;  // a milestone was crossed: regenerate before the next importance
  int layout_tp = 1, layout_dp = 1;
  PrunePlan plan;
  ImportanceScores scores;
  std::vector<TraceRecord> traces;
  std::vector<IterationRecord> history;
};

std::filesystem::path checkpoint_path(const std::filesystem::path& run_dir, int iteration);
// Writes iter_NNNN.h5 atomically and then updates RUN/latest (also atomically).
void write_run_checkpoint(const std::filesystem::path& run_dir, const RunState& state);
// Reads and validates one checkpoint; FormatError naming the file on any inconsistency.
RunState read_run_checkpoint(const std::filesystem::path& path);
// The newest complete checkpoint: the one `latest` names if it opens, else the highest
// iter_NNNN.h5 that does (a crash between rename and `latest` loses nothing). Leftover .tmp
// files are ignored. nullopt when there is none.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& run_dir);
// All complete checkpoints in iteration order.
std::vector<std::filesystem::path> list_checkpoints(const std::filesystem::path& run_dir);

}  // namespace resp
