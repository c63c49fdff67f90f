#include "fuzz_targets.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>

#include "app/calibration_input.h"
#include "app/jsonl.h"
#include "ckpt/gguf_import.h"
#include "ckpt/run_checkpoint.h"
#include "ckpt/safetensors_writer.h"
#include "ckpt/scores_file.h"
#include "core/error.h"
#include "driver/prune_config.h"
#include "generate/generation_config.h"
#include "generate/tasks.h"
#include "h5_description.h"
#include "importance/calibration.h"
#include "model/gguf_file.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"
#include "train/train_config.h"

namespace resp::fuzz {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const fs::path g_source_dir = RESP_SOURCE_DIR;  // fixed companion files come from here

// Failures of the harness itself are std::runtime_error, never resp::Error: they must surface.
[[noreturn]] void harness_error(const std::string& what) {
  throw std::runtime_error("fuzz harness: " + what);
}

class ScratchDir {
 public:
  ScratchDir() {
    std::string tmpl = (fs::temp_directory_path() / "resp-fuzz-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) harness_error("mkdtemp failed: " + std::string(strerror(errno)));
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_file(const fs::path& p, const void* data, size_t size) {
  const int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) harness_error("cannot create " + p.string());
  const auto* b = static_cast<const char*>(data);
  size_t done = 0;
  while (done < size) {
    const ssize_t w = ::write(fd, b + done, size - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      ::close(fd);
      harness_error("cannot write " + p.string());
    }
    done += static_cast<size_t>(w);
  }
  ::close(fd);
}

// A directory of its own per target, created once.
fs::path target_dir(const char* name) {
  const fs::path d = scratch_dir() / name;
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec) harness_error("cannot create " + d.string());
  return d;
}

// A fixed companion file copied from the repository into `dir`.
void copy_fixture(const std::string& rel, const fs::path& dir, const std::string& as) {
  std::error_code ec;
  fs::copy_file(g_source_dir / rel, dir / as, fs::copy_options::overwrite_existing, ec);
  if (ec)
    harness_error("cannot copy fixture " + (g_source_dir / rel).string() + ": " + ec.message());
}

std::string read_fixture(const std::string& rel) {
  std::ifstream in(g_source_dir / rel, std::ios::binary);
  if (!in) harness_error("cannot read fixture " + rel);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string_view text_of(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

std::string g_last_rejection;

// Records why an input was rejected (the driver prints it for a seed that should pass).
int rejected(const Error& e) {
  g_last_rejection = e.what();
  return 1;
}

// A guarantee of a reader that a later stage relies on; a broken one is a finding.
void require(bool ok, const std::string& what) {
  if (!ok) throw std::logic_error("invariant broken: " + what);
}

constexpr size_t kMaxReadBytes = size_t{64} << 20;  // tensors read back per input

const char* const kTexts[] = {
    "Hello world! 123 4567 don't I'll",
    "  leading spaces\n\ttabs\r\n and trailing   ",
    "h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x99\x82",
    "<|im_start|>user\nhi<|im_end|><think>x</think><|endoftext|>",
    "a\xcc\x81 \xef\xac\x81 \xe2\x85\xa0 \xc2\xa0nbsp",
    "",
    "99999999999999999999 3.14159 -42",
};

// Everything a caller does with a loaded tokenizer, bounded by its vocabulary.
void exercise_tokenizer(const Tokenizer& tok) {
  const int32_t vocab = tok.vocab_size();
  for (const char* text : kTexts) {
    for (const EncodeOptions opts :
         {EncodeOptions{false, false}, EncodeOptions{true, false}, EncodeOptions{false, true}}) {
      const std::vector<int32_t> ids = tok.encode(text, opts);
      for (int32_t id : ids)
        require(id >= 0 && id < vocab, "encode returned an id outside [0, vocab_size)");
      tok.decode(ids, false);
      tok.decode(ids, true);
      StreamDecoder sd(tok);
      for (int32_t id : ids) sd.push(id);
      sd.flush();
    }
  }
  std::vector<int32_t> all;
  for (int32_t id = 0; id < std::min<int32_t>(vocab, 4096); ++id) {
    tok.token_bytes(id);
    tok.token(id);
    tok.is_special(id);
    all.push_back(id);
  }
  tok.decode(all, false);
  tok.describe();
  for (int32_t id : tok.eos_ids()) require(id >= 0 && id < vocab, "eos id outside the vocabulary");
  if (const auto b = tok.bos_id()) require(*b >= 0 && *b < vocab, "bos id outside the vocabulary");
  for (const auto* v : {&tok.special_prefix(), &tok.special_suffix()})
    for (int32_t id : *v) require(id >= 0 && id < vocab, "special id outside the vocabulary");
}

const std::vector<ChatMessage>& chat_messages() {
  static const std::vector<ChatMessage> m = {
      {"system", "You are terse."},
      {"user", "What is 2+2?"},
      {"assistant", "<think>\nadd\n</think>\n\n4"},
      {"user", "And 3+3? \xe2\x9c\x93"},
  };
  return m;
}

// Renders a chat format the ways the CLI does. Thinking on / off may be refused by a template
// without (or with only) a thinking mode; only the default and auto renderings must succeed.
bool exercise_chat(const ChatFormat& chat, const Tokenizer* tok) {
  bool ok = true;
  for (const Thinking t : {Thinking::Default, Thinking::Auto, Thinking::On, Thinking::Off}) {
    try {
      ChatOptions o;
      o.thinking = t;
      o.add_generation_prompt = t != Thinking::Off;
      const std::string text = chat.render(chat_messages(), o);
      chat.thinks(t);
      if (tok) tok->encode(text, EncodeOptions{false, false});
    } catch (const Error& e) {
      if (t == Thinking::Default || t == Thinking::Auto) ok = !rejected(e);
    }
  }
  return ok;
}

// A ByteSink that only counts: the tensor fills of a GGUF import run in full, nothing is kept.
class CountingSink : public ByteSink {
 public:
  void write(const void*, size_t n) override { bytes += n; }
  size_t bytes = 0;
};

}  // namespace

const fs::path& scratch_dir() {
  static const ScratchDir dir;
  return dir.path();
}

const std::string& last_rejection() {
  return g_last_rejection;
}

int fuzz_safetensors(const uint8_t* data, size_t size) {
  static const fs::path dir = target_dir("safetensors");
  write_file(dir / "model.safetensors", data, size);
  try {
    const CheckpointReader r(dir);
    size_t read = 0;
    for (const std::string& name : r.names()) {
      const TensorInfo& t = r.info(name);
      const auto numel = static_cast<size_t>(t.numel());
      require(t.nbytes <= size, "tensor " + name + " larger than the file");
      if ((read += numel * 4) > kMaxReadBytes) break;
      std::vector<float> out(numel);
      r.read(name, out.data());
      if (t.shape.size() == 1 || t.shape.size() == 2) {
        const int rows = static_cast<int>(std::min<int64_t>(t.shape[0], INT32_MAX));
        const size_t row_len = t.shape.size() == 2 ? static_cast<size_t>(t.shape[1]) : 1;
        if (rows > 0) {
          const std::vector<int> pick = {rows - 1, 0};
          std::vector<float> o(pick.size() * row_len);
          r.read_rows(name, pick, o.data());
        }
        if (t.shape.size() == 2 && t.shape[1] > 0 && t.shape[1] <= INT32_MAX) {
          const int cols = static_cast<int>(t.shape[1]);
          for (const std::vector<int>& pick :
               {std::vector<int>{0}, std::vector<int>{cols - 1, 0}, std::vector<int>{cols - 1}}) {
            std::vector<float> o(static_cast<size_t>(t.shape[0]) * pick.size());
            r.read_cols(name, pick, o.data());
          }
        }
      }
    }
    return 0;
  } catch (const Error& e) {
    return rejected(e);
  }
}

int fuzz_safetensors_index(const uint8_t* data, size_t size) {
  static const fs::path dir = [] {
    const fs::path d = target_dir("safetensors_index");
    for (const char* f : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"})
      copy_fixture(std::string("tests/fixtures/models/qwen2-sharded-f32/") + f, d, f);
    return d;
  }();
  write_file(dir / "model.safetensors.index.json", data, size);
  try {
    const CheckpointReader r(dir);
    std::vector<float> out;
    for (const std::string& name : r.names()) {
      out.resize(static_cast<size_t>(r.info(name).numel()));
      r.read(name, out.data());
      r.file_of(name);
    }
    return 0;
  } catch (const Error& e) {
    return rejected(e);
  }
}

int fuzz_model_config(const uint8_t* data, size_t size) {
  static const fs::path dir = target_dir("model_config");
  write_file(dir / "config.json", data, size);
  try {
    const ModelConfig c = load_model_config(dir);
    require(static_cast<int>(c.layers.size()) == c.num_layers, "one LayerShape per layer");
    c.parameter_count();
    c.rope_inv_freq();
    GenerationConfig::for_model(dir, c).validate();
    return 0;
  } catch (const Error& e) {
    return rejected(e);
  }
}

int fuzz_generation_config(const uint8_t* data, size_t size) {
  // Read twice: by GenerationConfig (sampling, eos ids) and by Tokenizer::load (extra eos ids),
  // next to a fixed tokenizer of the same 263-token vocabulary as the config.
  static const fs::path dir = [] {
    const fs::path d = target_dir("generation_config");
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      copy_fixture(std::string("tests/fixtures/models/qwen3-tiny-demo/") + f, d, f);
    return d;
  }();
  static const ModelConfig config = parse_model_config(
      json::parse(read_fixture("tests/fixtures/models/llama31-bf16/config.json")), "config.json");
  write_file(dir / "generation_config.json", data, size);
  bool ok = true;
  try {
    const GenerationConfig g = GenerationConfig::for_model(dir, config);
    for (int32_t id : g.eos_ids)
      require(id >= 0 && id < config.vocab_size, "eos id outside the vocabulary");
    g.to_json().dump();
    g.validate();
  } catch (const Error& e) {
    ok = !rejected(e);
  }
  try {
    exercise_tokenizer(Tokenizer::load(dir));
  } catch (const Error& e) {
    ok = !rejected(e);
  }
  return ok ? 0 : 1;
}

int fuzz_tokenizer_json(const uint8_t* data, size_t size) {
  static const fs::path dir = [] {
    const fs::path d = target_dir("tokenizer_json");
    copy_fixture("tests/fixtures/models/qwen3-tiny-demo/tokenizer_config.json", d,
                 "tokenizer_config.json");
    return d;
  }();
  write_file(dir / "tokenizer.json", data, size);
  try {
    exercise_tokenizer(Tokenizer::load(dir));
    return 0;
  } catch (const Error& e) {
    return rejected(e);
  }
}

int fuzz_tokenizer_config(const uint8_t* data, size_t size) {
  static const fs::path dir = [] {
    const fs::path d = target_dir("tokenizer_config");
    copy_fixture("tests/fixtures/models/qwen3-tiny-demo/tokenizer.json", d, "tokenizer.json");
    return d;
  }();
  write_file(dir / "tokenizer_config.json", data, size);
  try {
    const Tokenizer tok = Tokenizer::load(dir);
    exercise_tokenizer(tok);
    if (tok.chat_template().empty()) return 0;
    return exercise_chat(ChatFormat::for_tokenizer(tok, {}, dir.string()), &tok) ? 0 : 1;
  } catch (const Error& e) {
    return rejected(e);
  }
}

int fuzz_chat_template(const uint8_t* data, size_t size) {
  const std::string_view source = text_of(data, size);
  bool ok = true;
  try {
    ok = exercise_chat(ChatFormat::from_template(source, "<s>", "</s>", "fuzz"), nullptr);
  } catch (const Error& e) {
    ok = !rejected(e);
  }
  try {
    ChatFormat::detect(source, "<s>");
  } catch (const Error&) {
  }
  return ok ? 0 : 1;
}

int fuzz_prune_config(const uint8_t* data, size_t size) {
  const std::string text(text_of(data, size));
  PruneConfig c;
  try {
    c = parse_prune_config(text, {}, "fuzz.yaml", "/fuzz");
  } catch (const Error& e) {
    return rejected(e);
  }
  // Run checkpoints store the effective config as YAML and a resume parses it again: what was
  // accepted once must read back to the same configuration.
  const std::string yaml = to_yaml(c);
  try {
    const std::string again = to_yaml(parse_prune_config(yaml, {}, "effective.yaml", "/fuzz"));
    require(again == yaml,
            "to_yaml(parse(to_yaml(c))) differs from to_yaml(c):\n" + yaml + "\n---\n" + again);
  } catch (const Error& e) {
    require(false, std::string("the effective config does not parse: ") + e.what() + "\n" + yaml);
  }
  return 0;
}

int fuzz_train_config(const uint8_t* data, size_t size) {
  const std::string text(text_of(data, size));
  TrainConfig c;
  try {
    c = parse_train_config(text, {}, "fuzz.yaml", "/fuzz");
    for (int step : {0, 1, c.steps / 2, c.steps - 1}) c.lr_at(std::max(step, 0));
  } catch (const Error& e) {
    return rejected(e);
  }
  const std::string yaml = to_yaml(c);
  try {
    const std::string again = to_yaml(parse_train_config(yaml, {}, "effective.yaml", "/fuzz"));
    require(again == yaml,
            "to_yaml(parse(to_yaml(c))) differs from to_yaml(c):\n" + yaml + "\n---\n" + again);
  } catch (const Error& e) {
    require(false, std::string("the effective config does not parse: ") + e.what() + "\n" + yaml);
  }
  return 0;
}

int fuzz_jsonl(const uint8_t* data, size_t size) {
  static const fs::path dir = target_dir("jsonl");
  static const ModelConfig config = parse_model_config(
      json::parse(read_fixture("tests/fixtures/models/qwen3-tiny-demo/config.json")),
      "config.json");
  const fs::path path = dir / "input.jsonl";
  write_file(path, data, size);
  bool ok = true;
  try {
    // resp logprobs / tokenize: one token list per record.
    for (const app::JsonlRecord& r : app::read_jsonl(path)) {
      try {
        app::token_list(r, "tokens");
      } catch (const Error& e) {
        ok = !rejected(e);
      }
      // resp eval / calibration from dataset rows.
      for (const Task t : {Task::Gsm8k, Task::MathQA}) {
        try {
          task_user_text(t, r.value);
          task_gold(t, r.value);
        } catch (const Error& e) {
          ok = !rejected(e);
        }
      }
    }
    // resp importance / prune: traces as calibration samples.
    app::CalibrationInput in;
    in.path = path.string();
    in.source = "self";
    for (const CalibrationSample& s : app::load_calibration(in, config)) {
      for (int32_t id : s.tokens)
        require(id >= 0 && id < config.vocab_size, "calibration token outside the vocabulary");
      for (const LossMode m : {LossMode::DecodeOnly, LossMode::Full}) {
        const std::vector<float> w = loss_weights(s, m);
        require(w.empty() || w.size() + 1 == s.tokens.size(), "loss weights per position");
      }
    }
  } catch (const Error& e) {
    ok = !rejected(e);
  }
  return ok ? 0 : 1;
}

// The HDF5 targets build their file from a JSON description (h5_description.h): mutants reach
// resp's checks instead of stopping in libhdf5's parser. An undescribable input is skipped.
bool build_described_h5(const uint8_t* data, size_t size, const fs::path& path) {
  const json d = json::parse(data, data + size, nullptr, false);
  return !d.is_discarded() && build_h5(d, path, 1024 + 16 * size);
}

void require_finite(const ImportanceScores& s, const std::string& what) {
  for (const LayerScores& l : s.layers)
    for (const auto* v : {&l.heads, &l.channels})
      for (double x : *v) require(std::isfinite(x), what + " holds a non-finite score");
}

int fuzz_run_checkpoint(const uint8_t* data, size_t size) {
  static const fs::path dir = target_dir("run_checkpoint");
  // Not named iter_NNNN.h5: the reader would also compare the name with the iteration.
  const fs::path path = dir / "checkpoint.h5";
  if (!build_described_h5(data, size, path)) return 1;
  RunState s;
  try {
    s = read_run_checkpoint(path);
  } catch (const Error& e) {
    return rejected(e);
  }
  require_finite(s.scores, "an accepted checkpoint");
  // An accepted checkpoint is one a resume continues from: it must write and read back.
  const fs::path run = dir / "rewritten";
  std::error_code ec;
  fs::remove_all(run, ec);
  fs::create_directories(run);
  try {
    write_run_checkpoint(run, s);
    const RunState back = read_run_checkpoint(checkpoint_path(run, s.iteration));
    require(back.iteration == s.iteration && back.plan.size() == s.plan.size() &&
                back.traces.size() == s.traces.size() && back.history.size() == s.history.size(),
            "a rewritten checkpoint reads back differently");
  } catch (const Error& e) {
    require(false, std::string("an accepted checkpoint does not round-trip: ") + e.what());
  }
  return 0;
}

int fuzz_scores_h5(const uint8_t* data, size_t size) {
  static const fs::path dir = target_dir("scores_h5");
  const fs::path path = dir / "scores.h5";
  if (!build_described_h5(data, size, path)) return 1;
  ImportanceScores s;
  try {
    s = read_scores_h5(path);
  } catch (const Error& e) {
    return rejected(e);
  }
  require_finite(s, "an accepted scores file");
  for (const LayerScores& l : s.layers)
    require(l.heads.size() == l.head_ids.size() && l.channels.size() == l.channel_ids.size(),
            "one score per kept id");
  const fs::path back_path = dir / "rewritten.h5";
  try {
    write_scores_h5(back_path, s, "fuzz");
    const ImportanceScores back = read_scores_h5(back_path);
    require(back.layers.size() == s.layers.size(), "rewritten scores read back differently");
  } catch (const Error& e) {
    require(false, std::string("accepted scores do not round-trip: ") + e.what());
  }
  return 0;
}

int fuzz_hdf5_bytes(const uint8_t* data, size_t size) {
  static const fs::path dir = target_dir("hdf5_bytes");
  const fs::path path = dir / "checkpoint.h5";
  write_file(path, data, size);
  try {
    read_run_checkpoint(path);
    return 0;
  } catch (const Error& e) {
    return rejected(e);
  }
}

int fuzz_gguf(const uint8_t* data, size_t size) {
  static const fs::path dir = target_dir("gguf");
  const fs::path path = dir / "model.gguf";
  write_file(path, data, size);
  std::optional<GgufFile> file;
  try {
    file.emplace(path);
  } catch (const Error& e) {
    return rejected(e);
  }
  // The file parsed: that is acceptance. What follows may refuse a valid file (an array of
  // floats read as integers, a type that does not dequantize, an architecture the import does
  // not know) and only has to do so with a resp::Error.
  const GgufFile& f = *file;
  for (const auto& [key, v] : f.metadata()) {
    try {
      if (v.type != GgufType::Array) continue;
      for (const GgufValue& item : f.array_items(v))
        if (item.type == GgufType::Array) f.array_items(item);
      if (v.elem_type == GgufType::String)
        f.get_string_array(key);
      else
        f.get_int_array(key);
    } catch (const Error& e) {
      rejected(e);
    }
  }
  size_t read = 0;  // every tensor dequantized, bounded in total
  std::vector<float> out;
  for (const GgufTensorInfo& t : f.tensors()) {
    require(t.nbytes <= size, "tensor " + t.name + " larger than the file");
    if ((read += static_cast<size_t>(t.numel()) * 4) > kMaxReadBytes) break;
    try {
      out.resize(static_cast<size_t>(t.numel()));
      f.dequantize(t, out.data());
    } catch (const Error& e) {
      rejected(e);
    }
  }
  // The conversion to a Hugging Face directory, piece by piece, nothing written.
  try {
    gguf_hf_config(f, DType::F32).dump();
    for (const TensorEntry& e : gguf_hf_tensors(f, DType::BF16)) {
      CountingSink sink;
      e.fill(sink);
      require(sink.bytes == e.nbytes(), "tensor fill wrote the wrong number of bytes");
    }
  } catch (const Error& e) {
    rejected(e);
  }
  try {
    if (gguf_has_tokenizer(f)) {
      const json tj = json::parse(gguf_tokenizer_json(f));
      const json tc = json(gguf_tokenizer_config(f));
      gguf_generation_config(f).dump();
      exercise_tokenizer(Tokenizer::from_json(tj, tc, "tokenizer.json from GGUF"));
    }
  } catch (const Error& e) {
    rejected(e);
  }
  return 0;
}

const std::vector<Target>& targets() {
  // Dictionaries: the syntax and the keywords of each format, so that mutants recombine them.
  static const std::vector<std::string> kJson = {
      "{",       "}",  "[",     "]",          "\"",
      ":",       ",",  "null",  "true",       "false",
      "-1",      "0",  "1e308", "\"\"",       "\\u0000",
      "\\ud800", "[]", "{}",    "2147483648", "18446744073709551616"};
  static const std::vector<std::string> kYaml = {
      ": ", "- ",   "\n",     "  ",   "[",    "]",    "{",     "}",     "&a ",
      "*a", "<<: ", "!!str ", "~",    "'",    "\"",   "---\n", "...\n", "? ",
      "| ", "> ",   ".nan",   ".inf", "auto", "0x10", "1e400", "-1"};
  static const std::vector<std::string> kJinja = {
      "{{",       "}}",     "{%",          "%}",         "{#",
      "#}",       "{%-",    "-%}",         "for ",       " in ",
      "endfor",   "if ",    "elif ",       "else",       "endif",
      "set ",     "macro ", "endmacro",    "namespace(", "loop.",
      "messages", "|",      "tojson",      "range(",     "raise_exception(",
      "'",        "\"",     "[",           "]",          "(",
      ")",        ".",      "~",           "+",          "*",
      "//",       "%",      "is ",         "not ",       "defined",
      "none",     "[::-1]", "selectattr(", "map(",       "join("};
  using namespace std::string_literals;  // the binary tokens hold NUL bytes
  static const std::vector<std::string> kBinary = {
      "\x00\x00\x00\x00"s, "\xff\xff\xff\xff"s, "\x7f\xff\xff\xff"s, "\x00\x00\x00\x80"s, "GGUF"s,
      "general.alignment"s};
  static const std::vector<std::string> kH5Json = [] {
    std::vector<std::string> d = kJson;
    for (const char* t :
         {"\"i32\"", "\"i64\"", "\"f32\"", "\"f64\"", "\"str\"", "\"shape\"", "\"data\"",
          "\"attrs\"", "\"valid\"", "\"none\"", "\"stale\"", "1099511627776", "NaN"})
      d.push_back(t);
    return d;
  }();
  static const std::vector<std::string> kHdf5 = {
      "\x89HDF\r\n\x1a\n", "OHDR", "OCHK", "FRHP", "FSHD", "BTHD", "TREE", "HEAP", "SNOD", "GCOL"};
  static const std::vector<Target> t = {
      {"safetensors", fuzz_safetensors, kJson},
      {"safetensors_index", fuzz_safetensors_index, kJson},
      {"model_config", fuzz_model_config, kJson},
      {"generation_config", fuzz_generation_config, kJson},
      {"tokenizer_json", fuzz_tokenizer_json, kJson},
      {"tokenizer_config", fuzz_tokenizer_config, kJson},
      {"chat_template", fuzz_chat_template, kJinja},
      {"prune_config", fuzz_prune_config, kYaml},
      {"train_config", fuzz_train_config, kYaml},
      {"jsonl", fuzz_jsonl, kJson},
      {"run_checkpoint", fuzz_run_checkpoint, kH5Json},
      {"scores_h5", fuzz_scores_h5, kH5Json},
      {"gguf", fuzz_gguf, kBinary},
      // libhdf5 itself on corrupt bytes: it hangs and crashes (docs/fuzzing.md), so this one
      // runs only when asked for (tools/fuzz.sh --reader hdf5_bytes).
      {"hdf5_bytes", fuzz_hdf5_bytes, kHdf5, false},
  };
  return t;
}

const Target* find_target(const std::string& name) {
  for (const Target& t : targets())
    if (name == t.name) return &t;
  return nullptr;
}

}  // namespace resp::fuzz
