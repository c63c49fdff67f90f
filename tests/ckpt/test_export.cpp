// `resp export`: pruned models written as masked / compact / hetero Hugging Face checkpoints
// load back into the engine and give the log-probs of the pruned model built directly from the
// original checkpoint; the safetensors writer's format, sharding and atomicity; the CLI's
// iteration selection. tools/check_export_torch.py checks masked/compact with the independent
// PyTorch reference (it calls ExportFixtures.Write below to produce the exports).
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>

#include "app/commands.h"
#include "backend/backend.h"
#include "ckpt/export.h"
#include "ckpt/hetero_python.h"
#include "ckpt/run_checkpoint.h"
#include "ckpt/safetensors_writer.h"
#include "comm/communicator.h"
#include "core/error.h"
#include "model/decoder.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "model/safetensors.h"
#include "model/shard_plan.h"
#include "prune/plan.h"
#include "test_util.h"

namespace resp::app {
void register_export(CLI::App& root, Action* selected);  // src/app/cmd_export.cpp
}

using namespace resp;
using namespace resp::test;

namespace {

using Seqs = std::vector<std::vector<int32_t>>;

Seqs fixture_inputs(const fs::path& dir) {
  Seqs v;
  for (const auto& j : parse_jsonl(read_text(dir / "input.jsonl")))
    v.push_back(j["tokens"].get<std::vector<int32_t>>());
  return v;
}

std::vector<std::vector<double>> engine_logprobs(const fs::path& dir, const ModelConfig& c,
                                                 FileNumbering numbering, const Seqs& seqs) {
  auto backend = make_cpu_backend(0);
  const ModelWeights w = load_weights(dir, c, make_shard_plan(c, 1, 0), *backend, numbering);
  SelfCommunicator self;
  Decoder dec(w, *backend, self);
  std::vector<std::vector<double>> out;
  for (const auto& s : seqs) out.push_back(dec.sequence_logprobs(s));
  return out;
}

bool same_plan(const PrunePlan& a, const PrunePlan& b) {
  if (a.size() != b.size()) return false;
  for (size_t l = 0; l < a.size(); ++l)
    if (a[l].heads != b[l].heads || a[l].channels != b[l].channels) return false;
  return true;
}

double max_diff(const std::vector<std::vector<double>>& a,
                const std::vector<std::vector<double>>& b) {
  EXPECT_EQ(a.size(), b.size());
  double d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    EXPECT_EQ(a[i].size(), b[i].size());
    for (size_t t = 0; t < std::min(a[i].size(), b[i].size()); ++t)
      d = std::max(d, std::fabs(a[i][t] - b[i][t]));
  }
  return d;
}

// k sorted ids from [0, n), deterministic in `seed`.
std::vector<int> pick(int n, int k, uint32_t seed) {
  std::vector<int> all(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) all[static_cast<size_t>(i)] = i;
  std::mt19937 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(static_cast<size_t>(k));
  std::sort(all.begin(), all.end());
  return all;
}

// Irregular: every layer keeps its own number of heads (some KV heads dropped entirely in one
// layer) and channels.
PrunePlan irregular_plan(const ModelConfig& d) {
  PrunePlan p(static_cast<size_t>(d.num_layers));
  const int g = d.group_size();
  for (int l = 0; l < d.num_layers; ++l) {
    auto& L = p[static_cast<size_t>(l)];
    if (l % 3 == 0) {
      L.heads = pick(d.num_heads, std::max(1, d.num_heads / 2), 11u + static_cast<uint32_t>(l));
    } else if (l % 3 == 1) {
      // Only the last KV group's heads, minus one when the group is larger than one.
      for (int h = d.num_heads - g; h < d.num_heads; ++h) L.heads.push_back(h);
      if (g > 1) L.heads.erase(L.heads.begin());
    } else {
      L.heads = pick(d.num_heads, d.num_heads - 1, 7u + static_cast<uint32_t>(l));
    }
    const int keep = d.intermediate_size - 13 * (l + 1);
    L.channels = pick(d.intermediate_size, keep, 100u + static_cast<uint32_t>(l));
  }
  return p;
}

// Uniform and GQA-aligned: every layer keeps the same number of KV heads, each serving the same
// number of query heads, and the same number of channels (different ids per layer).
PrunePlan compact_plan(const ModelConfig& d) {
  PrunePlan p(static_cast<size_t>(d.num_layers));
  const int g = d.group_size();
  const int kv_keep = d.num_kv_heads > 1 ? d.num_kv_heads - 1 : 1;
  const int per_kv = g > 1 ? g - 1 : 1;
  for (int l = 0; l < d.num_layers; ++l) {
    auto& L = p[static_cast<size_t>(l)];
    for (int kv : pick(d.num_kv_heads, kv_keep, 31u + static_cast<uint32_t>(l)))
      for (int i : pick(g, per_kv, 57u + static_cast<uint32_t>(l * 10 + kv)))
        L.heads.push_back(kv * g + i);
    L.channels =
        pick(d.intermediate_size, d.intermediate_size * 3 / 5, 200u + static_cast<uint32_t>(l));
  }
  return p;
}

const char* const kFixtures[] = {"qwen3-f32", "qwen2-sharded-f32", "llama31-bf16", "llama-mqa-f32"};

// Exports `plan` in `format` and compares the engine's log-probs on the export with the pruned
// model materialised directly from the original checkpoint.
double export_vs_direct(const std::string& fixture, const PrunePlan& plan, ExportFormat format,
                        const fs::path& out) {
  const fs::path src = fixture_models() / fixture;
  const ModelConfig dense = load_model_config(src);
  const Seqs seqs = fixture_inputs(src);
  export_model(src, dense, plan, format, out);
  const ModelConfig pruned = apply_plan(dense, plan);
  const auto direct = engine_logprobs(src, pruned, FileNumbering::Original, seqs);
  const ModelConfig exported = load_model_config(out);
  const auto got = engine_logprobs(out, exported, FileNumbering::Kept, seqs);
  return max_diff(direct, got);
}

constexpr double kTol = 1e-5;

class ExportFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(ExportFixture, MaskedMatchesPrunedModel) {
  TempDir tmp;
  const ModelConfig dense = load_model_config(fixture_models() / GetParam());
  const PrunePlan plan = irregular_plan(dense);
  EXPECT_LE(export_vs_direct(GetParam(), plan, ExportFormat::Masked, tmp / "out"), kTol);
  // Original shapes, config.json byte-identical, pruned rows/columns zero.
  EXPECT_EQ(read_text(tmp / "out/config.json"),
            read_text(fixture_models() / GetParam() / "config.json"));
  EXPECT_FALSE(fs::exists(tmp / "out/modeling_resp_pruned.py"));
  const CheckpointReader src(fixture_models() / GetParam()), out(tmp / "out");
  EXPECT_EQ(src.names(), out.names());
  for (const auto& n : src.names()) EXPECT_EQ(src.info(n).shape, out.info(n).shape) << n;
  const int64_t H = dense.hidden_size, D = dense.head_dim;
  const auto& L0 = plan[0];
  std::vector<float> q(static_cast<size_t>(dense.num_heads * D * H));
  out.read("model.layers.0.self_attn.q_proj.weight", q.data());
  std::vector<float> wo(static_cast<size_t>(H * dense.num_heads * D));
  out.read("model.layers.0.self_attn.o_proj.weight", wo.data());
  for (int h = 0; h < dense.num_heads; ++h) {
    const bool kept = std::find(L0.heads.begin(), L0.heads.end(), h) != L0.heads.end();
    double qs = 0, os = 0;
    for (int64_t i = h * D * H; i < (h + 1) * D * H; ++i)
      qs += std::fabs(q[static_cast<size_t>(i)]);
    for (int64_t r = 0; r < H; ++r)
      for (int64_t c = h * D; c < (h + 1) * D; ++c)
        os += std::fabs(wo[static_cast<size_t>(r * dense.num_heads * D + c)]);
    EXPECT_EQ(qs == 0, !kept) << "head " << h;
    EXPECT_EQ(os == 0, !kept) << "head " << h;
  }
  std::vector<float> wd(static_cast<size_t>(H * dense.intermediate_size));
  out.read("model.layers.0.mlp.down_proj.weight", wd.data());
  for (int c = 0; c < dense.intermediate_size; ++c) {
    const bool kept = std::find(L0.channels.begin(), L0.channels.end(), c) != L0.channels.end();
    double s = 0;
    for (int64_t r = 0; r < H; ++r)
      s += std::fabs(wd[static_cast<size_t>(r * dense.intermediate_size + c)]);
    EXPECT_EQ(s == 0, !kept) << "channel " << c;
  }
}

TEST_P(ExportFixture, HeteroMatchesPrunedModel) {
  TempDir tmp;
  const ModelConfig dense = load_model_config(fixture_models() / GetParam());
  const PrunePlan plan = irregular_plan(dense);
  EXPECT_LE(export_vs_direct(GetParam(), plan, ExportFormat::Hetero, tmp / "out"), kTol);
  const auto j = nlohmann::json::parse(read_text(tmp / "out/config.json"));
  // Dense sizes stay; the extension lists the kept original ids.
  EXPECT_EQ(j["num_attention_heads"].get<int>(), dense.num_heads);
  EXPECT_EQ(j["intermediate_size"].get<int>(), dense.intermediate_size);
  ASSERT_TRUE(j.contains("resp_pruning"));
  // Stock transformers loads it through the Python files that auto_map names (src/ckpt/python;
  // tools/check_hetero_transformers.py runs them).
  std::string family = arch_name(dense.arch);
  family.erase(family.find("ForCausalLM"));
  EXPECT_EQ(j["auto_map"]["AutoModelForCausalLM"],
            "modeling_resp_pruned.RespPruned" + family + "ForCausalLM");
  EXPECT_EQ(j["auto_map"]["AutoConfig"],
            "configuration_resp_pruned.RespPruned" + family + "Config");
  EXPECT_EQ(read_text(tmp / "out/modeling_resp_pruned.py"), kModelingRespPrunedPy);
  EXPECT_EQ(read_text(tmp / "out/configuration_resp_pruned.py"), kConfigurationRespPrunedPy);
  EXPECT_NE(std::string(kModelingRespPrunedPy).find("class RespPruned" + family + "ForCausalLM("),
            std::string::npos);
  const ModelConfig pruned = apply_plan(dense, plan);
  for (int l = 0; l < dense.num_layers; ++l) {
    const auto& L = j["resp_pruning"]["layers"][static_cast<size_t>(l)];
    const auto& s = pruned.layers[static_cast<size_t>(l)];
    EXPECT_EQ(L["heads"].get<std::vector<int>>(), s.heads);
    EXPECT_EQ(L["kv_heads"].get<std::vector<int>>(), s.kv_heads);
    EXPECT_EQ(L["channels"].get<std::vector<int>>(), s.channels);
  }
  const CheckpointReader out(tmp / "out");
  const auto& s1 = pruned.layers[1];
  EXPECT_EQ(out.info("model.layers.1.self_attn.q_proj.weight").shape,
            (std::vector<int64_t>{s1.n_heads() * dense.head_dim, dense.hidden_size}));
  EXPECT_EQ(out.info("model.layers.1.self_attn.k_proj.weight").shape,
            (std::vector<int64_t>{s1.n_kv_heads() * dense.head_dim, dense.hidden_size}));
  EXPECT_EQ(out.info("model.layers.1.mlp.down_proj.weight").shape,
            (std::vector<int64_t>{dense.hidden_size, s1.d_ff()}));
}

TEST_P(ExportFixture, CompactMatchesPrunedModel) {
  TempDir tmp;
  const ModelConfig dense = load_model_config(fixture_models() / GetParam());
  const PrunePlan plan = compact_plan(dense);
  ASSERT_EQ(compact_incompatibility(dense, plan), "");
  EXPECT_LE(export_vs_direct(GetParam(), plan, ExportFormat::Compact, tmp / "out"), kTol);
  auto j = nlohmann::json::parse(read_text(tmp / "out/config.json"));
  const ModelConfig pruned = apply_plan(dense, plan);
  EXPECT_EQ(j["num_attention_heads"].get<int>(), pruned.layers[0].n_heads());
  EXPECT_EQ(j["num_key_value_heads"].get<int>(), pruned.layers[0].n_kv_heads());
  EXPECT_EQ(j["intermediate_size"].get<int>(), pruned.layers[0].d_ff());
  EXPECT_EQ(j["head_dim"].get<int>(), dense.head_dim);
  EXPECT_FALSE(j.contains("resp_pruning"));
  // Everything else unchanged.
  auto orig = nlohmann::json::parse(read_text(fixture_models() / GetParam() / "config.json"));
  for (const std::string k :
       {"num_attention_heads", "num_key_value_heads", "intermediate_size", "head_dim"}) {
    orig.erase(k);
    j.erase(k);
  }
  EXPECT_EQ(orig, j);
}

TEST_P(ExportFixture, UnalignedPlanIsNotCompact) {
  TempDir tmp;
  const ModelConfig dense = load_model_config(fixture_models() / GetParam());
  if (dense.num_kv_heads < 2 || dense.group_size() < 2) GTEST_SKIP() << "needs GQA with groups > 1";
  PrunePlan plan = dense_plan(dense);
  // KV head 0 serves all its query heads, KV head 1 one fewer: same count in every layer, but
  // not GQA-aligned.
  for (auto& L : plan) L.heads.erase(L.heads.begin() + dense.group_size());
  const std::string why = compact_incompatibility(dense, plan);
  EXPECT_NE(why.find("layer 0: KV head"), std::string::npos) << why;
  EXPECT_NE(why.find("GQA-aligned"), std::string::npos) << why;
  EXPECT_NE(why.find("use --format hetero"), std::string::npos) << why;
  try {
    export_model(fixture_models() / GetParam(), dense, plan, ExportFormat::Compact, tmp / "out");
    FAIL() << "compact export of an unaligned plan succeeded";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp / "out"));
  EXPECT_FALSE(fs::exists(tmp / "out.tmp"));
  // The same plan is fine as hetero.
  EXPECT_LE(export_vs_direct(GetParam(), plan, ExportFormat::Hetero, tmp / "hetero"), kTol);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, ExportFixture,
                         ::testing::Values("qwen3-f32", "qwen2-sharded-f32", "llama31-bf16",
                                           "llama-mqa-f32"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           std::string n = p.param;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

TEST(Export, CompactNeedsTheSameCountsInEveryLayer) {
  const ModelConfig dense = load_model_config(fixture_models() / "qwen3-f32");
  PrunePlan plan = dense_plan(dense);
  plan[2].heads = {0, 1, 2, 4, 5};
  EXPECT_EQ(
      compact_incompatibility(dense, plan),
      "layer 2 keeps 5 heads, layer 0 keeps 6: compact needs the same number in every layer; use "
      "--format hetero (or masked)");
  plan = dense_plan(dense);
  for (auto& L : plan) L.heads = {0, 3};  // one head of each KV group
  plan[1].heads = {0, 1};                 // two heads of KV group 0
  EXPECT_EQ(compact_incompatibility(dense, plan),
            "layer 1 keeps 1 KV heads, layer 0 keeps 2: compact needs the same number in every "
            "layer; use "
            "--format hetero (or masked)");
  plan = dense_plan(dense);
  plan[1].channels.pop_back();
  EXPECT_NE(
      compact_incompatibility(dense, plan).find("layer 1 keeps 99 MLP channels, layer 0 keeps 100"),
      std::string::npos);
  plan = dense_plan(dense);
  for (auto& L : plan) L.heads.clear();
  EXPECT_NE(compact_incompatibility(dense, plan).find("keeps no attention heads"),
            std::string::npos);
  EXPECT_EQ(compact_incompatibility(dense, dense_plan(dense)), "");
}

TEST(Export, HeteroLayerWithoutHeadsOrChannels) {
  // A layer can lose all its heads (attention contributes only o_proj's bias, none here) or
  // all its channels; hetero writes zero-size tensors for it.
  TempDir tmp;
  const ModelConfig dense = load_model_config(fixture_models() / "qwen3-f32");
  PrunePlan plan = irregular_plan(dense);
  plan[1].heads.clear();
  plan[2].channels.clear();
  EXPECT_LE(export_vs_direct("qwen3-f32", plan, ExportFormat::Hetero, tmp / "hetero"), kTol);
  EXPECT_LE(export_vs_direct("qwen3-f32", plan, ExportFormat::Masked, tmp / "masked"), kTol);
}

TEST(Export, Bf16StaysBf16AndTiedHeadStaysAbsent) {
  TempDir tmp;
  const fs::path src = fixture_models() / "llama31-bf16";
  const ModelConfig dense = load_model_config(src);
  ASSERT_TRUE(dense.tie_word_embeddings);
  for (ExportFormat f : {ExportFormat::Masked, ExportFormat::Compact, ExportFormat::Hetero}) {
    const fs::path out = tmp / export_format_name(f);
    export_model(src, dense,
                 f == ExportFormat::Compact ? compact_plan(dense) : irregular_plan(dense), f, out);
    const CheckpointReader r(out);
    EXPECT_FALSE(r.has("lm_head.weight"));
    for (const auto& n : r.names()) EXPECT_EQ(r.info(n).dtype, DType::BF16) << n;
    // The raw header says BF16 too.
    const std::string bytes = read_text(out / "model.safetensors");
    uint64_t hn = 0;
    for (int i = 7; i >= 0; --i)
      hn = (hn << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
    const auto h = nlohmann::json::parse(bytes.substr(8, hn));
    EXPECT_EQ(h["model.layers.0.self_attn.q_proj.weight"]["dtype"], "BF16");
    EXPECT_EQ(h["__metadata__"]["format"], "pt");
    EXPECT_EQ(hn % 8, 0u);
  }
}

TEST(Export, BytesAreCopiedExactly) {
  // Kept rows are raw copies: reading them back equals reading the source rows.
  TempDir tmp;
  const fs::path src = fixture_models() / "llama31-bf16";
  const ModelConfig dense = load_model_config(src);
  const PrunePlan plan = irregular_plan(dense);
  export_model(src, dense, plan, ExportFormat::Hetero, tmp / "out");
  const CheckpointReader a(src), b(tmp / "out");
  const int64_t H = dense.hidden_size;
  const auto& ch = plan[0].channels;
  std::vector<float> want(ch.size() * static_cast<size_t>(H)), got(want.size());
  a.read_rows("model.layers.0.mlp.up_proj.weight", ch, want.data());
  b.read("model.layers.0.mlp.up_proj.weight", got.data());
  EXPECT_EQ(want, got);
  a.read_cols("model.layers.0.mlp.down_proj.weight", ch, want.data());
  b.read("model.layers.0.mlp.down_proj.weight", got.data());
  EXPECT_EQ(want, got);
}

TEST(Export, ShardedOutputLoads) {
  TempDir tmp;
  const fs::path src = fixture_models() / "qwen2-sharded-f32";
  const ModelConfig dense = load_model_config(src);
  const PrunePlan plan = irregular_plan(dense);
  {
    ScopedMaxShardBytes limit(40000);
    EXPECT_LE(export_vs_direct("qwen2-sharded-f32", plan, ExportFormat::Hetero, tmp / "out"), kTol);
  }
  EXPECT_EQ(default_max_shard_bytes(), kDefaultMaxShardBytes);
  EXPECT_FALSE(fs::exists(tmp / "out/model.safetensors"));
  const auto index = nlohmann::json::parse(read_text(tmp / "out/model.safetensors.index.json"));
  std::set<std::string> files;
  for (const auto& [name, file] : index["weight_map"].items())
    files.insert(file.get<std::string>());
  ASSERT_GE(files.size(), 3u);
  auto shard = [&](size_t k) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", k, files.size());
    return std::string(buf);
  };
  for (size_t k = 1; k <= files.size(); ++k) EXPECT_TRUE(files.count(shard(k))) << shard(k);
  size_t total = 0, on_disk = 0;
  const CheckpointReader r(tmp / "out");
  for (const auto& n : r.names()) total += r.info(n).nbytes;
  EXPECT_EQ(index["metadata"]["total_size"].get<size_t>(), total);
  for (const auto& f : files) {
    EXPECT_TRUE(fs::exists(tmp / "out" / f));
    on_disk += fs::file_size(tmp / "out" / f);
  }
  EXPECT_GT(on_disk, total);
  // Nothing temporary is left behind.
  for (const auto& e : fs::directory_iterator(tmp / "out"))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
  EXPECT_FALSE(fs::exists(tmp / "out/.resp-export-incomplete"));
}

TEST(Export, SideFilesAreCopied) {
  TempDir tmp;
  const fs::path src = fixture_models() / "qwen3-tiny-demo";
  const ModelConfig dense = load_model_config(src);
  export_model(src, dense, dense_plan(dense), ExportFormat::Compact, tmp / "out");
  for (const char* f : {"tokenizer.json", "tokenizer_config.json", "generation_config.json"})
    EXPECT_EQ(read_text(tmp / "out" / f), read_text(src / f)) << f;
  EXPECT_FALSE(fs::exists(tmp / "out/input.jsonl"));
  EXPECT_FALSE(fs::exists(tmp / "out/chat_template.jinja"));
}

TEST(Export, ExistingOutputIsNotOverwritten) {
  TempDir tmp;
  const fs::path src = fixture_models() / "qwen3-f32";
  const ModelConfig dense = load_model_config(src);
  fs::create_directories(tmp / "out");
  write_text(tmp / "out/keep.txt", "mine");
  EXPECT_THROW(export_model(src, dense, dense_plan(dense), ExportFormat::Masked, tmp / "out"),
               UsageError);
  EXPECT_EQ(read_text(tmp / "out/keep.txt"), "mine");
  EXPECT_EQ(std::distance(fs::directory_iterator(tmp / "out"), fs::directory_iterator{}), 1);
  write_text(tmp / "file", "x");
  EXPECT_THROW(export_model(src, dense, dense_plan(dense), ExportFormat::Masked, tmp / "file"),
               UsageError);
  EXPECT_EQ(read_text(tmp / "file"), "x");
  // An existing empty directory is fine, with or without a trailing slash.
  fs::create_directories(tmp / "empty");
  export_model(src, dense, dense_plan(dense), ExportFormat::Masked, tmp / "empty");
  EXPECT_TRUE(fs::exists(tmp / "empty/model.safetensors"));
  export_model(src, dense, dense_plan(dense), ExportFormat::Masked, (tmp / "slash").string() + "/");
  EXPECT_TRUE(fs::exists(tmp / "slash/model.safetensors"));
  EXPECT_FALSE(fs::exists(tmp / "slash.tmp"));
  EXPECT_FALSE(fs::exists(tmp / "slash/.tmp"));
}

TEST(Export, LeftoverTemporaryDirectory) {
  TempDir tmp;
  const fs::path src = fixture_models() / "qwen3-f32";
  const ModelConfig dense = load_model_config(src);
  // Not ours: refused and untouched.
  fs::create_directories(tmp / "out.tmp");
  write_text(tmp / "out.tmp/data", "user data");
  EXPECT_THROW(export_model(src, dense, dense_plan(dense), ExportFormat::Masked, tmp / "out"),
               UsageError);
  EXPECT_EQ(read_text(tmp / "out.tmp/data"), "user data");
  // A crashed export's leftover (marker present) is replaced.
  write_text(tmp / "out.tmp/.resp-export-incomplete", "");
  export_model(src, dense, dense_plan(dense), ExportFormat::Masked, tmp / "out");
  EXPECT_FALSE(fs::exists(tmp / "out.tmp"));
  EXPECT_FALSE(fs::exists(tmp / "out/data"));
}

TEST(Export, RejectsPrunedSourceAndBadPlans) {
  TempDir tmp;
  const fs::path src = fixture_models() / "qwen3-f32";
  const ModelConfig dense = load_model_config(src);
  export_model(src, dense, irregular_plan(dense), ExportFormat::Hetero, tmp / "hetero");
  const ModelConfig hetero = load_model_config(tmp / "hetero");
  EXPECT_THROW(
      export_model(tmp / "hetero", hetero, plan_of(hetero), ExportFormat::Masked, tmp / "again"),
      ConfigError);
  PrunePlan bad = dense_plan(dense);
  bad[0].heads.push_back(17);
  EXPECT_THROW(export_model(src, dense, bad, ExportFormat::Masked, tmp / "bad"), ConfigError);
  EXPECT_FALSE(fs::exists(tmp / "bad"));
  EXPECT_THROW(parse_export_format("dense"), UsageError);
  EXPECT_EQ(parse_export_format("hetero"), ExportFormat::Hetero);
}

// ---- the safetensors writer ----------------------------------------------------------------

TensorEntry filled(const std::string& name, DType dt, std::vector<int64_t> shape, uint8_t value) {
  TensorEntry e;
  e.name = name;
  e.dtype = dt;
  e.shape = std::move(shape);
  const size_t n = e.nbytes();
  e.fill = [n, value](ByteSink& out) {
    std::vector<uint8_t> b(n, value);
    out.write(b.data(), b.size());
  };
  return e;
}

TEST(SafetensorsWriter, HeaderLayoutAndAlignment) {
  TempDir tmp;
  std::vector<TensorEntry> ts = {filled("b.half", DType::BF16, {3}, 1),
                                 filled("a.float", DType::F32, {2, 3}, 2),
                                 filled("c.empty", DType::F32, {0, 4}, 3)};
  write_safetensors_file(tmp / "x.safetensors", ts);
  EXPECT_FALSE(fs::exists(tmp / "x.safetensors.tmp"));
  const std::string bytes = read_text(tmp / "x.safetensors");
  uint64_t hn = 0;
  for (int i = 7; i >= 0; --i) hn = (hn << 8) | static_cast<uint8_t>(bytes[static_cast<size_t>(i)]);
  EXPECT_EQ(hn % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + hn + 24 + 6);
  const auto h = nlohmann::json::parse(bytes.substr(8, hn));
  EXPECT_EQ(h["__metadata__"], (nlohmann::json{{"format", "pt"}}));
  // F32 before BF16: every tensor aligned to its element size; no gaps.
  EXPECT_EQ(h["a.float"]["data_offsets"], (nlohmann::json{0, 24}));
  EXPECT_EQ(h["c.empty"]["data_offsets"], (nlohmann::json{24, 24}));
  EXPECT_EQ(h["b.half"]["data_offsets"], (nlohmann::json{24, 30}));
  EXPECT_EQ(h["b.half"]["dtype"], "BF16");
  EXPECT_EQ(h["a.float"]["shape"], (nlohmann::json{2, 3}));
  const SafetensorsFile f(tmp / "x.safetensors");
  EXPECT_EQ(f.tensors().at("b.half").nbytes, 6u);
  EXPECT_EQ(f.data()[f.tensors().at("b.half").offset], 1);
  EXPECT_EQ(f.data()[f.tensors().at("a.float").offset + 23], 2);
}

TEST(SafetensorsWriter, WrongByteCountLeavesNothing) {
  TempDir tmp;
  TensorEntry e = filled("t", DType::F32, {4}, 0);
  e.fill = [](ByteSink& out) { out.zeros(12); };
  EXPECT_THROW(write_safetensors_file(tmp / "x.safetensors", {e}), ShapeError);
  EXPECT_FALSE(fs::exists(tmp / "x.safetensors"));
  EXPECT_FALSE(fs::exists(tmp / "x.safetensors.tmp"));
  EXPECT_THROW(write_safetensors_file(tmp / "y.safetensors", {filled("t", DType::F32, {1}, 0),
                                                              filled("t", DType::F32, {1}, 0)}),
               ShapeError);
}

TEST(SafetensorsWriter, ShardingIsGreedyInOrder) {
  TempDir tmp;
  std::vector<TensorEntry> ts;
  for (int i = 0; i < 5; ++i)
    ts.push_back(filled("t" + std::to_string(i), DType::F32, {25}, static_cast<uint8_t>(i)));
  ts.push_back(filled("big", DType::F32, {100}, 9));  // larger than the limit: a shard of its own
  const auto files = write_safetensors_model(tmp.path(), ts, 250);
  ASSERT_EQ(files.size(), 5u);
  EXPECT_EQ(files[0], "model-00001-of-00004.safetensors");
  EXPECT_EQ(files[3], "model-00004-of-00004.safetensors");
  EXPECT_EQ(files[4], "model.safetensors.index.json");
  const auto index = nlohmann::json::parse(read_text(tmp / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 900);
  EXPECT_EQ(index["weight_map"]["t0"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["t1"], "model-00001-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["t2"], "model-00002-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["t4"], "model-00003-of-00004.safetensors");
  EXPECT_EQ(index["weight_map"]["big"], "model-00004-of-00004.safetensors");
  const CheckpointReader r(tmp.path());
  EXPECT_EQ(r.names().size(), 6u);
  // Small models: one file, no index.
  TempDir one;
  EXPECT_EQ(write_safetensors_model(one.path(), ts), std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(fs::exists(one / "model.safetensors.index.json"));
}

// ---- the command line ---------------------------------------------------------------------

// A run directory with checkpoints for iterations 1..3 of `model` (plans of growing sparsity);
// history sparsities as given (the CLI trusts the run's own measurements).
void make_run(const fs::path& run, const fs::path& model, const std::vector<double>& sparsities,
              const std::vector<PrunePlan>& plans) {
  fs::create_directories(run);
  RunState s;
  s.model = model.string();
  s.config_yaml = "model: " + model.string() + "\n";
  for (size_t i = 0; i < plans.size(); ++i) {
    s.iteration = static_cast<int>(i + 1);
    s.plan = plans[i];
    s.scores.layers.clear();
    for (const auto& L : s.plan) {
      LayerScores ls;
      ls.head_ids = L.heads;
      ls.channel_ids = L.channels;
      ls.heads.assign(L.heads.size(), 1.0);
      ls.channels.assign(L.channels.size(), 1.0);
      s.scores.layers.push_back(ls);
    }
    IterationRecord r;
    r.iteration = s.iteration;
    r.sparsity = sparsities[i];
    s.history.push_back(r);
    write_run_checkpoint(run, s);
  }
}

struct CliResult {
  int code = -1;
  std::string out;
};

CliResult run_cli(const std::vector<std::string>& args) {
  CLI::App root;
  app::Action selected;
  app::register_export(root, &selected);
  std::vector<std::string> rev(args.rbegin(), args.rend());  // CLI11 takes them reversed
  rev.push_back("export");
  root.parse(rev);
  ::testing::internal::CaptureStdout();
  CliResult r;
  try {
    r.code = selected();
  } catch (...) {
    ::testing::internal::GetCapturedStdout();
    throw;
  }
  r.out = ::testing::internal::GetCapturedStdout();
  return r;
}

class ExportCli : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = fixture_models() / "qwen3-f32";
    dense_ = load_model_config(model_);
    PrunePlan p1 = compact_plan(dense_);
    PrunePlan p2 = irregular_plan(dense_);
    PrunePlan p3 = p2;
    p3[1].channels.resize(10);
    plans_ = {p1, p2, p3};
    make_run(tmp_ / "run", model_, {0.25, 0.5, 0.75}, plans_);
  }
  TempDir tmp_;
  fs::path model_;
  ModelConfig dense_;
  std::vector<PrunePlan> plans_;
};

TEST_F(ExportCli, SparsityPicksTheClosestIteration) {
  const auto r = run_cli({"--run", (tmp_ / "run").string(), "--sparsity", "0.55", "--format",
                          "hetero", "--out", (tmp_ / "out").string()});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("iteration 2: measured sparsity 0.5000"), std::string::npos) << r.out;
  EXPECT_TRUE(same_plan(plan_of(load_model_config(tmp_ / "out")), plans_[1]));
  EXPECT_EQ(r.out.find("NOT REACHED"), std::string::npos) << r.out;  // 0.75 was reached
  // Ties go to the earlier iteration (0.375 is exactly between 0.25 and 0.5).
  const auto t = run_cli({"--run", (tmp_ / "run").string(), "--sparsity", "0.375", "--format",
                          "masked", "--out", (tmp_ / "tie").string()});
  EXPECT_NE(t.out.find("iteration 1: measured sparsity 0.2500"), std::string::npos) << t.out;
}

TEST_F(ExportCli, IterationAndErrors) {
  const auto r = run_cli({"--run", (tmp_ / "run").string(), "--iteration", "1", "--format",
                          "compact", "--out", (tmp_ / "out").string()});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("iteration 1: measured sparsity 0.2500"), std::string::npos) << r.out;
  EXPECT_EQ(load_model_config(tmp_ / "out").layers[0].n_heads(),
            apply_plan(dense_, plans_[0]).layers[0].n_heads());
  // Non-empty output: refused.
  EXPECT_THROW(run_cli({"--run", (tmp_ / "run").string(), "--iteration", "2", "--format", "masked",
                        "--out", (tmp_ / "out").string()}),
               UsageError);
  // Iteration 2 is irregular: compact is impossible, with the reason.
  try {
    run_cli({"--run", (tmp_ / "run").string(), "--iteration", "2", "--format", "compact", "--out",
             (tmp_ / "c2").string()});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("use --format hetero"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(tmp_ / "c2"));
  EXPECT_THROW(run_cli({"--run", (tmp_ / "run").string(), "--iteration", "7", "--format", "masked",
                        "--out", (tmp_ / "x").string()}),
               UsageError);
  EXPECT_THROW(run_cli({"--run", (tmp_ / "run").string(), "--format", "masked", "--out",
                        (tmp_ / "x").string()}),
               UsageError);
  EXPECT_THROW(run_cli({"--run", (tmp_ / "nope").string(), "--iteration", "1", "--format", "masked",
                        "--out", (tmp_ / "x").string()}),
               UsageError);
}

TEST_F(ExportCli, SummaryFlagsTargetsNoCheckpointReached) {
  if (run_resp("inspect --help").exit_code != 0) GTEST_SKIP() << "resp inspect is not built";
  make_run(tmp_ / "short", model_, {0.1, 0.15, 0.2}, plans_);
  const auto r = run_resp("inspect " + (tmp_ / "short").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Reported targets 0.2..0.5: 0.2 was reached, the three above it were not.
  size_t flagged = 0;
  for (size_t at = r.out.find("NOT REACHED"); at != std::string::npos;
       at = r.out.find("NOT REACHED", at + 1))
    ++flagged;
  EXPECT_EQ(flagged, 3u) << r.out;
  EXPECT_NE(r.out.find("NOT REACHED (highest so far 0.2000)"), std::string::npos) << r.out;
}

TEST_F(ExportCli, Binary) {
  if (run_resp("export --help").out.find("--sparsity") == std::string::npos)
    GTEST_SKIP() << "resp export is not registered in main.cpp yet";
  const auto r = run_resp("export --run " + (tmp_ / "run").string() +
                          " --sparsity 0.8 --format hetero --out " + (tmp_ / "out").string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("iteration 3: measured sparsity 0.7500"), std::string::npos) << r.out;
  // 0.8 lies beyond every checkpoint: the nearest one is exported and flagged as short of it.
  EXPECT_NE(r.out.find("NOT REACHED: the run's highest is 0.7500"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("no checkpoint"), std::string::npos) << r.err;
  const auto again = run_resp("export --run " + (tmp_ / "run").string() +
                              " --iteration 3 --format masked --out " + (tmp_ / "out").string());
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_NE(again.err.find("not empty"), std::string::npos) << again.err;
  const auto c = run_resp("export --run " + (tmp_ / "run").string() +
                          " --iteration 2 --format compact --out " + (tmp_ / "c").string());
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_NE(c.err.find("compact needs"), std::string::npos) << c.err;
  // resp logprobs reads the hetero export.
  const auto lp = run_resp("logprobs --model " + (tmp_ / "out").string() + " --input " +
                           (model_ / "input.jsonl").string() + " --threads 1");
  EXPECT_EQ(lp.exit_code, 0) << lp.err;
  EXPECT_EQ(parse_jsonl(lp.out).size(), 5u);
}

// ---- exports for tools/check_export_torch.py ------------------------------------------------

// With RESP_EXPORT_FIXTURE_DIR set, writes DIR/NAME/{masked,compact} for every fixture with the
// same uniform GQA-aligned plan (so both must give identical log-probs), plus DIR/NAME/plan.json.
TEST(ExportFixtures, Write) {
  const char* dir = std::getenv("RESP_EXPORT_FIXTURE_DIR");
  if (!dir || !*dir)
    GTEST_SKIP() << "RESP_EXPORT_FIXTURE_DIR not set (used by tools/check_export_torch.py)";
  for (const char* name : kFixtures) {
    const fs::path src = fixture_models() / name;
    const ModelConfig dense = load_model_config(src);
    const PrunePlan plan = compact_plan(dense);
    const fs::path base = fs::path(dir) / name;
    fs::create_directories(base);
    export_model(src, dense, plan, ExportFormat::Masked, base / "masked");
    export_model(src, dense, plan, ExportFormat::Compact, base / "compact");
    nlohmann::json j;
    j["source"] = src.string();
    for (const auto& L : plan)
      j["layers"].push_back({{"heads", L.heads}, {"channels", L.channels}});
    write_text(base / "plan.json", j.dump(2) + "\n");
  }
}

// Per layer its own widths, and in each model a layer that is not GQA-aligned (one KV head keeps
// one query head, another keeps its whole group), a layer that keeps no heads, and, with three
// or more layers, a GQA-aligned layer that keeps no channels.
PrunePlan hetero_plan(const ModelConfig& d) {
  PrunePlan p(static_cast<size_t>(d.num_layers));
  const int g = d.group_size();
  for (int l = 0; l < d.num_layers; ++l) {
    auto& L = p[static_cast<size_t>(l)];
    int keep = d.intermediate_size - 7 * (l + 1);
    if (l % 3 == 0) {
      L.heads.push_back(0);
      for (int h = std::max(2, d.num_heads - g); h < d.num_heads; ++h) L.heads.push_back(h);
    } else if (l % 3 == 2) {
      for (int kv = 0; kv < d.num_kv_heads; ++kv) L.heads.push_back(kv * g + g - 1);
      keep = 0;
    }
    L.channels = pick(d.intermediate_size, keep, 300u + static_cast<uint32_t>(l));
  }
  return p;
}

// With RESP_EXPORT_FIXTURE_DIR set, writes DIR/NAME/{masked,hetero} of hetero_plan() for every
// fixture, plus DIR/NAME/plan.json, for tools/check_hetero_transformers.py.
TEST(ExportFixtures, WriteHetero) {
  const char* dir = std::getenv("RESP_EXPORT_FIXTURE_DIR");
  if (!dir || !*dir)
    GTEST_SKIP() << "RESP_EXPORT_FIXTURE_DIR not set (used by tools/check_hetero_transformers.py)";
  for (const char* name : kFixtures) {
    const fs::path src = fixture_models() / name;
    const ModelConfig dense = load_model_config(src);
    const PrunePlan plan = hetero_plan(dense);
    const fs::path base = fs::path(dir) / name;
    fs::create_directories(base);
    export_model(src, dense, plan, ExportFormat::Masked, base / "masked");
    export_model(src, dense, plan, ExportFormat::Hetero, base / "hetero");
    nlohmann::json j;
    j["source"] = src.string();
    for (const auto& L : plan)
      j["layers"].push_back({{"heads", L.heads}, {"channels", L.channels}});
    write_text(base / "plan.json", j.dump(2) + "\n");
  }
}

}  // namespace
