#include "ckpt/scores_file.h"

#include <cstdio>

#include "ckpt/h5.h"
#include "core/error.h"

namespace resp {

namespace {
std::string layer_group(size_t l) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "/layers/%04zu", l);
  return buf;
}
}  // namespace

void write_layer_scores(h5::File& f, const std::string& g, const LayerScores& L) {
  f.write(g + "/heads", L.heads);
  f.write(g + "/channels", L.channels);
  f.write(g + "/head_ids", std::vector<int32_t>(L.head_ids.begin(), L.head_ids.end()));
  f.write(g + "/channel_ids", std::vector<int32_t>(L.channel_ids.begin(), L.channel_ids.end()));
}

LayerScores read_layer_scores(const h5::File& f, const std::string& g) {
  LayerScores L;
  L.heads = f.read_f64(g + "/heads");
  L.channels = f.read_f64(g + "/channels");
  const auto hi = f.read_i32(g + "/head_ids");
  const auto ci = f.read_i32(g + "/channel_ids");
  L.head_ids.assign(hi.begin(), hi.end());
  L.channel_ids.assign(ci.begin(), ci.end());
  if (L.heads.size() != L.head_ids.size() || L.channels.size() != L.channel_ids.size())
    throw FormatError(cat(f.path(), ": ", g, ": score and id counts differ"));
  return L;
}

void write_scores_h5(const std::filesystem::path& path, const ImportanceScores& s,
                     const std::string& model) {
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  {
    h5::File f = h5::File::create(tmp);
    f.set_attr("/", "format", std::string("resp-scores"));
    f.set_attr("/", "schema_version", static_cast<int64_t>(kScoresSchemaVersion));
    f.set_attr("/", "criterion", criterion_name(s.criterion));
    f.set_attr("/", "loss", loss_mode_name(s.loss));
    f.set_attr("/", "source", s.source);
    f.set_attr("/", "samples", s.samples);
    f.set_attr("/", "tokens", s.tokens);
    f.set_attr("/", "mean_loss", s.mean_loss);
    f.set_attr("/", "model", model);
    f.set_attr("/", "num_layers", static_cast<int64_t>(s.layers.size()));
    f.create_group("/layers");
    for (size_t l = 0; l < s.layers.size(); ++l) {
      const std::string g = layer_group(l);
      write_layer_scores(f, g, s.layers[l]);
    }
    f.close();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec)
    throw IoError(cat("cannot rename ", tmp.string(), " to ", path.string(), ": ", ec.message()));
}

ImportanceScores read_scores_h5(const std::filesystem::path& path) {
  const h5::File f = h5::File::open(path);
  const std::string p = path.string();
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != "resp-scores")
    throw FormatError(cat(p, ": not a resp scores file (format attribute missing or different)"));
  const int64_t version = f.attr_int("/", "schema_version");
  if (version != kScoresSchemaVersion)
    throw FormatError(
        cat(p, ": schema_version ", version, " (this resp reads ", kScoresSchemaVersion, ")"));
  ImportanceScores s;
  s.criterion = parse_criterion(f.attr_string("/", "criterion"));
  s.loss = parse_loss_mode(f.attr_string("/", "loss"));
  s.source = f.attr_string("/", "source");
  s.samples = f.attr_int("/", "samples");
  s.tokens = f.attr_int("/", "tokens");
  s.mean_loss = f.attr_double("/", "mean_loss");
  const int64_t n = f.attr_int("/", "num_layers");
  if (n < 0 || n > 4096) throw FormatError(cat(p, ": num_layers ", n, " out of range"));
  for (int64_t l = 0; l < n; ++l) {
    const std::string g = layer_group(static_cast<size_t>(l));
    LayerScores L = read_layer_scores(f, g);
    s.layers.push_back(std::move(L));
  }
  return s;
}

}  // namespace resp
