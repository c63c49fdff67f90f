// Single-thread tokenizer throughput (not a test; tools/bench_tokenizer.py drives it):
//   bench_tokenizer MODEL_DIR TEXT_FILE [IDS_OUT]
// Prints one JSON object: load time, encode MB/s on the whole text (cold cache, then warm),
// encode MB/s line by line, decode MB/s. IDS_OUT receives the whole-text ids as int32 (to
// compare with Hugging Face).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_tokenizer MODEL_DIR TEXT_FILE [IDS_OUT]\n");
    return 2;
  }
  std::ifstream f(argv[2], std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const double mb = static_cast<double>(text.size()) / 1e6;

  double t0 = now();
  const resp::Tokenizer tok = resp::Tokenizer::load(argv[1]);
  const double load_s = now() - t0;

  t0 = now();
  const std::vector<int32_t> ids = tok.encode(text);
  const double cold_s = now() - t0;
  t0 = now();
  const std::vector<int32_t> ids2 = tok.encode(text);
  const double warm_s = now() - t0;
  if (ids2 != ids) {
    std::fprintf(stderr, "warm encode differs from cold encode\n");
    return 1;
  }

  // Line by line on a fresh tokenizer (its cache starts empty).
  const resp::Tokenizer tok2 = resp::Tokenizer::load(argv[1]);
  size_t line_tokens = 0;
  t0 = now();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t e = text.find('\n', pos);
    e = e == std::string::npos ? text.size() : e + 1;
    line_tokens += tok2.encode(std::string_view(text).substr(pos, e - pos)).size();
    pos = e;
  }
  const double lines_s = now() - t0;

  t0 = now();
  const std::string back = tok.decode(ids);
  const double decode_s = now() - t0;

  if (argc > 3) {
    std::ofstream out(argv[3], std::ios::binary);
    out.write(reinterpret_cast<const char*>(ids.data()),
              static_cast<std::streamsize>(ids.size() * sizeof(int32_t)));
  }
  const nlohmann::json r = {
      {"bytes", text.size()},
      {"tokens", ids.size()},
      {"line_tokens", line_tokens},
      {"load_s", load_s},
      {"encode_cold_s", cold_s},
      {"encode_cold_mb_s", mb / cold_s},
      {"encode_warm_s", warm_s},
      {"encode_warm_mb_s", mb / warm_s},
      {"encode_lines_s", lines_s},
      {"encode_lines_mb_s", mb / lines_s},
      {"decode_s", decode_s},
      {"decode_mb_s", static_cast<double>(back.size()) / 1e6 / decode_s},
  };
  std::cout << r.dump() << "\n";
  return 0;
}
