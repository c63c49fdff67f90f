// The seeded mutation fuzzer (issue 17): for every reader of untrusted input, its seed corpus
// (tests/fuzz/corpus/<reader>/) must be accepted, then mutants (mutator.h) run until a time
// budget is spent. Any outcome other than acceptance or a resp::Error is a failure: an escaped
// exception, an allocation above the bound (alloc_limit.h), an input that runs too long, a
// crash or a sanitizer report. The input at fault is saved and its path (and base64, when
// small) printed; RESP_FUZZ_REPRO=FILE with RESP_FUZZ_READER=NAME replays it.
//
// Environment:
//   RESP_FUZZ_SECONDS  time budget per reader (default 8; CI's sanitizer build uses it too)
//   RESP_FUZZ_RUNS     stop after this many mutants instead (0: no limit)
//   RESP_FUZZ_SEED     mutation seed (default 1): same seed, same mutants
//   RESP_FUZZ_TIMEOUT  seconds one input may take (default 30)
//   RESP_FUZZ_FINDINGS where inputs at fault are saved (default $TMPDIR/resp-fuzz-findings)
//   RESP_FUZZ_REPORT   append one JSON line of counts per reader to this file (tools/fuzz.sh)
//   RESP_FUZZ_ALL      1: also the targets outside the suite (hdf5_bytes: libhdf5's own faults)
#include <cxxabi.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <typeinfo>

#include "alloc_limit.h"
#include "fuzz_targets.h"
#include "mutator.h"

namespace fs = std::filesystem;
using namespace resp::fuzz;

extern "C" void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

namespace {

// A reader may allocate this much at once plus a multiple of the input size (a GGUF tensor
// dequantizes to ~8x its bytes, a Jinja value may reach 64 MiB), and hold 4x that in all;
// anything beyond comes from a count or size in the input that was not checked against it.
constexpr size_t kAllocBase = size_t{256} << 20;
constexpr size_t kAllocPerInputByte = 256;

size_t alloc_limit(size_t input_size) {
  return kAllocBase + kAllocPerInputByte * input_size;
}

std::string env_or(const char* name, const std::string& def) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : def;
}

double env_double(const char* name, double def) {
  return std::stod(env_or(name, std::to_string(def)));
}

uint64_t env_u64(const char* name, uint64_t def) {
  return std::stoull(env_or(name, std::to_string(def)));
}

fs::path findings_dir() {
  const fs::path d =
      env_or("RESP_FUZZ_FINDINGS", (fs::temp_directory_path() / "resp-fuzz-findings").string());
  fs::create_directories(d);
  return d;
}

// ---- crash reporting: what is running is saved from a signal handler or a sanitizer's death
// callback, with async-signal-safe calls only.
struct Current {
  const char* data = nullptr;
  size_t size = 0;
  char path[1024] = {};
  char reader[64] = {};
  int timeout_s = 30;
};
Current g_current;
struct sigaction g_previous[32];

void write_str(int fd, const char* s) {
  const ssize_t n = ::write(fd, s, strlen(s));
  (void)n;
}

void save_current(const char* why) {
  if (!g_current.data || !g_current.path[0]) return;
  const int fd = ::open(g_current.path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    size_t done = 0;
    while (done < g_current.size) {
      const ssize_t w = ::write(fd, g_current.data + done, g_current.size - done);
      if (w <= 0) break;
      done += static_cast<size_t>(w);
    }
    ::close(fd);
  }
  write_str(2, "\nfuzz: reader ");
  write_str(2, g_current.reader);
  write_str(2, ": ");
  write_str(2, why);
  write_str(2, "; the input is saved as ");
  write_str(2, g_current.path);
  write_str(2, "\n");
  g_current.data = nullptr;  // once
}

void on_death() {
  save_current("sanitizer report (above)");
}

void on_signal(int sig) {
  save_current(sig == SIGALRM ? "input ran past RESP_FUZZ_TIMEOUT (hang?)" : strsignal(sig));
  if (sig == SIGALRM) {
    ::signal(SIGABRT, SIG_DFL);
    ::abort();
  }
  // Hand the signal to whoever had it (a sanitizer's handler, or the default): restored, the
  // faulting instruction runs again, or abort() raises again.
  ::sigaction(sig, &g_previous[sig], nullptr);
}

void install_crash_handlers() {
  static bool done = false;
  if (done) return;
  done = true;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGALRM}) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_NODEFER;
    ::sigaction(sig, &sa, &g_previous[sig]);
  }
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(on_death);
}

std::string demangle(const char* name) {
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : name;
  std::free(d);
  return out;
}

std::string base64(const std::string& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint8_t>(in[i + 1]) << 8;
    if (i + 2 < in.size()) v |= static_cast<uint8_t>(in[i + 2]);
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? k[v & 63] : '=';
  }
  return out;
}

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

enum class Outcome { Accepted, Rejected, Finding };

struct Result {
  Outcome outcome = Outcome::Accepted;
  std::string finding;  // what escaped
};

// Runs one input under the allocation bound and the watchdog.
Result run_one(const Target& t, const std::string& input) {
  g_current.data = input.data();
  g_current.size = input.size();
  Result r;
  set_alloc_limit(alloc_limit(input.size()), 4 * alloc_limit(input.size()));
  ::alarm(static_cast<unsigned>(g_current.timeout_s));
  try {
    r.outcome = t.run(reinterpret_cast<const uint8_t*>(input.data()), input.size()) == 0
                    ? Outcome::Accepted
                    : Outcome::Rejected;
  } catch (const AllocLimitExceeded&) {
    r.outcome = Outcome::Finding;
    r.finding = "an allocation of " + std::to_string(take_refused_alloc()) +
                " bytes above the limits for this input (" +
                std::to_string(alloc_limit(input.size())) + " at once, " +
                std::to_string(4 * alloc_limit(input.size())) + " in all)";
  } catch (const std::exception& e) {
    r.outcome = Outcome::Finding;
    r.finding = demangle(typeid(e).name()) + ": " + e.what();
  } catch (...) {
    r.outcome = Outcome::Finding;
    r.finding = "an exception of unknown type";
  }
  ::alarm(0);
  set_alloc_limit(0);
  g_current.data = nullptr;
  return r;
}

// Saves the input at fault and describes it for the failure message.
std::string report_finding(const std::string& reader, const std::string& input,
                           const std::string& what, const std::string& origin) {
  const fs::path p = findings_dir() / (reader + "-finding.bin");
  std::ofstream(p, std::ios::binary) << input;
  std::string msg = "reader " + reader + ": " + what + "\n  input: " + origin + ", " +
                    std::to_string(input.size()) + " bytes, saved as " + p.string() +
                    "\n  replay: RESP_FUZZ_READER=" + reader + " RESP_FUZZ_REPRO=" + p.string() +
                    " test_fuzz --gtest_filter=FuzzRepro.*";
  if (input.size() <= 4096) msg += "\n  base64: " + base64(input);
  return msg;
}

std::vector<std::pair<std::string, std::string>> load_corpus(const std::string& reader) {
  const fs::path dir = fs::path(RESP_SOURCE_DIR) / "tests/fuzz/corpus" / reader;
  std::vector<std::pair<std::string, std::string>> seeds;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file()) seeds.emplace_back(e.path().filename().string(), read_bytes(e.path()));
  std::sort(seeds.begin(), seeds.end());  // directory order differs between machines
  return seeds;
}

class Fuzz : public ::testing::TestWithParam<std::string> {};

TEST_P(Fuzz, Reader) {
  const std::string reader = GetParam();
  const Target* target = find_target(reader);
  ASSERT_NE(target, nullptr);
  install_crash_handlers();
  const double seconds = env_double("RESP_FUZZ_SECONDS", 8);
  const uint64_t max_runs = env_u64("RESP_FUZZ_RUNS", 0);
  const uint64_t seed = env_u64("RESP_FUZZ_SEED", 1);
  g_current.timeout_s = static_cast<int>(env_u64("RESP_FUZZ_TIMEOUT", 30));
  std::snprintf(g_current.path, sizeof g_current.path, "%s",
                (findings_dir() / (reader + "-crash.bin")).c_str());
  std::snprintf(g_current.reader, sizeof g_current.reader, "%s", reader.c_str());

  const auto seeds = load_corpus(reader);
  ASSERT_FALSE(seeds.empty()) << "no seed corpus for " << reader;
  std::vector<std::string> pool;
  size_t largest = 0;
  for (const auto& [name, bytes] : seeds) {
    const Result r = run_one(*target, bytes);
    ASSERT_NE(r.outcome, Outcome::Finding)
        << report_finding(reader, bytes, r.finding, "seed " + name);
    EXPECT_EQ(r.outcome, Outcome::Accepted)
        << "seed " << name << " of " << reader << " is rejected (" << last_rejection()
        << "): the corpus is stale (tools/fuzz.sh --make-corpus)";
    pool.push_back(bytes);
    largest = std::max(largest, bytes.size());
  }
  const size_t n_seeds = pool.size();

  // Mutants of the seeds and of mutants the reader accepted (valid inputs with other values
  // reach checks a mutant of a seed alone rarely does).
  Mutator mutator(seed * 0x9e3779b97f4a7c15ull + std::hash<std::string>{}(reader),
                  target->dictionary, std::max<size_t>(4096, 2 * largest));
  Rng pool_rng(seed);
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(seconds);
  uint64_t runs = 0, accepted = 0, rejected = 0;
  double slowest = 0;
  while ((max_runs == 0 || runs < max_runs) &&
         (max_runs != 0 || std::chrono::steady_clock::now() < deadline)) {
    const std::string input = mutator.mutate(pool);
    const auto t0 = std::chrono::steady_clock::now();
    const Result r = run_one(*target, input);
    slowest = std::max(
        slowest, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    ++runs;
    if (r.outcome == Outcome::Finding) {
      ADD_FAILURE() << report_finding(
          reader, input, r.finding,
          "mutant " + std::to_string(runs) + " of seed " + std::to_string(seed));
      break;
    }
    if (r.outcome == Outcome::Rejected) {
      ++rejected;
      continue;
    }
    ++accepted;
    if (std::find(pool.begin(), pool.end(), input) != pool.end()) continue;
    if (pool.size() < n_seeds + 256)
      pool.push_back(input);
    else
      pool[n_seeds + pool_rng.below(256)] = input;
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "fuzz " << reader << ": " << runs << " inputs in " << elapsed << " s ("
            << static_cast<uint64_t>(static_cast<double>(runs) / std::max(elapsed, 1e-9)) << "/s), "
            << accepted << " accepted, " << rejected << " rejected, slowest " << slowest
            << " s, seeds " << n_seeds << ", mutation seed " << seed << std::endl;
  RecordProperty("inputs", std::to_string(runs));
  if (const std::string report = env_or("RESP_FUZZ_REPORT", ""); !report.empty()) {
    std::ofstream(report, std::ios::app)
        << nlohmann::json{{"reader", reader},     {"inputs", runs},     {"accepted", accepted},
                          {"rejected", rejected}, {"seconds", elapsed}, {"slowest_s", slowest},
                          {"seeds", n_seeds},     {"seed", seed},       {"failed", HasFailure()}}
               .dump()
        << "\n";
  }
  EXPECT_GT(runs, 0u) << "no mutant ran in the time budget";
}

// The ctest suite; RESP_FUZZ_ALL=1 adds the targets that fuzz a third party (hdf5_bytes).
std::vector<std::string> reader_names() {
  const bool all = env_or("RESP_FUZZ_ALL", "0") == "1";
  std::vector<std::string> names;
  for (const Target& t : targets())
    if (t.in_suite || all) names.push_back(t.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Readers, Fuzz, ::testing::ValuesIn(reader_names()),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

// Every finding, minimized, stays as a regression input (tests/fuzz/regressions/<reader>/):
// each must now be rejected with a resp::Error.
TEST(FuzzRegressions, FindingsAreRejected) {
  const fs::path root = fs::path(RESP_SOURCE_DIR) / "tests/fuzz/regressions";
  install_crash_handlers();
  size_t n = 0;
  for (const auto& dir : fs::directory_iterator(root)) {
    const Target* target = find_target(dir.path().filename().string());
    ASSERT_NE(target, nullptr) << dir.path() << " names no reader";
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir.path())) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      const std::string input = read_bytes(file);
      const Result r = run_one(*target, input);
      EXPECT_NE(r.outcome, Outcome::Finding) << file.string() << ": " << r.finding;
      EXPECT_EQ(r.outcome, Outcome::Rejected) << file.string() << " is accepted";
      ++n;
    }
  }
  EXPECT_GE(n, 10u);
}

// Replays one saved input under the same allocation limits, catching nothing, so a debugger or
// a sanitizer sees the fault where it happens.
TEST(FuzzRepro, Input) {
  const std::string file = env_or("RESP_FUZZ_REPRO", "");
  if (file.empty()) GTEST_SKIP() << "set RESP_FUZZ_REPRO=FILE and RESP_FUZZ_READER=NAME";
  const Target* target = find_target(env_or("RESP_FUZZ_READER", ""));
  ASSERT_NE(target, nullptr) << "RESP_FUZZ_READER names no reader";
  const std::string input = read_bytes(file);
  set_alloc_limit(alloc_limit(input.size()), 4 * alloc_limit(input.size()));
  const int rc = target->run(reinterpret_cast<const uint8_t*>(input.data()), input.size());
  set_alloc_limit(0);
  std::cout << "reader " << target->name << (rc == 0 ? " accepted " : " rejected ") << file
            << (rc == 0 ? "" : " (last error: " + last_rejection() + ")") << "\n";
}

// The mutator is deterministic: the same seed gives the same mutants (a reported mutant number
// means the same input everywhere), and different seeds give different ones.
TEST(FuzzMutator, DeterministicPerSeed) {
  const std::vector<std::string> pool = {"{\"a\": 12, \"b\": [1, 2, 3]}", "key: 7\nlist: [x]\n"};
  auto run = [&](uint64_t seed) {
    Mutator m(seed, {"{", "}"}, 4096);
    std::vector<std::string> out;
    for (int i = 0; i < 200; ++i) out.push_back(m.mutate(pool));
    return out;
  };
  const auto a = run(5), b = run(5), c = run(6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  size_t changed = 0;
  for (const std::string& s : a) changed += s != pool[0] && s != pool[1];
  EXPECT_GT(changed, 180u) << "most mutants differ from their seed";
}

// The allocation bound turns an absurd request into AllocLimitExceeded, which run_one reports.
TEST(FuzzAllocLimit, RefusesAboveTheLimits) {
  set_alloc_limit(1 << 20, 3 << 20);
  EXPECT_THROW(std::vector<char>(2 << 20), AllocLimitExceeded);
  EXPECT_EQ(take_refused_alloc(), size_t{2} << 20);
  EXPECT_NO_THROW(std::vector<char>(1 << 19));
  // Many allocations each below the per-call limit, held together: the total limit.
  std::vector<std::vector<char>> held;
  EXPECT_THROW(for (int i = 0; i < 8; ++i) held.emplace_back(size_t{1} << 19), AllocLimitExceeded);
  EXPECT_LT(held.size(), 8u);
  held.clear();
  EXPECT_NO_THROW(std::vector<char>(1 << 19));  // freed memory counts no more
  set_alloc_limit(0);
  EXPECT_NO_THROW(std::vector<char>(4 << 20));
}

}  // namespace
