// Fixture access for the tokenizer tests. The Qwen3 tokenizer and the DeepSeek-R1-Distill-Qwen
// patch live in tests/fixtures/tokenizer (always present); the Qwen2.5 and Llama-3.2 tokenizers
// come from ../shared/tokenizers when it exists (tests that need them skip otherwise).
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "tokenizer/tokenizer.h"

namespace resp::toktest {

namespace fs = std::filesystem;

inline fs::path tok_fixtures() {
  return fs::path(RESP_SOURCE_DIR) / "tests/fixtures/tokenizer";
}
inline fs::path shared_tokenizers() {
  return fs::path(RESP_SHARED_DIR) / "tokenizers";
}

inline std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

inline nlohmann::json load_json(const fs::path& p) {
  return nlohmann::json::parse(slurp(p));
}

inline void write_text(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary);
  f << s;
}

// A temporary directory removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() /
            ("resp-tok-test-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

// Tokenizers by name: "qwen3", "deepseek_r1" (always), "qwen2_5", "llama3_2" (need ../shared).
// Returns nullptr when the files are absent. Loaded once per process.
inline const Tokenizer* fixture_tokenizer(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(name);
  if (it != cache.end()) return it->second.get();
  std::unique_ptr<Tokenizer> tok;
  if (name == "qwen3") {
    tok = std::make_unique<Tokenizer>(Tokenizer::load(tok_fixtures() / "qwen3"));
  } else if (name == "deepseek_r1") {
    // DeepSeek-R1-Distill-Qwen = the Qwen vocabulary and merges + its own added tokens and BOS
    // post-processor (tokenizer_patch.json) + its tokenizer_config.json.
    nlohmann::json tj = load_json(tok_fixtures() / "qwen3/tokenizer.json");
    const nlohmann::json patch = load_json(tok_fixtures() / "deepseek_r1/tokenizer_patch.json");
    for (auto p = patch.begin(); p != patch.end(); ++p) tj[p.key()] = p.value();
    tok = std::make_unique<Tokenizer>(Tokenizer::from_json(
        tj, load_json(tok_fixtures() / "deepseek_r1/tokenizer_config.json"), "deepseek_r1"));
  } else {
    const fs::path dir = shared_tokenizers() / name;
    if (fs::exists(dir / "tokenizer.json")) tok = std::make_unique<Tokenizer>(Tokenizer::load(dir));
  }
  const Tokenizer* raw = tok.get();
  cache.emplace(name, std::move(tok));
  return raw;
}

}  // namespace resp::toktest
