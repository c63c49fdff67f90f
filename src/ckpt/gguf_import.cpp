#include "ckpt/gguf_import.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <numbers>
#include <optional>
#include <set>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "model/model_config.h"
#include "model/safetensors.h"

namespace resp {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

// The architectures resp runs, as llama.cpp names them.
struct ArchInfo {
  const char* gguf;
  const char* hf_class;
  const char* model_type;
  // llama.cpp's convert_hf_to_gguf.py permutes the rows of q_proj / k_proj for the llama
  // architecture only (its RoPE rotates adjacent pairs, HF's rotates halves).
  bool permuted_qk;
  bool qkv_bias;  // required (Qwen2)
  bool qk_norm;   // required (Qwen3)
};
constexpr ArchInfo kArchs[] = {
    {"llama", "LlamaForCausalLM", "llama", true, false, false},
    {"qwen2", "Qwen2ForCausalLM", "qwen2", false, true, false},
    {"qwen3", "Qwen3ForCausalLM", "qwen3", false, false, true},
};

// What the import needs to know about the model, read and checked once.
struct Hparams {
  const ArchInfo* arch = nullptr;
  int64_t layers = 0, hidden = 0, ffn = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t vocab = 0, context = 0;
  double rms_eps = 0, rope_theta = 10000.0;
  bool tied = false;
  bool attention_bias = false;  // llama: q/k/v/o biases present
  std::optional<ojson> rope_scaling;
  std::optional<int64_t> bos, eos, pad, unk;
};

std::string where(const GgufFile& f) {
  return f.path().string();
}

const ArchInfo& arch_of(const GgufFile& f) {
  const auto a = f.get_string("general.architecture");
  if (!a) throw FormatError(cat(where(f), ": no general.architecture in the metadata"));
  for (const ArchInfo& info : kArchs)
    if (*a == info.gguf) return info;
  throw UnsupportedError(cat(where(f), ": GGUF architecture \"", *a,
                             "\" is not supported (supported: llama, qwen2, qwen3)"));
}

int64_t req_int(const GgufFile& f, const std::string& key, int64_t lo, int64_t hi) {
  const auto v = f.get_int(key);
  if (!v) throw FormatError(cat(where(f), ": missing metadata \"", key, "\""));
  if (*v < lo || *v > hi)
    throw FormatError(
        cat(where(f), ": metadata \"", key, "\" = ", *v, " is outside [", lo, ", ", hi, "]"));
  return *v;
}

// A per-layer count given either as one integer or as an array of equal integers.
int64_t uniform_int(const GgufFile& f, const std::string& key, int64_t lo, int64_t hi,
                    int64_t fallback) {
  const GgufValue* v = f.find(key);
  if (!v) return fallback;
  if (v->type != GgufType::Array) return req_int(f, key, lo, hi);
  const auto all = f.get_int_array(key);
  if (all->empty()) throw FormatError(cat(where(f), ": metadata \"", key, "\" is an empty array"));
  for (int64_t x : *all)
    if (x != all->front())
      throw UnsupportedError(cat(where(f), ": metadata \"", key,
                                 "\" differs between layers; resp imports uniform models only"));
  if (all->front() < lo || all->front() > hi)
    throw FormatError(cat(where(f), ": metadata \"", key, "\" = ", all->front(), " is outside [",
                          lo, ", ", hi, "]"));
  return all->front();
}

std::optional<int64_t> token_id(const GgufFile& f, const std::string& key, int64_t vocab) {
  const auto v = f.get_int(key);
  if (!v) return std::nullopt;
  if (*v < 0 || *v >= vocab)
    throw FormatError(cat(where(f), ": metadata \"", key, "\" = ", *v,
                          " is not a token id (vocabulary of ", vocab, ")"));
  return *v;
}

// Llama-3 RoPE scaling as llama.cpp stores it: a rope_freqs tensor of per-frequency factors
// (convert_hf_to_gguf.py computes them from the config and drops the parameters). The factors
// are matched against the Llama-3 formula with the parameters every Llama-3.x release uses
// (low_freq_factor 1, high_freq_factor 4) and the original context from the metadata or 8192.
std::optional<ojson> llama3_scaling(const GgufFile& f, const GgufTensorInfo& t, double theta,
                                    int64_t head_dim, const std::string& prefix) {
  if (t.numel() != head_dim / 2 || t.dims.size() != 1)
    throw FormatError(cat(where(f), ": rope_freqs.weight has shape ", t.shape_str(), ", expected [",
                          head_dim / 2, "]"));
  std::vector<float> got(static_cast<size_t>(t.numel()));
  f.dequantize(t, got.data());
  const double factor = *std::max_element(got.begin(), got.end());
  bool all_one = true;
  for (float g : got) all_one = all_one && g == 1.0f;
  if (all_one) return std::nullopt;
  const double low = 1.0, high = 4.0;
  const double original =
      f.get_float(prefix + "rope.scaling.original_context_length").value_or(8192.0);
  const double low_wavelen = original / low, high_wavelen = original / high;
  for (size_t i = 0; i < got.size(); ++i) {
    const double freq =
        1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
    const double wavelen = 2 * std::numbers::pi / freq;
    double want;
    if (wavelen < high_wavelen) {
      want = 1.0;
    } else if (wavelen > low_wavelen) {
      want = factor;
    } else {
      const double smooth = (original / wavelen - low) / (high - low);
      want = 1.0 / ((1 - smooth) / factor + smooth);
    }
    if (std::fabs(want - got[i]) > 1e-4 * want)
      throw UnsupportedError(cat(where(f),
                                 ": rope_freqs.weight does not follow Llama-3 RoPE "
                                 "scaling (factor ",
                                 factor, ", low 1, high 4, original context ", original,
                                 "): entry ", i, " is ", got[i], ", expected ", want));
  }
  ojson s;
  s["rope_type"] = "llama3";
  s["factor"] = factor;
  s["low_freq_factor"] = low;
  s["high_freq_factor"] = high;
  s["original_max_position_embeddings"] = static_cast<int64_t>(original);
  return s;
}

Hparams read_hparams(const GgufFile& f) {
  Hparams h;
  h.arch = &arch_of(f);
  const std::string a = std::string(h.arch->gguf) + ".";
  constexpr int64_t kBig = int64_t{1} << 24;
  if (f.get_int(a + "expert_count").value_or(0) > 0)
    throw UnsupportedError(cat(where(f), ": mixture-of-experts models are not supported"));
  h.layers = req_int(f, a + "block_count", 1, 1 << 16);
  h.hidden = req_int(f, a + "embedding_length", 1, kBig);
  h.ffn = uniform_int(f, a + "feed_forward_length", 1, kBig, -1);
  if (h.ffn < 0)
    throw FormatError(cat(where(f), ": missing metadata \"", a, "feed_forward_length\""));
  h.heads = uniform_int(f, a + "attention.head_count", 1, 1 << 16, -1);
  if (h.heads < 0)
    throw FormatError(cat(where(f), ": missing metadata \"", a, "attention.head_count\""));
  h.kv_heads = uniform_int(f, a + "attention.head_count_kv", 1, h.heads, h.heads);
  if (h.heads % h.kv_heads != 0)
    throw FormatError(cat(where(f), ": ", h.heads, " attention heads is not a multiple of ",
                          h.kv_heads, " KV heads"));
  if (f.has(a + "attention.key_length")) {
    h.head_dim = req_int(f, a + "attention.key_length", 1, 1 << 16);
  } else {
    if (h.hidden % h.heads != 0)
      throw FormatError(cat(where(f), ": embedding_length ", h.hidden,
                            " is not a multiple of head_count ", h.heads, " and no key_length"));
    h.head_dim = h.hidden / h.heads;
  }
  if (const auto v = f.get_int(a + "attention.value_length"); v && *v != h.head_dim)
    throw UnsupportedError(cat(where(f), ": value_length ", *v, " differs from key_length ",
                               h.head_dim, " (not supported)"));
  if (const auto r = f.get_int(a + "rope.dimension_count"); r && *r != h.head_dim)
    throw UnsupportedError(cat(where(f), ": partial RoPE (rope.dimension_count ", *r,
                               " of head_dim ", h.head_dim, ") is not supported"));
  if (h.head_dim % 2 != 0) throw FormatError(cat(where(f), ": head_dim ", h.head_dim, " is odd"));
  h.context = req_int(f, a + "context_length", 1, int64_t{1} << 31);
  const auto eps = f.get_float(a + "attention.layer_norm_rms_epsilon");
  if (!eps)
    throw FormatError(
        cat(where(f), ": missing metadata \"", a, "attention.layer_norm_rms_epsilon\""));
  if (!(*eps > 0 && *eps < 1))
    throw FormatError(cat(where(f), ": layer_norm_rms_epsilon ", *eps, " is not in (0, 1)"));
  h.rms_eps = *eps;
  h.rope_theta = f.get_float(a + "rope.freq_base").value_or(10000.0);
  if (!(h.rope_theta > 1 && std::isfinite(h.rope_theta)))
    throw FormatError(cat(where(f), ": rope.freq_base ", h.rope_theta, " is not a RoPE base"));
  if (const auto st = f.get_string(a + "rope.scaling.type"); st && *st != "none")
    throw UnsupportedError(cat(where(f), ": RoPE scaling \"", *st, "\" is not supported"));
  if (const GgufTensorInfo* rf = f.tensor("rope_freqs.weight"))
    h.rope_scaling = llama3_scaling(f, *rf, h.rope_theta, h.head_dim, a);

  const GgufTensorInfo* emb = f.tensor("token_embd.weight");
  if (!emb) throw FormatError(cat(where(f), ": no token_embd.weight tensor"));
  if (emb->dims.size() != 2 || emb->dims[0] != h.hidden)
    throw FormatError(cat(where(f), ": token_embd.weight has ggml dims ", emb->shape_str(),
                          ", expected [", h.hidden, ", vocab]"));
  h.vocab = emb->dims[1];
  if (const auto v = f.get_int(a + "vocab_size"); v && *v != h.vocab)
    throw FormatError(cat(where(f), ": ", a, "vocab_size ", *v,
                          " differs from token_embd.weight's ", h.vocab, " rows"));
  h.tied = f.tensor("output.weight") == nullptr;
  h.attention_bias = !h.arch->qkv_bias && f.tensor("blk.0.attn_q.bias") != nullptr;
  h.bos = token_id(f, "tokenizer.ggml.bos_token_id", h.vocab);
  h.eos = token_id(f, "tokenizer.ggml.eos_token_id", h.vocab);
  h.pad = token_id(f, "tokenizer.ggml.padding_token_id", h.vocab);
  h.unk = token_id(f, "tokenizer.ggml.unknown_token_id", h.vocab);
  return h;
}

// How one GGUF tensor becomes one HF tensor.
struct Mapping {
  std::string hf;
  std::vector<int64_t> shape;  // HF (row-major) shape
  int64_t permute_heads = 0;   // > 0: undo llama.cpp's q/k row permutation with this many heads
};

// Every tensor the model must have, keyed by GGUF name.
std::map<std::string, Mapping> expected_tensors(const Hparams& h) {
  std::map<std::string, Mapping> m;
  const int64_t q = h.heads * h.head_dim, kv = h.kv_heads * h.head_dim;
  const bool perm = h.arch->permuted_qk;
  m["token_embd.weight"] = {"model.embed_tokens.weight", {h.vocab, h.hidden}, 0};
  m["output_norm.weight"] = {"model.norm.weight", {h.hidden}, 0};
  if (!h.tied) m["output.weight"] = {"lm_head.weight", {h.vocab, h.hidden}, 0};
  for (int64_t l = 0; l < h.layers; ++l) {
    const std::string g = cat("blk.", l, "."), p = cat("model.layers.", l, ".");
    m[g + "attn_norm.weight"] = {p + "input_layernorm.weight", {h.hidden}, 0};
    m[g + "attn_q.weight"] = {p + "self_attn.q_proj.weight", {q, h.hidden}, perm ? h.heads : 0};
    m[g + "attn_k.weight"] = {p + "self_attn.k_proj.weight", {kv, h.hidden}, perm ? h.kv_heads : 0};
    m[g + "attn_v.weight"] = {p + "self_attn.v_proj.weight", {kv, h.hidden}, 0};
    m[g + "attn_output.weight"] = {p + "self_attn.o_proj.weight", {h.hidden, q}, 0};
    if (h.arch->qkv_bias || h.attention_bias) {
      m[g + "attn_q.bias"] = {p + "self_attn.q_proj.bias", {q}, perm ? h.heads : 0};
      m[g + "attn_k.bias"] = {p + "self_attn.k_proj.bias", {kv}, perm ? h.kv_heads : 0};
      m[g + "attn_v.bias"] = {p + "self_attn.v_proj.bias", {kv}, 0};
    }
    if (h.attention_bias) m[g + "attn_output.bias"] = {p + "self_attn.o_proj.bias", {h.hidden}, 0};
    if (h.arch->qk_norm) {
      m[g + "attn_q_norm.weight"] = {p + "self_attn.q_norm.weight", {h.head_dim}, 0};
      m[g + "attn_k_norm.weight"] = {p + "self_attn.k_norm.weight", {h.head_dim}, 0};
    }
    m[g + "ffn_norm.weight"] = {p + "post_attention_layernorm.weight", {h.hidden}, 0};
    m[g + "ffn_gate.weight"] = {p + "mlp.gate_proj.weight", {h.ffn, h.hidden}, 0};
    m[g + "ffn_up.weight"] = {p + "mlp.up_proj.weight", {h.ffn, h.hidden}, 0};
    m[g + "ffn_down.weight"] = {p + "mlp.down_proj.weight", {h.hidden, h.ffn}, 0};
  }
  return m;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string t = "[";
  for (size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + "]";
}

// HF row r of a permuted q/k tensor comes from GGUF row src_row(r): llama.cpp stored head h's
// rows in the order (pair i, half s) where HF has (half s, pair i).
int64_t src_row(int64_t r, int64_t rows_per_head) {
  const int64_t half = rows_per_head / 2;
  const int64_t h = r / rows_per_head, w = r % rows_per_head;
  return h * rows_per_head + (w % half) * 2 + w / half;
}

void write_values(ByteSink& out, const float* v, size_t n, DType dtype,
                  std::vector<uint16_t>& scratch) {
  if (dtype == DType::F32) {
    out.write(v, n * 4);
    return;
  }
  scratch.resize(n);
  for (size_t i = 0; i < n; ++i) scratch[i] = f32_to_bf16(v[i]);
  out.write(scratch.data(), n * 2);
}

std::string dtype_torch_name(DType d) {
  return d == DType::BF16 ? "bfloat16" : "float32";
}

// ---- tokenizer ----

// GPT-2's byte-to-unicode alphabet: printable Latin-1 bytes stand for themselves, the other 68
// bytes for U+0100.. in byte order.
const std::array<uint32_t, 256>& byte_alphabet() {
  static const std::array<uint32_t, 256> kMap = [] {
    std::array<uint32_t, 256> m{};
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
      m[b] = printable ? b : next++;
    }
    return m;
  }();
  return kMap;
}

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Decodes strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF); false if invalid.
bool decode_utf8(const std::string& s, std::vector<uint32_t>& out) {
  out.clear();
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    uint32_t cp;
    size_t n;
    if (c < 0x80) {
      cp = c;
      n = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      cp = c & 0x1F;
      n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      cp = c & 0x0F;
      n = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      cp = c & 0x07;
      n = 4;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<uint8_t>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    out.push_back(cp);
    i += n;
  }
  return true;
}

bool in_alphabet(const std::vector<uint32_t>& cps) {
  for (uint32_t cp : cps)
    if (!((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || (cp >= 174 && cp <= 255) ||
          (cp >= 256 && cp < 256 + 68)))
      return false;
  return true;
}

// The exact regexes of the models' own tokenizer.json files (resp's tokenizer recognises them).
constexpr const char* kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

ojson byte_level(bool use_regex) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", false},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

ojson split_then_byte_level(const char* regex) {
  ojson split = {{"type", "Split"},
                 {"pattern", {{"Regex", regex}}},
                 {"behavior", "Isolated"},
                 {"invert", false}};
  return {{"type", "Sequence"}, {"pretokenizers", ojson::array({split, byte_level(false)})}};
}

// The normalizer, pre-tokenizer and ignore_merges of the original tokenizer.json of each
// llama.cpp pre-tokenizer name (llama-vocab.cpp applies the same splits).
struct PreTok {
  ojson normalizer;
  ojson pre_tokenizer;
  bool ignore_merges = false;
};

PreTok pre_tokenizer_for(const GgufFile& f, const std::string& pre) {
  PreTok p;
  if (pre == "smollm") {
    // SmolLM / SmolLM2: single digits, then GPT-2's byte-level split.
    p.pre_tokenizer = {
        {"type", "Sequence"},
        {"pretokenizers",
         ojson::array({{{"type", "Digits"}, {"individual_digits", true}}, byte_level(true)})}};
  } else if (pre == "gpt-2") {
    p.pre_tokenizer = byte_level(true);
  } else if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") {
    p.pre_tokenizer = split_then_byte_level(kLlama3Split);
    p.ignore_merges = true;  // Llama-3's tokenizer.json (and llama.cpp for this type)
  } else if (pre == "qwen2" || pre == "deepseek-r1-qwen") {
    p.normalizer = {{"type", "NFC"}};  // Qwen2's tokenizer.json
    p.pre_tokenizer = split_then_byte_level(kQwen2Split);
  } else {
    throw UnsupportedError(cat(where(f), ": tokenizer.ggml.pre \"", pre,
                               "\" is not supported (supported: smollm, gpt-2, llama-bpe, qwen2, "
                               "deepseek-r1-qwen)"));
  }
  return p;
}

struct Vocab {
  std::vector<std::string> tokens;   // as spelled in the file
  std::vector<std::string> spelled;  // in the byte alphabet (what the vocab maps)
  std::vector<bool> in_alphabet;
  std::vector<int64_t> types;  // llama.cpp token types; 1 (normal) when absent
};

Vocab read_vocab(const GgufFile& f, int64_t vocab_limit) {
  const auto model = f.get_string("tokenizer.ggml.model");
  if (!model) throw FormatError(cat(where(f), ": no tokenizer.ggml.model in the metadata"));
  if (*model == "llama")
    throw UnsupportedError(cat(where(f),
                               ": the SentencePiece tokenizer (tokenizer.ggml.model "
                               "\"llama\") is not supported; resp reads byte-level BPE "
                               "(\"gpt2\") vocabularies"));
  if (*model != "gpt2")
    throw UnsupportedError(cat(where(f), ": tokenizer.ggml.model \"", *model,
                               "\" is not supported (supported: gpt2, byte-level BPE)"));
  Vocab v;
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (!tokens || tokens->empty())
    throw FormatError(cat(where(f), ": no tokenizer.ggml.tokens in the metadata"));
  if (static_cast<int64_t>(tokens->size()) > vocab_limit)
    throw FormatError(cat(where(f), ": ", tokens->size(), " tokens but token_embd.weight has only ",
                          vocab_limit, " rows"));
  v.tokens = std::move(*tokens);
  if (auto types = f.get_int_array("tokenizer.ggml.token_type")) {
    if (types->size() != v.tokens.size())
      throw FormatError(cat(where(f), ": tokenizer.ggml.token_type has ", types->size(),
                            " entries for ", v.tokens.size(), " tokens"));
    v.types = std::move(*types);
  } else {
    v.types.assign(v.tokens.size(), 1);
  }
  const auto& alphabet = byte_alphabet();
  std::vector<uint32_t> cps;
  v.spelled.resize(v.tokens.size());
  v.in_alphabet.resize(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    const std::string& t = v.tokens[i];
    if (t.empty()) throw FormatError(cat(where(f), ": token ", i, " is empty"));
    if (!decode_utf8(t, cps))
      throw FormatError(cat(where(f), ": token ", i, " is not valid UTF-8"));
    v.in_alphabet[i] = in_alphabet(cps);
    if (v.in_alphabet[i]) {
      v.spelled[i] = t;
    } else {
      // A token stored as plain text (a llama.cpp mislabel): spell its bytes in the alphabet,
      // as transformers' GGUF loader does.
      for (char c : t) append_utf8(v.spelled[i], alphabet[static_cast<uint8_t>(c)]);
    }
  }
  return v;
}

constexpr int64_t kTokenControl = 3, kTokenUserDefined = 4;

// tokenizer.ggml.add_bos_token, or llama.cpp's default when absent: on for the Llama-3
// pre-tokenizer (whose tokenizer.json prepends <|begin_of_text|>), off for other BPE vocabularies.
bool add_bos_token(const GgufFile& f) {
  if (const auto b = f.get_bool("tokenizer.ggml.add_bos_token")) return *b;
  const std::string pre = f.get_string("tokenizer.ggml.pre").value_or("");
  return pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3";
}

ojson added_token(int64_t id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

std::optional<std::string> token_text(const Vocab& v, const std::optional<int64_t>& id) {
  if (!id || *id >= static_cast<int64_t>(v.tokens.size())) return std::nullopt;
  return v.spelled[static_cast<size_t>(*id)];
}

}  // namespace

ojson gguf_hf_config(const GgufFile& f, DType dtype) {
  const Hparams h = read_hparams(f);
  ojson c;
  c["architectures"] = ojson::array({h.arch->hf_class});
  c["model_type"] = h.arch->model_type;
  c["vocab_size"] = h.vocab;
  c["hidden_size"] = h.hidden;
  c["intermediate_size"] = h.ffn;
  c["num_hidden_layers"] = h.layers;
  c["num_attention_heads"] = h.heads;
  c["num_key_value_heads"] = h.kv_heads;
  c["head_dim"] = h.head_dim;
  c["hidden_act"] = "silu";
  c["max_position_embeddings"] = h.context;
  c["rms_norm_eps"] = h.rms_eps;
  c["rope_theta"] = h.rope_theta;
  c["rope_scaling"] = h.rope_scaling ? *h.rope_scaling : ojson(nullptr);
  if (std::string(h.arch->gguf) == "qwen2") {
    c["use_sliding_window"] = false;
  } else {
    c["attention_bias"] = h.attention_bias;
  }
  if (std::string(h.arch->gguf) == "llama") c["mlp_bias"] = false;
  c["tie_word_embeddings"] = h.tied;
  c["bos_token_id"] = h.bos ? ojson(*h.bos) : ojson(nullptr);
  c["eos_token_id"] = h.eos ? ojson(*h.eos) : ojson(nullptr);
  if (h.pad) c["pad_token_id"] = *h.pad;
  c["torch_dtype"] = dtype_torch_name(dtype);
  c["use_cache"] = true;
  return c;
}

std::vector<TensorEntry> gguf_hf_tensors(const GgufFile& f, DType dtype) {
  if (dtype != DType::F32 && dtype != DType::BF16)
    throw UsageError(cat("GGUF import writes F32 or BF16, not ", dtype_name(dtype)));
  const Hparams h = read_hparams(f);
  const std::map<std::string, Mapping> want = expected_tensors(h);
  std::set<std::string> seen;
  for (const GgufTensorInfo& t : f.tensors()) {
    if (t.name == "rope_freqs.weight") continue;  // became config.rope_scaling
    auto it = want.find(t.name);
    if (it == want.end())
      throw UnsupportedError(cat(where(f), ": tensor \"", t.name, "\" (", ggml_type_name(t.type),
                                 " ", t.shape_str(), ") has no place in a ", h.arch->gguf,
                                 " model resp can import"));
    if (t.torch_shape() != it->second.shape)
      throw FormatError(cat(where(f), ": tensor \"", t.name, "\" has shape ",
                            shape_text(t.torch_shape()), ", expected ",
                            shape_text(it->second.shape), " from the metadata"));
    const GgmlTypeTraits* tr = ggml_type_traits(t.type);
    if (!tr->dequantizable)
      throw UnsupportedError(cat(where(f), ": tensor \"", t.name, "\" is ", tr->name,
                                 ", which resp cannot dequantize (supported: F32, F16, BF16, Q4_0, "
                                 "Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K)"));
    seen.insert(t.name);
  }
  for (const auto& [name, m] : want)
    if (!seen.count(name))
      throw FormatError(cat(where(f), ": missing tensor \"", name, "\" (for ", m.hf, ")"));

  // HF order: embeddings, then each layer, then the final norm and head.
  std::vector<std::pair<std::string, const Mapping*>> order;
  auto add = [&](const std::string& g) {
    if (auto it = want.find(g); it != want.end()) order.emplace_back(g, &it->second);
  };
  add("token_embd.weight");
  for (int64_t l = 0; l < h.layers; ++l)
    for (const char* s : {"attn_norm.weight", "attn_q.weight", "attn_q.bias", "attn_k.weight",
                          "attn_k.bias", "attn_v.weight", "attn_v.bias", "attn_output.weight",
                          "attn_output.bias", "attn_q_norm.weight", "attn_k_norm.weight",
                          "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"})
      add(cat("blk.", l, ".", s));
  add("output_norm.weight");
  add("output.weight");

  std::vector<TensorEntry> out;
  out.reserve(order.size());
  for (const auto& [gname, m] : order) {
    const GgufTensorInfo* t = f.tensor(gname);
    TensorEntry e;
    e.name = m->hf;
    e.dtype = dtype;
    e.shape = m->shape;
    const int64_t heads = m->permute_heads;
    if (heads > 0 && (t->torch_shape()[0] % (2 * heads) != 0))
      throw FormatError(cat(where(f), ": tensor \"", gname, "\" has ", t->torch_shape()[0],
                            " rows, not a whole number of ", heads, " heads of even size"));
    e.fill = [&f, t, heads, dtype](ByteSink& sink) {
      std::vector<uint16_t> scratch;
      const int64_t rs = t->row_size(), rows = t->rows();
      if (heads > 0 && t->dims.size() == 1) {  // a permuted bias: one row of q/k entries
        std::vector<float> all(static_cast<size_t>(rs)), perm(all.size());
        f.dequantize(*t, all.data());
        for (int64_t r = 0; r < rs; ++r)
          perm[static_cast<size_t>(r)] = all[static_cast<size_t>(src_row(r, rs / heads))];
        write_values(sink, perm.data(), perm.size(), dtype, scratch);
        return;
      }
      const int64_t chunk = heads > 0 ? 1 : std::max<int64_t>(1, (int64_t{1} << 20) / rs);
      std::vector<float> buf(static_cast<size_t>(chunk * rs));
      for (int64_t r = 0; r < rows; r += chunk) {
        const int64_t k = std::min(chunk, rows - r);
        f.dequantize_rows(*t, heads > 0 ? src_row(r, rows / heads) : r, k, buf.data());
        write_values(sink, buf.data(), static_cast<size_t>(k * rs), dtype, scratch);
      }
    };
    out.push_back(std::move(e));
  }
  return out;
}

bool gguf_has_tokenizer(const GgufFile& f) {
  return f.has("tokenizer.ggml.model");
}

std::string gguf_tokenizer_json(const GgufFile& f) {
  const Hparams h = read_hparams(f);
  const Vocab v = read_vocab(f, h.vocab);
  const auto pre_name = f.get_string("tokenizer.ggml.pre");
  if (!pre_name)
    throw UnsupportedError(cat(where(f), ": no tokenizer.ggml.pre: the pre-tokenizer is unknown"));
  const PreTok pre = pre_tokenizer_for(f, *pre_name);

  // Vocabulary: ids in order; a spelling that occurs twice keeps its last id, as a Python dict
  // built from the list does. Written by hand: 150k keys through an ordered JSON object would
  // take quadratic time.
  std::unordered_map<std::string, size_t> last;
  last.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i) last[v.spelled[i]] = i;
  std::string vocab_text = "{";
  bool first = true;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (last[v.spelled[i]] != i) continue;
    vocab_text += first ? "\n      " : ",\n      ";
    first = false;
    vocab_text += ojson(v.spelled[i]).dump() + ": " + std::to_string(i);
  }
  vocab_text += "\n    }";

  const auto merges = f.get_string_array("tokenizer.ggml.merges");
  if (!merges) throw FormatError(cat(where(f), ": no tokenizer.ggml.merges for a BPE vocabulary"));
  ojson merge_list = ojson::array();
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < merges->size(); ++i) {
    const std::string& mg = (*merges)[i];
    const size_t sp = mg.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 == mg.size() ||
        mg.find(' ', sp + 1) != std::string::npos)
      throw FormatError(cat(where(f), ": merge ", i, " is not two tokens separated by one space"));
    if (!decode_utf8(mg, cps))
      throw FormatError(cat(where(f), ": merge ", i, " is not valid UTF-8"));
    merge_list.push_back(ojson::array({mg.substr(0, sp), mg.substr(sp + 1)}));
  }

  ojson added = ojson::array();
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    // Control tokens are special; user-defined ones are matched whole but not special. A control
    // token outside the byte alphabet is a llama.cpp mislabel that transformers skips too.
    if (v.types[i] == kTokenControl && v.in_alphabet[i])
      added.push_back(added_token(static_cast<int64_t>(i), v.tokens[i], true));
    else if (v.types[i] == kTokenUserDefined && v.in_alphabet[i])
      added.push_back(added_token(static_cast<int64_t>(i), v.tokens[i], false));
  }

  const bool add_bos = add_bos_token(f);
  const bool add_eos = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  ojson post = {{"type", "ByteLevel"},
                {"add_prefix_space", true},
                {"trim_offsets", false},
                {"use_regex", true}};
  if (add_bos || add_eos) {
    const auto bos = token_text(v, h.bos), eos = token_text(v, h.eos);
    if ((add_bos && !bos) || (add_eos && !eos))
      throw FormatError(cat(where(f), ": add_bos_token/add_eos_token without a usable token id"));
    ojson single = ojson::array(), pair = ojson::array(), specials = ojson::object();
    auto special = [&](const std::string& tok, int type_id) {
      return ojson{{"SpecialToken", {{"id", tok}, {"type_id", type_id}}}};
    };
    auto seq = [](const char* id, int type_id) {
      return ojson{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
    };
    if (add_bos) {
      single.push_back(special(*bos, 0));
      specials[*bos] = {{"id", *bos}, {"ids", {*h.bos}}, {"tokens", {*bos}}};
    }
    single.push_back(seq("A", 0));
    if (add_eos) {
      single.push_back(special(*eos, 0));
      specials[*eos] = {{"id", *eos}, {"ids", {*h.eos}}, {"tokens", {*eos}}};
    }
    pair = single;
    if (add_bos) pair.push_back(special(*bos, 1));
    pair.push_back(seq("B", 1));
    if (add_eos) pair.push_back(special(*eos, 1));
    ojson tp = {{"type", "TemplateProcessing"},
                {"single", single},
                {"pair", pair},
                {"special_tokens", specials}};
    post = {{"type", "Sequence"}, {"processors", ojson::array({post, tp})}};
  }

  const std::string placeholder = "@resp_vocab@";
  ojson t;
  t["version"] = "1.0";
  t["truncation"] = nullptr;
  t["padding"] = nullptr;
  t["added_tokens"] = added;
  t["normalizer"] = pre.normalizer;
  t["pre_tokenizer"] = pre.pre_tokenizer;
  t["post_processor"] = post;
  t["decoder"] = {{"type", "ByteLevel"},
                  {"add_prefix_space", true},
                  {"trim_offsets", true},
                  {"use_regex", true}};
  t["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", pre.ignore_merges},
                {"vocab", placeholder},
                {"merges", std::move(merge_list)}};
  std::string text = t.dump(2);
  const std::string quoted = ojson(placeholder).dump();
  text.replace(text.find(quoted), quoted.size(), vocab_text);
  return text + "\n";
}

ojson gguf_tokenizer_config(const GgufFile& f) {
  const Hparams h = read_hparams(f);
  const Vocab v = read_vocab(f, h.vocab);
  ojson c;
  c["add_bos_token"] = add_bos_token(f);
  c["add_eos_token"] = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
  const std::pair<const char*, std::optional<int64_t>> named[] = {
      {"bos_token", h.bos}, {"eos_token", h.eos}, {"pad_token", h.pad}, {"unk_token", h.unk}};
  for (const auto& [key, id] : named)
    if (const auto tok = token_text(v, id)) c[key] = *tok;
  if (const auto tpl = f.get_string("tokenizer.chat_template")) {
    std::vector<uint32_t> cps;
    if (!decode_utf8(*tpl, cps))
      throw FormatError(cat(where(f), ": tokenizer.chat_template is not valid UTF-8"));
    c["chat_template"] = *tpl;
  }
  c["clean_up_tokenization_spaces"] = false;
  c["model_max_length"] = h.context;
  // The generic fast tokenizer keeps tokenizer.json as written (its post-processor adds BOS
  // when the file asks for it).
  c["tokenizer_class"] = "PreTrainedTokenizerFast";
  return c;
}

ojson gguf_generation_config(const GgufFile& f) {
  const Hparams h = read_hparams(f);
  ojson g;
  if (h.bos) g["bos_token_id"] = *h.bos;
  // Chat models end a turn with an end-of-turn token that llama.cpp may record apart from EOS.
  std::vector<int64_t> eos;
  if (h.eos) eos.push_back(*h.eos);
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (const auto id = token_id(f, key, h.vocab);
        id && std::find(eos.begin(), eos.end(), *id) == eos.end())
      eos.push_back(*id);
  if (eos.size() == 1) g["eos_token_id"] = eos[0];
  if (eos.size() > 1) g["eos_token_id"] = eos;
  if (h.pad) g["pad_token_id"] = *h.pad;
  return g;
}

namespace {

constexpr const char* kIncompleteMarker = ".resp-import-incomplete";

fs::path checked_out_dir(const fs::path& out_arg) {
  if (out_arg.empty()) throw UsageError("import-gguf: no output directory given");
  fs::path out = out_arg.lexically_normal();
  while (!out.has_filename() && out.has_parent_path() && out != out.root_path())
    out = out.parent_path();
  if (out.empty() || out == out.root_path() || out.filename() == "." || out.filename() == "..")
    throw UsageError(cat("import-gguf: ", out_arg.string(), " cannot be an output directory"));
  if (fs::exists(out) && (!fs::is_directory(out) || !fs::is_empty(out)))
    throw UsageError(
        cat("output ", out.string(),
            fs::is_directory(out) ? " exists and is not empty" : " exists and is not a directory",
            "; choose a new directory (nothing was overwritten)"));
  return out;
}

}  // namespace

GgufImportSummary import_gguf(const fs::path& gguf_path, const fs::path& out_arg,
                              const GgufImportOptions& options) {
  const fs::path out_dir = checked_out_dir(out_arg);
  if (!fs::exists(gguf_path))
    throw UsageError(cat("GGUF file ", gguf_path.string(), " does not exist"));
  const GgufFile f(gguf_path);

  // Everything is derived and checked before the first byte is written.
  const ojson config = gguf_hf_config(f, options.dtype);
  const std::vector<TensorEntry> tensors = gguf_hf_tensors(f, options.dtype);
  const bool tokenizer = gguf_has_tokenizer(f);
  std::string tokenizer_json;
  ojson tokenizer_config, generation = gguf_generation_config(f);
  if (tokenizer) {
    tokenizer_json = gguf_tokenizer_json(f);
    tokenizer_config = gguf_tokenizer_config(f);
  } else {
    log_warn("import-gguf: ", gguf_path.string(),
             " has no tokenizer; the model directory will have none");
  }
  {
    // resp must accept the config it is about to write.
    const ModelConfig mc = parse_model_config(nlohmann::json::parse(config.dump()), "config.json");
    (void)mc;
  }

  fs::path tmp = out_dir;
  tmp += ".tmp";
  if (fs::exists(tmp)) {
    if (!fs::is_directory(tmp) || !fs::exists(tmp / kIncompleteMarker))
      throw UsageError(
          cat(tmp.string(), " exists and is not a leftover of resp import-gguf; remove it first"));
    log_warn("import-gguf: removing the incomplete import ", tmp.string(),
             " left by an earlier run");
    fs::remove_all(tmp);
  }
  fs::create_directories(tmp);
  GgufImportSummary s;
  try {
    write_text_atomic(tmp / kIncompleteMarker, "resp import-gguf in progress\n");
    write_safetensors_model(tmp, tensors);
    write_text_atomic(tmp / "config.json", config.dump(2) + "\n");
    write_text_atomic(tmp / "generation_config.json", generation.dump(2) + "\n");
    if (tokenizer) {
      write_text_atomic(tmp / "tokenizer.json", tokenizer_json);
      write_text_atomic(tmp / "tokenizer_config.json", tokenizer_config.dump(2) + "\n");
    }
    // Read back what was written: the tensors resp will load, with the shapes the config implies.
    const CheckpointReader check(tmp);
    if (check.names().size() != tensors.size())
      throw FormatError(cat(tmp.string(), ": wrote ", check.names().size(), " tensors, expected ",
                            tensors.size()));
    for (const TensorEntry& t : tensors) check.expect_shape(t.name, t.shape);
    (void)load_model_config(tmp);
    fs::remove(tmp / kIncompleteMarker);
    if (fs::is_directory(out_dir) && !fs::is_empty(out_dir))
      throw UsageError(
          cat("output ", out_dir.string(), " appeared while importing; nothing was overwritten"));
    std::error_code ec;
    fs::rename(tmp, out_dir, ec);
    if (ec)
      throw IoError(
          cat("cannot rename ", tmp.string(), " to ", out_dir.string(), ": ", ec.message()));
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }

  s.architecture = f.get_string("general.architecture").value_or("");
  s.name = f.get_string("general.name").value_or("");
  s.tensors = tensors.size();
  for (const TensorEntry& t : tensors) s.bytes += t.nbytes();
  s.tokenizer = tokenizer;
  std::map<std::string, size_t> types;
  for (const GgufTensorInfo& t : f.tensors()) ++types[ggml_type_name(t.type)];
  for (const auto& [name, n] : types) s.tensor_types.push_back(cat(name, " x", n));
  return s;
}

}  // namespace resp
