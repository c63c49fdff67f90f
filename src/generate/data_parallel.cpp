#include "generate/data_parallel.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace resp {

std::vector<std::string> all_gather_strings(Communicator& comm, const std::string& mine) {
  const int P = comm.size();
  if (P == 1) return {mine};
  std::vector<int64_t> lens(static_cast<size_t>(P));
  int64_t my_len = static_cast<int64_t>(mine.size());
  comm.all_gather(Tensor(lens.data(), DType::I64, Shape{P}), Tensor(&my_len, DType::I64, Shape{1}));
  const int64_t width = std::max<int64_t>(1, *std::max_element(lens.begin(), lens.end()));
  std::vector<uint8_t> in(static_cast<size_t>(width), 0), out(static_cast<size_t>(width * P));
  std::copy(mine.begin(), mine.end(), in.begin());
  comm.all_gather(Tensor(out.data(), DType::U8, Shape{width * P}),
                  Tensor(in.data(), DType::U8, Shape{width}));
  std::vector<std::string> all(static_cast<size_t>(P));
  for (int r = 0; r < P; ++r) {
    const auto* p = reinterpret_cast<const char*>(out.data()) + static_cast<size_t>(r) * width;
    all[static_cast<size_t>(r)].assign(p, static_cast<size_t>(lens[static_cast<size_t>(r)]));
  }
  return all;
}

std::vector<GenerationResult> generate_data_parallel(Generator& gen,
                                                     std::span<const GenerationRequest> requests,
                                                     Communicator& dp,
                                                     const Generator::ProgressFn& progress,
                                                     GenerationStats* stats) {
  const size_t D = static_cast<size_t>(dp.size()), me = static_cast<size_t>(dp.rank());
  std::vector<GenerationRequest> mine;
  for (size_t i = me; i < requests.size(); i += D) mine.push_back(requests[i]);
  const std::vector<GenerationResult> local = gen.generate(mine, progress);
  GenerationStats st = gen.stats();

  std::vector<GenerationResult> all(requests.size());
  if (D == 1) {
    all = local;
  } else {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : local) j.push_back({r.tokens, finish_reason_name(r.finish), r.stop});
    const auto parts = all_gather_strings(dp, j.dump());
    for (size_t r = 0; r < D; ++r) {
      const auto pj = nlohmann::json::parse(parts[r]);
      size_t i = r;
      for (const auto& e : pj) {
        if (i >= requests.size()) throw CommError("generate: a replica returned too many results");
        GenerationResult& g = all[i];
        g.tokens = e.at(0).get<std::vector<int32_t>>();
        g.finish = parse_finish_reason(e.at(1).get<std::string>());
        g.stop = e.at(2).get<std::string>();
        i += D;
      }
    }
    std::vector<double> sums = {
        static_cast<double>(st.prompt_tokens), static_cast<double>(st.generated_tokens),
        static_cast<double>(st.steps),         static_cast<double>(st.prefill_steps),
        static_cast<double>(st.decode_steps),  static_cast<double>(st.decode_only_tokens),
        static_cast<double>(st.sequences)};
    dp.all_reduce(Tensor(sums.data(), DType::F64, Shape{static_cast<int64_t>(sums.size())}));
    std::vector<double> maxes = {st.seconds, st.prefill_seconds, st.decode_seconds};
    dp.all_reduce(Tensor(maxes.data(), DType::F64, Shape{3}), ReduceOp::Max);
    st.prompt_tokens = static_cast<int64_t>(sums[0]);
    st.generated_tokens = static_cast<int64_t>(sums[1]);
    st.steps = static_cast<int64_t>(sums[2]);
    st.prefill_steps = static_cast<int64_t>(sums[3]);
    st.decode_steps = static_cast<int64_t>(sums[4]);
    st.decode_only_tokens = static_cast<int64_t>(sums[5]);
    st.sequences = static_cast<int64_t>(sums[6]);
    st.seconds = maxes[0];
    st.prefill_seconds = maxes[1];
    st.decode_seconds = maxes[2];
  }
  if (stats) *stats = st;
  return all;
}

}  // namespace resp
