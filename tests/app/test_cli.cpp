// End-to-end tests of the resp binary: contracts of the CLI (formats, exit codes, one-line
// errors, no partial outputs) on the committed fixture models.
#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstring>

#include "app/runtime.h"
#include "app/runtime_flags.h"
#include "backend/backend.h"
#include "ckpt/scores_file.h"
#include "test_util.h"

using namespace resp::test;

namespace {

fs::path fixture(const std::string& name) {
  return fixture_models() / name;
}

void expect_matches_reference(const std::string& output, const fs::path& model, double tol) {
  const auto got = parse_jsonl(output);
  const auto ref = parse_jsonl(read_text(model / "reference.jsonl"));
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(got[i]["id"], ref[i]["id"]);
    const auto a = got[i]["logprobs"].get<std::vector<double>>();
    const auto b = ref[i]["logprobs"].get<std::vector<double>>();
    ASSERT_EQ(a.size(), b.size());
    for (size_t t = 0; t < a.size(); ++t) EXPECT_NEAR(a[t], b[t], tol) << i << ":" << t;
  }
}

// A failing command must print exactly one line, starting "resp: error:", and exit non-zero.
void expect_one_line_error(const RunResult& r, const std::string& needle) {
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(r.exit_code, 128) << "crashed: " << r.err;
  EXPECT_EQ(r.err.rfind("resp: error:", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(needle), std::string::npos) << "expected '" << needle << "' in: " << r.err;
}

// A copy of a fixture model we can damage.
fs::path copy_model(const TempDir& d, const std::string& name) {
  const fs::path dst = d / name;
  fs::copy(fixture(name), dst, fs::copy_options::recursive);
  return dst;
}

}  // namespace

TEST(Cli, VersionAndHelp) {
  auto r = run_resp("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("resp ", 0), 0u);
  r = run_resp("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("logprobs"), std::string::npos);
  // Parse errors follow the same contract as every usage error: exit 2, one "resp: error:" line.
  r = run_resp("no-such-command");
  expect_one_line_error(r, "subcommand");
  EXPECT_EQ(r.exit_code, 2);
  r = run_resp("logprobs --input x.jsonl");  // --model missing
  expect_one_line_error(r, "--model");
  EXPECT_EQ(r.exit_code, 2);
  r = run_resp("generate --model m --prompts p.jsonl --out o.jsonl --bogus-flag 3");
  expect_one_line_error(r, "--bogus-flag");
  EXPECT_EQ(r.exit_code, 2);
  r = run_resp("logprobs --help");
  EXPECT_EQ(r.exit_code, 0);
}

TEST(Cli, LogprobsMatchesReferenceOnStdout) {
  const fs::path m = fixture("qwen3-f32");
  const auto r =
      run_resp("logprobs --model " + m.string() + " --input " + (m / "input.jsonl").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_matches_reference(r.out, m, 1e-4);
}

TEST(Cli, LogprobsWritesOutFileAtomically) {
  TempDir d;
  const fs::path m = fixture("llama31-bf16");
  const fs::path out = d / "lp.jsonl";
  const auto r = run_resp("logprobs --model " + m.string() + " --input " +
                          (m / "input.jsonl").string() + " --out " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.empty());
  EXPECT_FALSE(fs::exists(d / "lp.jsonl.tmp"));
  expect_matches_reference(read_text(out), m, 1e-4);
}

TEST(Cli, IdsDefaultToLineIndex) {
  TempDir d;
  write_text(d / "in.jsonl", "{\"tokens\": [1, 2, 3]}\n\n{\"tokens\": [4, 5]}\n");
  const auto r = run_resp("logprobs --model " + fixture("qwen3-tiny-demo").string() + " --input " +
                          (d / "in.jsonl").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto lines = parse_jsonl(r.out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["id"], 0);
  EXPECT_EQ(lines[1]["id"], 1);
  EXPECT_EQ(lines[0]["logprobs"].size(), 2u);
  for (double v : lines[0]["logprobs"].get<std::vector<double>>()) EXPECT_LT(v, 0.0);
}

TEST(Cli, BadInputsGiveOneLineErrors) {
  TempDir d;
  const fs::path good = fixture("qwen3-f32");
  const std::string input = " --input " + (good / "input.jsonl").string();
  const fs::path out = d / "never.jsonl";
  const std::string out_flag = " --out " + out.string();

  // Missing model directory.
  expect_one_line_error(run_resp("logprobs --model " + (d / "nope").string() + input + out_flag),
                        "does not exist");
  // Malformed JSONL, reported with its line number.
  write_text(d / "bad.jsonl", "{\"tokens\": [1, 2]}\n{\"tokens\": [1,\n");
  expect_one_line_error(run_resp("logprobs --model " + good.string() + " --input " +
                                 (d / "bad.jsonl").string() + out_flag),
                        "bad.jsonl:2");
  // Token outside the vocabulary.
  write_text(d / "oov.jsonl", "{\"tokens\": [1, 999999]}\n");
  expect_one_line_error(run_resp("logprobs --model " + good.string() + " --input " +
                                 (d / "oov.jsonl").string() + out_flag),
                        "vocabulary");
  // Missing input file.
  expect_one_line_error(run_resp("logprobs --model " + good.string() + " --input " +
                                 (d / "missing.jsonl").string() + out_flag),
                        "missing.jsonl");

  // Truncated weights file.
  {
    const fs::path m = copy_model(d, "qwen3-f32");
    const std::string s = read_text(m / "model.safetensors");
    write_text(m / "model.safetensors", s.substr(0, s.size() / 2));
    expect_one_line_error(run_resp("logprobs --model " + m.string() + input + out_flag),
                          "truncated");
    fs::remove_all(m);
  }
  // Shape mismatch between config.json and the tensors.
  {
    const fs::path m = copy_model(d, "qwen3-f32");
    auto cfg = nlohmann::json::parse(read_text(m / "config.json"));
    cfg["intermediate_size"] = 96;
    write_text(m / "config.json", cfg.dump());
    expect_one_line_error(run_resp("logprobs --model " + m.string() + input + out_flag),
                          "expected [96, 72]");
    fs::remove_all(m);
  }
  // A missing tensor (config claims one more layer than the file has).
  {
    const fs::path m = copy_model(d, "qwen3-f32");
    auto cfg = nlohmann::json::parse(read_text(m / "config.json"));
    cfg["num_hidden_layers"] = 4;
    write_text(m / "config.json", cfg.dump());
    expect_one_line_error(run_resp("logprobs --model " + m.string() + input + out_flag),
                          "model.layers.3.");
    fs::remove_all(m);
  }
  // Fewer layers in the config than in the weights: the extra layer is not silently dropped.
  {
    const fs::path m = copy_model(d, "qwen3-f32");
    auto cfg = nlohmann::json::parse(read_text(m / "config.json"));
    cfg["num_hidden_layers"] = cfg["num_hidden_layers"].get<int>() - 1;
    write_text(m / "config.json", cfg.dump());
    expect_one_line_error(run_resp("logprobs --model " + m.string() + input + out_flag),
                          "is not used by config.json");
    fs::remove_all(m);
  }
  // A NaN weight is found on load, with the tensor named.
  {
    const fs::path m = copy_model(d, "qwen3-f32");
    std::string s = read_text(m / "model.safetensors");
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i)
      header = (header << 8) | static_cast<uint8_t>(s[static_cast<size_t>(i)]);
    const auto h = nlohmann::json::parse(s.substr(8, header));
    const std::string name = "model.layers.1.mlp.up_proj.weight";
    const size_t at = 8 + header + h[name]["data_offsets"][0].get<size_t>() + 4 * 5;
    const uint32_t nan_bits = 0x7fc00000u;
    std::memcpy(&s[at], &nan_bits, 4);
    write_text(m / "model.safetensors", s);
    expect_one_line_error(run_resp("logprobs --model " + m.string() + input + out_flag),
                          "up_proj.weight\" holds a non-finite value");
    fs::remove_all(m);
  }
  // Finite but huge weights overflow in the forward pass: importance stops with a clear error
  // and writes no scores.
  {
    const fs::path m = copy_model(d, "qwen3-f32");
    std::string s = read_text(m / "model.safetensors");
    uint64_t header = 0;
    for (int i = 7; i >= 0; --i)
      header = (header << 8) | static_cast<uint8_t>(s[static_cast<size_t>(i)]);
    const auto h = nlohmann::json::parse(s.substr(8, header));
    const auto& off = h["model.norm.weight"]["data_offsets"];
    const float huge = 3.0e38f;
    for (size_t at = off[0].get<size_t>(); at < off[1].get<size_t>(); at += 4)
      std::memcpy(&s[8 + header + at], &huge, 4);
    write_text(m / "model.safetensors", s);
    const fs::path scores = d / "scores.h5";
    // (importance logs its progress on stderr before the error line)
    const auto r =
        run_resp("importance --model " + m.string() + " --traces " +
                 (good / "calibration.jsonl").string() + " --threads 1 --out " + scores.string());
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_NE(r.err.find("resp: error: importance: the calibration loss is not finite"),
              std::string::npos)
        << r.err;
    EXPECT_FALSE(fs::exists(scores));
    fs::remove_all(m);
  }
  // Unknown architecture and malformed config.json.
  {
    const fs::path m = copy_model(d, "qwen3-f32");
    auto cfg = nlohmann::json::parse(read_text(m / "config.json"));
    cfg["architectures"] = {"GPT2LMHeadModel"};
    write_text(m / "config.json", cfg.dump());
    expect_one_line_error(run_resp("logprobs --model " + m.string() + input + out_flag),
                          "GPT2LMHeadModel");
    write_text(m / "config.json", "{\"architectures\": [\"Qwen3ForCausalLM\"], ");
    expect_one_line_error(run_resp("logprobs --model " + m.string() + input + out_flag),
                          "malformed JSON");
    fs::remove_all(m);
  }
  // Offsets past the end of the data section.
  {
    const fs::path m = copy_model(d, "llama-mqa-f32");
    std::string s = read_text(m / "model.safetensors");
    const size_t pos = s.find("\"data_offsets\":[0,");
    ASSERT_NE(pos, std::string::npos);
    s.replace(pos, 18, "\"data_offsets\":[9,");  // same length, now inconsistent
    write_text(m / "model.safetensors", s);
    expect_one_line_error(run_resp("logprobs --model " + m.string() + input + out_flag),
                          "data_offsets");
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(d / "never.jsonl.tmp"));
}

// --device on the compute commands: `cuda` on a machine (or build) without a visible GPU is a
// one-line usage error before any work or output; `cpu` and `auto` run on the CPU there.
// Nonsense values and outputs that cannot be written are refused before any work or output.
TEST(Cli, NonsenseValuesAreRefused) {
  TempDir d;
  const fs::path model = fixture("qwen3-tiny-demo");
  write_text(d / "p.jsonl", "{\"id\": \"a\", \"prompt\": \"Hello\"}\n");
  const fs::path traces = d / "traces.jsonl";
  const std::string gen = "generate --model " + model.string() + " --prompts " +
                          (d / "p.jsonl").string() + " --out " + traces.string() +
                          " --max-new-tokens 3 ";
  auto r = run_resp(gen + "--threads 1 --temperature -1");
  expect_one_line_error(r, "temperature");
  EXPECT_EQ(r.exit_code, 2);
  r = run_resp(gen + "--threads -1 --temperature 0");
  expect_one_line_error(r, "threads");
  EXPECT_EQ(r.exit_code, 2);
  r = run_resp(gen + "--threads 1 --temperature 0.7 --seed -1");
  expect_one_line_error(r, "seed");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(fs::exists(traces));
  // A huge thread count is clamped to the cores (it used to overflow libgomp's stack).
  r = run_resp(gen + "--threads 100000 --temperature 0");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("exceeds"), std::string::npos) << r.err;

  // eval --out naming a directory: nothing is written beside it.
  fs::create_directories(d / "outdir");
  r = run_resp("eval --model " + model.string() + " --task gsm8k --data " +
               (source_dir() / "data/gsm8k/train.jsonl").string() +
               " --shots 0 --limit 1 --max-new-tokens 3 --threads 1 --out " +
               (d / "outdir").string());
  expect_one_line_error(r, "is a directory");
  EXPECT_FALSE(fs::exists(d / "outdir.items.jsonl"));
}

TEST(Cli, DeviceCudaWithoutGpuIsAOneLineError) {
  if (resp::cuda_device_count() > 0) GTEST_SKIP() << "a CUDA device is visible";
  TempDir d;
  const fs::path model = fixture("qwen3-tiny-demo");
  write_text(d / "p.jsonl", "{\"id\": \"a\", \"prompt\": \"Hello\"}\n");
  const fs::path traces = d / "traces.jsonl";
  const std::string gen = "generate --model " + model.string() + " --prompts " +
                          (d / "p.jsonl").string() + " --out " + traces.string() +
                          " --threads 1 --temperature 0 --max-new-tokens 3 --device ";
  auto r = run_resp(gen + "cuda");
  expect_one_line_error(r, "--device cuda");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_FALSE(fs::exists(traces));

  const fs::path results = d / "results.json";
  r = run_resp("eval --model " + model.string() + " --task gsm8k --data " +
               (source_dir() / "data/gsm8k/train.jsonl").string() +
               " --shots 0 --limit 1 --max-new-tokens 3 --threads 1 --device cuda --out " +
               results.string());
  expect_one_line_error(r, "--device cuda");
  EXPECT_FALSE(fs::exists(results));

  const fs::path run = d / "run";
  r = run_resp("prune --config " + (source_dir() / "configs/default.yaml").string() +
               " --set model=" + model.string() + " --out " + run.string() +
               " --threads 1 --device cuda");
  expect_one_line_error(r, "--device cuda");
  EXPECT_FALSE(fs::exists(run / "config.yaml"));

  r = run_resp("logprobs --model " + model.string() + " --input " +
               (model / "input.jsonl").string() + " --device cuda");
  expect_one_line_error(r, "--device cuda");

  // An unknown device is refused by the option check.
  r = run_resp(gen + "tpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--device"), std::string::npos) << r.err;

  // cpu and auto (no GPU: the CPU) generate the same greedy traces.
  r = run_resp(gen + "cpu");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string on_cpu = read_text(traces);
  fs::remove(traces);
  r = run_resp(gen + "auto");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_text(traces), on_cpu);
  EXPECT_EQ(parse_jsonl(on_cpu).size(), 1u);
  // No GPU is not worth a warning (a broken one is: CliDevice below).
  if (!resp::probe_cuda().broken()) {
    EXPECT_EQ(r.err.find("running on the CPU"), std::string::npos) << r.err;
  }
}

// start_runtime's choice for each --device value and probe result, without a GPU.
TEST(CliDevice, DecisionFollowsTheProbe) {
  using resp::CudaProbe;
  using resp::app::decide_device;
  using resp::app::DeviceChoice;
  CudaProbe none;
  none.state = CudaProbe::State::NoDevice;
  none.reason = "no CUDA device is visible";
  CudaProbe old;
  old.state = CudaProbe::State::DriverTooOld;
  old.reason = "CUDA driver too old: needs >= 580, found 550.54.15";
  CudaProbe ok;
  ok.state = CudaProbe::State::Available;
  ok.devices = 2;

  EXPECT_TRUE(decide_device(DeviceChoice::Auto, ok).cuda);
  EXPECT_TRUE(decide_device(DeviceChoice::Cuda, ok).cuda);
  EXPECT_EQ(decide_device(DeviceChoice::Auto, ok).warning, "");
  EXPECT_FALSE(decide_device(DeviceChoice::Cpu, ok).cuda);
  EXPECT_FALSE(decide_device(DeviceChoice::Cpu, old).cuda);
  EXPECT_EQ(decide_device(DeviceChoice::Cpu, old).warning, "");  // the user chose the CPU
  // auto: an old driver falls back to the CPU, saying why; no GPU at all is silent.
  const auto fallback = decide_device(DeviceChoice::Auto, old);
  EXPECT_FALSE(fallback.cuda);
  EXPECT_EQ(
      fallback.warning,
      "--device auto: CUDA driver too old: needs >= 580, found 550.54.15; running on the CPU");
  EXPECT_FALSE(decide_device(DeviceChoice::Auto, none).cuda);
  EXPECT_EQ(decide_device(DeviceChoice::Auto, none).warning, "");
  // cuda: refused with the probe's one-line reason; a broken GPU is a runtime error (exit 1),
  // no GPU a usage error (exit 2).
  try {
    decide_device(DeviceChoice::Cuda, old);
    ADD_FAILURE() << "cuda accepted with an old driver";
  } catch (const resp::DeviceError& e) {
    EXPECT_STREQ(e.what(), "--device cuda: CUDA driver too old: needs >= 580, found 550.54.15");
  }
  EXPECT_THROW(decide_device(DeviceChoice::Cuda, none), resp::UsageError);
  // The names --device takes, and nothing else.
  for (const DeviceChoice d : {DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda})
    EXPECT_EQ(resp::app::parse_device_choice(resp::app::device_choice_name(d)), d);
  EXPECT_THROW(resp::app::parse_device_choice("tpu"), resp::UsageError);
  EXPECT_THROW(resp::app::parse_device_choice("CPU"), resp::UsageError);
}

namespace {
bool have_mpiexec() {
  return std::system("command -v mpiexec >/dev/null 2>&1") == 0;
}
}  // namespace

TEST(CliParallel, TensorAndDataParallelMatchSingleRank) {
  if (!have_mpiexec()) GTEST_SKIP() << "mpiexec not installed";
  const fs::path m = fixture("llama-mqa-f32");  // 1 KV head: replicated on tp=2
  const std::string base =
      "logprobs --model " + m.string() + " --input " + (m / "input.jsonl").string();
  for (const char* layout : {"-n 2 {} --tp 2", "-n 2 {} --tp 1", "-n 4 {} --tp 2"}) {
    std::string args = layout;
    args.replace(args.find("{}"), 2, std::string(RESP_BINARY) + " " + base);
    TempDir d;
    const std::string cmd =
        "mpiexec " + args + " --threads 1 >" + (d / "out").string() + " 2>" + (d / "err").string();
    const int status = std::system(cmd.c_str());
    ASSERT_EQ(WEXITSTATUS(status), 0) << layout << ": " << read_text(d / "err");
    expect_matches_reference(read_text(d / "out"), m, 1e-4);
  }
}

TEST(CliParallel, TpNotDividingWorldIsAClearError) {
  if (!have_mpiexec()) GTEST_SKIP() << "mpiexec not installed";
  const fs::path m = fixture("qwen3-f32");
  TempDir d;
  const std::string cmd = "mpiexec -n 2 " + std::string(RESP_BINARY) + " logprobs --model " +
                          m.string() + " --input " + (m / "input.jsonl").string() + " --tp 3 >" +
                          (d / "out").string() + " 2>" + (d / "err").string();
  const int status = std::system(cmd.c_str());
  EXPECT_NE(WEXITSTATUS(status), 0);
  EXPECT_NE(read_text(d / "err").find("does not divide"), std::string::npos)
      << read_text(d / "err");
}

TEST(Bench, EverySubcommandRunsAndReportsJson) {
  TempDir d;
  struct Case {
    std::string args;
    std::vector<std::string> keys;
  };
  const std::vector<Case> cases = {
      {"bench forward --config qwen3-tiny --batch 1 --seq 16",
       {"tokens_per_s", "fraction_of_sgemm"}},
      {"bench backward --config qwen3-tiny --seq 32 --samples 1",
       {"fwd_bwd_tokens_per_s", "ratio_fwd_bwd_over_fwd"}},
      {"bench generate --config qwen3-tiny --batches 1,2 --prompt-len 8 --new-tokens 4", {}},
      {"bench checkpoint --layers 2 --heads 4 --channels 16 --traces 3 --tokens 20 --repeat 1",
       {"write_mb_per_s"}},
  };
  for (const auto& c : cases) {
    const auto r = run_resp(c.args + " --json " + (d / "b.json").string() + " 2>/dev/null",
                            "OMP_NUM_THREADS=1");
    // bench checkpoint has no --json flag: retry without it.
    const auto rr = r.exit_code == 0 ? r : run_resp(c.args, "OMP_NUM_THREADS=1");
    ASSERT_EQ(rr.exit_code, 0) << c.args << ": " << rr.err;
    const std::string all = rr.out + read_text(d / "b.json");
    for (const auto& k : c.keys)
      EXPECT_NE(all.find("\"" + k + "\""), std::string::npos) << c.args << " " << k;
    fs::remove(d / "b.json");
  }
}

// bench gemm: both kernels on every requested row count, agreeing to float rounding; bad row
// counts are a one-line usage error.
TEST(Bench, GemmComparesTheFewRowsKernelWithSgemm) {
  TempDir d;
  const auto r = run_resp("bench gemm --config qwen3-tiny --rows 1,5,64 --repeat 1 --json " +
                          (d / "g.json").string());
  if (r.exit_code != 0 && r.err.find("no few-rows kernel") != std::string::npos)
    GTEST_SKIP() << "this build has no few-rows kernel";
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(read_text(d / "g.json"));
  ASSERT_EQ(j["runs"].size(), 3u);
  std::vector<int> rows;
  for (const auto& run : j["runs"]) {
    rows.push_back(run["rows"].get<int>());
    EXPECT_GT(run["few_rows_ms"].get<double>(), 0.0);
    EXPECT_GT(run["sgemm_ms"].get<double>(), 0.0);
    EXPECT_LT(run["max_rel_diff"].get<double>(), 1e-5) << run;
  }
  EXPECT_EQ(rows, (std::vector<int>{1, 5, 64}));
  for (const std::string bad : {"0", "65", "2,x", ""}) {
    const auto b = run_resp("bench gemm --config qwen3-tiny --rows '" + bad + "'");
    EXPECT_EQ(b.exit_code, 2) << bad;
    EXPECT_NE(b.err.find("--rows"), std::string::npos) << b.err;
  }
}

namespace {
int mpi_shell(const std::string& cmd) {
  const int s = std::system(cmd.c_str());
  return WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
}
}  // namespace

TEST(CliParallel, GenerationIdenticalAtAnyLayout) {
  if (!have_mpiexec()) GTEST_SKIP() << "mpiexec not installed";
  TempDir d;
  const fs::path m = fixture("qwen3-tiny-demo");
  write_text(
      d / "prompts.jsonl",
      "{\"id\": \"a\", \"prompt\": \"Tom has 3 apples.\"}\n{\"id\": \"b\", \"prompt\": \"x\"}\n"
      "{\"id\": \"c\", \"prompt\": \"Compute 12 + 30.\"}\n");
  const std::string base = std::string(RESP_BINARY) + " generate --model " + m.string() +
                           " --prompts " + (d / "prompts.jsonl").string() +
                           " --max-new-tokens 12 --threads 1 --quiet";
  for (const char* sampling : {"--temperature 0", "--temperature 0.8 --top-p 0.9 --seed 7"}) {
    ASSERT_EQ(
        mpi_shell(base + " " + sampling + " --out " + (d / "one.jsonl").string() + " 2>/dev/null"),
        0);
    const auto ref = parse_jsonl(read_text(d / "one.jsonl"));
    ASSERT_EQ(ref.size(), 3u);
    for (const char* layout : {"-n 2 {} --tp 2", "-n 2 {} --tp 1", "-n 4 {} --tp 2"}) {
      std::string cmd = std::string("mpiexec ") + layout;
      cmd.replace(cmd.find("{}"), 2,
                  base + " " + sampling + " --out " + (d / "par.jsonl").string());
      ASSERT_EQ(mpi_shell(cmd + " 2>" + (d / "err").string()), 0) << layout << read_text(d / "err");
      const auto got = parse_jsonl(read_text(d / "par.jsonl"));
      ASSERT_EQ(got.size(), ref.size()) << layout;
      for (size_t i = 0; i < ref.size(); ++i) {
        EXPECT_EQ(got[i]["id"], ref[i]["id"]) << layout;
        EXPECT_EQ(got[i]["output_tokens"], ref[i]["output_tokens"]) << layout << " " << sampling;
      }
    }
  }
}

TEST(CliParallel, ImportanceIdenticalAtAnyLayout) {
  if (!have_mpiexec()) GTEST_SKIP() << "mpiexec not installed";
  TempDir d;
  const fs::path m = fixture("qwen2-sharded-f32");
  for (const char* criterion : {"taylor", "wanda-sp"}) {
    const std::string base = std::string(RESP_BINARY) + " importance --model " + m.string() +
                             " --traces " + (m / "calibration.jsonl").string() + " --criterion " +
                             criterion + " --threads 1";
    ASSERT_EQ(mpi_shell(base + " --out " + (d / "one.h5").string() + " 2>/dev/null"), 0);
    const auto ref = resp::read_scores_h5(d / "one.h5");
    for (const char* layout : {"-n 2 {} --tp 2", "-n 2 {} --tp 1", "-n 4 {} --tp 2"}) {
      std::string cmd = std::string("mpiexec ") + layout;
      cmd.replace(cmd.find("{}"), 2, base + " --out " + (d / "par.h5").string());
      ASSERT_EQ(mpi_shell(cmd + " 2>" + (d / "err").string()), 0) << layout << read_text(d / "err");
      const auto got = resp::read_scores_h5(d / "par.h5");
      EXPECT_EQ(got.samples, ref.samples);
      ASSERT_EQ(got.layers.size(), ref.layers.size());
      for (size_t l = 0; l < ref.layers.size(); ++l) {
        for (size_t i = 0; i < ref.layers[l].heads.size(); ++i)
          EXPECT_NEAR(got.layers[l].heads[i], ref.layers[l].heads[i],
                      1e-5 * std::fabs(ref.layers[l].heads[i]))
              << criterion << " " << layout;
        for (size_t i = 0; i < ref.layers[l].channels.size(); ++i)
          EXPECT_NEAR(got.layers[l].channels[i], ref.layers[l].channels[i],
                      1e-5 * std::fabs(ref.layers[l].channels[i]))
              << criterion << " " << layout;
      }
    }
  }
}

// --tp / --threads / --device: registered by one helper, parsed into typed values; a flag not
// given stays unset (the command's default, or its config file's value).
TEST(RuntimeFlags, OneRegistrationTypedValues) {
  using resp::app::DeviceChoice;
  using resp::app::RuntimeFlags;
  {
    CLI::App app;
    RuntimeFlags f;
    resp::app::add_runtime_flags(app, f);
    app.parse("--tp 2 --threads 3 --device cpu", false);
    EXPECT_EQ(f.tp, 2);
    EXPECT_EQ(f.threads, 3);
    EXPECT_EQ(f.device, DeviceChoice::Cpu);
  }
  {
    CLI::App app;
    RuntimeFlags f;
    resp::app::add_runtime_flags(app, f);
    app.parse("", false);
    EXPECT_FALSE(f.tp.has_value());
    EXPECT_FALSE(f.threads.has_value());
    EXPECT_EQ(f.device, DeviceChoice::Auto);
    app.parse("--device cuda", false);
    EXPECT_EQ(f.device, DeviceChoice::Cuda);
  }
  {
    // A command without --tp (bench backward) or with only --threads (train) does not take it;
    // config-file commands say which key the flag replaces.
    CLI::App app;
    RuntimeFlags f;
    resp::app::add_runtime_flags(app, f, {.tp = false, .device = false, .config_keys = true});
    EXPECT_EQ(app.get_option_no_throw("--tp"), nullptr);
    EXPECT_EQ(app.get_option_no_throw("--device"), nullptr);
    ASSERT_NE(app.get_option_no_throw("--threads"), nullptr);
    EXPECT_NE(app.get_option("--threads")->get_description().find("--set parallel.threads=N"),
              std::string::npos);
    EXPECT_THROW(app.parse("--tp 2", false), CLI::ExtrasError);
  }
}

TEST(RuntimeFlags, BadValuesAreOneLineErrors) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--tp 0", "--tp"},           {"--tp -2", "--tp"},
      {"--tp two", "--tp"},         {"--threads -1", "--threads"},
      {"--device tpu", "--device"}, {"--device CPU", "--device"}};
  for (const auto& [args, flag] : bad) {
    CLI::App app;
    resp::app::RuntimeFlags f;
    resp::app::add_runtime_flags(app, f);
    try {
      app.parse(args, false);
      ADD_FAILURE() << args << " accepted";
    } catch (const CLI::ParseError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(flag), std::string::npos) << args << ": " << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << args << ": " << msg;
    }
  }
  // Every compute command refuses them the same way, before any work: exit 2, one line.
  const fs::path model = fixture("qwen3-tiny-demo");
  for (const std::string& cmd : std::vector<std::string>{
           "logprobs --model " + model.string() + " --input " + (model / "input.jsonl").string(),
           "importance --model " + model.string() + " --criterion magnitude --out x.h5",
           "generate --model " + model.string() + " --prompts p.jsonl --out t.jsonl",
           "eval --model " + model.string() + " --task gsm8k --data d.jsonl --out r.json",
           "prune --config " + (source_dir() / "configs/default.yaml").string(),
           "bench forward --config qwen3-tiny", "bench generate --config qwen3-tiny"}) {
    for (const auto& [args, flag] : bad) {
      const auto r = run_resp(cmd + " " + args);
      expect_one_line_error(r, flag);
      EXPECT_EQ(r.exit_code, 2) << cmd << " " << args;
    }
  }
  auto r = run_resp("bench backward --config qwen3-tiny --tp 2");
  expect_one_line_error(r, "--tp");
  r = run_resp("train --config x.yaml --device cpu");
  expect_one_line_error(r, "--device");
  r = run_resp("train --config x.yaml --threads -3");
  expect_one_line_error(r, "--threads");
}
