#include "ckpt/run_checkpoint.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "ckpt/h5.h"
#include "ckpt/scores_file.h"
#include "core/error.h"
#include "core/log.h"

namespace resp {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string layer_name(const char* root, size_t l) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s/layers/%04zu", root, l);
  return buf;
}

json history_json(const std::vector<IterationRecord>& h) {
  json a = json::array();
  for (const auto& r : h)
    a.push_back({{"iteration", r.iteration},
                 {"ratio", r.ratio},
                 {"sparsity", r.sparsity},
                 {"heads_kept", r.heads_kept},
                 {"channels_kept", r.channels_kept},
                 {"kv_heads_kept", r.kv_heads_kept},
                 {"regenerated", r.regenerated},
                 {"mean_output_tokens", r.mean_output_tokens},
                 {"truncated", r.truncated},
                 {"mean_loss", r.mean_loss},
                 {"t_generate", r.t_generate},
                 {"t_importance", r.t_importance},
                 {"t_prune", r.t_prune},
                 {"t_checkpoint", r.t_checkpoint},
                 {"checkpoint_mb", r.checkpoint_mb}});
  return a;
}

std::vector<IterationRecord> parse_history(const json& a, const std::string& where) {
  std::vector<IterationRecord> out;
  if (!a.is_array()) throw FormatError(cat(where, ": history is not a list"));
  try {
    for (const auto& j : a) {
      IterationRecord r;
      r.iteration = j.at("iteration").get<int>();
      r.ratio = j.at("ratio").get<double>();
      r.sparsity = j.at("sparsity").get<double>();
      r.heads_kept = j.at("heads_kept").get<int64_t>();
      r.channels_kept = j.at("channels_kept").get<int64_t>();
      r.kv_heads_kept = j.value("kv_heads_kept", int64_t{0});
      r.regenerated = j.at("regenerated").get<bool>();
      r.mean_output_tokens = j.at("mean_output_tokens").get<double>();
      r.truncated = j.value("truncated", 0.0);
      r.mean_loss = j.value("mean_loss", 0.0);
      r.t_generate = j.value("t_generate", 0.0);
      r.t_importance = j.value("t_importance", 0.0);
      r.t_prune = j.value("t_prune", 0.0);
      r.t_checkpoint = j.value("t_checkpoint", 0.0);
      r.checkpoint_mb = j.value("checkpoint_mb", 0.0);
      out.push_back(r);
    }
  } catch (const json::exception& e) {
    throw FormatError(cat(where, ": malformed history (", e.what(), ")"));
  }
  return out;
}

void write_atomic_text(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << text;
    f.flush();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw IoError(cat("cannot write ", tmp.string()));
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) throw IoError(cat("cannot rename ", tmp.string(), ": ", ec.message()));
}

int iteration_of(const fs::path& p) {
  static const std::regex re("iter_([0-9]{4,})\\.h5");
  std::smatch m;
  const std::string name = p.filename().string();
  if (!std::regex_match(name, m, re)) return -1;
  return std::stoi(m[1].str());
}

// Whether `p` reads back intact; a checkpoint that does not is reported (once per call) so
// that a resume which falls back to an older one says why.
bool opens(const fs::path& p) {
  try {
    read_run_checkpoint(p);
    return true;
  } catch (const Error& e) {
    log_warn("skipping unreadable checkpoint ", p.string(), ": ", e.what());
    return false;
  }
}

}  // namespace

fs::path checkpoint_path(const fs::path& run_dir, int iteration) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "iter_%04d.h5", iteration);
  return run_dir / buf;
}

void write_run_checkpoint(const fs::path& run_dir, const RunState& s) {
  const fs::path final_path = checkpoint_path(run_dir, s.iteration);
  fs::path tmp = final_path;
  tmp += ".tmp";
  {
    h5::File f = h5::File::create(tmp);
    f.set_attr("/", "format", std::string("resp-run"));
    f.set_attr("/", "schema_version", static_cast<int64_t>(kRunSchemaVersion));
    f.set_attr("/", "iteration", static_cast<int64_t>(s.iteration));
    f.set_attr("/", "config", s.config_yaml);
    f.set_attr("/", "model", s.model);
    f.set_attr("/", "seed", static_cast<int64_t>(s.seed));
    f.set_attr("/", "regen_round", static_cast<int64_t>(s.regen_round));
    f.set_attr("/", "regen_pending", static_cast<int64_t>(s.regen_pending ? 1 : 0));
    f.set_attr("/", "layout_tp", static_cast<int64_t>(s.layout_tp));
    f.set_attr("/", "layout_dp", static_cast<int64_t>(s.layout_dp));
    f.set_attr("/", "num_layers", static_cast<int64_t>(s.plan.size()));
    f.set_attr("/", "history", history_json(s.history).dump());
    f.create_group("/plan/layers");
    for (size_t l = 0; l < s.plan.size(); ++l) {
      const std::string g = layer_name("/plan", l);
      f.write(g + "/heads", std::vector<int32_t>(s.plan[l].heads.begin(), s.plan[l].heads.end()));
      f.write(g + "/channels",
              std::vector<int32_t>(s.plan[l].channels.begin(), s.plan[l].channels.end()));
    }
    f.create_group("/scores/layers");
    f.set_attr("/scores", "criterion", criterion_name(s.scores.criterion));
    f.set_attr("/scores", "loss", loss_mode_name(s.scores.loss));
    f.set_attr("/scores", "source", s.scores.source);
    f.set_attr("/scores", "samples", s.scores.samples);
    f.set_attr("/scores", "tokens", s.scores.tokens);
    f.set_attr("/scores", "mean_loss", s.scores.mean_loss);
    f.set_attr("/scores", "num_layers", static_cast<int64_t>(s.scores.layers.size()));
    for (size_t l = 0; l < s.scores.layers.size(); ++l) {
      const std::string g = layer_name("/scores", l);
      write_layer_scores(f, g, s.scores.layers[l]);
    }
    std::vector<int32_t> tokens, prompt_lengths, finish_codes;
    std::vector<int64_t> offsets = {0};
    json ids = json::array(), finishes = json::array();
    for (const auto& t : s.traces) {
      tokens.insert(tokens.end(), t.prompt.begin(), t.prompt.end());
      tokens.insert(tokens.end(), t.output.begin(), t.output.end());
      offsets.push_back(static_cast<int64_t>(tokens.size()));
      prompt_lengths.push_back(static_cast<int32_t>(t.prompt.size()));
      ids.push_back(t.id);
      finishes.push_back(t.finish);
    }
    f.create_group("/traces");
    f.write("/traces/tokens", tokens);
    f.write("/traces/offsets", offsets);
    f.write("/traces/prompt_lengths", prompt_lengths);
    f.set_attr("/traces", "ids", ids.dump());
    f.set_attr("/traces", "finish", finishes.dump());
    f.set_attr("/traces", "count", static_cast<int64_t>(s.traces.size()));
    f.close();
  }
  std::error_code ec;
  fs::rename(tmp, final_path, ec);
  if (ec)
    throw IoError(
        cat("cannot rename ", tmp.string(), " to ", final_path.string(), ": ", ec.message()));
  write_atomic_text(run_dir / "latest", final_path.filename().string() + "\n");
}

RunState read_run_checkpoint(const fs::path& path) {
  const h5::File f = h5::File::open(path);
  const std::string p = path.string();
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != "resp-run")
    throw FormatError(cat(p, ": not a resp run checkpoint"));
  const int64_t version = f.attr_int("/", "schema_version");
  if (version != kRunSchemaVersion)
    throw FormatError(
        cat(p, ": schema_version ", version, " (this resp reads ", kRunSchemaVersion, ")"));
  RunState s;
  s.iteration = static_cast<int>(f.attr_int("/", "iteration"));
  s.config_yaml = f.attr_string("/", "config");
  s.model = f.attr_string("/", "model");
  s.seed = static_cast<uint64_t>(f.attr_int("/", "seed"));
  s.regen_round = static_cast<int>(f.attr_int("/", "regen_round"));
  s.regen_pending = f.attr_int("/", "regen_pending") != 0;
  s.layout_tp = static_cast<int>(f.attr_int("/", "layout_tp"));
  s.layout_dp = static_cast<int>(f.attr_int("/", "layout_dp"));
  try {
    s.history = parse_history(json::parse(f.attr_string("/", "history")), p);
  } catch (const json::exception& e) {
    throw FormatError(cat(p, ": malformed history JSON"));
  }
  // The attributes steer a resume (where to continue, what to overwrite): they must agree with
  // the file's name and with the history they summarise.
  if (s.iteration < 0) throw FormatError(cat(p, ": iteration ", s.iteration, " is negative"));
  if (const int named = iteration_of(path); named >= 0 && named != s.iteration)
    throw FormatError(cat(p, ": holds iteration ", s.iteration, " but is named for ", named));
  for (size_t i = 1; i < s.history.size(); ++i)
    if (s.history[i].iteration <= s.history[i - 1].iteration)
      throw FormatError(cat(p, ": history iterations are not increasing"));
  if (s.history.empty() || s.history.back().iteration != s.iteration)
    throw FormatError(cat(p, ": history does not end at iteration ", s.iteration));
  if (s.regen_round < 0 || s.layout_tp < 1 || s.layout_dp < 1)
    throw FormatError(cat(p, ": regen_round/layout attributes out of range"));
  const int64_t n = f.attr_int("/", "num_layers");
  if (n < 1 || n > 4096) throw FormatError(cat(p, ": num_layers ", n, " out of range"));
  for (int64_t l = 0; l < n; ++l) {
    const std::string g = layer_name("/plan", static_cast<size_t>(l));
    const auto h = f.read_i32(g + "/heads");
    const auto c = f.read_i32(g + "/channels");
    for (const auto* ids : {&h, &c})
      for (size_t i = 0; i < ids->size(); ++i)
        if ((*ids)[i] < 0 || (i > 0 && (*ids)[i] <= (*ids)[i - 1]))
          throw FormatError(cat(p, ": ", g, " kept ids are not increasing non-negative ids"));
    s.plan.push_back({std::vector<int>(h.begin(), h.end()), std::vector<int>(c.begin(), c.end())});
  }
  s.scores.criterion = parse_criterion(f.attr_string("/scores", "criterion"));
  s.scores.loss = parse_loss_mode(f.attr_string("/scores", "loss"));
  s.scores.source = f.attr_string("/scores", "source");
  s.scores.samples = f.attr_int("/scores", "samples");
  s.scores.tokens = f.attr_int("/scores", "tokens");
  s.scores.mean_loss = f.attr_double("/scores", "mean_loss");
  const int64_t ns = f.attr_int("/scores", "num_layers");
  if (ns != n) throw FormatError(cat(p, ": scores cover ", ns, " layers, plan ", n));
  for (int64_t l = 0; l < ns; ++l) {
    const std::string g = layer_name("/scores", static_cast<size_t>(l));
    LayerScores L = read_layer_scores(f, g);
    s.scores.layers.push_back(std::move(L));
  }
  const auto tokens = f.read_i32("/traces/tokens");
  const auto offsets = f.read_i64("/traces/offsets");
  const auto plens = f.read_i32("/traces/prompt_lengths");
  json ids, finishes;
  try {
    ids = json::parse(f.attr_string("/traces", "ids"));
    finishes = json::parse(f.attr_string("/traces", "finish"));
  } catch (const json::exception&) {
    throw FormatError(cat(p, ": malformed trace ids"));
  }
  const size_t count = plens.size();
  if (offsets.size() != count + 1 || !ids.is_array() || ids.size() != count ||
      !finishes.is_array() || finishes.size() != count || offsets.front() != 0 ||
      offsets.back() != static_cast<int64_t>(tokens.size()))
    throw FormatError(cat(p, ": inconsistent /traces datasets"));
  // Every offset is checked before any is used: one flipped bit must not index past the tokens.
  for (size_t i = 0; i < count; ++i) {
    const int64_t b = offsets[i], e = offsets[i + 1];
    if (e < b || e > static_cast<int64_t>(tokens.size()) || plens[i] < 0 || plens[i] > e - b)
      throw FormatError(cat(p, ": bad trace offsets at ", i));
  }
  for (int32_t t : tokens)
    if (t < 0) throw FormatError(cat(p, ": negative token id in /traces/tokens"));
  for (size_t i = 0; i < count; ++i) {
    const int64_t b = offsets[i], e = offsets[i + 1];
    TraceRecord t;
    t.id = ids[i].is_string() ? ids[i].get<std::string>() : ids[i].dump();
    t.prompt.assign(tokens.begin() + b, tokens.begin() + b + plens[i]);
    t.output.assign(tokens.begin() + b + plens[i], tokens.begin() + e);
    t.finish = finishes[i].is_string() ? finishes[i].get<std::string>() : "";
    s.traces.push_back(std::move(t));
  }
  return s;
}

std::vector<fs::path> list_checkpoints(const fs::path& run_dir) {
  std::vector<std::pair<int, fs::path>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run_dir, ec)) {
    const int it = iteration_of(e.path());
    if (it >= 0) found.emplace_back(it, e.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& [it, p] : found) out.push_back(p);
  return out;
}

std::optional<fs::path> latest_checkpoint(const fs::path& run_dir) {
  std::set<fs::path> failed;  // each bad file is tried (and reported) once
  auto try_open = [&](const fs::path& p) {
    if (failed.count(p)) return false;
    if (opens(p)) return true;
    failed.insert(p);
    return false;
  };
  std::ifstream in(run_dir / "latest");
  std::string name;
  if (in && std::getline(in, name) && !name.empty() && name.find('/') == std::string::npos) {
    const fs::path p = run_dir / name;
    if (iteration_of(p) >= 0 && try_open(p)) {
      // A checkpoint newer than `latest` can exist if the run died between the two renames.
      auto all = list_checkpoints(run_dir);
      for (auto it = all.rbegin(); it != all.rend(); ++it)
        if (iteration_of(*it) > iteration_of(p) && try_open(*it)) return *it;
      return p;
    }
  }
  auto all = list_checkpoints(run_dir);
  for (auto it = all.rbegin(); it != all.rend(); ++it)
    if (try_open(*it)) return *it;
  return std::nullopt;
}

}  // namespace resp
