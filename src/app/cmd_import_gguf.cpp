// `resp import-gguf FILE.gguf --out DIR`: converts a llama.cpp GGUF checkpoint into a Hugging
// Face model directory that every other command loads (ckpt/gguf_import.h, docs/gguf.md).
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>

#include "app/commands.h"
#include "ckpt/gguf_import.h"
#include "core/error.h"

namespace resp::app {

namespace {

struct ImportOptions {
  std::string gguf, out, dtype = "f32";
};

int run_import(const ImportOptions& o) {
  GgufImportOptions opts;
  opts.dtype = o.dtype == "bf16" ? DType::BF16 : DType::F32;
  const auto t0 = std::chrono::steady_clock::now();
  const GgufImportSummary s = import_gguf(o.gguf, o.out, opts);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string types;
  for (const auto& t : s.tensor_types) types += (types.empty() ? "" : ", ") + t;
  std::printf("wrote %s: %s%s%s, %zu tensors (%s; %.1f MB as %s), tokenizer %s, %.1f s\n",
              o.out.c_str(), s.architecture.c_str(), s.name.empty() ? "" : " ",
              s.name.empty() ? "" : ("\"" + s.name + "\"").c_str(), s.tensors, types.c_str(),
              static_cast<double>(s.bytes) / 1e6, o.dtype.c_str(), s.tokenizer ? "yes" : "none",
              secs);
  return 0;
}

}  // namespace

void register_import_gguf(CLI::App& root, Action* selected) {
  auto opts = std::make_shared<ImportOptions>();
  CLI::App* cmd = root.add_subcommand(
      "import-gguf",
      "Convert a llama.cpp GGUF checkpoint (llama, qwen2, qwen3) to a Hugging Face "
      "model directory");
  cmd->add_option("gguf", opts->gguf, "The .gguf file")->required();
  cmd->add_option("--out", opts->out, "Output directory (must not exist or be empty)")->required();
  cmd->add_option("--dtype", opts->dtype,
                  "f32 (default: holds every dequantized weight exactly) or bf16 (half the size, "
                  "rounded)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  cmd->callback([opts, selected] { *selected = [opts] { return run_import(*opts); }; });
}

}  // namespace resp::app
