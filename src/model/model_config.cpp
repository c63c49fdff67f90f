#include "model/model_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace resp {

using nlohmann::json;

std::string arch_name(Arch a) {
  switch (a) {
    case Arch::Qwen3:
      return "Qwen3ForCausalLM";
    case Arch::Qwen2:
      return "Qwen2ForCausalLM";
    case Arch::Llama:
      return "LlamaForCausalLM";
  }
  return "?";
}

namespace {

// Field readers that name the file and key on every failure.
const json* find(const json& j, const char* key) {
  auto it = j.find(key);
  return (it == j.end() || it->is_null()) ? nullptr : &*it;
}

int get_int(const json& j, const char* key, const std::string& src, int lo, int hi) {
  const json* v = find(j, key);
  if (!v) throw ConfigError(cat(src, ": missing required field \"", key, "\""));
  if (!v->is_number_integer())
    throw ConfigError(cat(src, ": field \"", key, "\" must be an integer, got ", v->dump()));
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi)
    throw ConfigError(cat(src, ": field \"", key, "\" = ", x, " outside [", lo, ", ", hi, "]"));
  return static_cast<int>(x);
}

int get_int_or(const json& j, const char* key, const std::string& src, int lo, int hi, int def) {
  return find(j, key) ? get_int(j, key, src, lo, hi) : def;
}

double get_num_or(const json& j, const char* key, const std::string& src, double def) {
  const json* v = find(j, key);
  if (!v) return def;
  if (!v->is_number())
    throw ConfigError(cat(src, ": field \"", key, "\" must be a number, got ", v->dump()));
  const double x = v->get<double>();
  if (!std::isfinite(x)) throw ConfigError(cat(src, ": field \"", key, "\" is not finite"));
  return x;
}

bool get_bool_or(const json& j, const char* key, const std::string& src, bool def) {
  const json* v = find(j, key);
  if (!v) return def;
  if (!v->is_boolean())
    throw ConfigError(cat(src, ": field \"", key, "\" must be true/false, got ", v->dump()));
  return v->get<bool>();
}

std::vector<int> id_list(const json& j, const std::string& what, int limit) {
  if (!j.is_array()) throw ConfigError(cat(what, " must be an array of integers"));
  std::vector<int> out;
  for (const auto& e : j) {
    if (!e.is_number_integer()) throw ConfigError(cat(what, " must hold integers, got ", e.dump()));
    const int64_t v = e.get<int64_t>();
    if (v < 0 || v >= limit) throw ConfigError(cat(what, ": id ", v, " outside [0, ", limit, ")"));
    if (!out.empty() && v <= out.back())
      throw ConfigError(cat(what, ": ids must be strictly increasing"));
    out.push_back(static_cast<int>(v));
  }
  return out;
}

void parse_rope(const json& j, ModelConfig& c, const std::string& src) {
  // transformers v5 nests rope settings in "rope_parameters"; v4 uses rope_theta + rope_scaling.
  const json* params = find(j, "rope_parameters");
  if (params && !params->is_object())
    throw ConfigError(cat(src, ": \"rope_parameters\" must be an object"));
  c.rope_theta = get_num_or(j, "rope_theta", src, 10000.0);
  if (params && find(*params, "rope_theta"))
    c.rope_theta = get_num_or(*params, "rope_theta", src, c.rope_theta);
  if (!(c.rope_theta > 0)) throw ConfigError(cat(src, ": rope_theta must be > 0"));

  const json* scaling = find(j, "rope_scaling");
  if (!scaling && params) scaling = params;
  if (!scaling) return;
  if (!scaling->is_object()) throw ConfigError(cat(src, ": \"rope_scaling\" must be an object"));
  std::string type = "default";
  if (const json* t = find(*scaling, "rope_type"))
    type = t->is_string() ? t->get<std::string>() : "";
  else if (const json* t2 = find(*scaling, "type"))
    type = t2->is_string() ? t2->get<std::string>() : "";
  if (type == "default") return;
  if (type != "llama3")
    throw UnsupportedError(cat(src, ": rope scaling type \"", type,
                               "\" is not supported (supported: default, llama3)"));
  RopeScaling& r = c.rope_scaling;
  r.type = RopeScaling::Type::Llama3;
  r.factor = get_num_or(*scaling, "factor", src, 8.0);
  r.low_freq_factor = get_num_or(*scaling, "low_freq_factor", src, 1.0);
  r.high_freq_factor = get_num_or(*scaling, "high_freq_factor", src, 4.0);
  r.original_max_position_embeddings =
      get_num_or(*scaling, "original_max_position_embeddings", src, 8192.0);
  if (!(r.factor > 0) || !(r.high_freq_factor > r.low_freq_factor) || !(r.low_freq_factor > 0) ||
      !(r.original_max_position_embeddings > 0))
    throw ConfigError(cat(src, ": inconsistent llama3 rope_scaling values"));
}

}  // namespace

std::vector<LayerShape> dense_layers(int num_layers, int num_heads, int num_kv_heads, int d_ff) {
  LayerShape s;
  const int group = num_heads / num_kv_heads;
  for (int h = 0; h < num_heads; ++h) {
    s.heads.push_back(h);
    s.kv_of_head.push_back(h / group);
  }
  for (int g = 0; g < num_kv_heads; ++g) s.kv_heads.push_back(g);
  for (int c = 0; c < d_ff; ++c) s.channels.push_back(c);
  return std::vector<LayerShape>(static_cast<size_t>(num_layers), s);
}

ModelConfig parse_model_config(const json& j, const std::string& src) {
  if (!j.is_object()) throw FormatError(cat(src, ": expected a JSON object"));
  ModelConfig c;
  const json* archs = find(j, "architectures");
  if (!archs || !archs->is_array() || archs->empty() || !(*archs)[0].is_string())
    throw ConfigError(cat(src, ": missing \"architectures\" (e.g. [\"Qwen3ForCausalLM\"])"));
  const std::string a = (*archs)[0].get<std::string>();
  if (a == "Qwen3ForCausalLM") {
    c.arch = Arch::Qwen3;
    c.qk_norm = true;
  } else if (a == "Qwen2ForCausalLM") {
    c.arch = Arch::Qwen2;
    c.qkv_bias = true;
  } else if (a == "LlamaForCausalLM") {
    c.arch = Arch::Llama;
  } else {
    throw UnsupportedError(cat(src, ": unknown architecture \"", a,
                               "\" (supported: Qwen3ForCausalLM, Qwen2ForCausalLM, "
                               "LlamaForCausalLM)"));
  }
  if (const json* mt = find(j, "model_type"); mt && mt->is_string())
    c.model_type = mt->get<std::string>();

  constexpr int kBig = 1 << 24;
  c.vocab_size = get_int(j, "vocab_size", src, 1, 1 << 26);
  c.hidden_size = get_int(j, "hidden_size", src, 1, kBig);
  c.num_layers = get_int(j, "num_hidden_layers", src, 1, 4096);
  c.num_heads = get_int(j, "num_attention_heads", src, 1, 65536);
  c.num_kv_heads = get_int_or(j, "num_key_value_heads", src, 1, c.num_heads, c.num_heads);
  if (c.num_heads % c.num_kv_heads != 0)
    throw ConfigError(cat(src, ": num_attention_heads ", c.num_heads,
                          " is not a multiple of num_key_value_heads ", c.num_kv_heads));
  // head_dim is a field of its own (Qwen3: 128 with hidden 4096 / 32 heads != 128 in general).
  if (find(j, "head_dim")) {
    c.head_dim = get_int(j, "head_dim", src, 2, 65536);
  } else {
    if (c.hidden_size % c.num_heads != 0)
      throw ConfigError(cat(src, ": no head_dim and hidden_size ", c.hidden_size,
                            " is not divisible by num_attention_heads ", c.num_heads));
    c.head_dim = c.hidden_size / c.num_heads;
  }
  if (c.head_dim % 2 != 0)
    throw ConfigError(cat(src, ": head_dim ", c.head_dim, " must be even for RoPE"));
  c.intermediate_size = get_int(j, "intermediate_size", src, 1, kBig);
  c.max_position_embeddings = get_int_or(j, "max_position_embeddings", src, 1, 1 << 30, 32768);
  c.rms_norm_eps = get_num_or(j, "rms_norm_eps", src, 1e-6);
  if (!(c.rms_norm_eps > 0)) throw ConfigError(cat(src, ": rms_norm_eps must be > 0"));
  c.tie_word_embeddings = get_bool_or(j, "tie_word_embeddings", src, false);
  parse_rope(j, c, src);

  if (c.arch == Arch::Llama) {
    const bool bias = get_bool_or(j, "attention_bias", src, false);
    c.qkv_bias = bias;
    c.o_bias = bias;
    if (get_bool_or(j, "mlp_bias", src, false))
      throw UnsupportedError(cat(src, ": mlp_bias=true is not supported"));
  }
  if (c.arch == Arch::Qwen3 && get_bool_or(j, "attention_bias", src, false)) {
    c.qkv_bias = true;
    c.o_bias = true;
  }
  if (const json* hidden_act = find(j, "hidden_act")) {
    if (!hidden_act->is_string() || hidden_act->get<std::string>() != "silu")
      throw UnsupportedError(cat(src, ": hidden_act ", hidden_act->dump(), " (only silu)"));
  }

  if (const json* eos = find(j, "eos_token_id"); eos && !eos->is_null()) {
    // An id that is not a token of this vocabulary would never stop generation (or index past
    // the logits): refuse it, with the value.
    auto add = [&](const json& e) {
      if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() >= c.vocab_size)
        throw ConfigError(cat(src, ": eos_token_id ", e.dump(),
                              " is not a token id in [0, vocab_size=", c.vocab_size, ")"));
      c.eos_token_ids.push_back(static_cast<int>(e.get<int64_t>()));
    };
    if (eos->is_array())
      for (const auto& e : *eos) add(e);
    else
      add(*eos);
  }
  c.bos_token_id = get_int_or(j, "bos_token_id", src, 0, c.vocab_size - 1, -1);

  // Each layer lists its heads and channels: bound the lists so that a corrupt config is an
  // error, not tens of gigabytes of ids (Llama-3.1-405B needs 6.7M of them, this allows 67M).
  constexpr int64_t kMaxLayerIds = int64_t{1} << 26;
  const int64_t ids_per_layer =
      2 * int64_t{c.num_heads} + c.num_kv_heads + int64_t{c.intermediate_size};
  if (c.num_layers * ids_per_layer > kMaxLayerIds)
    throw ConfigError(cat(src, ": num_hidden_layers ", c.num_layers, " x (num_attention_heads ",
                          c.num_heads, ", intermediate_size ", c.intermediate_size,
                          ") is far beyond any supported model (corrupt config?)"));
  c.layers = dense_layers(c.num_layers, c.num_heads, c.num_kv_heads, c.intermediate_size);

  // Pruned models written by `resp export --format hetero` list each layer's kept ids in
  // original numbering; tensors then have the kept (smaller) shapes.
  if (const json* ext = find(j, "resp_pruning")) {
    const json* layers = ext->is_object() ? find(*ext, "layers") : nullptr;
    if (!layers || !layers->is_array() || layers->size() != static_cast<size_t>(c.num_layers))
      throw ConfigError(cat(src, ": resp_pruning.layers must list all ", c.num_layers, " layers"));
    for (int l = 0; l < c.num_layers; ++l) {
      const json& L = (*layers)[static_cast<size_t>(l)];
      const std::string where = cat(src, ": resp_pruning.layers[", l, "]");
      if (!L.is_object() || !find(L, "heads") || !find(L, "kv_heads") || !find(L, "channels"))
        throw ConfigError(cat(where, " needs heads, kv_heads and channels"));
      LayerShape s;
      s.heads = id_list(L["heads"], where + ".heads", c.num_heads);
      s.kv_heads = id_list(L["kv_heads"], where + ".kv_heads", c.num_kv_heads);
      s.channels = id_list(L["channels"], where + ".channels", c.intermediate_size);
      for (int h : s.heads) {
        const int g = h / c.group_size();
        bool found = false;
        for (int k : s.kv_heads) found = found || k == g;
        if (!found)
          throw ConfigError(
              cat(where, ": query head ", h, " needs KV head ", g, " which is not kept"));
        s.kv_of_head.push_back(g);
      }
      c.layers[static_cast<size_t>(l)] = std::move(s);
    }
  }
  return c;
}

ModelConfig load_model_config(const std::filesystem::path& dir) {
  const auto path = dir / "config.json";
  std::ifstream in(path);
  if (!in) {
    if (!std::filesystem::exists(dir))
      throw IoError(cat("model directory ", dir.string(), " does not exist"));
    throw IoError(cat("cannot open ", path.string()));
  }
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw FormatError(cat(path.string(), ": malformed JSON (", e.what(), ")"));
  }
  return parse_model_config(j, path.string());
}

int64_t ModelConfig::parameter_count() const {
  const int64_t H = hidden_size, D = head_dim;
  int64_t n = static_cast<int64_t>(vocab_size) * H * (tie_word_embeddings ? 1 : 2) + H;
  for (const auto& L : layers) {
    const int64_t q = L.n_heads() * D, kv = L.n_kv_heads() * D, f = L.d_ff();
    n += 2 * H;                       // input + post-attention norms
    n += q * H + 2 * kv * H + H * q;  // q, k, v, o
    if (qkv_bias) n += q + 2 * kv;
    if (o_bias) n += H;
    if (qk_norm) n += 2 * D;
    n += 3 * f * H;  // gate, up, down
  }
  return n;
}

std::vector<double> ModelConfig::rope_inv_freq() const {
  const int half = head_dim / 2;
  std::vector<double> inv(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i)
    inv[static_cast<size_t>(i)] = 1.0 / std::pow(rope_theta, (2.0 * i) / head_dim);
  if (rope_scaling.type == RopeScaling::Type::Llama3) {
    const auto& r = rope_scaling;
    const double low_wavelen = r.original_max_position_embeddings / r.low_freq_factor;
    const double high_wavelen = r.original_max_position_embeddings / r.high_freq_factor;
    for (double& f : inv) {
      const double wavelen = 2.0 * M_PI / f;
      if (wavelen > low_wavelen) {
        f = f / r.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (r.original_max_position_embeddings / wavelen - r.low_freq_factor) /
                              (r.high_freq_factor - r.low_freq_factor);
        f = (1.0 - smooth) * f / r.factor + smooth * f;
      }
    }
  }
  return inv;
}

}  // namespace resp
