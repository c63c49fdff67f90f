#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ckpt/h5.h"
#include "ckpt/safetensors_writer.h"
#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "generate/progress.h"
#include "model/gradient_pass.h"
#include "model/model_config.h"
#include "model/model_shard.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"
#include "train/adamw.h"
#include "train/train_data.h"

namespace resp {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFile = "train_state.h5";

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  if (!in) throw IoError(cat("cannot open ", p.string()));
  try {
    return nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw FormatError(cat(p.string(), ": malformed JSON (", e.what(), ")"));
  }
}

std::vector<float> host_copy(const Tensor& t) {
  const float* p = t.f32();
  return std::vector<float>(p, p + t.numel());
}

void save_state(const fs::path& dir, int64_t step, const std::string& config_yaml,
                const std::vector<Parameter>& params, AdamW& opt) {
  const fs::path tmp = dir / (std::string(kStateFile) + ".tmp");
  {
    h5::File f = h5::File::create(tmp);
    f.set_attr("/", "format", std::string("resp-train-state"));
    f.set_attr("/", "format_version", int64_t{1});
    f.set_attr("/", "step", step);
    f.set_attr("/", "config", config_yaml);
    f.create_group("/param");
    f.create_group("/adam_m");
    f.create_group("/adam_v");
    for (size_t i = 0; i < params.size(); ++i) {
      std::vector<int64_t> shape;
      for (int d = 0; d < params[i].value.rank(); ++d) shape.push_back(params[i].value.dim(d));
      f.write("/param/" + params[i].name, host_copy(params[i].value), shape);
      f.write("/adam_m/" + params[i].name, opt.first_moments()[i], shape);
      f.write("/adam_v/" + params[i].name, opt.second_moments()[i], shape);
    }
    f.close();
  }
  std::error_code ec;
  fs::rename(tmp, dir / kStateFile, ec);
  if (ec) throw IoError(cat("cannot rename ", tmp.string(), ": ", ec.message()));
}

int64_t load_state(const fs::path& path, const std::vector<Parameter>& params, AdamW& opt) {
  h5::File f = h5::File::open(path);
  if (!f.has_attr("/", "format") || f.attr_string("/", "format") != "resp-train-state")
    throw FormatError(cat(path.string(), ": not a resp training checkpoint"));
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string& name = params[i].name;
    if (!f.exists("/param/" + name))
      throw FormatError(cat(path.string(), ": no tensor ", name, " (a different model?)"));
    auto check = [&](const std::vector<float>& v) {
      if (static_cast<int64_t>(v.size()) != params[i].value.numel())
        throw ShapeError(cat(path.string(), ": ", name, " has ", v.size(), " elements, the model ",
                             params[i].value.numel(), " (a different model?)"));
      return v;
    };
    const auto w = check(f.read_f32("/param/" + name));
    std::copy(w.begin(), w.end(), params[i].value.f32());
    opt.first_moments()[i] = check(f.read_f32("/adam_m/" + name));
    opt.second_moments()[i] = check(f.read_f32("/adam_v/" + name));
  }
  return f.attr_int("/", "step");
}

// The final model as a Hugging Face checkpoint directory (written as DIR.tmp, then renamed).
// A hetero export names its modeling code in config.json's auto_map ("module.Class"); without
// those files beside config.json a model trained from it would not load in transformers. Checked
// before training (a missing file is an IoError) and copied when the model is written.
std::vector<std::string> auto_map_files(const nlohmann::json& cfg, const fs::path& init_from) {
  std::vector<std::string> files;
  if (init_from.empty() || !cfg.contains("auto_map") || !cfg["auto_map"].is_object()) return files;
  for (const auto& [key, ref] : cfg["auto_map"].items()) {
    if (!ref.is_string()) continue;
    const std::string r = ref.get<std::string>();
    const auto dot = r.find('.');
    if (dot == std::string::npos) continue;
    const std::string file = r.substr(0, dot) + ".py";
    if (file.find('/') != std::string::npos || file.find("..") != std::string::npos) continue;
    if (!fs::exists(init_from / file))
      throw IoError(cat(init_from.string(), ": config.json auto_map.", key, " names ", file,
                        ", which is missing"));
    if (std::find(files.begin(), files.end(), file) == files.end()) files.push_back(file);
  }
  return files;
}

void write_model(const fs::path& out, const nlohmann::json& config_json, const Tokenizer& tok,
                 const fs::path& tokenizer_dir, const fs::path& init_from,
                 const std::vector<Parameter>& params, const std::string& save_dtype) {
  const fs::path tmp = out.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const DType dt = save_dtype == "bf16" ? DType::BF16 : DType::F32;
  nlohmann::json cfg = config_json;
  cfg["torch_dtype"] = save_dtype == "bf16" ? "bfloat16" : "float32";
  write_text_atomic(tmp / "config.json", cfg.dump(2) + "\n");

  std::vector<TensorEntry> entries;
  for (const auto& p : params) {
    TensorEntry e;
    e.name = p.name;
    e.dtype = dt;
    for (int d = 0; d < p.value.rank(); ++d) e.shape.push_back(p.value.dim(d));
    const Tensor v = p.value;
    e.fill = [v, dt](ByteSink& sink) {
      const float* src = v.f32();
      const int64_t n = v.numel();
      if (dt == DType::F32) {
        sink.write(src, static_cast<size_t>(n) * sizeof(float));
      } else {
        std::vector<uint16_t> h(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) h[static_cast<size_t>(i)] = f32_to_bf16(src[i]);
        sink.write(h.data(), h.size() * sizeof(uint16_t));
      }
    };
    entries.push_back(std::move(e));
  }
  write_safetensors_model(tmp, entries);

  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"})
    if (fs::exists(tokenizer_dir / name)) fs::copy_file(tokenizer_dir / name, tmp / name);
  for (const std::string& file : auto_map_files(cfg, init_from))
    fs::copy_file(init_from / file, tmp / file);
  if (!init_from.empty() && fs::exists(init_from / "generation_config.json")) {
    fs::copy_file(init_from / "generation_config.json", tmp / "generation_config.json");
  } else {
    // Qwen3's sampling defaults; eos = the tokenizer's end-of-turn plus <|endoftext|>.
    nlohmann::json gen = {
        {"do_sample", true}, {"temperature", 0.6}, {"top_p", 0.95}, {"top_k", 20}};
    std::vector<int32_t> eos = tok.eos_ids();
    if (auto id = tok.token_id("<|endoftext|>"))
      if (std::find(eos.begin(), eos.end(), *id) == eos.end()) eos.push_back(*id);
    gen["eos_token_id"] = eos;
    if (auto pad = tok.pad_id()) gen["pad_token_id"] = *pad;
    write_text_atomic(tmp / "generation_config.json", gen.dump(2) + "\n");
  }
  fs::remove_all(out);
  fs::rename(tmp, out);
}

// Drops log lines of steps after `step` (left by a run that died after its last checkpoint).
void truncate_log(const fs::path& log, int64_t step) {
  if (!fs::exists(log)) return;
  std::ifstream in(log);
  std::string line, kept;
  while (std::getline(in, line)) {
    try {
      if (nlohmann::json::parse(line).value("step", int64_t{0}) > step) continue;
    } catch (const nlohmann::json::exception&) {
      continue;  // a line cut by the crash
    }
    kept += line + "\n";
  }
  in.close();
  write_text_atomic(log, kept);
}

// The model's config.json (a fresh model's, or that of the checkpoint training starts from),
// checked against the tokenizer: its vocabulary must hold the tokenizer's, and its eos ids must
// be the tokenizer's special tokens.
struct ModelSource {
  fs::path config_file;
  nlohmann::json config_json;
  ModelConfig config;
};

ModelSource read_model_source(const TrainConfig& c, const Tokenizer& tok) {
  ModelSource m;
  m.config_file =
      c.init_from.empty() ? fs::path(c.model_config) : fs::path(c.init_from) / "config.json";
  m.config_json = read_json(m.config_file);
  m.config = parse_model_config(m.config_json, m.config_file.string());
  if (!c.init_from.empty()) auto_map_files(m.config_json, c.init_from);  // fail before training
  const ModelConfig& mc = m.config;
  if (mc.vocab_size < tok.vocab_size())
    throw ConfigError(cat(m.config_file.string(), ": vocab_size ", mc.vocab_size,
                          " is smaller than the tokenizer's ", tok.vocab_size(), " tokens"));
  // A config written for another tokenizer carries that tokenizer's special-token ids; an eos id
  // that is an ordinary token here would end every generation of the trained model at that word.
  for (const int id : mc.eos_token_ids)
    if (id < 0 || id >= tok.vocab_size() || !tok.is_special(id))
      throw ConfigError(cat(
          m.config_file.string(), ": eos_token_id ", id, " is not a special token of the tokenizer",
          id >= 0 && id < tok.vocab_size() ? " (it is \"" + tok.token(id) + "\")" : std::string(),
          "; its eos token is ", tok.eos_token()));
  return m;
}

// The sequences of a step, in global order: epoch by epoch through a permutation keyed by
// (seed, epoch), so the batch of any step is a pure function of (seed, step).
class StepBatches {
 public:
  StepBatches(const TrainDataset& data, uint64_t seed) : data_(data), seed_(seed) {}

  std::vector<const TrainExample*> batch(int64_t step, int64_t per_step) {
    const int64_t n_examples = static_cast<int64_t>(data_.examples.size());
    std::vector<const TrainExample*> out;
    for (int64_t k = 0; k < per_step; ++k) {
      const int64_t n = step * per_step + k;
      const int64_t epoch = n / n_examples;
      if (epoch != cached_epoch_) {
        perm_ = epoch_permutation(n_examples, seed_, epoch);
        cached_epoch_ = epoch;
      }
      out.push_back(
          &data_.examples[static_cast<size_t>(perm_[static_cast<size_t>(n % n_examples)])]);
    }
    return out;
  }

 private:
  const TrainDataset& data_;
  uint64_t seed_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> perm_;
};

struct StepLoss {
  double loss = 0;
  int64_t tokens = 0;
};

// The gradient of the step's mean loss into `grads`: DP rank r runs every dp-th sequence, and
// each sequence's weights are 1/N with N counted once over the whole step, so the result does
// not depend on the DP split. Loss and token count are summed over the replicas.
StepLoss step_gradients(const std::vector<const TrainExample*>& batch, bool all_tokens,
                        GradientPass& pass, ModelGrads& grads, Backend& backend,
                        const ParallelContext& par) {
  const ParallelLayout& L = par.layout;
  std::vector<std::vector<float>> masks;
  double counted = 0;
  for (const auto* e : batch) {
    masks.push_back(loss_mask(*e, all_tokens));
    for (float w : masks.back()) counted += w;
  }
  const float inv = counted > 0 ? static_cast<float>(1.0 / counted) : 0.0f;

  grads.zero(backend);
  StepLoss s;
  for (size_t k = 0; k < batch.size(); ++k) {
    if (static_cast<int>(k % static_cast<size_t>(L.dp)) != L.dp_rank) continue;
    std::vector<float>& w = masks[k];
    for (float& x : w) x *= inv;
    s.loss += pass.forward_backward(batch[k]->tokens, w, grads).loss;
    s.tokens += static_cast<int64_t>(batch[k]->tokens.size());
  }
  if (L.dp > 1) {
    for (const Tensor& g : grads.tensors()) par.dp->all_reduce(g);
    s.loss = par.dp->all_reduce_scalar(s.loss);
    s.tokens = par.dp->all_reduce_scalar_i64(s.tokens);
  }
  return s;
}

// The first step of this process, every log_every-th and the last: one line on stderr and one
// in log.jsonl (rank 0).
void log_step(std::ofstream& log_file, int64_t step, int64_t steps, int64_t first_step,
              const StepLoss& s, double lr, double norm, int64_t tokens_seen, double elapsed) {
  const double tps = static_cast<double>(tokens_seen) / std::max(elapsed, 1e-9);
  const double eta =
      elapsed / static_cast<double>(step - first_step) * static_cast<double>(steps - step);
  std::fprintf(stderr, "train step %lld/%lld loss %.4f lr %.2e |g| %.3f %.0f tok/s %s ETA %s\n",
               static_cast<long long>(step), static_cast<long long>(steps), s.loss, lr, norm, tps,
               ProgressPrinter::format_duration(elapsed).c_str(),
               ProgressPrinter::format_duration(eta).c_str());
  nlohmann::json line = {{"step", step},      {"loss", s.loss},     {"lr", lr},
                         {"grad_norm", norm}, {"tokens", s.tokens}, {"seconds", elapsed}};
  log_file << line.dump() << "\n";
  log_file.flush();
}

}  // namespace

TrainRunResult run_training(const TrainRunOptions& o, const ParallelContext& par,
                            Backend& backend) {
  const TrainConfig& c = o.config;
  const ParallelLayout& L = par.layout;
  if (L.tp != 1) throw UsageError("resp train is data-parallel only: run it with --tp 1");
  const bool root = L.rank == 0;
  const fs::path state_path = o.out / kStateFile;
  const bool have_state = fs::exists(state_path);
  if (!o.resume && fs::exists(o.out) && !fs::is_empty(o.out))
    throw UsageError(
        cat("output directory ", o.out.string(), " is not empty (use --resume to continue a run)"));
  const std::string config_yaml = to_yaml(c);

  // Tokenizer, data, model.
  const Tokenizer tok = Tokenizer::load(c.tokenizer);
  std::optional<ChatFormat> chat;
  if (c.format == "gsm8k-thinking" || c.format == "messages")
    chat = ChatFormat::for_tokenizer(tok, c.chat_format, c.tokenizer);
  const TrainDataset data =
      load_train_dataset(c.data, c.format, tok, chat ? &*chat : nullptr, c.max_length);
  const ModelSource model = read_model_source(c, tok);
  // par.tp has one rank (checked above): the shard is the whole model.
  ModelWeights weights =
      c.init_from.empty() ? random_model_shard(model.config, *par.tp, backend, c.seed,
                                               static_cast<float>(c.init_std))
                          : load_model_shard(fs::path(c.init_from), model.config, *par.tp, backend);
  ModelGrads grads = make_grads(weights, backend, GradSelection::All);
  const std::vector<Parameter> params = trainable_parameters(weights, grads);
  AdamW opt(params);
  GradientPass pass(weights, backend, *par.tp);

  int64_t step = 0;
  if (o.resume && have_state) {
    step = load_state(state_path, params, opt);
    if (root) log_info(cat("resuming ", o.out.string(), " at step ", step));
  }
  if (root) {
    fs::create_directories(o.out);
    write_text_atomic(o.out / "config.yaml", config_yaml);
    truncate_log(o.out / "log.jsonl", step);
    int64_t n_params = 0;
    for (const auto& p : params) n_params += p.value.numel();
    log_info(cat("train: ", n_params, " parameters, ", data.examples.size(), " examples (",
                 data.skipped_too_long, " longer than ", c.max_length, " skipped), ", c.steps,
                 " steps of ", c.sequences_per_step(), " sequences, dp ", L.dp));
  }

  const int64_t per_step = c.sequences_per_step();
  const bool all_tokens = c.loss_tokens == "all";
  StepBatches batches(data, c.seed);
  TrainRunResult result;
  Stopwatch clock;
  int64_t tokens_seen = 0;
  const int64_t first_step = step;
  std::ofstream log_file;
  if (root) log_file.open(o.out / "log.jsonl", std::ios::app);

  while (step < c.steps) {
    const StepLoss s =
        step_gradients(batches.batch(step, per_step), all_tokens, pass, grads, backend, par);
    const double norm = global_grad_norm(params);
    if (!std::isfinite(norm))
      throw Error(cat("train: the gradient norm is not finite at step ", step + 1,
                      " (lower optimizer.lr?)"));
    if (c.clip > 0 && norm > c.clip)
      scale_grads(params, static_cast<float>(c.clip / (norm + 1e-6)));
    const double lr = c.lr_at(static_cast<int>(step));
    opt.step(params, AdamWHyper{lr, c.beta1, c.beta2, c.eps, c.weight_decay}, step + 1);
    ++step;
    tokens_seen += s.tokens;
    result.last_loss = s.loss;
    if (root && (step % c.log_every == 0 || step == c.steps || step == first_step + 1))
      log_step(log_file, step, c.steps, first_step, s, lr, norm, tokens_seen, clock.seconds());

    const bool stop_local = o.stop_requested && o.stop_requested();
    const bool stop = par.world->all_reduce_scalar(stop_local ? 1.0 : 0.0, ReduceOp::Max) > 0 ||
                      (o.max_steps > 0 && step - first_step >= o.max_steps);
    if (root && (step % c.checkpoint_every == 0 || step == c.steps || stop))
      save_state(o.out, step, config_yaml, params, opt);
    if (stop && step < c.steps) {
      if (root) log_info(cat("train: stopped at step ", step, "; resume with --resume"));
      par.world->barrier();
      result.steps_done = static_cast<int>(step);
      result.stopped = true;
      return result;
    }
  }
  if (root)
    write_model(o.out / "model", model.config_json, tok, c.tokenizer,
                c.init_from.empty() ? fs::path() : fs::path(c.init_from), params, c.save_dtype);
  par.world->barrier();
  result.steps_done = static_cast<int>(step);
  result.finished = true;
  return result;
}

}  // namespace resp
