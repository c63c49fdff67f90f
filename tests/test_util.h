// Helpers shared by the tests: temporary directories, a minimal safetensors writer (so tests can
// build valid and deliberately broken checkpoints), running the resp binary.
#pragma once

#include <sys/wait.h>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

namespace resp::test {

namespace fs = std::filesystem;

inline fs::path source_dir() {
  return fs::path(RESP_SOURCE_DIR);
}
inline fs::path fixture_models() {
  return source_dir() / "tests/fixtures/models";
}

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ =
        fs::temp_directory_path() / ("resp-test-" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& s) const { return path_ / s; }

 private:
  fs::path path_;
};

struct RawTensor {
  std::string dtype = "F32";
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

inline RawTensor f32_tensor(std::vector<int64_t> shape, float start = 0.0f, float step = 0.01f) {
  RawTensor t;
  t.shape = shape;
  int64_t n = 1;
  for (auto d : shape) n *= d;
  t.bytes.resize(static_cast<size_t>(n) * 4);
  for (int64_t i = 0; i < n; ++i) {
    const float v = start + step * static_cast<float>(i % 97);
    std::memcpy(t.bytes.data() + i * 4, &v, 4);
  }
  return t;
}

// Writes a safetensors file; `header_override` (when non-empty) replaces the JSON header.
inline void write_safetensors(const fs::path& path, const std::map<std::string, RawTensor>& tensors,
                              const std::string& header_override = "") {
  nlohmann::json h = nlohmann::json::object();
  std::vector<uint8_t> data;
  for (const auto& [name, t] : tensors) {
    h[name] = {{"dtype", t.dtype},
               {"shape", t.shape},
               {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  }
  std::string hs = header_override.empty() ? h.dump() : header_override;
  while (hs.size() % 8) hs += ' ';
  std::ofstream f(path, std::ios::binary);
  const uint64_t n = hs.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>((n >> (8 * i)) & 0xff));
  f.write(hs.data(), static_cast<std::streamsize>(hs.size()));
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

inline void write_text(const fs::path& path, const std::string& s) {
  std::ofstream f(path, std::ios::binary);
  f << s;
}

inline std::string read_text(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

struct RunResult {
  int exit_code = -1;
  std::string out, err;
};

// Runs the resp binary with `args` (a shell-quoted string), capturing stdout and stderr.
inline RunResult run_resp(const std::string& args, const std::string& env = "") {
  TempDir tmp;
  const std::string cmd = env + " " + std::string(RESP_BINARY) + " " + args + " >" +
                          (tmp / "out").string() + " 2>" + (tmp / "err").string();
  const int status = std::system(cmd.c_str());
  RunResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(tmp / "out");
  r.err = read_text(tmp / "err");
  return r;
}

inline std::vector<nlohmann::json> parse_jsonl(const std::string& text) {
  std::vector<nlohmann::json> v;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    if (e == std::string::npos) e = text.size();
    const std::string line = text.substr(pos, e - pos);
    if (!line.empty()) v.push_back(nlohmann::json::parse(line));
    pos = e + 1;
  }
  return v;
}

}  // namespace resp::test
