#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "model/model_config.h"
#include "test_util.h"

using namespace resp;
using nlohmann::json;

namespace {
json qwen3() {
  return {{"architectures", {"Qwen3ForCausalLM"}},
          {"hidden_size", 72},
          {"num_hidden_layers", 3},
          {"num_attention_heads", 6},
          {"num_key_value_heads", 2},
          {"head_dim", 20},
          {"intermediate_size", 100},
          {"vocab_size", 263},
          {"rms_norm_eps", 1e-6},
          {"rope_theta", 1e6},
          {"tie_word_embeddings", false},
          {"eos_token_id", 5}};
}
}  // namespace

TEST(ModelConfig, Qwen3ExplicitHeadDim) {
  const ModelConfig c = parse_model_config(qwen3(), "cfg");
  EXPECT_EQ(c.arch, Arch::Qwen3);
  EXPECT_EQ(c.head_dim, 20);  // not hidden / heads = 12
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.group_size(), 3);
  ASSERT_EQ(c.layers.size(), 3u);
  EXPECT_EQ(c.layers[1].n_heads(), 6);
  EXPECT_EQ(c.layers[1].kv_of_head, (std::vector<int>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(c.layers[2].d_ff(), 100);
  EXPECT_EQ(c.eos_token_ids, std::vector<int>{5});
  // embed + lm_head + final norm + per layer (2 norms, q, k, v, o, q/k norm, mlp)
  const int64_t per_layer = 2 * 72 + 120 * 72 + 2 * 40 * 72 + 72 * 120 + 2 * 20 + 3 * 100 * 72;
  EXPECT_EQ(c.parameter_count(), 2 * 263 * 72 + 72 + 3 * per_layer);
}

TEST(ModelConfig, Qwen2BiasAndDefaultHeadDim) {
  json j = qwen3();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j.erase("head_dim");
  const ModelConfig c = parse_model_config(j, "cfg");
  EXPECT_EQ(c.head_dim, 12);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_FALSE(c.qk_norm);
}

TEST(ModelConfig, LlamaRopeScalingMatchesFormula) {
  json j = qwen3();
  j["architectures"] = {"LlamaForCausalLM"};
  j["head_dim"] = 64;
  j["rope_theta"] = 500000.0;
  j["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  const ModelConfig c = parse_model_config(j, "cfg");
  const auto inv = c.rope_inv_freq();
  ASSERT_EQ(inv.size(), 32u);
  int low = 0, mid = 0, high = 0;
  for (int i = 0; i < 32; ++i) {
    const double base = 1.0 / std::pow(500000.0, 2.0 * i / 64.0);
    const double wavelen = 2 * M_PI / base;
    if (wavelen < 8192.0 / 4.0) {
      EXPECT_DOUBLE_EQ(inv[static_cast<size_t>(i)], base);
      ++high;
    } else if (wavelen > 8192.0) {
      EXPECT_DOUBLE_EQ(inv[static_cast<size_t>(i)], base / 8.0);
      ++low;
    } else {
      EXPECT_GT(inv[static_cast<size_t>(i)], base / 8.0);
      EXPECT_LT(inv[static_cast<size_t>(i)], base);
      ++mid;
    }
  }
  EXPECT_GT(low, 0);
  EXPECT_GT(mid, 0);
  EXPECT_GT(high, 0);
}

TEST(ModelConfig, RopeThetaNestedInRopeParameters) {
  json j = qwen3();
  j.erase("rope_theta");
  j["rope_parameters"] = {{"rope_theta", 12345.0}, {"rope_type", "default"}};
  EXPECT_DOUBLE_EQ(parse_model_config(j, "cfg").rope_theta, 12345.0);
}

TEST(ModelConfig, ClearErrors) {
  json j = qwen3();
  j["architectures"] = {"MistralForCausalLM"};
  EXPECT_THROW(parse_model_config(j, "cfg"), UnsupportedError);
  j = qwen3();
  j.erase("hidden_size");
  try {
    parse_model_config(j, "x/config.json");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("hidden_size"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("x/config.json"), std::string::npos);
  }
  j = qwen3();
  j["num_key_value_heads"] = 4;  // 6 % 4 != 0
  EXPECT_THROW(parse_model_config(j, "cfg"), ConfigError);
  j = qwen3();
  j["hidden_size"] = "72";
  EXPECT_THROW(parse_model_config(j, "cfg"), ConfigError);
  j = qwen3();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_THROW(parse_model_config(j, "cfg"), UnsupportedError);
  j = qwen3();
  j["head_dim"] = 21;
  EXPECT_THROW(parse_model_config(j, "cfg"), ConfigError);
  EXPECT_THROW(parse_model_config(json::array(), "cfg"), FormatError);
  // eos_token_id must name tokens of this vocabulary (263 here).
  for (const json& bad : {json(-1), json(2.5), json(263), json({5, 999}), json("5")}) {
    j = qwen3();
    j["eos_token_id"] = bad;
    try {
      parse_model_config(j, "cfg");
      FAIL() << bad.dump();
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("eos_token_id"), std::string::npos) << e.what();
    }
  }
  j = qwen3();
  j["eos_token_id"] = {5, 262};
  EXPECT_EQ(parse_model_config(j, "cfg").eos_token_ids, (std::vector<int>{5, 262}));
  j["eos_token_id"] = nullptr;
  EXPECT_TRUE(parse_model_config(j, "cfg").eos_token_ids.empty());
}

TEST(ModelConfig, FileErrors) {
  test::TempDir d;
  EXPECT_THROW(load_model_config(d / "nope"), IoError);
  EXPECT_THROW(load_model_config(d.path()), IoError);
  test::write_text(d / "config.json", "{\"architectures\": [");
  EXPECT_THROW(load_model_config(d.path()), FormatError);
}

TEST(ModelConfig, HeteroPrunedLayers) {
  json j = qwen3();
  j["resp_pruning"] = {
      {"layers",
       {{{"heads", {0, 4}}, {"kv_heads", {0, 1}}, {"channels", {1, 2, 50}}},
        {{"heads", {0, 1, 2, 3, 4, 5}}, {"kv_heads", {0, 1}}, {"channels", {0}}},
        {{"heads", json::array()}, {"kv_heads", json::array()}, {"channels", {7}}}}}};
  const ModelConfig c = parse_model_config(j, "cfg");
  EXPECT_EQ(c.layers[0].n_heads(), 2);
  EXPECT_EQ(c.layers[0].kv_of_head, (std::vector<int>{0, 1}));
  EXPECT_EQ(c.layers[2].n_heads(), 0);
  EXPECT_EQ(c.layers[0].d_ff(), 3);
  j["resp_pruning"]["layers"][0]["kv_heads"] = {0};  // head 4 needs kv 1
  EXPECT_THROW(parse_model_config(j, "cfg"), ConfigError);
}
