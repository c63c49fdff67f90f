// GGUF import (ckpt/gguf_import.h, `resp import-gguf`): the fixture models written as GGUF files
// the way llama.cpp's convert_hf_to_gguf.py writes them (llama.cpp tensor names, ggml dim order,
// the llama architecture's q/k rows permuted, RoPE scaling as rope_freqs) must import back to
// exactly the fixture's tensors and config, and run in `resp logprobs` to the fixture reference.
// The tokenizer.json written from tokenizer.ggml.* metadata, refusals with one-line errors, and a
// mutation loop over the converter.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <numbers>
#include <random>

#include "ckpt/gguf_import.h"
#include "core/error.h"
#include "gguf_test_writer.h"
#include "model/safetensors.h"
#include "test_util.h"
#ifdef RESP_TEST_HAVE_TOKENIZER
#include "tokenizer/tokenizer.h"
#endif

using namespace resp;
using namespace resp::test;
using nlohmann::json;

namespace {

json read_json(const fs::path& p) {
  return json::parse(read_text(p));
}

// A 263-token byte-level vocabulary like the fixtures': the 256 byte tokens (GPT-2 alphabet),
// "Ġt" (one merge), and six control tokens.
struct TinyVocab {
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<std::string> merges = {"\xc4\xa0 t"};
};

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

TinyVocab tiny_vocab() {
  TinyVocab v;
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    v.tokens.push_back(utf8(printable ? b : next++));
    v.types.push_back(1);
  }
  v.tokens.push_back("\xc4\xa0t");  // "Ġt"
  v.types.push_back(1);
  for (const char* s :
       {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "<pad>"}) {
    v.tokens.push_back(s);
    v.types.push_back(std::string(s).find('|') != std::string::npos ? 3 : 4);
  }
  return v;
}

void add_tokenizer(GgufBuilder& g, const std::string& pre, const TinyVocab& v = tiny_vocab()) {
  g.string("tokenizer.ggml.model", "gpt2")
      .string("tokenizer.ggml.pre", pre)
      .strings("tokenizer.ggml.tokens", v.tokens)
      .i32s("tokenizer.ggml.token_type", v.types)
      .strings("tokenizer.ggml.merges", v.merges)
      .u32("tokenizer.ggml.bos_token_id", 258)
      .u32("tokenizer.ggml.eos_token_id", 259)
      .u32("tokenizer.ggml.padding_token_id", 257)
      .string("tokenizer.chat_template", "{{ messages[0]['content'] }}");
}

// HF row `r` of a q/k weight lands at GGUF row gguf_row(r) (llama.cpp's permute()).
int64_t gguf_row_of(int64_t gr, int64_t rows_per_head) {
  const int64_t half = rows_per_head / 2, h = gr / rows_per_head, w = gr % rows_per_head;
  return h * rows_per_head + (w % 2) * half + w / 2;  // the HF row stored at GGUF row gr
}

std::vector<uint8_t> tensor_bytes(const fs::path& dir, const std::string& name) {
  const CheckpointReader r(dir);
  const TensorInfo& t = r.info(name);
  SafetensorsFile f(r.file_of(name));
  return std::vector<uint8_t>(f.data() + t.offset, f.data() + t.offset + t.nbytes);
}

struct Fixture {
  std::string name, arch;
};

// Writes fixture model `name` as a GGUF file like convert_hf_to_gguf.py would.
GgufBuilder gguf_from_fixture(const std::string& name, const std::string& arch) {
  const fs::path dir = fixture_models() / name;
  const json c = read_json(dir / "config.json");
  const CheckpointReader r(dir);
  const int64_t hidden = c["hidden_size"], heads = c["num_attention_heads"],
                kv = c["num_key_value_heads"];
  const int64_t head_dim = c.contains("head_dim") ? c["head_dim"].get<int64_t>() : hidden / heads;
  const double theta = c.contains("rope_theta") ? c["rope_theta"].get<double>()
                                                : c["rope_parameters"]["rope_theta"].get<double>();
  GgufBuilder g;
  const std::string a = arch + ".";
  g.string("general.architecture", arch)
      .string("general.name", name)
      .u32(a + "block_count", c["num_hidden_layers"])
      .u32(a + "context_length", c["max_position_embeddings"])
      .u32(a + "embedding_length", static_cast<uint32_t>(hidden))
      .u32(a + "feed_forward_length", c["intermediate_size"])
      .u32(a + "attention.head_count", static_cast<uint32_t>(heads))
      .u32(a + "attention.head_count_kv", static_cast<uint32_t>(kv))
      .u32(a + "attention.key_length", static_cast<uint32_t>(head_dim))
      .u32(a + "attention.value_length", static_cast<uint32_t>(head_dim))
      .u32(a + "rope.dimension_count", static_cast<uint32_t>(head_dim))
      .f32(a + "rope.freq_base", static_cast<float>(theta))
      .f32(a + "attention.layer_norm_rms_epsilon", c["rms_norm_eps"].get<float>());
  add_tokenizer(g, arch == "llama" ? "llama-bpe" : "qwen2");

  auto gguf_name = [](const std::string& hf) -> std::string {
    static const std::pair<const char*, const char*> kLayer[] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.v_proj.bias", "attn_v.bias"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"self_attn.q_norm.weight", "attn_q_norm.weight"},
        {"self_attn.k_norm.weight", "attn_k_norm.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"}};
    if (hf == "model.embed_tokens.weight") return "token_embd.weight";
    if (hf == "model.norm.weight") return "output_norm.weight";
    if (hf == "lm_head.weight") return "output.weight";
    const size_t dot = hf.find('.', 13);
    const std::string layer = hf.substr(13, dot - 13), rest = hf.substr(dot + 1);
    for (const auto& [h, gg] : kLayer)
      if (rest == h) return "blk." + layer + "." + gg;
    throw std::runtime_error("unmapped " + hf);
  };
  for (const std::string& hf : r.names()) {
    const TensorInfo& t = r.info(hf);
    const std::string gn = gguf_name(hf);
    std::vector<uint8_t> bytes = tensor_bytes(dir, hf);
    const bool q = gn.find(".attn_q.") != std::string::npos,
               k = gn.find(".attn_k.") != std::string::npos;
    if (arch == "llama" && (q || k)) {
      const int64_t rows = t.shape[0], row_bytes = static_cast<int64_t>(t.nbytes) / rows;
      const int64_t rph = rows / (q ? heads : kv);
      std::vector<uint8_t> perm(bytes.size());
      for (int64_t gr = 0; gr < rows; ++gr)
        std::memcpy(perm.data() + gr * row_bytes, bytes.data() + gguf_row_of(gr, rph) * row_bytes,
                    static_cast<size_t>(row_bytes));
      bytes = std::move(perm);
    }
    std::vector<uint64_t> dims(t.shape.rbegin(), t.shape.rend());
    const uint32_t type = t.dtype == DType::BF16 ? 30u : 0u;
    g.tensor(gn, type, dims, std::move(bytes));
  }
  // Llama-3 RoPE scaling the way convert_hf_to_gguf.py stores it: per-frequency factors.
  if (c.contains("rope_scaling") && c["rope_scaling"].is_object()) {
    const json& rs = c["rope_scaling"];
    const double factor = rs["factor"], low = rs["low_freq_factor"], high = rs["high_freq_factor"],
                 orig = rs["original_max_position_embeddings"];
    std::vector<float> f;
    for (int64_t i = 0; i < head_dim / 2; ++i) {
      const double freq =
          1.0 / std::pow(theta, 2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
      const double wavelen = 2 * std::numbers::pi / freq;
      double v;
      if (wavelen < orig / high)
        v = 1;
      else if (wavelen > orig / low)
        v = factor;
      else {
        const double smooth = (orig / wavelen - low) / (high - low);
        v = 1 / ((1 - smooth) / factor + smooth);
      }
      f.push_back(static_cast<float>(v));
    }
    g.f32_tensor("rope_freqs.weight", {static_cast<uint64_t>(f.size())}, f);
    g.u32(a + "rope.scaling.original_context_length", static_cast<uint32_t>(orig));
  }
  return g;
}

fs::path write_gguf(const TempDir& d, const GgufBuilder& g, const std::string& name = "m.gguf") {
  const fs::path p = d / name;
  write_bytes(p, g.build());
  return p;
}

template <typename E>
void expect_error(const std::function<void()>& fn, const std::string& needle) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected: " << needle;
  } catch (const E& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(needle), std::string::npos) << "expected '" << needle << "' in: " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
  }
}

}  // namespace

TEST(GgufImport, FixtureModelsComeBackBitIdentical) {
  const Fixture fixtures[] = {{"llama-mqa-f32", "llama"},
                              {"llama31-bf16", "llama"},
                              {"qwen3-f32", "qwen3"},
                              {"qwen2-sharded-f32", "qwen2"}};
  for (const Fixture& fx : fixtures) {
    SCOPED_TRACE(fx.name);
    TempDir d;
    const fs::path gguf = write_gguf(d, gguf_from_fixture(fx.name, fx.arch));
    const fs::path src = fixture_models() / fx.name;
    const json want = read_json(src / "config.json");
    GgufImportOptions o;
    o.dtype = want["torch_dtype"] == "bfloat16" ? DType::BF16 : DType::F32;
    const GgufImportSummary s = import_gguf(gguf, d / "out", o);
    EXPECT_EQ(s.architecture, fx.arch);
    EXPECT_TRUE(s.tokenizer);
    EXPECT_FALSE(fs::exists(d / "out.tmp"));
    const CheckpointReader orig(src), got(d / "out");
    EXPECT_EQ(got.names(), orig.names());
    for (const std::string& n : orig.names())
      EXPECT_EQ(tensor_bytes(d / "out", n), tensor_bytes(src, n)) << n;

    const json c = read_json(d / "out/config.json");
    for (const char* k : {"hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "max_position_embeddings",
                          "model_type", "tie_word_embeddings", "architectures"})
      EXPECT_EQ(c[k], want[k]) << k;
    const int64_t hd = want.contains("head_dim") ? want["head_dim"].get<int64_t>()
                                                 : want["hidden_size"].get<int64_t>() /
                                                       want["num_attention_heads"].get<int64_t>();
    EXPECT_EQ(c["head_dim"], hd);
    EXPECT_NEAR(c["rms_norm_eps"].get<double>(), want["rms_norm_eps"].get<double>(), 1e-12);
    const double theta = want.contains("rope_theta")
                             ? want["rope_theta"].get<double>()
                             : want["rope_parameters"]["rope_theta"].get<double>();
    EXPECT_EQ(c["rope_theta"].get<double>(), theta);
    if (want.contains("rope_scaling") && want["rope_scaling"].is_object()) {
      for (const char* k : {"rope_type", "factor", "low_freq_factor", "high_freq_factor",
                            "original_max_position_embeddings"})
        EXPECT_EQ(c["rope_scaling"][k], want["rope_scaling"][k]) << k;
    } else {
      EXPECT_TRUE(c["rope_scaling"].is_null());
    }
    EXPECT_EQ(c["bos_token_id"], 258);
    EXPECT_EQ(c["eos_token_id"], 259);
    EXPECT_EQ(c["torch_dtype"], want["torch_dtype"]);
    EXPECT_EQ(read_json(d / "out/generation_config.json")["eos_token_id"], 259);
    // resp runs it: the log-probs of the fixture's reference (f32 engine tolerance).
    const auto r = run_resp("logprobs --threads 2 --model " + (d / "out").string() + " --input " +
                            (src / "input.jsonl").string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto lp = parse_jsonl(r.out), ref = parse_jsonl(read_text(src / "reference.jsonl"));
    ASSERT_EQ(lp.size(), ref.size());
    for (size_t i = 0; i < ref.size(); ++i) {
      const auto a = lp[i]["logprobs"].get<std::vector<double>>();
      const auto b = ref[i]["logprobs"].get<std::vector<double>>();
      ASSERT_EQ(a.size(), b.size());
      for (size_t t = 0; t < a.size(); ++t) EXPECT_NEAR(a[t], b[t], 1e-4) << i << ":" << t;
    }
  }
}

TEST(GgufImport, Bf16OutputRoundsTheDequantizedWeights) {
  TempDir d;
  const fs::path gguf = write_gguf(d, gguf_from_fixture("qwen3-f32", "qwen3"));
  GgufImportOptions o;
  o.dtype = DType::BF16;
  import_gguf(gguf, d / "out", o);
  const CheckpointReader orig(fixture_models() / "qwen3-f32"), got(d / "out");
  EXPECT_EQ(read_json(d / "out/config.json")["torch_dtype"], "bfloat16");
  for (const std::string& n : orig.names()) {
    ASSERT_EQ(got.info(n).dtype, DType::BF16) << n;
    std::vector<float> a(static_cast<size_t>(orig.info(n).numel())), b(a.size());
    orig.read(n, a.data());
    got.read(n, b.data());
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_EQ(b[i], bf16_to_f32(f32_to_bf16(a[i]))) << n << "[" << i << "]";
  }
}

TEST(GgufImport, TokenizerJsonFromMetadata) {
  TempDir d;
  GgufBuilder g = gguf_from_fixture("qwen3-f32", "qwen3");
  const fs::path p = write_gguf(d, g);
  GgufFile f(p);
  const json t = json::parse(gguf_tokenizer_json(f));
  // qwen2 pre-tokenizer: NFC, then the Qwen2 Split regex, then byte-level without its regex.
  EXPECT_EQ(t["normalizer"]["type"], "NFC");
  EXPECT_EQ(t["pre_tokenizer"]["type"], "Sequence");
  EXPECT_EQ(t["pre_tokenizer"]["pretokenizers"][0]["type"], "Split");
  EXPECT_EQ(t["pre_tokenizer"]["pretokenizers"][0]["behavior"], "Isolated");
  EXPECT_EQ(t["pre_tokenizer"]["pretokenizers"][1]["use_regex"], false);
  EXPECT_EQ(t["model"]["type"], "BPE");
  EXPECT_EQ(t["model"]["ignore_merges"], false);
  EXPECT_EQ(t["model"]["vocab"].size(), 263u);
  EXPECT_EQ(t["model"]["vocab"]["\xc4\xa0t"], 256);
  EXPECT_EQ(t["model"]["merges"], json::array({json::array({"\xc4\xa0", "t"})}));
  // Control tokens are special added tokens, user-defined ones plain added tokens.
  ASSERT_EQ(t["added_tokens"].size(), 6u);
  EXPECT_EQ(t["added_tokens"][0]["content"], "<|endoftext|>");
  EXPECT_EQ(t["added_tokens"][0]["id"], 257);
  EXPECT_EQ(t["added_tokens"][0]["special"], true);
  EXPECT_EQ(t["added_tokens"][3]["content"], "<think>");
  EXPECT_EQ(t["added_tokens"][3]["special"], false);
  EXPECT_EQ(t["post_processor"]["type"], "ByteLevel");  // no add_bos_token

  const json tc = gguf_tokenizer_config(f);
  EXPECT_EQ(tc["bos_token"], "<|im_start|>");
  EXPECT_EQ(tc["eos_token"], "<|im_end|>");
  EXPECT_EQ(tc["pad_token"], "<|endoftext|>");
  EXPECT_EQ(tc["chat_template"], "{{ messages[0]['content'] }}");
  EXPECT_EQ(tc["add_bos_token"], false);

  // llama-bpe: the Llama-3 split with ignore_merges; BOS through a template (llama.cpp's default
  // for this pre-tokenizer when tokenizer.ggml.add_bos_token is absent, as here).
  GgufBuilder l = gguf_from_fixture("llama-mqa-f32", "llama");
  GgufFile lf(write_gguf(d, l, "l.gguf"));
  EXPECT_EQ(gguf_tokenizer_config(lf)["add_bos_token"], true);
  const json lt = json::parse(gguf_tokenizer_json(lf));
  EXPECT_TRUE(lt["normalizer"].is_null());
  EXPECT_EQ(lt["model"]["ignore_merges"], true);
  EXPECT_NE(lt["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"].get<std::string>().find(
                "\\p{N}{1,3}"),
            std::string::npos);
  const json& tp = lt["post_processor"]["processors"][1];
  EXPECT_EQ(tp["type"], "TemplateProcessing");
  EXPECT_EQ(tp["single"][0]["SpecialToken"]["id"], "<|im_start|>");
  EXPECT_EQ(tp["special_tokens"]["<|im_start|>"]["ids"], json::array({258}));

  // smollm: single digits, then GPT-2's byte-level split; a token stored as plain text (with a
  // space) is spelled in the byte alphabet, as transformers does.
  TinyVocab v = tiny_vocab();
  v.tokens[256] = "a b";
  v.merges.clear();
  GgufBuilder s = gguf_from_fixture("llama-mqa-f32", "llama");
  s.kvs.erase(std::remove_if(s.kvs.begin(), s.kvs.end(),
                             [](const auto& kv) { return kv.first.rfind("tokenizer.", 0) == 0; }),
              s.kvs.end());
  add_tokenizer(s, "smollm", v);
  GgufFile sf(write_gguf(d, s, "s.gguf"));
  const json st = json::parse(gguf_tokenizer_json(sf));
  EXPECT_EQ(st["pre_tokenizer"]["pretokenizers"][0],
            json({{"type", "Digits"}, {"individual_digits", true}}));
  EXPECT_EQ(st["pre_tokenizer"]["pretokenizers"][1]["use_regex"], true);
  EXPECT_EQ(st["model"]["vocab"]["a\xc4\xa0"
                                 "b"],
            256);

#ifdef RESP_TEST_HAVE_TOKENIZER
  // resp's own tokenizer loads the imported directory and uses the merge and the specials.
  import_gguf(p, d / "out");
  const Tokenizer tok = Tokenizer::load(d / "out");
  EXPECT_EQ(tok.encode(" t", false), (std::vector<int32_t>{256}));
  EXPECT_EQ(tok.encode("<|im_end|>x", false), (std::vector<int32_t>{259, 'x'}));
#endif
}

TEST(GgufImport, RefusesWhatItCannotImport) {
  TempDir d;
  auto refuse = [&](GgufBuilder g, const std::string& needle, bool unsupported) {
    const fs::path p = write_gguf(d, g, "r.gguf");
    auto fn = [&] { import_gguf(p, d / "never"); };
    if (unsupported)
      expect_error<UnsupportedError>(fn, needle);
    else
      expect_error<FormatError>(fn, needle);
    EXPECT_FALSE(fs::exists(d / "never"));
    EXPECT_FALSE(fs::exists(d / "never.tmp"));
  };
  const GgufBuilder good = gguf_from_fixture("llama-mqa-f32", "llama");
  auto set_string = [](GgufBuilder g, const std::string& key, const std::string& v) {
    for (auto& [k, val] : g.kvs)
      if (k == key) {
        GgufBytes x;
        x.put<uint32_t>(kString).str(v);
        val = x.b;
      }
    return g;
  };
  refuse(set_string(good, "general.architecture", "gemma"),
         "GGUF architecture \"gemma\" is not supported", true);
  refuse(set_string(good, "tokenizer.ggml.pre", "falcon"), "tokenizer.ggml.pre \"falcon\"", true);
  refuse(set_string(good, "tokenizer.ggml.model", "llama"), "SentencePiece", true);
  {
    GgufBuilder g = good;
    g.tensors.erase(std::find_if(g.tensors.begin(), g.tensors.end(),
                                 [](const auto& t) { return t.name == "blk.1.ffn_up.weight"; }));
    refuse(g, "missing tensor \"blk.1.ffn_up.weight\" (for model.layers.1.mlp.up_proj.weight)",
           false);
  }
  {
    GgufBuilder g = good;
    g.f32_tensor("blk.0.ffn_gate_exps.weight", {4}, {1, 2, 3, 4});
    refuse(g, "tensor \"blk.0.ffn_gate_exps.weight\" (F32 [4]) has no place", true);
  }
  {
    GgufBuilder g = good;
    for (auto& t : g.tensors)
      if (t.name == "output_norm.weight") {
        t.dims = {static_cast<uint64_t>(t.data.size() / 8), 2};
      }
    refuse(g, "tensor \"output_norm.weight\" has shape [2, 32], expected [64]", false);
  }
  {
    GgufBuilder g = good;
    for (auto& t : g.tensors)
      if (t.name == "output_norm.weight") {
        t.type = static_cast<uint32_t>(GgmlType::IQ4_NL);  // 32 per 18 bytes: 64 values = 36 bytes
        t.data.resize(36);
      }
    refuse(g, "is IQ4_NL, which resp cannot dequantize", true);
  }
  {
    GgufBuilder g = good;
    g.u32("llama.attention.head_count_kv", 3);  // 4 heads
    refuse(g, "duplicate metadata key", false);
  }
  {
    GgufBuilder g = set_string(good, "general.name", "x");
    g.kvs.erase(std::remove_if(g.kvs.begin(), g.kvs.end(),
                               [](const auto& kv) { return kv.first == "llama.block_count"; }),
                g.kvs.end());
    refuse(g, "missing metadata \"llama.block_count\"", false);
  }
  // An output directory that is not empty is never touched.
  const fs::path p = write_gguf(d, good, "ok.gguf");
  fs::create_directories(d / "busy");
  write_text(d / "busy/keep.txt", "mine");
  expect_error<UsageError>([&] { import_gguf(p, d / "busy"); }, "exists and is not empty");
  EXPECT_EQ(read_text(d / "busy/keep.txt"), "mine");
  // A leftover DIR.tmp that resp did not write is not removed.
  fs::create_directories(d / "fresh.tmp");
  expect_error<UsageError>([&] { import_gguf(p, d / "fresh"); }, "not a leftover");
  EXPECT_TRUE(fs::exists(d / "fresh.tmp"));
}

TEST(GgufImport, CliWritesTheModelAndReportsErrorsOnOneLine) {
  TempDir d;
  const fs::path p = write_gguf(d, gguf_from_fixture("qwen2-sharded-f32", "qwen2"));
  auto r = run_resp("import-gguf " + p.string() + " --out " + (d / "m").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("qwen2"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(d / "m/model.safetensors"));
  EXPECT_TRUE(fs::exists(d / "m/tokenizer.json"));
  EXPECT_TRUE(fs::exists(d / "m/tokenizer_config.json"));
  r = run_resp("import-gguf " + p.string() + " --out " + (d / "m").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("resp: error: output ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  write_text(d / "junk.gguf", "GGUF\x03");
  r = run_resp("import-gguf " + (d / "junk.gguf").string() + " --out " + (d / "j").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("truncated GGUF file"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_FALSE(fs::exists(d / "j"));
}

// Mutants of a valid model file through every converter piece: a resp::Error or a result, never
// a crash.
TEST(GgufImport, ConverterSurvivesMutants) {
  TempDir d;
  const std::vector<uint8_t> good = gguf_from_fixture("llama-mqa-f32", "llama").build();
  const fs::path p = d / "m.gguf";
  std::mt19937_64 rng(99);
  class NullSink final : public ByteSink {
   public:
    void write(const void*, size_t n) override { bytes += n; }
    size_t bytes = 0;
  };
  int converted = 0;
  for (int iter = 0; iter < 600; ++iter) {
    std::vector<uint8_t> b = good;
    // Mutate the header region mostly: that is where the converter's decisions come from.
    const size_t header = std::min<size_t>(b.size(), 6000);
    for (int e = 0; e < 1 + static_cast<int>(rng() % 3); ++e) {
      const size_t at = rng() % header;
      if (rng() % 3 == 0)
        b[at] = static_cast<uint8_t>(rng());
      else
        b[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
    }
    write_bytes(p, b);
    try {
      GgufFile f(p);
      (void)gguf_hf_config(f, DType::F32);
      for (const TensorEntry& t : gguf_hf_tensors(f, DType::F32)) {
        NullSink sink;
        t.fill(sink);
        ASSERT_EQ(sink.bytes, t.nbytes()) << t.name;
      }
      EXPECT_TRUE(json::parse(gguf_tokenizer_json(f)).is_object());
      (void)gguf_tokenizer_config(f);
      (void)gguf_generation_config(f);
      ++converted;
    } catch (const Error&) {
    }
  }
  EXPECT_GT(converted, 0);
}
