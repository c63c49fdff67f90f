#include "comm/checked_communicator.h"

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/timer.h"

namespace resp {

namespace {

constexpr int kFields = 6;  // kind, dtype, elements, detail, where-hash, call index

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

const char* kind_name(int64_t k) {
  switch (k) {
    case 1:
      return "all_reduce";
    case 2:
      return "all_gather";
    case 3:
      return "broadcast";
    case 4:
      return "barrier";
    case 5:
      return "check_in_sync";
    case 6:
      return "all_reduce_async";
  }
  return "?";
}

std::string describe(const int64_t* d, const char* own_where) {
  const auto kind = d[0];
  if (kind == 5)
    return cat(kind_name(kind), "(", own_where ? cat("'", own_where, "'") : "another point", ")");
  std::string s = cat(kind_name(kind));
  if (kind == 4) return s;
  s += cat(" of ", d[2], " ", dtype_name(static_cast<DType>(d[1])), " elements");
  if (kind == 3) s += cat(" from root ", d[3]);
  return s;
}

// Scoped wall time into a CommStats.
class Timed {
 public:
  explicit Timed(CommStats& s) : s_(s) {}
  ~Timed() { s_.seconds += w_.seconds(); }
  Timed(const Timed&) = delete;
  Timed& operator=(const Timed&) = delete;

 private:
  CommStats& s_;
  Stopwatch w_;
};

class CheckedRequest final : public CommRequest {
 public:
  CheckedRequest(std::unique_ptr<CommRequest> inner, CommStats& stats)
      : inner_(std::move(inner)), stats_(stats) {}
  void wait() override {
    Timed t(stats_);
    inner_->wait();
  }
  bool test() override { return inner_->test(); }

 private:
  std::unique_ptr<CommRequest> inner_;
  CommStats& stats_;
};

}  // namespace

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
std::string counter_json(const CommStats::Counter& c) {
  return cat("{\"calls\": ", c.calls, ", \"elements\": ", c.elements, ", \"bytes\": ", c.bytes,
             "}");
}
}  // namespace

CommStatsReport::CommStatsReport(std::string path, std::string header_json,
                                 std::vector<Entry> comms)
    : path_(std::move(path)),
      header_(std::move(header_json)),
      comms_(std::move(comms)),
      uncaught_(std::uncaught_exceptions()),
      start_(now_s()) {}

std::string CommStatsReport::json() const {
  std::string s = "{" + header_ + (header_.empty() ? "" : ", ");
  s += cat("\"elapsed_s\": ", now_s() - start_, ", \"communicators\": {");
  CommStats total;
  for (size_t i = 0; i < comms_.size(); ++i) {
    const CommStats st = comms_[i].comm->stats();
    total += st;
    s += cat(i ? ", " : "", "\"", comms_[i].name, "\": {\"size\": ", comms_[i].comm->size(),
             ", \"all_reduce\": ", counter_json(st.all_reduce),
             ", \"all_gather\": ", counter_json(st.all_gather),
             ", \"broadcast\": ", counter_json(st.broadcast),
             ", \"barrier_calls\": ", st.barrier.calls, ", \"bytes\": ", st.total_bytes(),
             ", \"seconds\": ", st.seconds, "}");
  }
  s += cat("}, \"total_bytes\": ", total.total_bytes(), ", \"total_seconds\": ", total.seconds,
           "}\n");
  return s;
}

CommStatsReport::~CommStatsReport() {
  if (std::uncaught_exceptions() > uncaught_) return;
  // Destructors must not throw: a report that cannot be written is reported and skipped.
  if (FILE* f = std::fopen(path_.c_str(), "w")) {
    const std::string s = json();
    std::fwrite(s.data(), 1, s.size(), f);
    std::fclose(f);
  } else {
    std::fprintf(stderr, "resp: warning: cannot write communication stats to %s\n", path_.c_str());
  }
}

bool comm_check_from_env() {
  const char* v = std::getenv("RESP_COMM_CHECK");
  return v && *v && std::string_view(v) != "0";
}

CheckedCommunicator::CheckedCommunicator(std::unique_ptr<Communicator> inner, Options options)
    : inner_(std::move(inner)), options_(options) {
  if (!inner_) throw CommError("CheckedCommunicator: no communicator to wrap");
}

void CheckedCommunicator::verify(Kind kind, const Tensor* t, int64_t detail, const char* where) {
  const int64_t call = calls_++;
  if (!options_.verify || inner_->size() == 1) return;
  const std::array<int64_t, kFields> mine = {static_cast<int64_t>(kind),
                                             t ? static_cast<int64_t>(t->dtype()) : -1,
                                             t ? t->numel() : 0,
                                             detail,
                                             where ? static_cast<int64_t>(fnv1a(where) >> 1) : 0,
                                             call};
  std::vector<int64_t> all(static_cast<size_t>(kFields * inner_->size()));
  std::array<int64_t, kFields> buf = mine;
  inner_->all_gather(Tensor(all.data(), DType::I64, Shape{static_cast<int64_t>(all.size())}),
                     Tensor(buf.data(), DType::I64, Shape{kFields}));
  // Every rank compares the same table, so all ranks throw (or none does).
  bool same = true;
  for (int r = 1; r < inner_->size() && same; ++r)
    for (int f = 0; f < kFields - 1; ++f)  // the call index differs legitimately after a skip
      if (all[static_cast<size_t>(r) * kFields + static_cast<size_t>(f)] !=
          all[static_cast<size_t>(f)])
        same = false;
  if (same) return;
  std::string msg = cat("collective sequence mismatch on communicator '", inner_->name(),
                        "' (size ", inner_->size(), "): ");
  for (int r = 0; r < inner_->size(); ++r) {
    const int64_t* d = &all[static_cast<size_t>(r) * kFields];
    const bool own_where = d[4] == mine[4];
    msg += cat(r ? "; " : "", "rank ", r, " at call #", d[5], " ",
               describe(d, own_where ? where : nullptr));
  }
  msg += cat(" -- a rank skipped or added a collective (this rank: ", inner_->rank(), ")");
  throw CommError(msg);
}

void CheckedCommunicator::count(CommStats::Counter& c, const Tensor& t) {
  if (inner_->size() == 1) return;  // nothing leaves the process
  ++c.calls;
  c.elements += t.numel();
  c.bytes += static_cast<int64_t>(t.nbytes());
}

void CheckedCommunicator::all_reduce(const Tensor& x, ReduceOp op) {
  verify(Kind::AllReduce, &x, static_cast<int64_t>(op), nullptr);
  count(stats_.all_reduce, x);
  Timed t(stats_);
  inner_->all_reduce(x, op);
}

std::unique_ptr<CommRequest> CheckedCommunicator::all_reduce_async(const Tensor& x, ReduceOp op) {
  // Its own kind: MPI never matches a non-blocking collective with a blocking one, so a rank
  // that issues the blocking form where the others issue this one would hang.
  verify(Kind::AllReduceAsync, &x, static_cast<int64_t>(op), nullptr);
  count(stats_.all_reduce, x);
  Timed t(stats_);
  return std::make_unique<CheckedRequest>(inner_->all_reduce_async(x, op), stats_);
}

void CheckedCommunicator::all_gather(const Tensor& out, const Tensor& in) {
  verify(Kind::AllGather, &in, 0, nullptr);
  count(stats_.all_gather, out);
  Timed t(stats_);
  inner_->all_gather(out, in);
}

void CheckedCommunicator::broadcast(const Tensor& x, int root) {
  verify(Kind::Broadcast, &x, root, nullptr);
  count(stats_.broadcast, x);
  Timed t(stats_);
  inner_->broadcast(x, root);
}

void CheckedCommunicator::barrier() {
  verify(Kind::Barrier, nullptr, 0, nullptr);
  if (inner_->size() > 1) ++stats_.barrier.calls;
  Timed t(stats_);
  inner_->barrier();
}

void CheckedCommunicator::check_in_sync(const char* where) {
  verify(Kind::Sync, nullptr, 0, where ? where : "");
}

}  // namespace resp
