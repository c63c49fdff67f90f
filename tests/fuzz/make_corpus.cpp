// Writes the seed corpus of the fuzz targets: tests/fuzz/corpus/<reader>/ (or the directory
// given as the argument). Text seeds are copied from the repository's fixtures and configs;
// binary seeds (safetensors, HDF5, GGUF) are written by resp's own writers and the test GGUF
// builder, small on purpose (a mutant of a small file reaches more of the reader per second).
// Deterministic but for the HDF5 files (HDF5 stamps object times). Run through
// tools/fuzz.sh --make-corpus.
#include <hdf5.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "ckpt/h5.h"
#include "ckpt/run_checkpoint.h"
#include "ckpt/safetensors_writer.h"
#include "ckpt/scores_file.h"
#include "core/dtype.h"
#include "gguf_test_writer.h"
#include "h5_description.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace resp;

namespace {

fs::path g_src = RESP_SOURCE_DIR;
fs::path g_out;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void put(const std::string& reader, const std::string& name, const std::string& bytes) {
  const fs::path d = g_out / reader;
  fs::create_directories(d);
  std::ofstream(d / name, std::ios::binary | std::ios::trunc) << bytes;
}

void copy_seed(const std::string& reader, const std::string& name, const std::string& rel) {
  put(reader, name, read_text(g_src / rel));
}

// A tensor of `n` elements of `dtype` with small distinct values.
TensorEntry entry(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  TensorEntry e;
  e.name = name;
  e.dtype = dtype;
  e.shape = std::move(shape);
  e.fill = [dtype, n = e.nbytes() / dtype_size(dtype)](ByteSink& sink) {
    for (size_t i = 0; i < n; ++i) {
      const float v = 0.25f * static_cast<float>(i % 7) - 0.5f;
      uint8_t b[8] = {};
      if (dtype == DType::F32) {
        std::memcpy(b, &v, 4);
      } else if (dtype == DType::F64) {
        const double d = v;
        std::memcpy(b, &d, 8);
      } else {  // BF16 / F16 of these values: their top bytes (exact for BF16; F16 by table)
        uint32_t u;
        std::memcpy(&u, &v, 4);
        uint16_t h = static_cast<uint16_t>(u >> 16);
        if (dtype == DType::F16) h = v == 0 ? 0 : static_cast<uint16_t>(0x3400 + (i % 7) * 0x100);
        std::memcpy(b, &h, 2);
      }
      sink.write(b, dtype_size(dtype));
    }
  };
  return e;
}

void safetensors_seeds() {
  const fs::path tmp = g_out / "safetensors" / "tmp.safetensors";
  fs::create_directories(tmp.parent_path());
  write_safetensors_file(tmp,
                         {entry("a.f32", DType::F32, {2, 3}), entry("b.bf16", DType::BF16, {4}),
                          entry("c.f16", DType::F16, {2, 2}), entry("d.f64", DType::F64, {3}),
                          entry("e.scalar", DType::F32, {}), entry("f.empty", DType::F32, {0, 3})});
  fs::rename(tmp, g_out / "safetensors" / "dtypes.safetensors");
  // A one-layer model's tensor names and shapes (hidden 8, 2 heads of 4, MLP 12, vocab 16).
  std::vector<TensorEntry> m = {entry("model.embed_tokens.weight", DType::BF16, {16, 8}),
                                entry("model.norm.weight", DType::F32, {8})};
  const std::string L = "model.layers.0.";
  for (const char* p :
       {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"})
    m.push_back(entry(L + p + ".weight", DType::F32, {8, 8}));
  m.push_back(entry(L + "mlp.gate_proj.weight", DType::BF16, {12, 8}));
  m.push_back(entry(L + "mlp.up_proj.weight", DType::BF16, {12, 8}));
  m.push_back(entry(L + "mlp.down_proj.weight", DType::BF16, {8, 12}));
  m.push_back(entry(L + "input_layernorm.weight", DType::F32, {8}));
  write_safetensors_file(tmp, m, {{"format", "pt"}});
  fs::rename(tmp, g_out / "safetensors" / "layer.safetensors");
}

void config_seeds() {
  for (const char* m : {"qwen3-f32", "qwen3-tied-bf16", "qwen2-sharded-f32", "llama31-bf16",
                        "llama-mqa-f32", "qwen3-tiny-demo"})
    copy_seed("model_config", std::string(m) + ".json",
              std::string("tests/fixtures/models/") + m + "/config.json");
  // A hetero export's config: each layer lists the heads, KV heads and channels it kept.
  json c = json::parse(read_text(g_src / "tests/fixtures/models/qwen3-tiny-demo/config.json"));
  c["resp_pruning"] = {
      {"layers",
       json::array({{{"heads", {0, 1, 3}}, {"kv_heads", {0, 1}}, {"channels", {0, 5, 9, 40}}},
                    {{"heads", {2}}, {"kv_heads", {1}}, {"channels", {1, 2, 3}}}})}};
  put("model_config", "hetero.json", c.dump(2));
  copy_seed("safetensors_index", "qwen2-sharded.json",
            "tests/fixtures/models/qwen2-sharded-f32/model.safetensors.index.json");
  copy_seed("generation_config", "qwen3.json",
            "tests/fixtures/models/qwen3-f32/generation_config.json");
  copy_seed("generation_config", "llama31.json",
            "tests/fixtures/models/llama31-bf16/generation_config.json");
  put("generation_config", "greedy.json",
      R"({"bos_token_id": 256, "do_sample": false, "eos_token_id": [257, 258], "max_new_tokens": 64, "pad_token_id": 256})");
}

void tokenizer_seeds() {
  const std::string demo = "tests/fixtures/models/qwen3-tiny-demo/";
  copy_seed("tokenizer_json", "qwen3-demo.json", demo + "tokenizer.json");
  // The same vocabulary through other components: a normalizer sequence, digits split before a
  // regex byte-level step, merges as pairs, a template post-processor adding <|endoftext|>.
  json t = json::parse(read_text(g_src / demo / "tokenizer.json"));
  t["normalizer"] = {
      {"type", "Sequence"},
      {"normalizers",
       json::array({{{"type", "NFKC"}},
                    {{"type", "Strip"}, {"strip_left", true}, {"strip_right", false}}})}};
  t["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}},
                                     {{"type", "ByteLevel"},
                                      {"add_prefix_space", true},
                                      {"trim_offsets", true},
                                      {"use_regex", true}}})}};
  t["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", json::array({{{"SpecialToken", {{"id", "<|endoftext|>"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
      {"pair", json::array({{{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                            {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
      {"special_tokens",
       {{"<|endoftext|>",
         {{"id", "<|endoftext|>"}, {"ids", {259}}, {"tokens", {"<|endoftext|>"}}}}}}};
  // Three merged tokens after the 256 bytes; the added tokens move up behind them.
  json& vocab = t["model"]["vocab"];
  vocab["\xc4\xa0t"] = 256;  // "Ġt"
  vocab["he"] = 257;
  vocab["\xc4\xa0the"] = 258;
  for (json& a : t["added_tokens"]) a["id"] = a["id"].get<int>() + 3;
  t["model"]["merges"] = json::array({{"\xc4\xa0", "t"}, {"h", "e"}, {"\xc4\xa0t", "he"}});
  put("tokenizer_json", "variant.json", t.dump(1));

  copy_seed("tokenizer_config", "qwen3-demo.json", demo + "tokenizer_config.json");
  copy_seed("tokenizer_config", "smollm2.json",
            "tests/fixtures/tokenizer/smollm2/tokenizer_config.json");
  // The chat templates of the families resp knows (their tokenizer_config fixtures).
  const json cases = json::parse(read_text(g_src / "tests/fixtures/tokenizer/jinja_cases.json"));
  for (const auto& [name, tpl] : cases["templates"].items())
    if (tpl["template"].is_string())
      put("chat_template", name + ".jinja", tpl["template"].get<std::string>());
  // Features the family templates do not use, written for the corpus.
  put("chat_template", "features.jinja", R"({%- macro fmt(m, sep=': ') -%}
{{ m.role | upper }}{{ sep }}{{ m.content | trim }}
{%- endmacro -%}
{%- set ns = namespace(n=0, last='') -%}
{%- for m in messages if m.role != 'system' -%}
{%- set ns.n = ns.n + 1 -%}{%- set ns.last = m.role -%}
{{ loop.index }}/{{ loop.length }} {{ fmt(m) }}{% if not loop.last %}{{ '\n' }}{% endif %}
{%- endfor %}
{{ messages | map(attribute='role') | join(',') }} {{ messages[0].content[:5] }} {{ 'abc'[::-1] }}
{{ {'k': [1, 2.5, none, true]} | tojson }} {{ range(3) | list | length }} {{ ns.n * 2 // 3 % 2 }}
{%- if messages[-1].content is string and 'x' not in messages[-1].content %} {{ ns.last ~ '!' }}{% endif %}
{%- for k, v in {'a': 1, 'b': 2}.items() %} {{ k }}={{ v }}{% else %}none{% endfor %}
{%- if add_generation_prompt %}
<assistant>{{ bos_token }}{{ eos_token | default('') }}{{ '%d-%s' | format(7, 'x') }}
{%- endif %})");
}

void yaml_seeds() {
  for (const auto& e : fs::directory_iterator(g_src / "configs"))
    if (e.path().extension() == ".yaml")
      copy_seed("prune_config", e.path().filename().string(),
                "configs/" + e.path().filename().string());
  for (const auto& e : fs::directory_iterator(g_src / "configs/train"))
    if (e.path().extension() == ".yaml")
      copy_seed("train_config", e.path().filename().string(),
                "configs/train/" + e.path().filename().string());
}

void jsonl_seeds() {
  // Records every consumer accepts: a token list, a trace, and GSM8K / MathQA row fields.
  std::string rows;
  for (int i = 0; i < 3; ++i) {
    json r = {{"id", "r" + std::to_string(i)},
              {"tokens", {1, 2, 3 + i, 200}},
              {"prompt_tokens", {10, 11 + i}},
              {"output_tokens", {12, 13, 257}},
              {"question", "Tom has " + std::to_string(3 + i) + " apples. How many?"},
              {"answer", "He has 3.\n#### " + std::to_string(3 + i)},
              {"Problem", "what is 2 + 2 ?"},
              {"options", "a ) 3 , b ) 4 , c ) 5"},
              {"correct", "b"}};
    rows += r.dump() + "\n";
  }
  put("jsonl", "records.jsonl", rows);
  // A trace file as resp generate writes it, with the optional prompt_len form.
  put("jsonl", "traces.jsonl",
      "{\"id\": \"t0\", \"tokens\": [5, 6, 7, 8, 9], \"prompt_len\": 2, \"question\": \"q\", "
      "\"answer\": \"#### 1,000\", \"Problem\": \"p\", \"options\": \"a ) 1\", \"correct\": "
      "\"a\"}\n\n{\"id\": 7, \"tokens\": [1, 2], \"prompt_tokens\": [1], \"output_tokens\": [2, "
      "262], \"question\": "
      "\"q\", \"answer\": \"#### -3.5\", \"Problem\": \"p\", \"options\": \"a ) 1\", "
      "\"correct\": \"A\"}\n");
}

// Removes the digest attribute: a file from before digests existed, which the reader accepts
// unverified (so mutants of it reach the checks behind the digest).
void strip_digest(const fs::path& p) {
  const hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0 || H5Adelete(f, h5::kDigestAttribute) < 0 || H5Fclose(f) < 0)
    throw std::runtime_error("cannot strip the digest of " + p.string());
}

ImportanceScores small_scores(int layers) {
  ImportanceScores s;
  s.source = "self";
  s.samples = 3;
  s.tokens = 27;
  s.mean_loss = 2.5;
  for (int l = 0; l < layers; ++l) {
    LayerScores ls;
    ls.head_ids = {0, 2, 3};
    ls.channel_ids = {1, 4, 5, 9};
    ls.heads = {0.5, 0.25, 0.125};
    ls.channels = {1, 2, 3, 4};
    s.layers.push_back(ls);
  }
  return s;
}

void hdf5_seeds() {
  const fs::path work = g_out / ".work";
  fs::create_directories(work);
  RunState s;
  s.iteration = 1;
  s.model = "models/x";
  s.config_yaml = "model: models/x\nschedule:\n  iterations: 4\n";
  s.seed = 7;
  s.layout_tp = 2;
  for (int l = 0; l < 2; ++l) s.plan.push_back({{0, 2, 3}, {1, 4, 5, 9}});
  s.scores = small_scores(2);
  for (int i = 0; i < 3; ++i) {
    TraceRecord t;
    t.id = "p" + std::to_string(i);
    t.prompt = {11, 12, 13};
    t.output = {100, 101 + i, 257};
    t.finish = i == 2 ? "length" : "eos";
    s.traces.push_back(t);
  }
  for (int it = 0; it <= 1; ++it) {
    IterationRecord r;
    r.iteration = it;
    r.ratio = 0.2 * it;
    r.sparsity = 0.1 * (it + 1);
    r.heads_kept = 6;
    r.channels_kept = 8;
    r.regenerated = it == 0;
    r.mean_output_tokens = 3;
    s.history.push_back(r);
  }
  write_run_checkpoint(work, s);
  const fs::path ck = checkpoint_path(work, 1);
  // The structure-aware targets take descriptions; hdf5_bytes takes the files themselves.
  json d = fuzz::describe_h5(ck);
  put("run_checkpoint", "iter1.json", d.dump(1));
  d["digest"] = "none";
  put("run_checkpoint", "iter1-no-digest.json", d.dump(1));
  put("hdf5_bytes", "iter1.h5", read_text(ck));
  strip_digest(ck);
  put("hdf5_bytes", "iter1-no-digest.h5", read_text(ck));

  write_scores_h5(work / "scores.h5", small_scores(3), "models/x");
  d = fuzz::describe_h5(work / "scores.h5");
  put("scores_h5", "scores.json", d.dump(1));
  d["digest"] = "none";
  put("scores_h5", "scores-no-digest.json", d.dump(1));
  fs::remove_all(work);
}

void gguf_seeds() {
  copy_seed("gguf", "reference.gguf", "tests/fixtures/gguf/reference.gguf");
  // A one-layer qwen2 (Q8_0 / Q4_0 / F16 / F32 tensors) with a byte-level BPE tokenizer:
  // everything the import converts, in ~25 KB.
  using namespace resp::test;
  GgufBuilder g;
  const std::string a = "qwen2.";
  const uint64_t H = 32, heads = 2, kv = 1, D = 16, F = 64;
  g.string("general.architecture", "qwen2")
      .string("general.name", "fuzz-seed")
      .u32("general.alignment", 32)
      .u32(a + "block_count", 1)
      .u32(a + "context_length", 256)
      .u32(a + "embedding_length", static_cast<uint32_t>(H))
      .u32(a + "feed_forward_length", static_cast<uint32_t>(F))
      .u32(a + "attention.head_count", static_cast<uint32_t>(heads))
      .u32(a + "attention.head_count_kv", static_cast<uint32_t>(kv))
      .f32(a + "rope.freq_base", 10000.0f)
      .f32(a + "attention.layer_norm_rms_epsilon", 1e-6f);
  std::vector<std::string> tokens, merges = {"\xc4\xa0 t"};
  std::vector<int32_t> types;
  uint32_t next = 256;
  auto utf8 = [](uint32_t cp) {
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    return s;
  };
  for (uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    tokens.push_back(utf8(printable ? b : next++));
    types.push_back(1);
  }
  tokens.push_back("\xc4\xa0t");
  types.push_back(1);
  for (const char* s : {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}) {
    tokens.push_back(s);
    types.push_back(3);
  }
  const uint64_t V = tokens.size();  // 260
  g.string("tokenizer.ggml.model", "gpt2")
      .string("tokenizer.ggml.pre", "qwen2")
      .strings("tokenizer.ggml.tokens", tokens)
      .i32s("tokenizer.ggml.token_type", types)
      .strings("tokenizer.ggml.merges", merges)
      .u32("tokenizer.ggml.bos_token_id", 257)
      .u32("tokenizer.ggml.eos_token_id", 259)
      .string("tokenizer.chat_template",
              "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
              "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}");
  // Block payloads: Q8_0 is an f16 scale + 32 int8, Q4_0 an f16 scale + 16 bytes of nibbles.
  auto q8_0 = [](uint64_t n) {
    std::vector<uint8_t> d;
    for (uint64_t b = 0; b < n / 32; ++b) {
      d.push_back(0x00);
      d.push_back(0x2c);  // f16 0.0625
      for (int i = 0; i < 32; ++i) d.push_back(static_cast<uint8_t>((b * 7 + i * 3) % 23 - 11));
    }
    return d;
  };
  auto q4_0 = [](uint64_t n) {
    std::vector<uint8_t> d;
    for (uint64_t b = 0; b < n / 32; ++b) {
      d.push_back(0x00);
      d.push_back(0x30);  // f16 0.125
      for (int i = 0; i < 16; ++i) d.push_back(static_cast<uint8_t>((b + i * 5) & 0xff));
    }
    return d;
  };
  auto f16 = [](uint64_t n) {
    std::vector<uint8_t> d;
    for (uint64_t i = 0; i < n; ++i) {
      d.push_back(0);
      d.push_back(static_cast<uint8_t>(0x38 + i % 4));
    }
    return d;
  };
  auto ones = [](uint64_t n) { return std::vector<float>(n, 1.0f); };
  g.tensor("token_embd.weight", 8, {H, V}, q8_0(H * V));
  g.f32_tensor("output_norm.weight", {H}, ones(H));
  g.f32_tensor("blk.0.attn_norm.weight", {H}, ones(H));
  g.f32_tensor("blk.0.ffn_norm.weight", {H}, ones(H));
  g.tensor("blk.0.attn_q.weight", 2, {H, heads * D}, q4_0(H * heads * D));
  g.tensor("blk.0.attn_k.weight", 1, {H, kv * D}, f16(H * kv * D));
  g.tensor("blk.0.attn_v.weight", 8, {H, kv * D}, q8_0(H * kv * D));
  g.f32_tensor("blk.0.attn_q.bias", {heads * D}, ones(heads * D));
  g.f32_tensor("blk.0.attn_k.bias", {kv * D}, ones(kv * D));
  g.f32_tensor("blk.0.attn_v.bias", {kv * D}, ones(kv * D));
  g.tensor("blk.0.attn_output.weight", 8, {heads * D, H}, q8_0(heads * D * H));
  g.tensor("blk.0.ffn_gate.weight", 2, {H, F}, q4_0(H * F));
  g.tensor("blk.0.ffn_up.weight", 8, {H, F}, q8_0(H * F));
  g.tensor("blk.0.ffn_down.weight", 1, {F, H}, f16(F * H));
  const std::vector<uint8_t> bytes = g.build();
  put("gguf", "qwen2-tiny.gguf", std::string(bytes.begin(), bytes.end()));
}

}  // namespace

int main(int argc, char** argv) {
  try {
    g_out = argc > 1 ? fs::path(argv[1]) : g_src / "tests/fuzz/corpus";
    for (const char* reader :
         {"safetensors", "safetensors_index", "model_config", "generation_config", "tokenizer_json",
          "tokenizer_config", "chat_template", "prune_config", "train_config", "jsonl",
          "run_checkpoint", "scores_h5", "gguf", "hdf5_bytes"})
      fs::remove_all(g_out / reader);
    safetensors_seeds();
    config_seeds();
    tokenizer_seeds();
    yaml_seeds();
    jsonl_seeds();
    hdf5_seeds();
    gguf_seeds();
    std::cout << "wrote the fuzz seed corpus to " << g_out.string() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "fuzz_make_corpus: " << e.what() << "\n";
    return 1;
  }
}
