#include "ckpt/export.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "ckpt/hetero_python.h"
#include "ckpt/safetensors_writer.h"
#include "core/error.h"
#include "core/log.h"
#include "model/safetensors.h"

namespace resp {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

ExportFormat parse_export_format(const std::string& s) {
  if (s == "masked") return ExportFormat::Masked;
  if (s == "compact") return ExportFormat::Compact;
  if (s == "hetero") return ExportFormat::Hetero;
  throw UsageError(cat("unknown export format \"", s, "\" (choose masked, compact, hetero)"));
}

std::string export_format_name(ExportFormat f) {
  switch (f) {
    case ExportFormat::Masked:
      return "masked";
    case ExportFormat::Compact:
      return "compact";
    case ExportFormat::Hetero:
      return "hetero";
  }
  return "?";
}

std::string compact_incompatibility(const ModelConfig& dense, const PrunePlan& plan) {
  const ModelConfig pc = apply_plan(dense, plan);
  const std::string hint = "; use --format hetero (or masked)";
  if (pc.layers.empty()) return "";
  const LayerShape& first = pc.layers[0];
  for (size_t l = 0; l < pc.layers.size(); ++l) {
    const LayerShape& s = pc.layers[l];
    if (s.n_heads() == 0)
      return cat("layer ", l, " keeps no attention heads: compact needs at least one per layer",
                 hint);
    if (s.d_ff() == 0)
      return cat("layer ", l, " keeps no MLP channels: compact needs at least one per layer", hint);
    if (s.n_heads() != first.n_heads())
      return cat("layer ", l, " keeps ", s.n_heads(), " heads, layer 0 keeps ", first.n_heads(),
                 ": compact needs the same number in every layer", hint);
    if (s.n_kv_heads() != first.n_kv_heads())
      return cat("layer ", l, " keeps ", s.n_kv_heads(), " KV heads, layer 0 keeps ",
                 first.n_kv_heads(), ": compact needs the same number in every layer", hint);
    if (s.d_ff() != first.d_ff())
      return cat("layer ", l, " keeps ", s.d_ff(), " MLP channels, layer 0 keeps ", first.d_ff(),
                 ": compact needs the same number in every layer", hint);
    // GQA alignment: every kept KV head serves the same number of kept query heads, so that
    // the standard mapping (query head h reads KV head h / group) holds after compaction.
    std::map<int, int> served;
    for (int g : s.kv_of_head) ++served[g];
    for (const auto& [g, n] : served)
      if (n * s.n_kv_heads() != s.n_heads())
        return cat("layer ", l, ": KV head ", g, " serves ", n, " of the ", s.n_heads(),
                   " kept query heads but there are ", s.n_kv_heads(),
                   " kept KV heads: compact needs every kept KV head to serve the same number of "
                   "query heads (GQA-aligned)",
                   hint);
  }
  return "";
}

namespace {

// How one output tensor is gathered from a source tensor: per output row the source row
// (-1: zeros), per output column the source column (-1: zeros); nullopt keeps all, in order.
struct Gather {
  std::optional<std::vector<int>> rows;
  std::optional<std::vector<int>> cols;
};

std::vector<int> unit_rows(const std::vector<int>& units, int per_unit) {
  std::vector<int> rows;
  rows.reserve(units.size() * static_cast<size_t>(per_unit));
  for (int u : units)
    for (int i = 0; i < per_unit; ++i) rows.push_back(u * per_unit + i);
  return rows;
}

// All rows of `n_units` units of `per_unit` rows, those of units not in `kept` set to -1.
std::vector<int> masked_rows(int n_units, int per_unit, const std::vector<int>& kept) {
  std::vector<int> rows(static_cast<size_t>(n_units) * static_cast<size_t>(per_unit), -1);
  for (int u : kept)
    for (int i = 0; i < per_unit; ++i) {
      const size_t r =
          static_cast<size_t>(u) * static_cast<size_t>(per_unit) + static_cast<size_t>(i);
      rows[r] = static_cast<int>(r);
    }
  return rows;
}

// Runs of consecutive source columns (start, length); start -1 marks zeros.
std::vector<std::pair<int64_t, int64_t>> column_runs(const std::vector<int>& cols) {
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int c : cols) {
    if (!runs.empty()) {
      auto& [start, len] = runs.back();
      if ((c < 0 && start < 0) || (c >= 0 && start >= 0 && start + len == c)) {
        ++len;
        continue;
      }
    }
    runs.emplace_back(c < 0 ? -1 : c, 1);
  }
  return runs;
}

// The source checkpoint with raw access to tensor bytes.
class Source {
 public:
  explicit Source(const fs::path& dir) : reader_(dir) {
    for (const std::string& name : reader_.names()) {
      const std::string file = reader_.file_of(name);
      if (!files_.count(file)) files_[file] = std::make_unique<SafetensorsFile>(file);
    }
  }
  const CheckpointReader& reader() const { return reader_; }
  const uint8_t* bytes(const std::string& name) const {
    return files_.at(reader_.file_of(name))->data() + reader_.info(name).offset;
  }

 private:
  CheckpointReader reader_;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files_;
};

TensorEntry gather_entry(const Source& src, const std::string& name, const Gather& g) {
  const TensorInfo& t = src.reader().info(name);
  if ((g.rows || g.cols) && (t.shape.empty() || t.shape.size() > 2))
    throw FormatError(cat(src.reader().file_of(name), ": tensor \"", name, "\" has shape ",
                          t.shape_str(), ", expected 1 or 2 dims"));
  if (g.cols && t.shape.size() != 2)
    throw FormatError(cat(src.reader().file_of(name), ": tensor \"", name, "\" has shape ",
                          t.shape_str(), ", expected 2 dims"));
  TensorEntry e;
  e.name = name;
  e.dtype = t.dtype;
  e.shape = t.shape;
  const uint8_t* base = src.bytes(name);
  if (!g.rows && !g.cols) {
    const size_t n = t.nbytes;
    e.fill = [base, n](ByteSink& out) { out.write(base, n); };
    return e;
  }
  const size_t es = dtype_size(t.dtype);
  const int64_t n_rows = t.shape[0];
  const int64_t n_cols = t.shape.size() == 2 ? t.shape[1] : 1;
  std::vector<int> rows;
  if (g.rows) {
    rows = *g.rows;
  } else {
    rows.resize(static_cast<size_t>(n_rows));
    for (int64_t r = 0; r < n_rows; ++r) rows[static_cast<size_t>(r)] = static_cast<int>(r);
  }
  for (int r : rows)
    if (r >= n_rows)
      throw FormatError(cat(src.reader().file_of(name), ": row ", r, " outside tensor \"", name,
                            "\" ", t.shape_str()));
  std::vector<std::pair<int64_t, int64_t>> runs;
  int64_t out_cols = n_cols;
  if (g.cols) {
    for (int c : *g.cols)
      if (c >= n_cols)
        throw FormatError(cat(src.reader().file_of(name), ": column ", c, " outside tensor \"",
                              name, "\" ", t.shape_str()));
    runs = column_runs(*g.cols);
    out_cols = static_cast<int64_t>(g.cols->size());
  } else {
    runs.emplace_back(0, n_cols);
  }
  e.shape[0] = static_cast<int64_t>(rows.size());
  if (e.shape.size() == 2) e.shape[1] = out_cols;
  e.fill = [base, es, n_cols, out_cols, rows = std::move(rows),
            runs = std::move(runs)](ByteSink& out) {
    const size_t row_bytes = static_cast<size_t>(n_cols) * es;
    const size_t out_bytes = static_cast<size_t>(out_cols) * es;
    const bool whole_rows = runs.size() == 1 && runs[0].first == 0 && runs[0].second == n_cols;
    std::vector<uint8_t> buf(whole_rows ? 0 : out_bytes);  // one gathered row
    for (int r : rows) {
      if (r < 0) {
        out.zeros(out_bytes);
        continue;
      }
      const uint8_t* row = base + static_cast<size_t>(r) * row_bytes;
      if (whole_rows) {
        out.write(row, row_bytes);
        continue;
      }
      uint8_t* dst = buf.data();
      for (const auto& [start, len] : runs) {
        const size_t n = static_cast<size_t>(len) * es;
        if (start < 0)
          std::memset(dst, 0, n);
        else
          std::memcpy(dst, row + static_cast<size_t>(start) * es, n);
        dst += n;
      }
      out.write(buf.data(), buf.size());
    }
  };
  return e;
}

// "model.layers.N.rest" -> (N, rest); nullopt otherwise.
std::optional<std::pair<int, std::string>> split_layer_name(const std::string& name) {
  static const std::string kPrefix = "model.layers.";
  if (name.rfind(kPrefix, 0) != 0) return std::nullopt;
  size_t i = kPrefix.size();
  int64_t n = 0;
  const size_t digits_begin = i;
  while (i < name.size() && name[i] >= '0' && name[i] <= '9' && i - digits_begin < 9)
    n = n * 10 + (name[i++] - '0');
  if (i == digits_begin || i >= name.size() || name[i] != '.') return std::nullopt;
  return std::make_pair(static_cast<int>(n), name.substr(i + 1));
}

// Output order: embeddings, layers in numeric order, everything else by name.
bool tensor_order(const std::string& a, const std::string& b) {
  auto key = [](const std::string& n) {
    if (n.rfind("model.embed_tokens.", 0) == 0) return std::make_pair(-1, n);
    if (auto s = split_layer_name(n)) return std::make_pair(s->first, s->second);
    return std::make_pair(INT_MAX, n);
  };
  return key(a) < key(b);
}

bool is_dense(const ModelConfig& c) {
  const auto d = dense_layers(c.num_layers, c.num_heads, c.num_kv_heads, c.intermediate_size);
  for (size_t l = 0; l < d.size(); ++l) {
    const LayerShape& a = c.layers[l];
    if (a.heads != d[l].heads || a.kv_heads != d[l].kv_heads || a.channels != d[l].channels)
      return false;
  }
  return true;
}

std::vector<TensorEntry> plan_tensors(const Source& src, const ModelConfig& dense,
                                      const ModelConfig& pruned, ExportFormat format) {
  const CheckpointReader& r = src.reader();
  const int D = dense.head_dim;
  const int64_t H = dense.hidden_size;
  const int64_t q_all = static_cast<int64_t>(dense.num_heads) * D;
  const int64_t kv_all = static_cast<int64_t>(dense.num_kv_heads) * D;
  const int64_t f_all = dense.intermediate_size;
  std::vector<std::string> names = r.names();
  std::sort(names.begin(), names.end(), tensor_order);
  std::vector<TensorEntry> out;
  out.reserve(names.size());
  for (const std::string& name : names) {
    Gather g;
    const auto split = split_layer_name(name);
    if (split && split->first >= 0 && split->first < dense.num_layers) {
      const LayerShape& s = pruned.layers[static_cast<size_t>(split->first)];
      const std::string& rest = split->second;
      const bool masked = format == ExportFormat::Masked;
      // Query-head rows: compact and hetero keep the kept heads in ascending id order. Since
      // head h reads KV head h / group and kv_heads is ascending, that order lists the query
      // heads of each kept KV head together, in KV order: exactly HF's mapping "new head i
      // reads new KV head i / (n_heads / n_kv)" when the plan is GQA-aligned (compact).
      auto q_rows = [&] {
        return masked ? masked_rows(dense.num_heads, D, s.heads) : unit_rows(s.heads, D);
      };
      if (rest == "self_attn.q_proj.weight") {
        r.expect_shape(name, {q_all, H});
        g.rows = q_rows();
      } else if (rest == "self_attn.q_proj.bias") {
        r.expect_shape(name, {q_all});
        g.rows = q_rows();
      } else if (rest == "self_attn.k_proj.weight" || rest == "self_attn.v_proj.weight") {
        r.expect_shape(name, {kv_all, H});
        if (!masked) g.rows = unit_rows(s.kv_heads, D);
      } else if (rest == "self_attn.k_proj.bias" || rest == "self_attn.v_proj.bias") {
        r.expect_shape(name, {kv_all});
        if (!masked) g.rows = unit_rows(s.kv_heads, D);
      } else if (rest == "self_attn.o_proj.weight") {
        r.expect_shape(name, {H, q_all});
        g.cols = q_rows();
      } else if (rest == "mlp.gate_proj.weight" || rest == "mlp.up_proj.weight") {
        r.expect_shape(name, {f_all, H});
        g.rows = masked ? masked_rows(dense.intermediate_size, 1, s.channels) : s.channels;
      } else if (rest == "mlp.down_proj.weight") {
        r.expect_shape(name, {H, f_all});
        g.cols = masked ? masked_rows(dense.intermediate_size, 1, s.channels) : s.channels;
      } else if (rest.rfind("mlp.", 0) == 0 && rest.size() > 5 &&
                 rest.substr(rest.size() - 5) == ".bias") {
        throw UnsupportedError(cat(r.file_of(name), ": MLP bias \"", name, "\" cannot be pruned"));
      }
    }
    out.push_back(gather_entry(src, name, g));
  }
  return out;
}

ojson read_json_ordered(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw IoError(cat("cannot open ", path.string()));
  try {
    return ojson::parse(in);
  } catch (const ojson::parse_error& e) {
    throw FormatError(cat(path.string(), ": malformed JSON (", e.what(), ")"));
  }
}

void write_text(const fs::path& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.close();
  if (!f) throw IoError(cat("cannot write ", path.string()));
}

constexpr const char* kHeteroModelingModule = "modeling_resp_pruned";
constexpr const char* kHeteroConfigurationModule = "configuration_resp_pruned";

// The family part of the class names in src/ckpt/python (RespPruned<family>ForCausalLM).
std::string hetero_python_family(Arch arch) {
  switch (arch) {
    case Arch::Qwen3:
      return "Qwen3";
    case Arch::Qwen2:
      return "Qwen2";
    case Arch::Llama:
      return "Llama";
  }
  throw UnsupportedError("export: hetero has no transformers class for this architecture");
}

std::string export_config(const fs::path& source_dir, const ModelConfig& pruned,
                          ExportFormat format) {
  ojson j = read_json_ordered(source_dir / "config.json");
  if (format == ExportFormat::Compact) {
    const LayerShape& s = pruned.layers.at(0);
    j["num_attention_heads"] = s.n_heads();
    j["num_key_value_heads"] = s.n_kv_heads();
    j["intermediate_size"] = s.d_ff();
    j["head_dim"] = pruned.head_dim;
  } else if (format == ExportFormat::Hetero) {
    // Stock transformers builds the per-layer shapes through the export's own Python files.
    const std::string family = hetero_python_family(pruned.arch);
    j.erase("auto_map");
    j["auto_map"] = {
        {"AutoConfig", cat(kHeteroConfigurationModule, ".RespPruned", family, "Config")},
        {"AutoModelForCausalLM", cat(kHeteroModelingModule, ".RespPruned", family, "ForCausalLM")}};
    // One line per layer (dump(2) would put every id on a line of its own).
    const std::string placeholder = "@resp_pruning@";
    j.erase("resp_pruning");
    j["resp_pruning"] = placeholder;
    std::string layers = "{\n    \"layers\": [";
    for (size_t l = 0; l < pruned.layers.size(); ++l) {
      const LayerShape& s = pruned.layers[l];
      const ojson L = {{"heads", s.heads}, {"kv_heads", s.kv_heads}, {"channels", s.channels}};
      layers += (l ? ",\n      " : "\n      ") + L.dump();
    }
    layers += "\n    ]\n  }";
    std::string text = j.dump(2);
    const std::string quoted = ojson(placeholder).dump();
    text.replace(text.rfind(quoted), quoted.size(), layers);
    return text + "\n";
  }
  return j.dump(2) + "\n";
}

// Files next to the weights that loaders and chat front-ends expect.
const char* const kSideFiles[] = {"tokenizer.json",
                                  "tokenizer_config.json",
                                  "generation_config.json",
                                  "chat_template.jinja",
                                  "special_tokens_map.json",
                                  "added_tokens.json",
                                  "vocab.json",
                                  "merges.txt",
                                  "tokenizer.model"};

constexpr const char* kIncompleteMarker = ".resp-export-incomplete";

bool non_empty_dir(const fs::path& p) {
  return fs::is_directory(p) && !fs::is_empty(p);
}

// Checks the written directory: every tensor present with the expected dtype and shape, and
// the config parsing back to the expected per-layer widths.
void verify_output(const fs::path& dir, const std::vector<TensorEntry>& tensors,
                   const ModelConfig& expect) {
  const CheckpointReader check(dir);
  if (check.names().size() != tensors.size())
    throw FormatError(cat(dir.string(), ": export wrote ", check.names().size(),
                          " tensors, expected ", tensors.size()));
  for (const TensorEntry& t : tensors) {
    const TensorInfo& info = check.info(t.name);
    if (info.dtype != t.dtype || info.shape != t.shape)
      throw FormatError(cat(dir.string(), ": tensor \"", t.name, "\" was written as ",
                            dtype_name(info.dtype), " ", info.shape_str(), ", expected ",
                            dtype_name(t.dtype)));
  }
  const ModelConfig c = load_model_config(dir);
  for (size_t l = 0; l < expect.layers.size(); ++l) {
    const LayerShape &a = c.layers.at(l), &b = expect.layers[l];
    if (a.n_heads() != b.n_heads() || a.n_kv_heads() != b.n_kv_heads() || a.d_ff() != b.d_ff())
      throw FormatError(cat(dir.string(), "/config.json: layer ", l, " parses as ", a.n_heads(),
                            " heads / ", a.n_kv_heads(), " KV heads / ", a.d_ff(),
                            " channels, expected ", b.n_heads(), " / ", b.n_kv_heads(), " / ",
                            b.d_ff()));
  }
}

}  // namespace

void export_model(const fs::path& source_dir, const ModelConfig& dense, const PrunePlan& plan,
                  ExportFormat format, const fs::path& out_arg) {
  if (out_arg.empty()) throw UsageError("export: no output directory given");
  // "DIR/" -> "DIR", so that the temporary directory is a sibling (DIR.tmp), not DIR/.tmp.
  fs::path out_dir = out_arg.lexically_normal();
  while (!out_dir.has_filename() && out_dir.has_parent_path() && out_dir != out_dir.root_path())
    out_dir = out_dir.parent_path();
  if (out_dir.empty() || out_dir == out_dir.root_path() || out_dir.filename() == "." ||
      out_dir.filename() == "..")
    throw UsageError(cat("export: ", out_arg.string(), " cannot be an output directory"));
  if (fs::exists(out_dir) && (!fs::is_directory(out_dir) || !fs::is_empty(out_dir)))
    throw UsageError(cat(
        "output ", out_dir.string(),
        fs::is_directory(out_dir) ? " exists and is not empty" : " exists and is not a directory",
        "; choose a new directory (nothing was overwritten)"));
  if (!is_dense(dense))
    throw ConfigError(
        cat(source_dir.string(),
            " is already pruned (its config.json has resp_pruning): export from the original "
            "dense model"));
  {
    const ModelConfig on_disk = load_model_config(source_dir);
    if (on_disk.num_layers != dense.num_layers || on_disk.num_heads != dense.num_heads ||
        on_disk.num_kv_heads != dense.num_kv_heads || on_disk.head_dim != dense.head_dim ||
        on_disk.hidden_size != dense.hidden_size ||
        on_disk.intermediate_size != dense.intermediate_size || !is_dense(on_disk))
      throw ConfigError(cat(source_dir.string(),
                            "/config.json does not describe the dense model being exported"));
  }
  const ModelConfig pruned = apply_plan(dense, plan);
  if (format == ExportFormat::Compact) {
    const std::string why = compact_incompatibility(dense, plan);
    if (!why.empty()) throw ConfigError(cat("cannot export as compact: ", why));
  }

  const Source src(source_dir);
  const std::vector<TensorEntry> tensors = plan_tensors(src, dense, pruned, format);
  const std::string config_text =
      format == ExportFormat::Masked ? std::string() : export_config(source_dir, pruned, format);

  fs::path tmp = out_dir;
  tmp += ".tmp";
  if (fs::exists(tmp)) {
    if (!fs::is_directory(tmp) || !fs::exists(tmp / kIncompleteMarker))
      throw UsageError(
          cat(tmp.string(), " exists and is not a leftover of resp export; remove it first"));
    log_warn("export: removing the incomplete export ", tmp.string(), " left by an earlier run");
    fs::remove_all(tmp);
  }
  fs::create_directories(tmp);
  try {
    write_text(tmp / kIncompleteMarker, "resp export in progress\n");
    const auto files = write_safetensors_model(tmp, tensors);
    if (format == ExportFormat::Masked)
      fs::copy_file(source_dir / "config.json", tmp / "config.json");
    else
      write_text(tmp / "config.json", config_text);
    for (const char* f : kSideFiles)
      if (fs::is_regular_file(source_dir / f)) fs::copy_file(source_dir / f, tmp / f);
    if (format == ExportFormat::Hetero) {
      write_text(tmp / cat(kHeteroModelingModule, ".py"), kModelingRespPrunedPy);
      write_text(tmp / cat(kHeteroConfigurationModule, ".py"), kConfigurationRespPrunedPy);
    }
    verify_output(tmp, tensors, format == ExportFormat::Masked ? dense : pruned);
    fs::remove(tmp / kIncompleteMarker);
    if (non_empty_dir(out_dir))
      throw UsageError(
          cat("output ", out_dir.string(), " appeared while exporting; nothing was overwritten"));
    std::error_code ec;
    fs::rename(tmp, out_dir, ec);
    if (ec)
      throw IoError(
          cat("cannot rename ", tmp.string(), " to ", out_dir.string(), ": ", ec.message()));
    size_t bytes = 0;
    for (const auto& t : tensors) bytes += t.nbytes();
    log_info("export: ", export_format_name(format), " model, ", tensors.size(), " tensors (",
             static_cast<double>(bytes) / 1e6, " MB) in ", files.size() == 1 ? 1 : files.size() - 1,
             " safetensors file(s) -> ", out_dir.string());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

}  // namespace resp
